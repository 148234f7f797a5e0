"""Helpers for the backlog playbook tests: real ansible-playbook runs and commands on the hosts.

Imported by the tests of this directory (pytest puts it on sys.path)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playbook_process import ansible_playbook

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Run:
    """One ansible-playbook process, its JSON callback output parsed."""

    rc: int
    output: dict[str, Any]
    stderr: str

    def results(self, task: str, host: str = "localhost") -> list[dict[str, Any]]:
        """Every result of ``host`` for the tasks named ``task``, in run order."""
        found = []
        for play in self.output.get("plays", []):
            for t in play["tasks"]:
                if t["task"]["name"] == task and host in t["hosts"]:
                    found.append(t["hosts"][host])
        return found

    def result(self, task: str, host: str = "localhost") -> dict[str, Any]:
        """The last result of ``host`` for ``task``."""
        found = self.results(task, host)
        assert found, f"no task {task!r} ran on {host}:\n{self.failures()}"
        return found[-1]

    def failures(self) -> str:
        """``host: task: msg`` of each failed task (for assertion messages)."""
        out = []
        for play in self.output.get("plays", []):
            for t in play["tasks"]:
                for host, r in t["hosts"].items():
                    if r.get("failed"):
                        out.append(f"{host}: {t['task']['name']}: {r.get('msg')}")
        return "\n".join(out) or self.stderr[-3000:]


def run_playbook(
    playbook: str,
    env: dict[str, str],
    extra: dict[str, Any] | None = None,
    limit: str | None = None,
    timeout: float = 600,
) -> Run:
    """``ansible-playbook playbooks/<playbook>`` with ``-e`` JSON; never raises on failure."""
    done = ansible_playbook(
        playbook, env, extra=extra, limit=limit, json_output=True, timeout=timeout
    )
    try:
        output = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"ansible-playbook gave no JSON (rc {done.returncode}):\n{done.stdout[-3000:]}")
    return Run(done.returncode, output, done.stderr)


def on_host(sandbox: Any, host: str, command: str, timeout: float = 60) -> str:
    """Run ``command`` as root on a test host (ssh + sudo); return stdout, fail on error."""
    return str(sandbox.ssh(host, command, timeout=timeout, check=True).stdout)


def wait_for_stats_event(sandbox: Any, host: str, timeout: float = 60) -> None:
    """Wait until a phased-worker unit on ``host`` has logged a ``stats`` event.

    The deploy's verification passes on the worker's first ``polled`` event, so
    a host deployed last may not have logged statistics yet.
    """
    deadline = time.monotonic() + timeout
    command = (  # older than 3 s: inside a window that ends a second before "now"
        "journalctl --no-pager -o cat -u 'phased-worker*' --until=-3s -n 1 "
        '--grep \'"event": "stats"\''
    )
    while sandbox.ssh(host, command).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail(f"no stats event from phased-worker on {host} within {timeout:.0f}s")
        time.sleep(1)
