"""The daemon: long-poll loops, concurrency, statistics, signals and graceful drain.

``WORKER_POLLERS`` receive loops each take a batch of up to 10 messages, start
the heartbeat for them, hand them to the processor (whose thread pool of
``WORKER_CONCURRENCY`` downloads and extracts) and settle the batch. SIGTERM
or SIGINT stops polling; in-flight batches finish within
``WORKER_SHUTDOWN_GRACE_SECONDS``; whatever is still in flight after that is
released (visibility 0) and the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from filesearch_worker import aws, logs
from filesearch_worker.heartbeat import Heartbeat
from filesearch_worker.index import Indexer
from filesearch_worker.metrics import CloudWatchMetrics, Metrics, NullMetrics, TeeMetrics
from filesearch_worker.processor import Processor
from filesearch_worker.retry_store import RetryStore
from filesearch_worker.settle import ExponentialBackoff, Settler, Stats

if TYPE_CHECKING:
    from filesearch_worker.config import Settings

log = logging.getLogger(__name__)


class Runner:
    """Owns the clients, the heartbeat, the metrics and the receive loops."""

    def __init__(self, settings: Settings) -> None:
        settings.require("queue_url", "s3_bucket", purpose="filesearch-worker run")
        self.settings = settings
        self.stop_event = threading.Event()
        self.sqs = aws.sqs_client(settings)
        heartbeat_sqs = aws.sqs_client(settings, max_attempts=2, connect_timeout=5, read_timeout=10)
        self.s3 = aws.s3_client(settings)
        self.indexer = Indexer.from_settings(settings)
        self.retry_store = RetryStore(self.s3, settings.s3_bucket)
        self.stats = Stats()
        self.metrics: Metrics = self._metrics(settings)
        self.heartbeat = Heartbeat(
            heartbeat_sqs,
            settings.queue_url,
            settings.visibility_timeout,
            settings.heartbeat_interval,
            on_failure=lambda _h, _c: self.metrics.incr("HeartbeatFailed"),
        )
        self.processor = Processor(settings, self.s3, self.indexer, self.retry_store)
        self.settler = Settler(
            self.sqs,
            settings.queue_url,
            settings.dlq_url,
            heartbeat=self.heartbeat,
            metrics=self.metrics,
            backoff=ExponentialBackoff(settings.backoff_base_seconds, settings.backoff_max_seconds),
            stats=self.stats,
        )
        self._lanes: list[threading.Thread] = []

    def _metrics(self, settings: Settings) -> Metrics:
        """CloudWatch (WORKER_METRICS) and/or Prometheus (WORKER_PROMETHEUS_PORT), one feed."""
        backends: list[Metrics] = []
        if settings.metrics == "cloudwatch":
            backends.append(
                CloudWatchMetrics(
                    aws.cloudwatch_client(settings, max_attempts=2, read_timeout=15),
                    settings.cloudwatch_namespace,
                    settings.metrics_interval_seconds,
                )
            )
        if settings.prometheus_port:
            from filesearch_worker.prometheus import PrometheusMetrics

            backends.append(
                PrometheusMetrics(
                    settings.prometheus_listen_port,
                    settings.prometheus_addr,
                    in_flight=lambda: len(self.heartbeat),
                    breaker_state=lambda: self.indexer.breaker.state,
                )
            )
        if not backends:
            return NullMetrics()
        return backends[0] if len(backends) == 1 else TeeMetrics(*backends)

    # -- signals --------------------------------------------------------------

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Stop polling (signal handler)."""
        if not self.stop_event.is_set():
            name = signal.Signals(signum).name if signum else "request"
            logs.event(log, "stopping", signal=name, in_flight=len(self.heartbeat))
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop polling and drain."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    # -- run ------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit code (0 after a graceful stop)."""
        s = self.settings
        logs.event(
            log,
            "starting",
            queue_url=s.queue_url,
            dlq_url=s.dlq_url or None,
            index=None if self.indexer.skip else s.opensearch_index,
            concurrency=s.concurrency,
            pollers=s.poller_count,
            visibility_timeout=s.visibility_timeout,
            heartbeat_interval=round(s.heartbeat_interval, 2),
            shutdown_grace_seconds=s.shutdown_grace_seconds,
            mode=s.mode,
            pid=os.getpid(),
        )
        self.indexer.ensure_index()
        self.metrics.start()
        self.heartbeat.start()
        for i in range(s.poller_count):
            lane = threading.Thread(target=self._lane, name=f"poller-{i}", daemon=True)
            lane.start()
            self._lanes.append(lane)
        last_stats = time.monotonic()
        last_counts: dict[str, int] = {}
        while not self.stop_event.wait(min(1.0, s.stats_interval_seconds)):
            if time.monotonic() - last_stats >= s.stats_interval_seconds:
                last_counts = self._log_stats(last_counts, time.monotonic() - last_stats)
                last_stats = time.monotonic()
        return self._drain()

    def _drain(self) -> int:
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        for lane in self._lanes:
            lane.join(max(0.0, deadline - time.monotonic()))
        stuck = [lane.name for lane in self._lanes if lane.is_alive()]
        self.heartbeat.stop()
        leftover = self.heartbeat.tracked()
        released = self.settler.release(leftover, visibility=0) if leftover else 0
        self._log_stats({}, time.monotonic() - self.stats.started)
        logs.event(
            log,
            "stopped",
            drained=not stuck,
            stuck_pollers=stuck or None,
            released=released,
            left_in_flight=len(leftover) - released,
        )
        self.metrics.close()
        self.processor.close()
        if stuck:
            # Threads still inside a slow download/extraction would keep the
            # interpreter alive; their messages were released above.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0

    def _log_stats(self, previous: dict[str, int], seconds: float) -> dict[str, int]:
        counts = self.stats.snapshot()
        settled = sum(v for k, v in counts.items() if k != "received")
        before = sum(v for k, v in previous.items() if k != "received")
        logs.event(
            log,
            "stats",
            **counts,
            in_flight=len(self.heartbeat),
            breaker=self.indexer.breaker.state,
            uptime_s=round(time.monotonic() - self.stats.started, 1),
            rate_per_s=round((settled - before) / seconds, 2) if seconds > 0 else None,
        )
        return counts

    # -- one receive loop -------------------------------------------------------

    def _lane(self) -> None:
        s = self.settings
        errors = 0
        first = True
        while not self.stop_event.is_set():
            try:
                response = self.sqs.receive_message(
                    QueueUrl=s.queue_url,
                    MaxNumberOfMessages=10,
                    # The first receive is a short poll: its "polled" event proves
                    # queue access at once (deploy verification waits for it)
                    # instead of after a 20 s long poll of an empty queue.
                    WaitTimeSeconds=0 if first else s.wait_time_seconds,
                    VisibilityTimeout=s.visibility_timeout,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                    MessageAttributeNames=["All"],
                )
            except (BotoCoreError, ClientError) as exc:
                errors += 1
                log.warning("receive failed (%d in a row): %s", errors, exc)
                self.stop_event.wait(min(30.0, 2.0**errors))
                continue
            errors = 0
            messages: list[Any] = list(response.get("Messages", []))
            if first:
                first = False
                logs.event(
                    log, "polled", poller=threading.current_thread().name, received=len(messages)
                )
            if not messages:
                continue
            received_at = time.monotonic()
            handles = [m["ReceiptHandle"] for m in messages]
            self.heartbeat.track(handles, received_at)
            self.stats.add("received", len(messages))
            # A batch from a long poll that was already under way when the stop
            # came is processed (within the grace period), not released: each
            # release spends one of the message's receives (maxReceiveCount), and
            # with several pollers one shutdown could bounce a message into the
            # DLQ without ever working on it. _drain releases what outlasts the grace.
            self.handle_batch(messages, received_at)

    def handle_batch(self, messages: list[Any], received_at: float) -> None:
        """Process and settle one received batch (the heartbeat already tracks it)."""
        started = {str(m.get("MessageId")): received_at for m in messages}
        try:
            outcomes = self.processor.process_batch(messages, started)
            self.settler.settle(outcomes)
        except Exception:
            log.exception("batch of %d message(s) failed unexpectedly", len(messages))
            self.metrics.incr("CriticalError")
            self.stats.add("critical_error")
            handles = [m["ReceiptHandle"] for m in messages]
            self.settler.release(handles, visibility=self.settings.backoff_base_seconds)


def run(settings: Settings) -> int:
    """``filesearch-worker run``."""
    runner = Runner(settings)
    runner.install_signal_handlers()
    return runner.run()
