"""Optional Prometheus ``/metrics`` endpoint (``WORKER_PROMETHEUS_PORT``).

A :class:`~filesearch_worker.metrics.Metrics` back-end: the settler and the
runner record through the same ``incr``/``observe`` calls that feed CloudWatch
(``metrics.TeeMetrics`` sends each call to both), and this class only
translates the CloudWatch names into Prometheus series:

- every CloudWatch counter ``MessagesSucceeded`` etc. becomes
  ``filesearch_worker_messages_succeeded_total`` etc. (``CAMEL_TO_PROM``);
- a call carrying ``outcome`` (one per settled message) also counts in
  ``filesearch_worker_messages_total{outcome}``, the series the rules file
  (files/prometheus/filesearch-worker.rules.yml) uses;
- ``ProcessingSeconds`` is the histogram ``filesearch_worker_processing_seconds``;
- the in-flight count and the OpenSearch breaker state are read at scrape time
  (``filesearch_worker_in_flight_messages``, ``filesearch_worker_circuit_open``
  and ``filesearch_worker_circuit_state{state}``).

prometheus_client is the worker's optional extra ``prometheus``; it is imported
only when the endpoint is switched on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from filesearch_worker import logs
from filesearch_worker.metrics import METRIC_NAMES

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

log = logging.getLogger(__name__)

PREFIX = "filesearch_worker"
BREAKER_STATES = ("closed", "open", "half-open")
# seconds; a message takes from milliseconds (metadata-only) to minutes (big PDFs)
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def snake(name: str) -> str:
    """CamelCase -> snake_case: ``DLQSendFailed`` -> ``dlq_send_failed``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


CAMEL_TO_PROM = {n: f"{PREFIX}_{snake(n)}_total" for n in METRIC_NAMES if n != "ProcessingSeconds"}


class PrometheusMetrics:
    """Counters, a histogram and scrape-time gauges served on ``addr:port``."""

    def __init__(
        self,
        port: int,
        addr: str = "127.0.0.1",
        *,
        in_flight: Callable[[], int] | None = None,
        breaker_state: Callable[[], str] | None = None,
    ) -> None:
        try:
            import prometheus_client as pc
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "WORKER_PROMETHEUS_PORT is set but prometheus_client is not installed "
                "(pip install 'filesearch-worker[prometheus]')"
            ) from exc
        self._pc = pc
        self.port = port
        self.addr = addr
        self.registry = pc.CollectorRegistry()
        self._server: WSGIServer | None = None
        self._counters: dict[str, Any] = {
            camel: pc.Counter(
                prom.removesuffix("_total"),
                f"CloudWatch metric {camel}",
                registry=self.registry,
            )
            for camel, prom in CAMEL_TO_PROM.items()
        }
        self._settled = pc.Counter(
            f"{PREFIX}_messages",
            "Settled messages by outcome (indexed, retry_stored, dead_lettered, released, ...)",
            ["outcome"],
            registry=self.registry,
        )
        self._seconds = pc.Histogram(
            f"{PREFIX}_processing_seconds",
            "Seconds from receive to settlement per message (CloudWatch ProcessingSeconds)",
            buckets=BUCKETS,
            registry=self.registry,
        )
        if in_flight is not None:
            gauge = pc.Gauge(
                f"{PREFIX}_in_flight_messages",
                "Messages received and not yet settled (held by the heartbeat)",
                registry=self.registry,
            )
            gauge.set_function(lambda: float(in_flight()))
        if breaker_state is not None:
            is_open = pc.Gauge(
                f"{PREFIX}_circuit_open",
                "1 while the OpenSearch circuit breaker is open, else 0",
                registry=self.registry,
            )
            is_open.set_function(lambda: 1.0 if breaker_state() == "open" else 0.0)
            state = pc.Gauge(
                f"{PREFIX}_circuit_state",
                "OpenSearch circuit breaker state (1 for the current state)",
                ["state"],
                registry=self.registry,
            )
            for name in BREAKER_STATES:
                state.labels(name).set_function(
                    lambda name=name: 1.0 if breaker_state() == name else 0.0  # type: ignore[misc]
                )

    def incr(self, name: str, value: float = 1.0, *, outcome: str = "") -> None:
        """Add to the counter for a CloudWatch name (unknown names get no series)."""
        counter = self._counters.get(name)
        if counter is not None:
            counter.inc(value)
        else:
            log.debug("no Prometheus series for metric %s", name)
        if outcome:
            self._settled.labels(outcome).inc()

    def observe(self, name: str, value: float) -> None:
        """Record ``ProcessingSeconds`` in the histogram."""
        if name == "ProcessingSeconds":
            self._seconds.observe(value)

    def start(self) -> None:
        """Serve ``/metrics`` (a daemon thread of prometheus_client)."""
        if self._server is not None:
            return
        self._server, _thread = self._pc.start_http_server(
            self.port, addr=self.addr, registry=self.registry
        )
        self.port = int(self._server.server_port)
        logs.event(log, "prometheus", addr=self.addr, port=self.port, path="/metrics")

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def exposition(self) -> str:
        """The current text exposition (what a scrape returns)."""
        return self._pc.generate_latest(self.registry).decode()
