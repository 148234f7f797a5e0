"""Unit tests of roles/worker_backup/library/worker_backup_snapshot.py (a temporary tree)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "roles" / "worker_backup" / "library" / "worker_backup_snapshot.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("role_worker_backup_snapshot", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


MOD = load()


class Exited(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", ""))
        self.result = result


def _exit(self: basic.AnsibleModule, **kwargs: Any) -> NoReturn:
    raise Exited(kwargs)


def _fail(self: basic.AnsibleModule, msg: str = "", **kwargs: Any) -> NoReturn:
    raise Exited({"failed": True, "msg": msg, **kwargs})


def run(args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
    full = dict(args, _ansible_check_mode=check_mode)
    with (
        patch_module_args(full),
        mock.patch.object(basic.AnsibleModule, "exit_json", _exit),
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail),
        pytest.raises(Exited) as done,
    ):
        MOD.main()
    return done.value.result


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    """A worker install (release, env file, unit) and three older snapshots of something else."""
    base = tmp_path / "file-processor"
    (base / "releases" / "r2").mkdir(parents=True)
    (base / "current").symlink_to(base / "releases" / "r2")
    env = tmp_path / "phased-worker.env"
    env.write_text("SQS_QUEUE_URL=q\n")
    units = tmp_path / "units"
    units.mkdir()
    (units / "phased-worker.service").write_text("[Service]\n")
    backups = tmp_path / "backups"
    for stamp in ("20261101T000000Z", "20261102T000000Z", "20261103T000000Z"):
        (backups / stamp).mkdir(parents=True)
        (backups / stamp / "manifest.json").write_text(json.dumps({"release_id": "r1"}))
    return {
        "base_dir": str(base),
        "service_name": "phased-worker",
        "env_file": str(env),
        "unit_dir": str(units),
        "backup_dir": str(backups),
        "keep": 3,
    }


def snapshots(args: dict[str, Any]) -> list[str]:
    return sorted(p.name for p in Path(args["backup_dir"]).iterdir())


def test_check_mode_reports_the_snapshot_a_new_one_pushes_out(host: dict[str, Any]) -> None:
    before = snapshots(host)
    checked = run(host, check_mode=True)
    assert checked["created"] is True and checked["changed"] is True
    # a new snapshot makes four; keep 3 removes the oldest
    assert checked["removed"] == [str(Path(host["backup_dir"]) / "20261101T000000Z")]
    assert snapshots(host) == before  # nothing written or removed
    done = run(host)
    assert done["removed"] == checked["removed"]
    assert len(snapshots(host)) == 3 and "20261101T000000Z" not in snapshots(host)


def test_check_mode_removes_nothing_when_nothing_changed(host: dict[str, Any]) -> None:
    run(host)  # snapshot of what runs now
    again = run(host, check_mode=True)
    assert again["created"] is False and again["removed"] == [] and again["changed"] is False
