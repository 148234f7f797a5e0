"""Helpers for the ops playbook tests: run ansible-playbook as a real process.

Imported by the tests of this directory (pytest puts it on sys.path)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playbook_process import ansible_playbook

REPO = Path(__file__).resolve().parents[3]
_RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)


@dataclass(frozen=True)
class PlaybookRun:
    """The outcome of one ansible-playbook process."""

    rc: int
    output: str

    def recap(self, host: str = "localhost") -> dict[str, int]:
        """The PLAY RECAP counters of ``host``."""
        for match in _RECAP.finditer(self.output):
            if match.group(1) == host:
                ok, changed, unreachable, failed = (int(g) for g in match.groups()[1:])
                return {"ok": ok, "changed": changed, "unreachable": unreachable, "failed": failed}
        raise AssertionError(f"no PLAY RECAP line for {host}:\n{self.output[-3000:]}")


def run_playbook(
    playbook: str,
    env: dict[str, str],
    extra: dict[str, Any] | None = None,
    timeout: float = 300,
    limit: str | None = None,
    check: bool = False,
) -> PlaybookRun:
    """``ansible-playbook playbooks/<playbook>`` with ``-e`` JSON; never raises on failure."""
    done = ansible_playbook(playbook, env, extra=extra, limit=limit, check=check, timeout=timeout)
    return PlaybookRun(rc=done.returncode, output=done.stdout + done.stderr)


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)
