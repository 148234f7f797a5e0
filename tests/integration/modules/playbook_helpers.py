"""Helpers for the module integration tests: real ansible-playbook runs on the local stack."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from playbook_process import ansible_playbook

REPO = Path(__file__).resolve().parents[3]


def load_scenario() -> ModuleType:
    """bench/dlq_scenario.py (the seed's DLQ mix), imported by path."""
    spec = importlib.util.spec_from_file_location(
        "dlq_scenario", REPO / "bench" / "dlq_scenario.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dlq_scenario"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class PlaybookRun:
    """One ansible-playbook run, its JSON callback output parsed."""

    rc: int
    output: dict[str, Any]
    stderr: str

    def failures(self) -> list[str]:
        """``task: msg`` of every failed task (for assertion messages)."""
        out = []
        for play in self.output.get("plays", []):
            for task in play["tasks"]:
                for result in task["hosts"].values():
                    if result.get("failed"):
                        out.append(f"{task['task']['name']}: {result.get('msg')}")
        return out or [self.stderr]

    @property
    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.output["stats"]["localhost"]
        return stats

    def result(self, task_name: str) -> dict[str, Any]:
        """The localhost result of the task named ``task_name`` (last play that ran it)."""
        for play in reversed(self.output["plays"]):
            for task in play["tasks"]:
                if task["task"]["name"] == task_name:
                    found: dict[str, Any] = task["hosts"]["localhost"]
                    return found
        raise KeyError(f"no task {task_name!r} in the run")


def run_playbook(
    playbook: str | Path,
    extra_vars: dict[str, Any] | None = None,
    *,
    check: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> PlaybookRun:
    """ansible-playbook with the repository's ansible.cfg (default inventory inventories/local)."""
    done = ansible_playbook(
        playbook, env, extra=extra_vars, check=check, json_output=True, timeout=timeout
    )
    try:
        output = json.loads(done.stdout)
    except ValueError:
        pytest.fail(
            f"ansible-playbook gave no JSON (rc {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return PlaybookRun(done.returncode, output, done.stderr)
