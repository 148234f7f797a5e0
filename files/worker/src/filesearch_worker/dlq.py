"""Dead-letter queue recovery: the engine behind ``recover-dlq`` and ``sqs_dlq_recover``.

Each DLQ message is classified and settled:

* **deduplicated**: every object its S3 events name is already in the index
  (one multi-get per batch, document id = S3 key) and every removed object is
  gone; the message is deleted.
* **archived**: unparseable, nothing to index (``s3:TestEvent``), failed
  ``max_attempts`` recoveries, failed permanently while being reindexed, or the
  strategy is ``archive-only``: written to
  ``s3://BUCKET/dlq-archive/YYYY-MM-DD/<message-id>.json`` (body, attributes,
  reason), then deleted.
* **redriven** (strategy ``redrive``): sent back to the source queue with its
  attributes and a recovery counter (``dlq-recoveries``), then deleted.
* **reindexed** / **retry_stored** (strategy ``reindex``): processed in place
  with the worker's own code; deleted once its document is indexed or stored
  in the retry store.
* **released**: could not be settled now (transient failure); kept invisible
  for the rest of the run (so it is not tried twice) and made visible again
  when the run ends, still in the DLQ.

A message is only ever deleted after a confirmed write somewhere else (index,
retry store, source queue, archive). ``dry_run`` classifies and counts what
would be done, writes nothing, and makes every message it looked at visible
again at the end. Strategy ``native`` hands the move to SQS
(StartMessageMoveTask) and reports on a task already running instead of
starting a second one.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from filesearch_worker.errors import PermanentError, TransientError
from filesearch_worker.events import S3ObjectEvent, parse_message
from filesearch_worker.index import document_id

if TYPE_CHECKING:
    from filesearch_worker.config import Settings
    from filesearch_worker.index import Indexer

log = logging.getLogger(__name__)

Strategy = Literal["redrive", "reindex", "native", "archive-only"]
STRATEGIES: tuple[str, ...] = ("redrive", "reindex", "native", "archive-only")
OUTCOMES: tuple[str, ...] = (
    "deduplicated",
    "redriven",
    "reindexed",
    "retry_stored",
    "archived",
    "released",
)
ARCHIVE_PREFIX = "dlq-archive/"
#: Message attribute counting how often a message was sent back by a recovery.
RECOVERIES_ATTRIBUTE = "dlq-recoveries"
SQS_BATCH = 10
SQS_MAX_ATTRIBUTES = 10
#: Error codes of endpoints without StartMessageMoveTask / ListMessageMoveTasks.
UNSUPPORTED_CODES = frozenset(
    {
        "InvalidAction",
        "UnsupportedOperation",
        "UnknownOperationException",
        "NotImplemented",
        "InternalFailure",
        "AWS.SimpleQueueService.UnsupportedOperation",
    }
)


class RecoveryError(Exception):
    """Recovery cannot go on (configuration, unsupported endpoint, dependency down).

    ``report`` holds what was done before the error (every message accounted for).
    """

    def __init__(self, message: str, report: RecoveryReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class DlqMessage:
    """One received DLQ message."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    message_attributes: dict[str, Any]

    @classmethod
    def from_sqs(cls, raw: dict[str, Any]) -> DlqMessage:
        return cls(
            message_id=str(raw["MessageId"]),
            receipt_handle=str(raw["ReceiptHandle"]),
            body=str(raw.get("Body", "")),
            attributes=dict(raw.get("Attributes", {})),
            message_attributes=dict(raw.get("MessageAttributes", {})),
        )

    @property
    def recoveries(self) -> int:
        value = self.message_attributes.get(RECOVERIES_ATTRIBUTE, {}).get("StringValue")
        try:
            return max(0, int(str(value)))
        except (TypeError, ValueError):
            return 0


@dataclass(frozen=True)
class ReindexResult:
    """What processing one message in place gave."""

    outcome: Literal["reindexed", "retry_stored", "permanent", "transient"]
    reason: str = ""


class Reindexer(Protocol):
    """Processes messages in place; one result per message id."""

    def __call__(self, messages: Sequence[DlqMessage]) -> dict[str, ReindexResult]: ...


