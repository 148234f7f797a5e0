"""CloudWatch metrics, aggregated in memory and sent in batches from a background thread.

``incr``/``observe`` only touch a dict under a lock, so the processing loop
never waits on CloudWatch. Every ``interval`` seconds the flusher sends one
``PutMetricData`` per 1000 datums (counters as sums, timings as statistic
sets). A failed send is logged and dropped: metrics never block or crash the
worker.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

log = logging.getLogger(__name__)

METRIC_NAMES = (
    "MessagesSucceeded",
    "MessagesFailed",
    "MessagesReleased",
    "MessageDeleteFailed",
    "CriticalError",
    "IndexRetryStored",
    "ProcessingSeconds",
    "HeartbeatFailed",
    "DLQSendFailed",
)


class Metrics(Protocol):
    """What the worker records.

    ``outcome`` is given once per settled message (indexed, retry_stored,
    dead_lettered, released, ...): CloudWatch ignores it, the Prometheus
    exporter counts it in ``filesearch_worker_messages_total{outcome}``.
    """

    def incr(self, name: str, value: float = 1.0, *, outcome: str = "") -> None: ...

    def observe(self, name: str, value: float) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class NullMetrics:
    """WORKER_METRICS=off: record nothing."""

    def incr(self, name: str, value: float = 1.0, *, outcome: str = "") -> None:
        """Nothing."""

    def observe(self, name: str, value: float) -> None:
        """Nothing."""

    def start(self) -> None:
        """Nothing."""

    def close(self) -> None:
        """Nothing."""


class CloudWatchMetrics:
    """Batched PutMetricData in ``namespace`` from a daemon thread."""

    def __init__(
        self,
        client: CloudWatchClient,
        namespace: str,
        interval: float = 60.0,
        dimensions: list[dict[str, str]] | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.interval = interval
        self.dimensions = dimensions or []
        self._lock = threading.Lock()
        self._counts: dict[str, float] = defaultdict(float)
        self._timings: dict[str, list[float]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.send_failures = 0

    def incr(self, name: str, value: float = 1.0, *, outcome: str = "") -> None:
        """Add to a counter (sent as a Sum; ``outcome`` is not a dimension here)."""
        with self._lock:
            self._counts[name] += value

    def observe(self, name: str, value: float) -> None:
        """Record a timing (sent as a StatisticSet in seconds)."""
        with self._lock:
            self._timings[name].append(value)

    def start(self) -> None:
        """Start the flusher thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the flusher and send what is left (best effort)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def _drain(self) -> list[Any]:
        with self._lock:
            counts, self._counts = self._counts, defaultdict(float)
            timings, self._timings = self._timings, defaultdict(list)
        now = datetime.now(UTC)
        data: list[Any] = []
        for name, value in counts.items():
            data.append(
                {
                    "MetricName": name,
                    "Timestamp": now,
                    "Value": value,
                    "Unit": "Count",
                    "Dimensions": self.dimensions,
                }
            )
        for name, values in timings.items():
            if values:
                data.append(
                    {
                        "MetricName": name,
                        "Timestamp": now,
                        "StatisticValues": {
                            "SampleCount": float(len(values)),
                            "Sum": float(sum(values)),
                            "Minimum": float(min(values)),
                            "Maximum": float(max(values)),
                        },
                        "Unit": "Seconds",
                        "Dimensions": self.dimensions,
                    }
                )
        return data

    def flush(self) -> int:
        """Send everything recorded so far; returns the number of datums sent."""
        data = self._drain()
        sent = 0
        for start in range(0, len(data), 1000):
            chunk = data[start : start + 1000]
            try:
                self.client.put_metric_data(Namespace=self.namespace, MetricData=chunk)
            except (BotoCoreError, ClientError) as exc:
                self.send_failures += 1
                log.warning("PutMetricData failed; %d datum(s) dropped: %s", len(chunk), exc)
                continue
            sent += len(chunk)
        self.sent += sent
        return sent


class TeeMetrics:
    """Feeds every record to several back-ends (CloudWatch and Prometheus)."""

    def __init__(self, *backends: Metrics) -> None:
        self.backends = backends

    def incr(self, name: str, value: float = 1.0, *, outcome: str = "") -> None:
        """Add to the counter in every back-end."""
        for backend in self.backends:
            backend.incr(name, value, outcome=outcome)

    def observe(self, name: str, value: float) -> None:
        """Record the timing in every back-end."""
        for backend in self.backends:
            backend.observe(name, value)

    def start(self) -> None:
        """Start every back-end."""
        for backend in self.backends:
            backend.start()

    def close(self) -> None:
        """Close every back-end (a failure in one does not skip the others)."""
        for backend in self.backends:
            try:
                backend.close()
            except Exception:
                log.exception("closing metrics back-end %s failed", type(backend).__name__)
