"""inventories/production and inventories/staging: placeholders only, vault references complete."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ops_helpers import REPO

INVENTORIES = ("production", "staging")
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
ACCOUNT_ID = re.compile(r"(?<![\d.])\d{12}(?![\d.])")
VAULT_REF = re.compile(r"\bvault_[a-z0-9_]*[a-z0-9]\b(?!\*)")


def _files(name: str) -> list[Path]:
    return sorted(p for p in (REPO / "inventories" / name).rglob("*") if p.is_file())


@pytest.mark.parametrize("name", INVENTORIES)
def test_no_addresses_or_account_ids(name: str) -> None:
    for path in _files(name):
        text = path.read_text()
        assert IPV4.findall(text) == [], path
        ids = [i for i in ACCOUNT_ID.findall(text) if i != "000000000000"]
        assert ids == [], path


@pytest.mark.parametrize("name", INVENTORIES)
def test_every_vault_reference_is_in_the_example(name: str) -> None:
    root = REPO / "inventories" / name
    example = yaml.safe_load((root / "group_vars" / "all" / "vault.yml.example").read_text())
    referenced = {
        ref
        for path in _files(name)
        if not path.name.endswith(".example")
        for ref in VAULT_REF.findall(path.read_text())
    }
    assert referenced, "the inventory references no vault variable"
    assert sorted(referenced - set(example)) == []
    assert not (root / "group_vars" / "all" / "vault.yml").exists(), (
        "vault.yml must not be committed"
    )


@pytest.mark.parametrize("name", INVENTORIES)
def test_inventory_resolves_with_the_example_vault(name: str, tmp_path: Path) -> None:
    """With vault.yml made from the example, the worker and controller variables resolve."""
    copy = tmp_path / name
    subprocess.run(["cp", "-r", str(REPO / "inventories" / name), str(copy)], check=True)
    (copy / "group_vars" / "all" / "vault.yml.example").rename(
        copy / "group_vars" / "all" / "vault.yml"
    )
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "ansible"),
            "-i",
            str(copy),
            "all",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ [sqs_worker_queue_url | default(''),"
            " cloudwatch_alarms_queue_name | default(''),"
            " dlq_recovery_timer_state | default('present')] | to_json }}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "PATH": str(REPO / ".venv" / "bin") + ":/usr/bin:/bin",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hosts = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]
    assert set(hosts) >= {"localhost", "worker-1"}
    worker = json.loads(hosts["worker-1"]["msg"])
    assert worker[0].startswith("https://sqs.ap-northeast-1.amazonaws.com/000000000000/")
    control = json.loads(hosts["localhost"]["msg"])
    assert control[1].startswith("cis-filesearch-index-queue")