@dataclass
class RecoveryOptions:
    """How a recovery runs (CLI flags and module options map onto these)."""

    strategy: str = "reindex"
    batch_size: int = 10
    max_batches: int | None = None
    max_messages: int | None = None
    messages_per_second: float | None = None
    max_attempts: int = 3
    dry_run: bool = False
    threads: int = 4
    visibility_timeout: int = 300
    wait_time_seconds: int = 1
    sample_size: int = 5
    dedupe: bool = True

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        checks: list[tuple[str, float | None, float]] = [
            ("batch_size", self.batch_size, 1),
            ("max_batches", self.max_batches, 1),
            ("max_messages", self.max_messages, 1),
            ("max_attempts", self.max_attempts, 1),
            ("threads", self.threads, 1),
            ("visibility_timeout", self.visibility_timeout, 1),
            ("wait_time_seconds", self.wait_time_seconds, 0),
            ("sample_size", self.sample_size, 0),
        ]
        for name, value, low in checks:
            if value is not None and value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if self.messages_per_second is not None and self.messages_per_second <= 0:
            raise ValueError(f"messages_per_second must be > 0, got {self.messages_per_second}")
        if self.wait_time_seconds > 20:
            raise ValueError(f"wait_time_seconds must be <= 20, got {self.wait_time_seconds}")
        if self.visibility_timeout > 43200:
            raise ValueError(f"visibility_timeout must be <= 43200, got {self.visibility_timeout}")


@dataclass
class RecoveryReport:
    """Counts per outcome, elapsed time and sample reasons of one recovery run."""

    strategy: str
    dry_run: bool
    dlq_url: str = ""
    source_queue_url: str | None = None
    archive: str | None = None
    examined: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    delete_failed: int = 0
    duplicates: int = 0
    batches: int = 0
    elapsed_seconds: float = 0.0
    remaining: int | None = None
    samples: dict[str, list[str]] = field(default_factory=dict)
    native: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    _sample_size: int = 5
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def acted(self) -> int:
        """Messages settled out of the DLQ (or that would be, in a dry run)."""
        return sum(n for outcome, n in self.counts.items() if outcome != "released")

    @property
    def changed(self) -> bool:
        if self.native is not None:
            return bool(self.native.get("started") or self.native.get("would_start"))
        return self.acted > 0

    def add(self, outcome: str, message: DlqMessage, reason: str = "") -> None:
        with self._lock:
            self.counts[outcome] += 1
            if reason:
                samples = self.samples.setdefault(outcome, [])
                if len(samples) < self._sample_size:
                    samples.append(f"{message.message_id}: {reason}")

    def add_examined(self, n: int) -> None:
        with self._lock:
            self.examined += n
            self.batches += 1

    def add_error(self, error: str) -> None:
        with self._lock:
            if len(self.errors) < 20:
                self.errors.append(error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "dry_run": self.dry_run,
            "dlq_url": self.dlq_url,
            "source_queue_url": self.source_queue_url,
            "archive": self.archive,
            "examined": self.examined,
            "counts": dict(self.counts),
            "delete_failed": self.delete_failed,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "messages_per_second": round(self.examined / self.elapsed_seconds, 1)
            if self.elapsed_seconds > 0
            else 0.0,
            "remaining": self.remaining,
            "samples": {k: list(v) for k, v in self.samples.items()},
            "native": self.native,
            "errors": list(self.errors),
        }

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        mode = " (dry run)" if self.dry_run else ""
        return (
            f"recover-dlq{mode}: strategy {self.strategy}, {self.examined} examined"
            f"{': ' + counts if counts else ''}; {self.delete_failed} delete failures; "
            f"{self.elapsed_seconds:.1f} s"
        )


