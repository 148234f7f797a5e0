"""Settlement: the only place messages are deleted, dead-lettered or released.

Order for one batch:
1. permanent failures are sent to the DLQ (one SendMessageBatch); only the
   confirmed ones may be deleted, the others are released with a backoff so the
   queue's RedrivePolicy takes over;
2. the heartbeat is cancelled for every message of the batch;
3. one DeleteMessageBatch for indexed, retry-stored and dead-lettered messages
   (a failed delete is logged and counted as ``MessageDeleteFailed``; the
   message reappears later and is processed again, idempotently);
4. transient failures are released with an exponential backoff visibility.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from filesearch_worker import logs
from filesearch_worker.metrics import Metrics, NullMetrics
from filesearch_worker.processor import Outcome

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from filesearch_worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)

_ATTR_MAX = 1000


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
    """Applies outcomes to the queue."""

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
        self.sqs = sqs
        self.queue_url = queue_url
        self.dlq_url = dlq_url
        self.heartbeat = heartbeat
        self.metrics: Metrics = metrics or NullMetrics()
        self.backoff: BackoffPolicy = backoff or ExponentialBackoff()
        self.stats = stats or Stats()

    def settle(self, outcomes: Sequence[Outcome]) -> SettleReport:
        """Settle one batch; never raises for SQS errors (they are logged and counted)."""
        report = SettleReport()
        deletable = [o for o in outcomes if o.action == "delete"]
        release: list[tuple[Outcome, int, str]] = [
            (o, self.backoff.delay(o.receive_count), "released")
            for o in outcomes
            if o.action == "release"
        ]
        confirmed: list[Outcome] = []
        permanent = [o for o in outcomes if o.action == "dlq"]
        if permanent:
            sent, unsent = self._send_to_dlq(permanent)
            confirmed.extend(sent)
            for outcome, why in unsent:
                report.dlq_failed.append(outcome.receipt_handle)
                self.metrics.incr("DLQSendFailed")
                release.append((outcome, self.backoff.delay(outcome.receive_count), why))
        # cancel the heartbeat BEFORE any delete or release
        if self.heartbeat is not None:
            self.heartbeat.cancel(o.receipt_handle for o in outcomes)
        failed_deletes = self._delete([*deletable, *confirmed])
        for outcome in deletable:
            self._record(outcome, outcome.status, failed_deletes, report)
        for outcome in confirmed:
            self._record(outcome, "dead-lettered", failed_deletes, report)
        if release:
            self._release(release, report)
        return report

    # -- steps ----------------------------------------------------------------

    def _send_to_dlq(
        self, outcomes: list[Outcome]
    ) -> tuple[list[Outcome], list[tuple[Outcome, str]]]:
        if not self.dlq_url:
            return [], [(o, "released-no-dlq") for o in outcomes]
        sent: list[Outcome] = []
        unsent: list[tuple[Outcome, str]] = []
        fifo = self.dlq_url.endswith(".fifo")
        for start in range(0, len(outcomes), 10):
            chunk = outcomes[start : start + 10]
            entries: list[Any] = []
            for i, outcome in enumerate(chunk):
                entry: dict[str, Any] = {
                    "Id": str(i),
                    "MessageBody": outcome.body or "(empty)",
                    "MessageAttributes": dlq_attributes(outcome),
                }
                if fifo:
                    entry["MessageGroupId"] = "filesearch-dlq"
                    entry["MessageDeduplicationId"] = outcome.message_id
                entries.append(entry)
            try:
                response = self.sqs.send_message_batch(QueueUrl=self.dlq_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                log.error("DLQ send failed for %d message(s): %s", len(chunk), exc)  # noqa: TRY400
                unsent.extend((o, "released-dlq-send-failed") for o in chunk)
                continue
            ok = {int(s["Id"]) for s in response.get("Successful", [])}
            for i, outcome in enumerate(chunk):
                if i in ok:
                    sent.append(outcome)
                else:
                    unsent.append((outcome, "released-dlq-send-failed"))
            for failed in response.get("Failed", []):
                log.error("DLQ send refused: %s %s", failed.get("Code"), failed.get("Message"))
        return sent, unsent

    def _delete(self, outcomes: list[Outcome]) -> set[str]:
        """DeleteMessageBatch; returns receipt handles whose delete failed."""
        failed: set[str] = set()
        for start in range(0, len(outcomes), 10):
            chunk = outcomes[start : start + 10]
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": o.receipt_handle} for i, o in enumerate(chunk)
            ]
            try:
                response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                log.error("FAILED to delete %d message(s): %s", len(chunk), exc)  # noqa: TRY400
                failed.update(o.receipt_handle for o in chunk)
                continue
            for entry in response.get("Failed", []):
                outcome = chunk[int(entry["Id"])]
                log.error(
                    "FAILED to delete message %s: %s %s",
                    outcome.message_id,
                    entry.get("Code"),
                    entry.get("Message"),
                )
                failed.add(outcome.receipt_handle)
        return failed

    def _release(self, items: list[tuple[Outcome, int, str]], report: SettleReport) -> None:
        for start in range(0, len(items), 10):
            chunk = items[start : start + 10]
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": o.receipt_handle, "VisibilityTimeout": delay}
                for i, (o, delay, _) in enumerate(chunk)
            ]
            failed_ids: set[int] = set()
            try:
                response = self.sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )
                failed_ids = {int(f["Id"]) for f in response.get("Failed", [])}
            except (BotoCoreError, ClientError) as exc:
                log.warning("release of %d message(s) failed: %s", len(chunk), exc)
                failed_ids = set(range(len(chunk)))
            for i, (outcome, delay, how) in enumerate(chunk):
                report.released.append(outcome.receipt_handle)
                self.stats.add("released")
                self.metrics.incr("MessagesReleased", outcome="released")
                if outcome.status == "permanent":
                    self.metrics.incr("MessagesFailed")
                self._log(
                    outcome,
                    how,
                    visibility=delay,
                    release_failed=i in failed_ids,
                )

    def _record(
        self, outcome: Outcome, result: str, failed: set[str], report: SettleReport
    ) -> None:
        if outcome.receipt_handle in failed:
            report.delete_failed.append(outcome.receipt_handle)
            self.stats.add("delete_failed")
            self.metrics.incr("MessageDeleteFailed")
            self._log(outcome, result, level=logging.ERROR, delete_failed=True)
            return
        if result == "dead-lettered":
            report.dead_lettered.append(outcome.receipt_handle)
            self.metrics.incr("MessagesFailed", outcome=result)
            if outcome.reason == "unexpected-error":
                self.metrics.incr("CriticalError")
        else:
            report.deleted.append(outcome.receipt_handle)
            self.metrics.incr("MessagesSucceeded", outcome=result)
            if result == "retry-stored":
                self.metrics.incr("IndexRetryStored", max(1, len(outcome.keys)))
        self.stats.add(result)
        self.metrics.observe("ProcessingSeconds", outcome.seconds)
        self._log(outcome, result)

    def _log(self, outcome: Outcome, result: str, level: int = logging.INFO, **extra: Any) -> None:
        logs.event(
            log,
            "settled",
            level=level,
            message_id=outcome.message_id,
            key=outcome.key,
            keys=list(outcome.keys) if len(outcome.keys) > 1 else None,
            outcome=result,
            reason=outcome.reason,
            detail=outcome.detail[:500] if outcome.detail else None,
            seconds=outcome.seconds,
            receive_count=outcome.receive_count,
            **extra,
        )

    def release(self, receipt_handles: Iterable[str], visibility: int = 0) -> int:
        """Make messages visible again (shutdown); returns how many were released."""
        handles = list(receipt_handles)
        if self.heartbeat is not None:
            self.heartbeat.cancel(handles)
        released = 0
        for start in range(0, len(handles), 10):
            chunk = handles[start : start + 10]
            entries: list[Any] = [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": visibility}
                for i, h in enumerate(chunk)
            ]
            try:
                response = self.sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )
            except (BotoCoreError, ClientError) as exc:
                log.warning("release of %d message(s) failed: %s", len(chunk), exc)
                continue
            released += len(response.get("Successful", []))
        return released


def dlq_attributes(outcome: Outcome) -> dict[str, Any]:
    """The DLQ message attributes: why, which message, when, how many receives."""

    def s(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value[:_ATTR_MAX] or "-"}

    return {
        "error-type": s(outcome.reason or "permanent-error"),
        "error-message": s(outcome.detail or outcome.reason or "permanent failure"),
        "original-message-id": s(outcome.message_id),
        "failed-at": s(utc_iso()),
        "receive-count": {"DataType": "Number", "StringValue": str(outcome.receive_count)},
    }
