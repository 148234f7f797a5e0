"""Verify of role dlq_recovery_timer on a throwaway nspawn host (testinfra over ssh)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

UNIT = "filesearch-dlq-recovery"
SERVICE = f"{UNIT}.service"
TIMER = f"{UNIT}.timer"
RUN_DIR = f"/run/{UNIT}"
HOLD = f"{RUN_DIR}/hold"


def _journal(host: Any, unit: str = SERVICE) -> str:
    return str(host.run(f"journalctl -u {unit} --no-pager -n 200").stdout)


@pytest.fixture
def sudo_host(host: Any) -> Iterator[Any]:
    """The host, as root; prints the unit's journal before a failure is re-raised."""
    with host.sudo():
        try:
            yield host
        except BaseException:
            print(_journal(host))
            raise


def _show(host: Any, prop: str, unit: str = SERVICE) -> str:
    return str(host.check_output(f"systemctl show -p {prop} --value {unit}"))


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def _calls(host: Any) -> int:
    return _journal(host).count("stand-in called:")


def test_timer_is_enabled_and_active(sudo_host: Any) -> None:
    timer = sudo_host.service(TIMER)
    assert timer.is_enabled
    assert timer.is_running
    assert _show(sudo_host, "TimersCalendar", TIMER).count("OnCalendar=*-*-* *:00/15:00") == 1


def test_units_pass_systemd_analyze_verify(sudo_host: Any) -> None:
    result = sudo_host.run(
        f"systemd-analyze verify /etc/systemd/system/{SERVICE} /etc/systemd/system/{TIMER}"
    )
    assert result.rc == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_service_exposure_is_at_most_2(sudo_host: Any) -> None:
    out = sudo_host.check_output(f"systemd-analyze security --no-pager {SERVICE}")
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert level, out
    assert float(level.group(1)) <= 2.0, out


def test_service_runs_recover_dlq_with_the_worker_env(sudo_host: Any) -> None:
    before = _calls(sudo_host)
    sudo_host.check_output(f"systemctl start {SERVICE}")  # oneshot: returns when the run ends
    assert _show(sudo_host, "Result") == "success"
    journal = _journal(sudo_host)
    assert _calls(sudo_host) == before + 1
    line = [x for x in journal.splitlines() if "stand-in called:" in x][-1]
    assert "recover-dlq --json --batch-size 10 --strategy reindex --max-attempts 3" in line
    assert "--max-messages 500" in line
    assert "dlq=http://127.0.0.1:4566/queue/ap-northeast-1/000000000000/mol-dlq" in line
    assert "as filesearch" in line


def test_a_start_while_running_does_not_start_a_second_run(sudo_host: Any) -> None:
    """systemd's own non-overlap: the timer's start of a running oneshot joins that run."""
    before = _calls(sudo_host)
    sudo_host.check_output(f"install -d -m 0755 {RUN_DIR} && touch {HOLD}")
    try:
        sudo_host.check_output(f"systemctl start --no-block {SERVICE}")
        _wait(lambda: _calls(sudo_host) == before + 1, "the first run to start")
        assert _show(sudo_host, "ActiveState") == "activating"
        main_pid = _show(sudo_host, "MainPID")
        invocation = _show(sudo_host, "InvocationID")
        sudo_host.check_output(f"systemctl start --no-block {SERVICE}")  # a timer tick
        sudo_host.check_output(f"systemctl start --no-block {SERVICE}")  # and a manual start
        assert _show(sudo_host, "MainPID") == main_pid
        assert _show(sudo_host, "InvocationID") == invocation
    finally:
        sudo_host.run(f"rm -f {HOLD}")
    _wait(lambda: _show(sudo_host, "ActiveState") == "inactive", "the run to finish")
    assert _calls(sudo_host) == before + 1
    assert _show(sudo_host, "Result") == "success"


def test_a_held_lock_skips_the_run(sudo_host: Any) -> None:
    """flock: a manual run holding the lock makes the scheduled run skip (exit 75, success)."""
    before = _calls(sudo_host)
    holder = "mol-dlq-lock-holder"
    sudo_host.check_output(f"install -d -m 0755 {RUN_DIR} && touch {HOLD}")
    try:
        sudo_host.check_output(
            f"systemd-run --unit={holder} --collect /usr/bin/flock {RUN_DIR}/lock "
            f"/bin/sh -c 'while [ -e {HOLD} ]; do sleep 0.2; done'"
        )
        _wait(
            lambda: sudo_host.run(f"flock --nonblock {RUN_DIR}/lock true").rc != 0,
            "the holder to take the lock",
        )
        sudo_host.check_output(f"systemctl start {SERVICE}")
        assert _show(sudo_host, "Result") == "success"
        assert _show(sudo_host, "ExecMainStatus") == "75"
        assert _calls(sudo_host) == before
        assert "flock: failed to get lock" in _journal(sudo_host)
    finally:
        sudo_host.run(f"rm -f {HOLD}")
        sudo_host.run(f"systemctl stop {holder}")
