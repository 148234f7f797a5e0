"""scale.yml and emergency_drain.yml on the nspawn hosts (real ansible-playbook, real systemd)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from backlog_it_helpers import on_host, run_playbook

pytestmark = [pytest.mark.sandbox, pytest.mark.hosts]

ENV_FILE = "/etc/phased-worker.env"


def active_units(sandbox: Any, host: str) -> set[str]:
    out = on_host(
        sandbox,
        host,
        "systemctl list-units --plain --no-legend --full --state=active 'phased-worker*.service'",
    )
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def env_value(sandbox: Any, host: str, name: str) -> str | None:
    text = on_host(sandbox, host, f"cat {ENV_FILE}")
    match = re.search(rf'^{name}="?([^"\n]*)"?$', text, re.M)
    return match.group(1) if match else None


def test_scale_up_with_concurrency_then_back_to_the_plain_unit(sandbox: Any) -> None:
    before = env_value(sandbox, "worker2", "WORKER_CONCURRENCY")
    try:
        up = run_playbook(
            "scale.yml", sandbox.env, {"worker_instances": 2, "worker_concurrency": 3}, "worker2"
        )
        assert up.rc == 0, up.failures()
        assert active_units(sandbox, "worker2") == {
            "phased-worker@1.service",
            "phased-worker@2.service",
        }
        assert env_value(sandbox, "worker2", "WORKER_CONCURRENCY") == "3"
        assert "stopped after draining: phased-worker.service" in str(
            up.result("Report the scale", "worker2")["msg"]
        )
    finally:
        down = run_playbook(
            "scale.yml",
            sandbox.env,
            {"worker_instances": 1, "worker_concurrency": before},
            "worker2",
        )
    assert down.rc == 0, down.failures()
    assert active_units(sandbox, "worker2") == {"phased-worker.service"}
    assert env_value(sandbox, "worker2", "WORKER_CONCURRENCY") == before
    journal = on_host(
        sandbox,
        "worker2",
        "journalctl --no-pager -o cat -u 'phased-worker@*' --since '-10min' "
        '--grep \'"event": "stopped"\'',
    )
    assert '"drained": true' in journal, "the surplus instances did not drain on scale-down"


def test_scale_refuses_a_bad_number(sandbox: Any) -> None:
    run = run_playbook("scale.yml", sandbox.env, {"worker_instances": 0}, "worker2")
    assert run.rc != 0
    assert "Give -e worker_instances=N" in run.failures()
    assert active_units(sandbox, "worker2") == {"phased-worker.service"}


def test_emergency_drain_switches_to_metadata_only_and_back(sandbox: Any) -> None:
    try:
        drain = run_playbook(
            "emergency_drain.yml", sandbox.env, {"worker_mode": "metadata-only"}, "worker1"
        )
        assert drain.rc == 0, drain.failures()
        assert env_value(sandbox, "worker1", "WORKER_MODE") == "metadata-only"
        assert "switched and restarted" in drain.result("Report the mode", "worker1")["msg"]
        assert env_value(sandbox, "worker2", "WORKER_MODE") is None, "only the chosen host drains"
        # a deploy in the middle of the drain keeps it (sqs_worker_mode "" keeps the host's mode)
        deploy = run_playbook("deploy.yml", sandbox.env, None, "worker1", timeout=900)
        assert deploy.rc == 0, deploy.failures()
        assert env_value(sandbox, "worker1", "WORKER_MODE") == "metadata-only"
    finally:
        back = run_playbook("emergency_drain.yml", sandbox.env, {"worker_mode": "full"}, "worker1")
    assert back.rc == 0, back.failures()
    assert env_value(sandbox, "worker1", "WORKER_MODE") is None
    started = on_host(
        sandbox,
        "worker1",
        'journalctl --no-pager -o cat -u phased-worker -n 200 --grep \'"event": "starting"\'',
    )
    assert started.strip().splitlines()[-1].count('"mode": "full"') == 1


def test_emergency_drain_refuses_an_unknown_mode(sandbox: Any) -> None:
    run = run_playbook("emergency_drain.yml", sandbox.env, {"worker_mode": "fast"}, "worker1")
    assert run.rc != 0
    assert "Give -e worker_mode=metadata-only" in run.failures()
    assert env_value(sandbox, "worker1", "WORKER_MODE") is None
