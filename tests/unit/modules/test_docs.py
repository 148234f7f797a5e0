"""Each module's DOCUMENTATION/EXAMPLES/RETURN renders with ansible-doc and matches its spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import LIBRARY, ROOT, load_module

MODULES = sorted(p.stem for p in LIBRARY.glob("*.py"))
ANSIBLE_DOC = str(Path(sys.executable).with_name("ansible-doc"))


def ansible_doc(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [ANSIBLE_DOC, "-M", str(LIBRARY), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_all_modules_are_found() -> None:
    assert {"sqs_queue_status", "cloudwatch_dashboard"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name: str) -> None:
    text = ansible_doc(name)
    assert text.returncode == 0, text.stderr
    assert "ERROR" not in text.stderr
    for section in ("OPTIONS", "ATTRIBUTES", "EXAMPLES", "RETURN VALUES"):
        assert section in text.stdout, f"{section} missing from ansible-doc {name}"


@pytest.mark.parametrize("name", MODULES)
def test_documented_options_match_argument_spec(name: str) -> None:
    rendered = ansible_doc("--json", name)
    assert rendered.returncode == 0, rendered.stderr
    doc: dict[str, Any] = json.loads(rendered.stdout)[name]["doc"]
    spec: dict[str, Any] = load_module(name).argument_spec()
    assert set(doc["options"]) == set(spec)
    for option, documented in doc["options"].items():
        declared = spec[option]
        assert documented.get("type", "str") == declared.get("type", "str"), option
        assert documented.get("default") == declared.get("default"), option
        assert bool(documented.get("required")) == bool(declared.get("required")), option
        assert sorted(documented.get("aliases", [])) == sorted(declared.get("aliases", [])), option
        assert documented.get("choices") == declared.get("choices"), option
        assert documented.get("description"), option
    attributes = doc["attributes"]
    assert {"check_mode", "diff_mode"} <= set(attributes)


@pytest.mark.parametrize("name", MODULES)
def test_examples_and_return_are_yaml(name: str) -> None:
    module = load_module(name)
    examples = yaml.safe_load(module.EXAMPLES)
    assert examples and all(name in task or "ansible.builtin.debug" in task for task in examples)
    returned = yaml.safe_load(module.RETURN)
    for key, value in returned.items():
        assert {"description", "returned", "type"} <= set(value), key
        assert "sample" in value or "contains" in value, key
