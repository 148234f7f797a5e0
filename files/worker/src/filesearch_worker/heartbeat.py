"""Visibility heartbeat: extend in-flight messages while they are being worked on.

One background thread for the whole worker. Messages are tracked from
receive; every ``interval`` seconds (below the visibility timeout) each
tracked message gets ``ChangeMessageVisibility`` back up to the timeout, never
past SQS's 12-hour cap counted from receive. ``cancel`` is synchronous: once it
returns, no extension for those receipt handles is in progress or will be
sent, so settlement can delete or release them safely (bbc/sqs-consumer's
lesson: cancel before delete).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filesearch_worker.config import SQS_MAX_VISIBILITY
from filesearch_worker.sqs_batch import SqsBatch

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

CAP_MARGIN = 30.0  # stop extending this many seconds before the 12 h cap


@dataclass
class _Tracked:
    receipt_handle: str
    received_at: float
    extended_at: float


class Heartbeat:
    """Keeps tracked messages invisible until they are cancelled."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        visibility_timeout: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        if interval >= visibility_timeout:
            raise ValueError("heartbeat interval must be below the visibility timeout")
        self.queue = SqsBatch(sqs, queue_url)
        self.visibility_timeout = visibility_timeout
        self.interval = interval
        self._clock = clock
        self._on_failure = on_failure
        self._lock = threading.Lock()  # guards _tracked; held during extension calls
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._tracked: dict[str, _Tracked] = {}
        self._thread: threading.Thread | None = None
        self.extensions = 0
        self.failures = 0

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop extending (tracked messages are left as they are)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    # -- tracking -------------------------------------------------------------

    def track(self, receipt_handles: Iterable[str], received_at: float | None = None) -> None:
        """Start keeping these messages invisible (call right after receive)."""
        now = self._clock() if received_at is None else received_at
        with self._lock:
            for handle in receipt_handles:
                self._tracked[handle] = _Tracked(handle, now, now)

    def cancel(self, receipt_handles: Iterable[str]) -> None:
        """Stop extending these messages; returns only once no extension is in flight."""
        with self._lock:
            for handle in receipt_handles:
                self._tracked.pop(handle, None)

    def tracked(self) -> list[str]:
        """Receipt handles currently tracked."""
        with self._lock:
            return list(self._tracked)

    def __len__(self) -> int:
        with self._lock:
            return len(self._tracked)

    # -- the beat -------------------------------------------------------------

    def _run(self) -> None:
        tick = max(0.05, min(self.interval / 4, 1.0))
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.beat()
            except Exception:
                log.exception("heartbeat failed")

    def beat(self) -> int:
        """Extend every message due now; returns how many were extended."""
        with self._lock:
            now = self._clock()
            due: list[tuple[_Tracked, int]] = []
            for item in list(self._tracked.values()):
                if now - item.extended_at < self.interval:
                    continue
                left = SQS_MAX_VISIBILITY - CAP_MARGIN - (now - item.received_at)
                timeout = int(min(self.visibility_timeout, left))
                if timeout <= 0:
                    log.warning("message reached the 12 h visibility cap; no longer extended")
                    self._tracked.pop(item.receipt_handle, None)
                    continue
                due.append((item, timeout))
            return self._extend(due, now)

    def _extend(self, due: list[tuple[_Tracked, int]], now: float) -> int:
        if not due:
            return 0
        result = self.queue.change_visibility(due, lambda d: d[0].receipt_handle, lambda d: d[1])
        for item, _ in result.ok:
            item.extended_at = now
        for (item, _), error in result.failed:
            self.failures += 1
            code = error.split(":", 1)[0]
            log.warning("heartbeat: could not extend a message: %s", error)
            if code in ("ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"):
                self._tracked.pop(item.receipt_handle, None)
            if self._on_failure:
                self._on_failure(item.receipt_handle, code)
        self.extensions += len(result.ok)
        return len(result.ok)
