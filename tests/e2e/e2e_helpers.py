"""Helpers for the end-to-end deploy tests: run real ansible-playbook, feed real events."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playbook_process import ansible_playbook

from filesearch_worker.events import s3_event_body

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+).*failed=(?P<failed>\d+)"
)


@dataclass
class PlaybookRun:
    """One ansible-playbook run: exit code, output, the recap per host, wall time."""

    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def changed(self, host: str) -> int:
        """Tasks reported changed on ``host``."""
        return self.recap[host]["changed"]

    def task_results(self, task: str) -> list[str]:
        """The per-host result lines (``ok: [h]``, ``skipping: [h]``, ...) of every task
        whose ``TASK [...]`` header contains ``task``."""
        results: list[str] = []
        inside = False
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [", "PLAY ")):
                inside = line.startswith("TASK [") and task in line
            elif inside and re.match(r"^(ok|changed|skipping|failed|fatal|included): ", line):
                results.append(line)
        return results

    def tail(self, lines: int = 60) -> str:
        """The last lines of the output (for assertion messages)."""
        return "\n".join(self.output.splitlines()[-lines:])


def run_playbook(
    name: str, extra_vars: dict[str, Any], env: dict[str, str], timeout: float = 900
) -> PlaybookRun:
    """Run playbooks/<name> against the sandbox inventory with ``extra_vars``."""
    started = time.monotonic()
    proc = ansible_playbook(name, env, extra=extra_vars, timeout=timeout)
    run = PlaybookRun(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)
    in_recap = False
    for line in proc.stdout.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        match = _RECAP.match(line) if in_recap else None
        if match:
            run.recap[match["host"]] = {k: int(match[k]) for k in ("ok", "changed", "failed")}
    log.info("%s: rc=%d in %.1fs, recap %s", name, run.rc, run.seconds, run.recap)
    return run


class Feeder:
    """Uploads a small text file and sends its S3 event, once a second, in a thread.

    Bounded: at most ``limit`` files. ``keys`` lists every key sent, in order.
    """

    def __init__(self, s3: Any, sqs: Any, bucket: str, queue_url: str, limit: int = 1000) -> None:
        self.s3, self.sqs, self.bucket, self.queue_url, self.limit = (
            s3,
            sqs,
            bucket,
            queue_url,
            limit,
        )
        self.keys: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, label: str) -> str:
        """Upload one file (Japanese and space in its name) and send its event."""
        n = len(self.keys)
        if n >= self.limit:
            raise AssertionError(f"feeder limit {self.limit} reached")
        key = f"e2e/{label}/報告書 {n:04d}.txt"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=f"deploy e2e {label} {n}".encode())
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=s3_event_body(self.bucket, key))
        self.keys.append(key)
        return key

    def start(self, label: str, every: float = 2.0) -> None:
        """Send one file every ``every`` seconds until stop()."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(every):
                self.send(label)

        self._thread = threading.Thread(target=loop, name=f"feeder-{label}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background sending."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 1.0) -> Any:
    """Poll ``condition`` until truthy; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
