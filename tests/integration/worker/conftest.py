"""Worker-specific fixtures: real ``filesearch-worker`` processes against the local stack.

The shared fixtures (``sandbox``, ``stack``, ``sqs``, ``s3``, ``opensearch``) come
from tests/conftest.py. ``start_worker`` runs ``filesearch-worker run`` as a
subprocess with a stack's environment, logs (JSON lines) to a file, and is
stopped by its pid at the end of the test whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from worker_it_helpers import wait_until

REPO = Path(__file__).resolve().parents[3]
WORKER = REPO / ".venv" / "bin" / "filesearch-worker"

# fast settings for tests; each test adds what it is about
TEST_ENV = {
    "SQS_WAIT_TIME_SECONDS": "1",
    "WORKER_STATS_INTERVAL_SECONDS": "2",
    "WORKER_METRICS": "off",
    "WORKER_SHUTDOWN_GRACE_SECONDS": "20",
    "WORKER_BACKOFF_BASE_SECONDS": "1",
    "WORKER_BACKOFF_MAX_SECONDS": "2",
    "WORKER_CONCURRENCY": "4",
    "LOG_LEVEL": "info",
}


@dataclass
class WorkerProcess:
    """A running ``filesearch-worker`` and its JSON log."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                out.append(line)
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]

    def settled(self) -> list[dict[str, Any]]:
        return self.events("settled")

    def wait_settled(self, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        wait_until(
            lambda: len(self.settled()) >= count or self.proc.poll() is not None,
            timeout,
            f"{count} settled messages",
        )
        assert self.proc.poll() is None, f"worker exited early:\n{self.tail()}"
        return self.settled()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``start_worker(env, **overrides) -> WorkerProcess``; all stopped by pid afterwards."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], command: str = "run", **overrides: str) -> WorkerProcess:
        full = {**env, **TEST_ENV, **{k: str(v) for k, v in overrides.items()}}
        log_path = tmp_path / f"worker-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(WORKER), command], env=full, stdout=log, stderr=subprocess.STDOUT
            )
        worker = WorkerProcess(proc, log_path)
        started.append(worker)
        wait_until(lambda: worker.events("starting") or proc.poll() is not None, 30, "worker start")
        assert proc.poll() is None, f"worker did not start:\n{worker.tail()}"
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
            try:
                worker.proc.wait(30)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait(10)