class RateLimiter:
    """A token bucket shared by the threads (``messages_per_second``)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self, n: int) -> None:
        if not self.rate or n <= 0:
            return
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + n / self.rate
            wait = start - now
        if wait > 0:
            time.sleep(wait)


class _Budget:
    """Shared limits on batches and messages across threads."""

    def __init__(self, max_batches: int | None, max_messages: int | None) -> None:
        self.max_batches = max_batches
        self.max_messages = max_messages
        self.batches = 0
        self.messages = 0
        self._lock = threading.Lock()

    def take_batch(self, wanted: int) -> int:
        """Messages this thread may receive for its next batch (0: stop)."""
        with self._lock:
            if self.max_batches is not None and self.batches >= self.max_batches:
                return 0
            allowed = wanted
            if self.max_messages is not None:
                allowed = min(allowed, self.max_messages - self.messages)
            if allowed <= 0:
                return 0
            self.batches += 1
            self.messages += allowed
            return allowed

    def give_back(self, n: int) -> None:
        with self._lock:
            self.messages -= n


def archive_key(message_id: str, when: datetime) -> str:
    """``dlq-archive/YYYY-MM-DD/<message-id>.json``."""
    return f"{ARCHIVE_PREFIX}{when.strftime('%Y-%m-%d')}/{message_id}.json"


def archive_record(
    message: DlqMessage, reason: str, dlq_url: str, when: datetime
) -> dict[str, Any]:
    """What an archive object holds: enough to replay the message by hand."""
    return {
        "message_id": message.message_id,
        "body": message.body,
        "attributes": message.attributes,
        "message_attributes": message.message_attributes,
        "reason": reason,
        "dlq_url": dlq_url,
        "archived_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def _json_default(value: Any) -> Any:
    """Binary message attributes are archived base64-encoded."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def _is_unsupported(exc: BaseException) -> str | None:
    if isinstance(exc, NotImplementedError):
        return "NotImplemented"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in UNSUPPORTED_CODES or status == 501 or "not implemented" in str(exc).lower():
            return code or str(status)
    return None


