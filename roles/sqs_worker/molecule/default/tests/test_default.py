"""Testinfra checks of the sqs_worker scenario (two instances, hardened units)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

BASE = "/home/ec2-user/file-processor"
UNITS = ("phased-worker@1", "phased-worker@2")


def _with_journal(host: Any, unit: str, check: Callable[[], None]) -> None:
    """Run ``check``; on failure print the unit's journal, then re-raise."""
    try:
        check()
    except AssertionError:
        print(host.run(f"journalctl -u {unit} -n 60 --no-pager").stdout)
        raise


@pytest.mark.parametrize("unit", UNITS)
def test_instances_run(host: Any, unit: str) -> None:
    """Both template instances are enabled and running."""
    service = host.service(unit)

    def check() -> None:
        assert service.is_running, f"{unit} is not running"
        assert service.is_enabled, f"{unit} is not enabled"

    _with_journal(host, unit, check)


def test_plain_unit_absent(host: Any) -> None:
    """With two instances only the template unit exists."""
    assert not host.file("/etc/systemd/system/phased-worker.service").exists
    assert host.file("/etc/systemd/system/phased-worker@.service").exists


def test_environment_file_protected(host: Any) -> None:
    """The environment file is root:filesearch 0640 and holds the queue URL."""
    env = host.file("/etc/phased-worker.env")
    assert env.user == "root"
    assert env.group == "filesearch"
    assert env.mode == 0o640
    with host.sudo():
        assert "SQS_QUEUE_URL=" in env.content_string


def test_current_is_a_finished_release(host: Any) -> None:
    """`current` links to a release with a venv and no unfinished marker."""
    current = host.file(f"{BASE}/current")
    assert current.is_symlink
    release = current.linked_to
    assert release.startswith(f"{BASE}/releases/")
    assert host.file(f"{release}/venv/bin/filesearch-worker").exists
    assert not host.file(f"{release}/BUILD_UNFINISHED").exists
    meta = json.loads(host.file(f"{release}/RELEASE.json").content_string)
    assert meta["release_id"] == release.rsplit("/", 1)[-1]


def test_runs_as_dedicated_user(host: Any) -> None:
    """The worker processes run as the unprivileged service user."""
    pid = host.run("systemctl show -p MainPID --value phased-worker@1").stdout.strip()
    assert pid not in ("", "0")
    user = host.run(f"ps -o user= -p {pid}").stdout.strip()
    assert user == "filesearch"


def test_unit_verifies(host: Any) -> None:
    """systemd-analyze verify accepts the installed unit."""
    result = host.run("systemd-analyze verify phased-worker@1.service")
    assert result.rc == 0, result.stderr


def test_unit_exposure_at_most_2(host: Any) -> None:
    """systemd-analyze security rates the unit 2.0 or lower."""
    out = host.run("systemd-analyze security --no-pager phased-worker@1.service").stdout
    line = next(x for x in out.splitlines() if "Overall exposure level" in x)
    score = float(line.split(":")[1].split()[0])
    assert score <= 2.0, line


def test_health_passes(host: Any) -> None:
    """`filesearch-worker health` passes with the deployed environment."""
    with host.sudo():
        result = host.run(
            "systemd-run --quiet --wait --pipe --collect -p User=filesearch "
            "-p EnvironmentFile=/etc/phased-worker.env -p ProtectHome=tmpfs "
            f"-p BindReadOnlyPaths={BASE} "
            f"{BASE}/current/venv/bin/filesearch-worker health"
        )
    assert result.rc == 0, result.stdout + result.stderr


def test_legacy_install_left_in_place(host: Any) -> None:
    """The seed's flat worker.py is still where it was, unchanged."""
    legacy = host.file(f"{BASE}/worker.py")
    assert legacy.exists
    assert "legacy worker polling" in legacy.content_string


def test_legacy_install_adopted_as_previous(host: Any) -> None:
    """A copy became release <mtime>-legacy, with its old unit, and `previous` names it."""
    previous = host.file(f"{BASE}/previous")
    assert previous.is_symlink
    assert previous.linked_to.endswith("-legacy")
    assert host.file(f"{previous.linked_to}/worker.py").exists
    with host.sudo():
        old_unit = host.file(f"{previous.linked_to}/legacy-config/phased-worker.service")
        assert "worker.py" in old_unit.content_string


def test_legacy_unit_replaced(host: Any) -> None:
    """The legacy plain unit is stopped and disabled (the template instances took over)."""
    assert not host.service("phased-worker.service").is_running


@pytest.mark.parametrize(("unit", "port"), [("phased-worker@1", 23911), ("phased-worker@2", 23912)])
def test_each_instance_serves_its_own_metrics(host: Any, unit: str, port: int) -> None:
    """WORKER_PROMETHEUS_PORT + N - 1: instance N scrapes on its own port."""

    def check() -> None:
        result = host.run(
            f'python3 -c "import urllib.request; print(urllib.request.urlopen('
            f"'http://127.0.0.1:{port}/metrics', timeout=5).read().decode())\""
        )
        assert result.rc == 0, result.stderr
        assert "filesearch_worker_in_flight_messages" in result.stdout

    _with_journal(host, unit, check)
