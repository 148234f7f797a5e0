"""The worker's settlement: verdicts of one batch -> the queue, metrics and logs.

The order itself lives in :func:`filesearch_worker.sqs_batch.settle` (the one
settlement path, shared with DLQ recovery). For a worker batch:

1. permanent failures are sent to the DLQ; only the confirmed ones may be
   deleted, the others are released with a backoff so the queue's
   RedrivePolicy takes over;
2. the heartbeat is cancelled for every message of the batch;
3. one delete for indexed, removed, acknowledged, retry-stored and
   dead-lettered messages (a failed delete is logged and counted as
   ``MessageDeleteFailed``; the message reappears later and is processed
   again, idempotently);
4. transient failures are released with an exponential backoff visibility.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from filesearch_worker import logs
from filesearch_worker.metrics import Metrics, NullMetrics
from filesearch_worker.outcomes import Outcome
from filesearch_worker.processor import Processed
from filesearch_worker.sqs_batch import SqsBatch, settle

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from filesearch_worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)

_ATTR_MAX = 1000
#: Message attribute counting how often DLQ recovery sent a message back.
RECOVERIES_ATTRIBUTE = "dlq-recoveries"


class BackoffPolicy(Protocol):
    """Visibility (seconds) for a message released after a transient failure."""

    def delay(self, receive_count: int) -> int: ...


@dataclass(frozen=True)
class ExponentialBackoff:
    """base * 2**(receive_count-1), capped, with up to 10 % jitter."""

    base: int = 30
    maximum: int = 900
    jitter: float = 0.1

    def delay(self, receive_count: int) -> int:
        """Seconds to stay invisible."""
        exponent = max(0, min(receive_count - 1, 20))
        raw = min(self.maximum, self.base * (2**exponent))
        spread = raw * self.jitter * random.random()  # noqa: S311 - jitter, not crypto
        return int(min(self.maximum, raw + spread))


@dataclass
class Stats:
    """Counters for the periodic statistics line (thread-safe increments)."""

    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, value: int = 1) -> None:
        """Add to a counter."""
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + value

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self.counts)


@dataclass
class SettleReport:
    """What settlement did with one batch (receipt handles per result)."""

    deleted: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    delete_failed: list[str] = field(default_factory=list)
    dlq_failed: list[str] = field(default_factory=list)


def utc_iso() -> str:
    """Now, UTC, ISO 8601 with a Z."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Settler:
    """Applies a batch's verdicts to the queue."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        dlq_url: str = "",
        *,
        heartbeat: Heartbeat | None = None,
        metrics: Metrics | None = None,
        backoff: BackoffPolicy | None = None,
        stats: Stats | None = None,
    ) -> None:
        self.queue = SqsBatch(sqs, queue_url)
        self.dlq = SqsBatch(sqs, dlq_url) if dlq_url else None
        self.heartbeat = heartbeat
        self.metrics: Metrics = metrics or NullMetrics()
        self.backoff: BackoffPolicy = backoff or ExponentialBackoff()
        self.stats = stats or Stats()

    def settle(self, batch: Sequence[Processed]) -> SettleReport:
        """Settle one batch; never raises for SQS errors (they are logged and counted)."""
        report = SettleReport()
        permanent = [p for p in batch if p.action == "dead_letter"]
        send = permanent if self.dlq is not None else []
        # why a message is released, for the log ("" for a transient failure)
        why: dict[int, str] = {id(p): "" for p in batch if p.action == "release"}
        if self.dlq is None:
            why.update((id(p), "no-dlq") for p in permanent)
        # a backoff only for what may be released (a transient failure, or a permanent
        # one whose DLQ send may fail); logged with the value sent
        delays = {id(p): self.backoff.delay(p.receive_count) for p in batch if p.action != "delete"}
        heartbeat = self.heartbeat
        done = settle(
            self.queue,
            _handle,
            durable=[p for p in batch if p.action == "delete"],
            send_to=self.dlq,
            send=send,
            entry=self._dlq_entry,
            release=[p for p in batch if id(p) in why],
            release_visibility=lambda p: delays[id(p)],
            # cancel the heartbeat BEFORE any delete or release
            before_delete=(lambda: heartbeat.cancel(p.receipt_handle for p in batch))
            if heartbeat is not None
            else None,
        )
        for processed, error in done.send_failed:
            log.error("DLQ send failed for message %s: %s", processed.message_id, error)
            report.dlq_failed.append(processed.receipt_handle)
            self.metrics.incr("DLQSendFailed")
            why[id(processed)] = "dlq-send-failed"
        sent = {id(p) for p in done.sent}
        for processed in done.deleted:
            self._record(
                processed, Outcome.DEAD_LETTERED if id(processed) in sent else None, report
            )
        for processed, error in done.delete_failed:
            log.error("FAILED to delete message %s: %s", processed.message_id, error)
            report.delete_failed.append(processed.receipt_handle)
            self.stats.add("delete_failed")
            self.metrics.incr("MessageDeleteFailed")
            result = Outcome.DEAD_LETTERED if id(processed) in sent else processed.outcome
            self._log(processed, result, level=logging.ERROR, delete_failed=True)
        release_failed = {id(p) for p, _ in done.release_failed}
        if done.release_failed:
            log.warning("release of %d message(s) failed", len(done.release_failed))
        for processed in done.released:
            report.released.append(processed.receipt_handle)
            self.stats.add(Outcome.RELEASED)
            self.metrics.incr("MessagesReleased", outcome=Outcome.RELEASED)
            if processed.outcome is Outcome.PERMANENT:
                self.metrics.incr("MessagesFailed")
            self._log(
                processed,
                Outcome.RELEASED,
                release=why[id(processed)] or None,
                visibility=delays[id(processed)],
                release_failed=id(processed) in release_failed,
            )
        return report

    def _dlq_entry(self, processed: Processed) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "MessageBody": processed.body or "(empty)",
            "MessageAttributes": dlq_attributes(processed),
        }
        if self.dlq is not None and self.dlq.queue_url.endswith(".fifo"):
            entry["MessageGroupId"] = "filesearch-dlq"
            entry["MessageDeduplicationId"] = processed.message_id
        return entry

    def _record(self, processed: Processed, dead: Outcome | None, report: SettleReport) -> None:
        result = dead or processed.outcome
        if dead is not None:
            report.dead_lettered.append(processed.receipt_handle)
            self.metrics.incr("MessagesFailed", outcome=result)
            if processed.reason == "unexpected-error":
                self.metrics.incr("CriticalError")
        else:
            report.deleted.append(processed.receipt_handle)
            self.metrics.incr("MessagesSucceeded", outcome=result)
            if result is Outcome.RETRY_STORED:
                self.metrics.incr("IndexRetryStored", max(1, len(processed.keys)))
        self.stats.add(result)
        self.metrics.observe("ProcessingSeconds", processed.seconds)
        self._log(processed, result)

    def _log(
        self, processed: Processed, result: str, level: int = logging.INFO, **extra: Any
    ) -> None:
        logs.event(
            log,
            "settled",
            level=level,
            message_id=processed.message_id,
            key=processed.key,
            keys=list(processed.keys) if len(processed.keys) > 1 else None,
            outcome=str(result),
            reason=processed.reason,
            detail=processed.detail[:500] if processed.detail else None,
            seconds=processed.seconds,
            receive_count=processed.receive_count,
            **extra,
        )

    def release(self, receipt_handles: Iterable[str], visibility: int = 0) -> int:
        """Make messages visible again (shutdown); returns how many were released."""
        handles = list(receipt_handles)
        if self.heartbeat is not None:
            self.heartbeat.cancel(handles)
        result = self.queue.change_visibility(handles, str, visibility)
        if result.failed:
            log.warning(
                "release of %d message(s) failed: %s", len(result.failed), result.failed[0][1]
            )
        return len(result.ok)


def _handle(processed: Processed) -> str:
    return processed.receipt_handle


def dlq_attributes(outcome: Processed) -> dict[str, Any]:
    """The DLQ message attributes: why, which message, when, how many receives.

    A message that DLQ recovery sent back keeps its recovery counter
    (``dlq-recoveries``): without it, a message that keeps failing would go
    round DLQ -> redrive -> DLQ forever instead of being archived after
    ``max_attempts`` recoveries (found by the model checker, tests/proof/).
    """

    def s(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value[:_ATTR_MAX] or "-"}

    attributes: dict[str, Any] = {
        "error-type": s(outcome.reason or "permanent-error"),
        "error-message": s(outcome.detail or outcome.reason or "permanent failure"),
        "original-message-id": s(outcome.message_id),
        "failed-at": s(utc_iso()),
        "receive-count": {"DataType": "Number", "StringValue": str(outcome.receive_count)},
    }
    recoveries = outcome.attributes.get(RECOVERIES_ATTRIBUTE, {})
    if isinstance(recoveries, Mapping) and recoveries.get("StringValue"):
        attributes[RECOVERIES_ATTRIBUTE] = {
            "DataType": "Number",
            "StringValue": str(recoveries["StringValue"]),
        }
    return attributes
