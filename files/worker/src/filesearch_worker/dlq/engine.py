"""The recovery engine: receive DLQ batches, classify, settle through the one path.

Each batch is classified (unparseable, test event, already indexed, too many
recoveries, strategy) and then settled with :func:`filesearch_worker.sqs_batch.settle`,
the same ordering the worker uses: writes elsewhere first (archive PUTs, the
worker's processor for ``reindex``), sends to the source queue confirmed
(``redrive``), and only then one delete for everything whose outcome is
durable. What cannot be settled now is held invisible for the rest of the run
(so it is not tried twice) and made visible again when the run ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from filesearch_worker.dlq.archive import ARCHIVE_PREFIX, archive_body, archive_key, archive_record
from filesearch_worker.dlq.native import native_move, visible_count
from filesearch_worker.dlq.options import (
    RecoveryConfigError,
    RecoveryError,
    RecoveryOptions,
    RecoveryReport,
)
from filesearch_worker.errors import PermanentError, TransientError
from filesearch_worker.events import S3ObjectEvent, parse_message
from filesearch_worker.index import document_id
from filesearch_worker.outcomes import Outcome
from filesearch_worker.settle import RECOVERIES_ATTRIBUTE
from filesearch_worker.sqs_batch import SQS_BATCH, SqsBatch, settle

if TYPE_CHECKING:
    from filesearch_worker.config import Settings
    from filesearch_worker.index import Indexer
    from filesearch_worker.processor import Processor
    from filesearch_worker.progress import ProgressHook

log = logging.getLogger(__name__)

SQS_MAX_ATTRIBUTES = 10
#: OpenSearch answers that no retry fixes: the request or the credentials are wrong.
_CONFIGURATION_STATUS = frozenset({400, 401, 403})
_NO_SUCH_QUEUE = frozenset({"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})


@dataclass(frozen=True)
class DlqMessage:
    """One received DLQ message (``raw`` is the message as SQS gave it)."""

    raw: Mapping[str, Any] = field(repr=False)

    @property
    def message_id(self) -> str:
        return str(self.raw["MessageId"])

    @property
    def receipt_handle(self) -> str:
        return str(self.raw["ReceiptHandle"])

    @property
    def body(self) -> str:
        return str(self.raw.get("Body", ""))

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self.raw.get("Attributes", {}))

    @property
    def message_attributes(self) -> dict[str, Any]:
        return dict(self.raw.get("MessageAttributes", {}))

    @property
    def recoveries(self) -> int:
        """How often a recovery sent this message back already."""
        value = self.message_attributes.get(RECOVERIES_ATTRIBUTE, {}).get("StringValue")
        try:
            return max(0, int(str(value)))
        except (TypeError, ValueError):
            return 0


def _handle(item: tuple[DlqMessage, Outcome, str]) -> str:
    return item[0].receipt_handle


class RateLimiter:
    """A token bucket shared by the threads (``messages_per_second``)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def acquire(self, n: int) -> None:
        """Wait until ``n`` more messages are allowed."""
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


@dataclass
class _Plan:
    """One batch, classified: what settles how."""

    durable: list[tuple[DlqMessage, Outcome, str]] = field(default_factory=list)
    redrive: list[tuple[DlqMessage, Outcome, str]] = field(default_factory=list)
    reindex: list[DlqMessage] = field(default_factory=list)
    archive: list[tuple[DlqMessage, str]] = field(default_factory=list)
    hold: list[tuple[DlqMessage, str]] = field(default_factory=list)


