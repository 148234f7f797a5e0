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
    module = load_module(name)
    spec: dict[str, Any] = module.argument_spec()
    if "amazon.aws.common.modules" in yaml.safe_load(module.DOCUMENTATION).get(
        "extends_documentation_fragment", []
    ):
        # AnsibleAWSModule adds its common options to the module's own
        from ansible_collections.amazon.aws.plugins.module_utils.modules import (
            aws_argument_spec,
        )

        spec = aws_argument_spec() | spec
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


AWS_MODULES = [
    "cloudwatch_dashboard",
    "cloudwatch_metric_data",
    "index_retry_replay",
    "sqs_dlq_recover",
    "sqs_queue_status",
    "sqs_stress_test",
]


@pytest.mark.parametrize("name", AWS_MODULES)
def test_aws_modules_are_ansible_aws_modules_with_its_fragments(name: str) -> None:
    source = (LIBRARY / f"{name}.py").read_text()
    assert "FilesearchAWSModule(" in source  # an AnsibleAWSModule
    fragments = yaml.safe_load(load_module(name).DOCUMENTATION)["extends_documentation_fragment"]
    assert {"amazon.aws.common.modules", "amazon.aws.region.modules", "amazon.aws.boto3"} <= set(
        fragments
    )


@pytest.mark.parametrize("name", MODULES)
def test_no_module_takes_its_aws_options_from_filesearch_aws(name: str) -> None:
    assert "filesearch_aws" not in (LIBRARY / f"{name}.py").read_text()


@pytest.mark.parametrize("name", ["sqs_dlq_recover", "sqs_stress_test"])
def test_check_mode_with_effects_or_blind_spots_is_declared_partial(name: str) -> None:
    check_mode = yaml.safe_load(load_module(name).DOCUMENTATION)["attributes"]["check_mode"]
    assert check_mode["support"] == "partial"
    assert "ApproximateReceiveCount" in " ".join(check_mode["details"])