class DlqRecovery:
    """One recovery run over one DLQ."""

    def __init__(
        self,
        sqs: Any,
        dlq_url: str,
        options: RecoveryOptions,
        *,
        s3: Any = None,
        bucket: str = "",
        indexer: Indexer | None = None,
        source_queue_url: str | None = None,
        reindexer: Reindexer | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        stop: threading.Event | None = None,
    ) -> None:
        options.validate()
        self.sqs = sqs
        self.s3 = s3
        self.bucket = bucket
        self.indexer = indexer
        self.dlq_url = dlq_url
        self.source_queue_url = source_queue_url
        self.options = options
        self.reindexer = reindexer
        self.now = now
        self.report = RecoveryReport(strategy=options.strategy, dry_run=options.dry_run)
        self.report._sample_size = options.sample_size
        self.report.dlq_url = dlq_url
        self._limiter = RateLimiter(options.messages_per_second)
        # set by stop() or a signal handler: threads finish their batch, then the run ends
        self._stop = stop or threading.Event()
        self._fatal: list[BaseException] = []
        self._held: list[str] = []  # receipt handles to make visible again when the run ends
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._io = ThreadPoolExecutor(max(2, options.threads * 2), thread_name_prefix="dlq-io")

    # -- entry point ----------------------------------------------------------

    def stop(self) -> None:
        """Finish the batches in hand, settle them, release what is held, and return."""
        self._stop.set()

    def run(self) -> RecoveryReport:
        start = time.monotonic()
        try:
            if self.options.strategy == "native":
                self.report.native = self._native()
            else:
                self._preflight()
                self._run_threads()
        finally:
            self._io.shutdown(wait=True)
            if self._held:
                self._release(self._held)
            self.report.elapsed_seconds = time.monotonic() - start
            self.report.remaining = self._visible_count()
        if self._fatal:
            raise RecoveryError(str(self._fatal[0]), self.report) from self._fatal[0]
        return self.report

    def _preflight(self) -> None:
        strategy = self.options.strategy
        if self.s3 is None or not self.bucket:
            raise RecoveryError(
                f"strategy {strategy} needs an S3 bucket for the archive (S3_BUCKET / bucket)",
                self.report,
            )
        self.report.archive = f"s3://{self.bucket}/{ARCHIVE_PREFIX}"
        if strategy == "redrive":
            if not self.source_queue_url:
                self.source_queue_url = self._find_source_queue()
            self.report.source_queue_url = self.source_queue_url
        if strategy == "reindex" and self.reindexer is None and not self.options.dry_run:
            raise RecoveryError("strategy reindex needs the worker's processor", self.report)
        if self.options.dedupe and self.indexer is None:
            raise RecoveryError(
                "deduplication needs OpenSearch (OPENSEARCH_ENDPOINT / opensearch_endpoint); "
                "turn it off explicitly to recover without it",
                self.report,
            )

    def _find_source_queue(self) -> str:
        try:
            urls = self.sqs.list_dead_letter_source_queues(QueueUrl=self.dlq_url).get(
                "queueUrls", []
            )
        except (ClientError, BotoCoreError) as exc:
            raise RecoveryError(f"cannot list the DLQ's source queues: {exc}", self.report) from exc
        if len(urls) != 1:
            found = ", ".join(urls) if urls else "none"
            raise RecoveryError(
                f"strategy redrive needs the source queue: {len(urls)} queues redrive into "
                f"this DLQ ({found}); give it explicitly",
                self.report,
            )
        return str(urls[0])

    def _visible_count(self) -> int | None:
        try:
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            log.warning("cannot read the DLQ depth: %s", exc)
            return None
        return int(attrs.get("ApproximateNumberOfMessages", 0))

    # -- threads --------------------------------------------------------------

    def _run_threads(self) -> None:
        budget = _Budget(self.options.max_batches, self.options.max_messages)
        threads = [
            threading.Thread(target=self._worker, args=(budget,), name=f"recover-dlq-{i}")
            for i in range(self.options.threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _worker(self, budget: _Budget) -> None:
        try:
            while not self._stop.is_set():
                allowed = budget.take_batch(self.options.batch_size)
                if allowed <= 0:
                    return
                messages = self._receive(allowed)
                if len(messages) < allowed:
                    budget.give_back(allowed - len(messages))
                if not messages:
                    return
                self._limiter.acquire(len(messages))
                self.report.add_examined(len(messages))
                try:
                    self._handle(messages)
                except BaseException:
                    # settle nothing more from this batch; what is still ours is visible again
                    # at once (a deleted message's handle is simply refused)
                    if not self.options.dry_run:
                        self._release([m.receipt_handle for m in messages])
                    raise
        except RecoveryError as exc:
            self._fail(exc)
        except (ClientError, BotoCoreError, TransientError) as exc:
            self._fail(RecoveryError(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:
            log.exception("recover-dlq worker thread failed")
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._fatal.append(exc)
        self._stop.set()

    def _receive(self, wanted: int) -> list[DlqMessage]:
        out: list[DlqMessage] = []
        while len(out) < wanted and not self._stop.is_set():
            response = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=min(SQS_BATCH, wanted - len(out)),
                VisibilityTimeout=self.options.visibility_timeout,
                WaitTimeSeconds=self.options.wait_time_seconds,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            raw = response.get("Messages", [])
            if not raw:
                break
            fresh = [DlqMessage.from_sqs(m) for m in raw]
            with self._lock:
                new = [m for m in fresh if m.message_id not in self._seen]
                self._seen.update(m.message_id for m in new)
                old = [m for m in fresh if m not in new]
                # a dry run holds everything it looked at until the end
                held = fresh if self.options.dry_run else old
                self._held.extend(m.receipt_handle for m in held)
            if old:
                # Seen before in this run: in a dry run it went round once; otherwise a
                # duplicate delivery (SQS is at-least-once) or a message whose visibility
                # ran out. Not handled twice; made visible again when the run ends.
                with self.report._lock:
                    self.report.duplicates += len(old)
                if not new:
                    break
            out.extend(new)
        return out

    # -- classification -------------------------------------------------------

    def _handle(self, messages: list[DlqMessage]) -> None:
        parsed: dict[str, list[S3ObjectEvent]] = {}
        to_archive: list[tuple[DlqMessage, str]] = []
        for message in messages:
            try:
                events = parse_message(message.body)
            except PermanentError as exc:
                to_archive.append((message, str(exc)))
                continue
            if all(e.kind == "test" for e in events):
                to_archive.append((message, "s3:TestEvent: nothing to index"))
                continue
            parsed[message.message_id] = events

        settled: list[tuple[DlqMessage, str]] = []
        if self.options.dedupe and parsed:
            existing = self._existing(parsed.values())
            for message in messages:
                found = parsed.get(message.message_id)
                if found is not None and _already_applied(found, existing):
                    settled.append((message, "already indexed"))
                    del parsed[message.message_id]

        pending = [m for m in messages if m.message_id in parsed]
        work: list[DlqMessage] = []
        for message in pending:
            if message.recoveries >= self.options.max_attempts:
                to_archive.append(
                    (message, f"recovered {message.recoveries} times and still failing")
                )
            elif self.options.strategy == "archive-only":
                to_archive.append((message, "strategy archive-only"))
            else:
                work.append(message)

        self._settle_deduplicated(settled)
        if self.options.strategy == "redrive":
            self._redrive(work)
        elif self.options.strategy == "reindex":
            self._reindex(work, to_archive)
        self._archive(to_archive)

    def _existing(self, event_lists: Iterable[list[S3ObjectEvent]]) -> set[str]:
        ids = [document_id(e.key) for events in event_lists for e in events if e.kind != "test"]
        assert self.indexer is not None
        try:
            return self.indexer.existing_ids(ids)
        except TransientError as exc:
            raise RecoveryError(f"OpenSearch multi-get failed, nothing settled: {exc}") from exc

    # -- settlement -----------------------------------------------------------

    def _settle_deduplicated(self, settled: list[tuple[DlqMessage, str]]) -> None:
        if not settled:
            return
        if self.options.dry_run:
            for message, reason in settled:
                self.report.add("deduplicated", message, reason)
            return
        deleted = self._delete([m for m, _ in settled])
        for message, reason in settled:
            if message.message_id in deleted:
                self.report.add("deduplicated", message, reason)

    def _redrive(self, messages: list[DlqMessage]) -> None:
        if not messages:
            return
        if self.options.dry_run:
            for message in messages:
                self.report.add("redriven", message, "would be sent back to the source queue")
            return
        sent: list[DlqMessage] = []
        for start in range(0, len(messages), SQS_BATCH):
            chunk = messages[start : start + SQS_BATCH]
            entries = [self._redrive_entry(i, m) for i, m in enumerate(chunk)]
            try:
                response = self.sqs.send_message_batch(
                    QueueUrl=self.source_queue_url, Entries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                self.report.add_error(f"redrive send failed: {exc}")
                self._release_messages(chunk, f"redrive send failed: {exc}")
                continue
            ok = {int(e["Id"]) for e in response.get("Successful", [])}
            for failure in response.get("Failed", []):
                message = chunk[int(failure["Id"])]
                self._release_messages([message], f"redrive send failed: {failure}")
            sent.extend(chunk[i] for i in sorted(ok))
        deleted = self._delete(sent)
        for message in sent:
            if message.message_id in deleted:
                self.report.add("redriven", message)

    def _redrive_entry(self, index: int, message: DlqMessage) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        for name, value in message.message_attributes.items():
            kept = {
                k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")
            }
            if "DataType" in kept:
                attributes[name] = kept
        counter = {"DataType": "Number", "StringValue": str(message.recoveries + 1)}
        if RECOVERIES_ATTRIBUTE in attributes or len(attributes) < SQS_MAX_ATTRIBUTES:
            attributes[RECOVERIES_ATTRIBUTE] = counter
        else:
            log.warning(
                "message %s has %d attributes; no room for %s",
                message.message_id,
                len(attributes),
                RECOVERIES_ATTRIBUTE,
            )
        entry: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": message.body,
        }
        if attributes:
            entry["MessageAttributes"] = attributes
        group = message.attributes.get("MessageGroupId")
        if group:  # FIFO source queue
            entry["MessageGroupId"] = group
            entry["MessageDeduplicationId"] = message.message_id
        return entry

    def _reindex(
        self, messages: list[DlqMessage], to_archive: list[tuple[DlqMessage, str]]
    ) -> None:
        if not messages:
            return
        if self.options.dry_run:
            for message in messages:
                self.report.add("reindexed", message, "would be processed in place")
            return
        assert self.reindexer is not None
        results = self.reindexer(messages)
        done: dict[str, tuple[str, str]] = {}
        release: list[tuple[DlqMessage, str]] = []
        for message in messages:
            result = results.get(message.message_id)
            if result is None:
                release.append((message, "no result from the processor"))
            elif result.outcome in ("reindexed", "retry_stored"):
                done[message.message_id] = (result.outcome, result.reason)
            elif result.outcome == "permanent":
                to_archive.append((message, result.reason or "permanent failure"))
            else:
                release.append((message, result.reason or "transient failure"))
        for message, reason in release:
            self._release_messages([message], reason)
        deleted = self._delete([m for m in messages if m.message_id in done])
        for message in messages:
            if message.message_id in done and message.message_id in deleted:
                outcome, reason = done[message.message_id]
                self.report.add(outcome, message, reason)

    def _archive(self, items: list[tuple[DlqMessage, str]]) -> None:
        if not items:
            return
        if self.options.dry_run:
            for message, reason in items:
                self.report.add("archived", message, reason)
            return
        # one PutObject per message (S3 has no batch put): written concurrently
        written = list(self._io.map(self._archive_one, items))
        stored = [item for item, ok in zip(items, written, strict=True) if ok]
        deleted = self._delete([m for m, _ in stored])
        for message, reason in stored:
            if message.message_id in deleted:
                self.report.add("archived", message, reason)

    def _archive_one(self, item: tuple[DlqMessage, str]) -> bool:
        message, reason = item
        when = self.now()
        key = archive_key(message.message_id, when)
        record = archive_record(message, reason, self.dlq_url, when)
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(record, ensure_ascii=False, default=_json_default).encode("utf-8"),
                ContentType="application/json; charset=utf-8",
            )
        except (ClientError, BotoCoreError) as exc:
            self.report.add_error(f"archive s3://{self.bucket}/{key} failed: {exc}")
            self._release_messages([message], f"archive write failed: {exc}")
            return False
        return True

    def _delete(self, messages: list[DlqMessage]) -> set[str]:
        """Delete after the write elsewhere is confirmed; ids that were deleted."""
        deleted: set[str] = set()
        for start in range(0, len(messages), SQS_BATCH):
            chunk = messages[start : start + SQS_BATCH]
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)
            ]
            try:
                response = self.sqs.delete_message_batch(QueueUrl=self.dlq_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                with self.report._lock:
                    self.report.delete_failed += len(chunk)
                self.report.add_error(
                    f"delete failed (messages reappear; rerun settles them): {exc}"
                )
                continue
            for ok in response.get("Successful", []):
                deleted.add(chunk[int(ok["Id"])].message_id)
            failed = response.get("Failed", [])
            if failed:
                with self.report._lock:
                    self.report.delete_failed += len(failed)
                self.report.add_error(f"delete failed for {len(failed)} message(s): {failed[0]}")
        return deleted

    def _release_messages(self, messages: list[DlqMessage], reason: str) -> None:
        """Not settled now: held invisible for the rest of the run, visible again at its end."""
        for message in messages:
            self.report.add("released", message, reason)
        if not self.options.dry_run:
            with self._lock:
                self._held.extend(m.receipt_handle for m in messages)

    def _release(self, handles: list[str]) -> None:
        """Make messages visible again at once (ChangeMessageVisibility 0)."""
        for start in range(0, len(handles), SQS_BATCH):
            chunk = handles[start : start + SQS_BATCH]
            try:
                self.sqs.change_message_visibility_batch(
                    QueueUrl=self.dlq_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                        for i, h in enumerate(chunk)
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not release %d message(s): %s", len(chunk), exc)

    # -- native ---------------------------------------------------------------

    def _native(self) -> dict[str, Any]:
        try:
            arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            tasks = self.sqs.list_message_move_tasks(SourceArn=arn, MaxResults=10).get(
                "Results", []
            )
        except (ClientError, BotoCoreError, NotImplementedError) as exc:
            raise self._native_error(exc) from exc
        running = [t for t in tasks if t.get("Status") == "RUNNING"]
        if running:
            task = running[0]
            return {
                "started": False,
                "running": True,
                "task_handle": task.get("TaskHandle"),
                "status": task.get("Status"),
                "messages_moved": task.get("ApproximateNumberOfMessagesMoved"),
                "messages_to_move": task.get("ApproximateNumberOfMessagesToMove"),
                "destination_arn": task.get("DestinationArn"),
                "max_messages_per_second": task.get("MaxNumberOfMessagesPerSecond"),
            }
        visible = self._visible_count() or 0
        info: dict[str, Any] = {"started": False, "running": False, "messages_to_move": visible}
        if tasks:
            last = tasks[0]
            info["last_task"] = {
                "status": last.get("Status"),
                "messages_moved": last.get("ApproximateNumberOfMessagesMoved"),
                "failure_reason": last.get("FailureReason"),
            }
        if visible == 0:
            return info
        if self.options.dry_run:
            info["would_start"] = True
            return info
        kwargs: dict[str, Any] = {"SourceArn": arn}
        if self.source_queue_url:
            kwargs["DestinationArn"] = self.sqs.get_queue_attributes(
                QueueUrl=self.source_queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
        if self.options.messages_per_second:
            kwargs["MaxNumberOfMessagesPerSecond"] = int(self.options.messages_per_second)
        try:
            started = self.sqs.start_message_move_task(**kwargs)
        except (ClientError, BotoCoreError, NotImplementedError) as exc:
            raise self._native_error(exc) from exc
        info.update(started=True, running=True, task_handle=started.get("TaskHandle"))
        return info

    def _native_error(self, exc: BaseException) -> RecoveryError:
        code = _is_unsupported(exc)
        if code:
            return RecoveryError(
                "strategy native: this endpoint does not support SQS message move tasks "
                f"(StartMessageMoveTask/ListMessageMoveTasks: {code}); use strategy redrive",
                self.report,
            )
        return RecoveryError(f"strategy native: {type(exc).__name__}: {exc}", self.report)


def _already_applied(events: list[S3ObjectEvent], existing: set[str]) -> bool:
    """Every created object indexed and every removed object gone."""
    for event in events:
        if event.kind == "created" and document_id(event.key) not in existing:
            return False
        if event.kind == "removed" and document_id(event.key) in existing:
            return False
    return True


# -- the CLI face: filesearch-worker recover-dlq --------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``filesearch-worker recover-dlq`` (the seed's, and the module's options)."""
    parser.add_argument(
        "--batch-size", type=int, default=10, help="messages per batch (default 10)"
    )
    parser.add_argument("--max-batches", type=int, default=None, help="stop after N batches")
    parser.add_argument("--max-messages", type=int, default=None, help="stop after N messages")
    parser.add_argument(
        "--messages-per-second", type=float, default=None, help="rate limit (default none)"
    )
    parser.add_argument("--dry-run", action="store_true", help="classify and count, change nothing")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="reindex",
        help="what to do with recoverable messages",
    )
    parser.add_argument(
        "--max-attempts", type=int, default=3, help="recoveries before a message is archived"
    )
    parser.add_argument("--threads", type=int, default=None, help="default WORKER_CONCURRENCY")
    parser.add_argument("--dlq-url", default=None, help="default SQS_DLQ_URL")
    parser.add_argument(
        "--source-queue-url", default=None, help="redrive target (default SQS_QUEUE_URL)"
    )
    parser.add_argument("--no-dedupe", action="store_true", help="skip the OpenSearch multi-get")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


class ProcessorReindexer:
    """A Reindexer on the worker's own ``Processor.process_batch`` (no settlement)."""

    _MAP: ClassVar[dict[str, Literal["reindexed", "retry_stored", "permanent", "transient"]]] = {
        "indexed": "reindexed",
        "removed": "reindexed",
        "acknowledged": "reindexed",
        "retry-stored": "retry_stored",
        "permanent": "permanent",
        "transient": "transient",
    }

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, messages: Sequence[DlqMessage]) -> dict[str, ReindexResult]:
        raw = [
            {
                "MessageId": m.message_id,
                "ReceiptHandle": m.receipt_handle,
                "Body": m.body,
                "Attributes": m.attributes,
                "MessageAttributes": m.message_attributes,
            }
            for m in messages
        ]
        results: dict[str, ReindexResult] = {}
        for outcome in self.processor.process_batch(raw):
            reason = ": ".join(part for part in (outcome.reason, outcome.detail) if part)
            results[outcome.message_id] = ReindexResult(self._MAP[outcome.status], reason)
        return results

    @classmethod
    def for_settings(cls, settings: Settings, s3: Any, indexer: Indexer) -> ProcessorReindexer:
        """Processor with the retry store in ``settings.s3_bucket``."""
        from filesearch_worker.processor import Processor
        from filesearch_worker.retry_store import RetryStore

        return cls(Processor(settings, s3, indexer, RetryStore(s3, settings.s3_bucket)))

    def close(self) -> None:
        self.processor.close()


def recover(
    settings: Settings,
    options: RecoveryOptions,
    *,
    sqs: Any = None,
    s3: Any = None,
    indexer: Indexer | None = None,
    dlq_url: str | None = None,
    source_queue_url: str | None = None,
    stop: threading.Event | None = None,
) -> RecoveryReport:
    """Run one recovery; clients are made from ``settings`` unless given.

    ``settings.s3_bucket`` is the archive (and retry store) bucket,
    ``settings.queue_url`` the default redrive target.
    """
    from filesearch_worker import aws
    from filesearch_worker.index import Indexer as _Indexer

    options.validate()
    target = dlq_url or settings.dlq_url
    if not target:
        raise RecoveryError("SQS_DLQ_URL (or --dlq-url / dlq) must be set for recover-dlq")
    sqs = sqs or aws.sqs_client(settings)
    s3 = s3 or aws.s3_client(settings)
    needs_index = options.strategy in ("redrive", "reindex", "archive-only") and (
        options.dedupe or options.strategy == "reindex"
    )
    if indexer is None and needs_index:
        indexer = _Indexer.from_settings(settings)
    if indexer is not None and indexer.skip and options.dedupe and options.strategy != "native":
        raise RecoveryError(
            "deduplication needs OpenSearch: set OPENSEARCH_ENDPOINT (opensearch_endpoint) "
            "or turn deduplication off"
        )
    reindexer: ProcessorReindexer | None = None
    if options.strategy == "reindex" and not options.dry_run:
        assert indexer is not None
        reindexer = ProcessorReindexer.for_settings(settings, s3, indexer)
    source = source_queue_url or (settings.queue_url if options.strategy == "redrive" else None)
    try:
        return DlqRecovery(
            sqs,
            target,
            options,
            s3=s3,
            bucket=settings.s3_bucket,
            indexer=indexer,
            source_queue_url=source or None,
            reindexer=reindexer,
            stop=stop,
        ).run()
    finally:
        if reindexer is not None:
            reindexer.close()


def _on_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM/SIGINT set ``stop`` (systemd stops a timer run with SIGTERM); old handlers."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous

    def handler(signum: int, _frame: Any) -> None:
        log.warning("signal %d: finishing the batches in hand, then stopping", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def main(args: argparse.Namespace, settings: Settings) -> int:
    """``filesearch-worker recover-dlq``: 0 when everything examined was settled.

    1 when messages were released or deletes failed, 2 on a configuration or
    fatal error. SIGTERM/SIGINT end the run gracefully (batches in hand settled,
    held messages released).
    """
    stop = threading.Event()
    previous = _on_signals(stop)
    try:
        return _main(args, settings, stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _main(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> int:
    """``filesearch-worker recover-dlq``: 0 when everything examined was settled."""
    options = RecoveryOptions(
        strategy=args.strategy,
        batch_size=args.batch_size,
        max_batches=args.max_batches,
        max_messages=args.max_messages,
        messages_per_second=args.messages_per_second,
        max_attempts=args.max_attempts,
        dry_run=args.dry_run,
        threads=args.threads or settings.concurrency,
        dedupe=not args.no_dedupe,
    )
    try:
        report = recover(
            settings,
            options,
            dlq_url=args.dlq_url,
            source_queue_url=args.source_queue_url,
            stop=stop,
        )
    except (RecoveryError, ValueError) as exc:
        failure: RecoveryError | ValueError = exc
    else:
        if stop.is_set():
            log.warning("recover-dlq stopped by a signal; the rest stays in the DLQ")
        print(json.dumps(report.to_dict()) if args.json else report.summary())
        if not args.json:
            for outcome, samples in report.samples.items():
                for sample in samples:
                    print(f"  {outcome}: {sample}")
        return 0 if report.counts["released"] == 0 and report.delete_failed == 0 else 1
    log.error("recover-dlq failed: %s", failure)
    partial = getattr(failure, "report", None)
    if partial is not None:
        print(json.dumps(partial.to_dict()) if args.json else partial.summary())
    print(f"recover-dlq: error: {failure}")
    return 2