class DlqRecovery:
    """One recovery run over one DLQ (options validated by :func:`recover`)."""

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
        processor: Processor | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        stop: threading.Event | None = None,
        progress: ProgressHook | None = None,
    ) -> None:
        self.sqs = sqs
        self.s3 = s3
        self.bucket = bucket
        self.indexer = indexer
        self.dlq_url = dlq_url
        self.dlq = SqsBatch(sqs, dlq_url)
        self.source_queue_url = source_queue_url
        self.options = options
        self.processor = processor
        self.now = now
        self.report = RecoveryReport(
            strategy=options.strategy, dry_run=options.dry_run, sample_size=options.sample_size
        )
        self.report.dlq_url = dlq_url
        self._limiter = RateLimiter(options.messages_per_second)
        # set by stop() or a signal handler: threads finish their batch, then the run ends
        self._stop = stop or threading.Event()
        self._fatal: list[BaseException] = []
        self._held: list[str] = []  # receipt handles to make visible again when the run ends
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._io = ThreadPoolExecutor(max(2, options.threads * 2), thread_name_prefix="dlq-io")
        # progress(done, total) after each batch handled; total: what this run expects to see
        self._progress = progress
        self._progress_lock = threading.Lock()
        self._done = 0
        self._total: int | None = None

    # -- entry point ----------------------------------------------------------

    def stop(self) -> None:
        """Finish the batches in hand, settle them, release what is held, and return."""
        self._stop.set()

    def run(self) -> RecoveryReport:
        """Recover until the DLQ is empty, a limit is reached or ``stop()``."""
        start = time.monotonic()
        try:
            if self.options.strategy == "native":
                self.report.native = native_move(
                    self.sqs, self.dlq_url, self.source_queue_url, self.options, self.report
                )
            else:
                self._preflight()
                if self._progress is not None:
                    self._total = self._expected_total()
                    self._progress(0, self._total)
                self._run_threads()
        finally:
            self._io.shutdown(wait=True)
            if self._held:
                self._release(self._held, final=True)
            self.report.elapsed_seconds = time.monotonic() - start
            self.report.remaining = visible_count(self.sqs, self.dlq_url)
        if self._fatal:
            first = self._fatal[0]
            kind = RecoveryConfigError if isinstance(first, RecoveryConfigError) else RecoveryError
            raise kind(str(first), self.report) from first
        return self.report

    def _preflight(self) -> None:
        strategy = self.options.strategy
        if self.s3 is None or not self.bucket:
            raise RecoveryConfigError(
                f"strategy {strategy} needs an S3 bucket for the archive (S3_BUCKET / bucket)",
                self.report,
            )
        self.report.archive = f"s3://{self.bucket}/{ARCHIVE_PREFIX}"
        if strategy == "redrive":
            if not self.source_queue_url:
                self.source_queue_url = self._find_source_queue()
            self.report.source_queue_url = self.source_queue_url
        if strategy == "reindex" and self.processor is None and not self.options.dry_run:
            raise RecoveryConfigError("strategy reindex needs the worker's processor", self.report)
        if self.options.dedupe and self.indexer is None:
            raise RecoveryConfigError(
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
            raise RecoveryConfigError(
                f"strategy redrive needs the source queue: {len(urls)} queues redrive into "
                f"this DLQ ({found}); give it explicitly",
                self.report,
            )
        return str(urls[0])

    # -- threads --------------------------------------------------------------

    def _run_threads(self) -> None:
        budget = _Budget(self.options.max_batches, self.options.max_messages)
        threads = [
            threading.Thread(target=self._worker, args=(budget,), name=f"recover-dlq-{i}")
            for i in range(self.options.threads)
        ]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:
            # interrupted here (KeyboardInterrupt where no handler is installed): the
            # threads finish their batch in hand and receive nothing more, so nothing
            # is received after run() released what it holds
            self._stop.set()
            for t in threads:
                t.join()
            raise

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
                    self._advance(len(messages))
                except BaseException:
                    # settle nothing more from this batch; what is still ours is visible again
                    # at once (a deleted message's handle is simply refused)
                    if not self.options.dry_run:
                        self._release([m.receipt_handle for m in messages])
                    raise
        except RecoveryError as exc:
            self._fail(exc)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            kind = RecoveryConfigError if code in _NO_SUCH_QUEUE else RecoveryError
            self._fail(kind(f"{type(exc).__name__}: {exc}"))
        except (BotoCoreError, TransientError) as exc:
            self._fail(RecoveryError(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:
            log.exception("recover-dlq worker thread failed")
            self._fail(exc)

    def _expected_total(self) -> int | None:
        """The DLQ's depth now, capped by the run's limits (None: unknown and unlimited)."""
        limits = [visible_count(self.sqs, self.dlq_url), self.options.max_messages]
        if self.options.max_batches is not None:
            limits.append(self.options.max_batches * self.options.batch_size)
        known = [n for n in limits if n is not None]
        return min(known) if known else None

    def _advance(self, n: int) -> None:
        if self._progress is None:
            return
        with self._progress_lock:
            self._done += n
            self._progress(self._done, self._total)

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
            fresh = [DlqMessage(m) for m in raw]
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
                self.report.add_duplicates(len(old))
                if not new:
                    break
            out.extend(new)
        return out

    # -- one batch ------------------------------------------------------------

    def _handle(self, messages: list[DlqMessage]) -> None:
        plan = self._classify(messages)
        if plan.reindex:
            self._reindex(plan)
        if plan.archive:
            self._archive(plan)
        if self.options.dry_run:
            for message, outcome, reason in [*plan.durable, *plan.redrive]:
                self.report.add(outcome, message.message_id, reason)
        else:
            self._settle(plan)
        for message, reason in plan.hold:
            self.report.add(Outcome.RELEASED, message.message_id, reason)
        if plan.hold and not self.options.dry_run:
            with self._lock:
                self._held.extend(m.receipt_handle for m, _ in plan.hold)

    def _classify(self, messages: list[DlqMessage]) -> _Plan:
        plan = _Plan()
        parsed: dict[str, list[S3ObjectEvent]] = {}
        for message in messages:
            try:
                events = parse_message(message.body)
            except PermanentError as exc:
                plan.archive.append((message, str(exc)))
                continue
            if all(e.kind == "test" for e in events):
                plan.archive.append((message, "s3:TestEvent: nothing to index"))
                continue
            parsed[message.message_id] = events
        existing: set[str] | None = None
        if self.options.dedupe and parsed:
            lookup = self._existing(parsed.values())
            if isinstance(lookup, str):
                # OpenSearch could not say what is indexed: hold every message whose
                # outcome depends on it (released when the run ends, for a later run)
                for message in messages:
                    if message.message_id in parsed:
                        plan.hold.append((message, lookup))
                return plan
            existing = lookup
        strategy = self.options.strategy
        for message in messages:
            found = parsed.get(message.message_id)
            if found is None:
                continue
            if existing is not None and _already_applied(found, existing):
                plan.durable.append((message, Outcome.DEDUPLICATED, "already indexed"))
            elif message.recoveries >= self.options.max_attempts:
                why = f"recovered {message.recoveries} times and still failing"
                plan.archive.append((message, why))
            elif strategy == "archive-only":
                plan.archive.append((message, "strategy archive-only"))
            elif strategy == "redrive":
                why = "would be sent back to the source queue" if self.options.dry_run else ""
                plan.redrive.append((message, Outcome.REDRIVEN, why))
            else:
                plan.reindex.append(message)
        return plan

    def _existing(self, event_lists: Iterable[list[S3ObjectEvent]]) -> set[str] | str:
        """The ids already indexed (one multi-get), or why the batch must be held.

        A transient OpenSearch error (one timeout on a loaded cluster) is retried
        once; failing twice, the lookup returns the reason and the caller holds the
        messages that depend on it, so one slow call never ends the run. Fatal
        (``RecoveryError``): the circuit breaker is open (CB_FAILURE_THRESHOLD
        consecutive failures: OpenSearch is down, not slow), or OpenSearch refuses
        the request itself (400/401/403: credentials, index name).
        """
        ids = [document_id(e.key) for events in event_lists for e in events if e.kind != "test"]
        assert self.indexer is not None
        for attempt in (1, 2):
            try:
                return self.indexer.existing_ids(ids)
            except TransientError as exc:
                status = getattr(exc.__cause__, "status_code", None)
                if status in _CONFIGURATION_STATUS:
                    raise RecoveryConfigError(
                        f"OpenSearch refused the multi-get (HTTP {status}; check "
                        f"OPENSEARCH_ENDPOINT, OPENSEARCH_INDEX and the credentials): {exc}"
                    ) from exc
                if exc.error_type == "circuit-open":
                    raise RecoveryError(
                        f"OpenSearch keeps failing, circuit breaker open; nothing more "
                        f"settled: {exc}"
                    ) from exc
                if attempt == 1:
                    log.warning("OpenSearch multi-get failed, retrying once: %s", exc)
                    continue
                reason = f"OpenSearch multi-get failed twice, held for a later run: {exc}"
                self.report.add_error(f"{len(ids)} id(s): {reason}")
                return reason
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns

    def _reindex(self, plan: _Plan) -> None:
        """Process in place with the worker's processor; its verdicts settle as the worker's."""
        if self.options.dry_run:
            plan.durable.extend(
                (m, Outcome.REINDEXED, "would be processed in place") for m in plan.reindex
            )
            return
        assert self.processor is not None
        by_id = {m.message_id: m for m in plan.reindex}
        verdicts = {
            p.message_id: p for p in self.processor.process_batch([m.raw for m in plan.reindex])
        }
        for message_id, message in by_id.items():
            processed = verdicts.get(message_id)
            if processed is None:
                plan.hold.append((message, "no result from the processor"))
                continue
            reason = ": ".join(part for part in (processed.reason, processed.detail) if part)
            if processed.action == "delete":
                plan.durable.append((message, processed.outcome.in_place, reason))
            elif processed.action == "dead_letter":
                plan.archive.append((message, reason or "permanent failure"))
            else:
                plan.hold.append((message, reason or "transient failure"))

    def _archive(self, plan: _Plan) -> None:
        """Archive PUTs (one per message, concurrently); written ones become durable."""
        if self.options.dry_run:
            plan.durable.extend((m, Outcome.ARCHIVED, why) for m, why in plan.archive)
            return
        written = list(self._io.map(self._archive_one, plan.archive))
        for (message, reason), error in zip(plan.archive, written, strict=True):
            if error is None:
                plan.durable.append((message, Outcome.ARCHIVED, reason))
            else:
                plan.hold.append((message, f"archive write failed: {error}"))

    def _archive_one(self, item: tuple[DlqMessage, str]) -> str | None:
        message, reason = item
        when = self.now()
        key = archive_key(message.message_id, when)
        record = archive_record(message, reason, self.dlq_url, when)
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=archive_body(record),
                ContentType="application/json; charset=utf-8",
            )
        except (ClientError, BotoCoreError) as exc:
            self.report.add_error(f"archive s3://{self.bucket}/{key} failed: {exc}")
            return str(exc)
        return None

    def _settle(self, plan: _Plan) -> None:
        """The one settlement path: redrive sends confirmed, then one delete."""
        source = None
        if plan.redrive:
            assert self.source_queue_url  # _preflight found it
            source = SqsBatch(self.sqs, self.source_queue_url)
        done = settle(
            self.dlq,
            _handle,
            durable=plan.durable,
            send_to=source,
            send=plan.redrive,
            entry=lambda item: redrive_entry(item[0]),
        )
        for (message, _, _), error in done.send_failed:
            self.report.add_error(f"redrive send failed: {error}")
            plan.hold.append((message, f"redrive send failed: {error}"))
        for message, outcome, reason in done.deleted:
            self.report.add(outcome, message.message_id, reason)
        if done.delete_failed:
            self.report.add_delete_failed(len(done.delete_failed), done.delete_failed[0][1])

    def _release(self, handles: list[str], *, final: bool = False) -> None:
        """Make messages visible again at once (ChangeMessageVisibility 0).

        What fails is tried once more (a throttled or timed-out call). ``final``: the
        end-of-run release of everything held (every message of a dry run); what
        still fails is named in the report, since it stays hidden until its
        visibility timeout.
        """
        result = self.dlq.change_visibility(handles, str, 0)
        if result.failed:
            result = self.dlq.change_visibility(result.failed_items, str, 0)
        if not result.failed:
            return
        n, why = len(result.failed), result.failed[0][1]
        log.warning("could not release %d message(s): %s", n, why)
        if final:
            self.report.add_error(
                f"could not make {n} message(s) visible again; hidden for up to "
                f"{self.options.visibility_timeout} s: {why}"
            )


def redrive_entry(message: DlqMessage) -> dict[str, Any]:
    """The SendMessageBatch entry that sends ``message`` back to its source queue."""
    attributes: dict[str, Any] = {}
    for name, value in message.message_attributes.items():
        kept = {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
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
    entry: dict[str, Any] = {"MessageBody": message.body}
    if attributes:
        entry["MessageAttributes"] = attributes
    group = message.attributes.get("MessageGroupId")
    if group:  # FIFO source queue
        entry["MessageGroupId"] = group
        entry["MessageDeduplicationId"] = message.message_id
    return entry


def _already_applied(events: Sequence[S3ObjectEvent], existing: set[str]) -> bool:
    """Every created object indexed and every removed object gone."""
    for event in events:
        if event.kind == "created" and document_id(event.key) not in existing:
            return False
        if event.kind == "removed" and document_id(event.key) in existing:
            return False
    return True


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
    progress: ProgressHook | None = None,
) -> RecoveryReport:
    """Run one recovery: the only place its options and configuration are validated.

    Clients are made from ``settings`` unless given; ``settings.s3_bucket`` is
    the archive (and retry store) bucket, ``settings.queue_url`` the default
    redrive target. Queues may be given as URL, ARN or name. Raises
    ``RecoveryError`` (with the partial report, if any; ``RecoveryConfigError``
    when the options or configuration cannot work); nothing is touched before
    the options are known to be valid. ``progress(done, total)`` is called after
    each batch (from the recovery's threads).
    """
    from filesearch_worker import aws
    from filesearch_worker.index import Indexer as _Indexer
    from filesearch_worker.processor import Processor
    from filesearch_worker.retry_store import RetryStore

    options.validate()
    if not (dlq_url or settings.dlq_url):
        raise RecoveryConfigError("SQS_DLQ_URL (or --dlq-url / dlq) must be set for recover-dlq")
    strategy = options.strategy
    if strategy != "native" and not settings.s3_bucket:
        raise RecoveryConfigError(
            f"strategy {strategy} needs an S3 bucket for the archive (S3_BUCKET / bucket)"
        )
    dedupe = options.dedupe and strategy != "native"
    needs_index = dedupe or strategy == "reindex"
    if indexer is None and needs_index:
        indexer = _Indexer.from_settings(settings)
    if indexer is not None and indexer.skip and needs_index:
        raise RecoveryConfigError(
            "deduplication needs OpenSearch: set OPENSEARCH_ENDPOINT (opensearch_endpoint) "
            "or turn deduplication off"
            if dedupe
            else "strategy reindex needs OpenSearch: set OPENSEARCH_ENDPOINT (opensearch_endpoint)"
        )
    if not dedupe:
        options = replace(options, dedupe=False)
    sqs = sqs or aws.sqs_client(settings)
    s3 = s3 or aws.s3_client(settings)
    target = _queue_url(sqs, dlq_url or settings.dlq_url)
    source = source_queue_url or (settings.queue_url if strategy == "redrive" else None)
    source = _queue_url(sqs, source) if source else None
    processor: Processor | None = None
    if strategy == "reindex" and not options.dry_run:
        assert indexer is not None
        processor = Processor(settings, s3, indexer, RetryStore(s3, settings.s3_bucket))
    try:
        return DlqRecovery(
            sqs,
            target,
            options,
            s3=s3,
            bucket=settings.s3_bucket,
            indexer=indexer,
            source_queue_url=source,
            processor=processor,
            stop=stop,
            progress=progress,
        ).run()
    finally:
        if processor is not None:
            processor.close()


def _queue_url(sqs: Any, queue: str) -> str:
    from filesearch_worker.queue_status import resolve_queue_url

    try:
        return resolve_queue_url(sqs, queue)
    except ValueError as exc:
        raise RecoveryConfigError(str(exc)) from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        kind = RecoveryConfigError if code in _NO_SUCH_QUEUE else RecoveryError
        raise kind(f"cannot find the queue {queue!r}: {exc}") from exc
    except BotoCoreError as exc:
        raise RecoveryError(f"cannot find the queue {queue!r}: {exc}") from exc
