"""One received SQS batch -> one ``Processed`` per message, without settling.

parse -> download (streamed, capped) -> extract -> document -> ONE bulk index
for the batch -> retry store for documents that could not be indexed.
Each message gets a verdict from :class:`~filesearch_worker.outcomes.Outcome`;
deleting, dead-lettering and releasing are settlement's job
(``sqs_batch.settle``), so the DLQ recovery engine reuses
``Processor.process_batch`` to re-index in place and settles the same verdicts.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from filesearch_worker.documents import Document, build_document, tombstone
from filesearch_worker.errors import PermanentError, TransientError, WorkerError
from filesearch_worker.events import S3ObjectEvent, parse_message
from filesearch_worker.extract import Extraction, extract, metadata_only
from filesearch_worker.index import document_id
from filesearch_worker.outcomes import Action, Outcome

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from filesearch_worker.config import Settings
    from filesearch_worker.index import Indexer
    from filesearch_worker.retry_store import RetryStore

log = logging.getLogger(__name__)

_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
_S3_PERMANENT = {
    "NoSuchKey": "object-not-found",
    "404": "object-not-found",
    "NotFound": "object-not-found",
    "NoSuchBucket": "bucket-not-found",
    "InvalidObjectState": "object-archived",
    "InvalidBucketName": "bucket-not-found",
    "KeyTooLongError": "malformed-key",
}


@dataclass(frozen=True)
class Processed:
    """What processing found for one message; ``action`` is what settlement must do."""

    message_id: str
    receipt_handle: str
    outcome: Outcome
    reason: str = ""
    detail: str = ""
    keys: tuple[str, ...] = ()
    seconds: float = 0.0
    receive_count: int = 1
    body: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> Action:
        """delete (outcome durable), dead_letter (send, then delete) or release (backoff)."""
        return self.outcome.action

    @property
    def key(self) -> str:
        """The first key (for one-line logs)."""
        return self.keys[0] if self.keys else ""


@dataclass
class _Work:
    message: Mapping[str, Any]
    started: float
    events: list[S3ObjectEvent] = field(default_factory=list)
    docs: dict[str, Document] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    outcome: Outcome = Outcome.ACKNOWLEDGED
    reason: str = ""
    detail: str = ""

    def worsen(self, outcome: Outcome, reason: str, detail: str = "") -> None:
        """The worse verdict wins when a message carries several records."""
        if outcome.rank > self.outcome.rank or (not self.reason and outcome is self.outcome):
            self.outcome, self.reason, self.detail = outcome, reason, detail

    def fail(self, exc: WorkerError) -> None:
        transient = isinstance(exc, TransientError)
        self.worsen(
            Outcome.TRANSIENT if transient else Outcome.PERMANENT, exc.error_type, exc.reason
        )

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.PERMANENT, Outcome.TRANSIENT)


def receive_count(message: Mapping[str, Any]) -> int:
    """``ApproximateReceiveCount`` of a received message (1 when not requested)."""
    try:
        return int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


class Processor:
    """Turns received messages into outcomes; safe to call from several threads."""

    def __init__(
        self,
        settings: Settings,
        s3: S3Client,
        indexer: Indexer,
        retry_store: RetryStore,
        pool: Executor | None = None,
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.indexer = indexer
        self.retry_store = retry_store
        self._own_pool = pool is None
        self.pool: Executor = pool or ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="extract"
        )

    def close(self) -> None:
        """Shut down the pool if this processor made it."""
        if self._own_pool:
            self.pool.shutdown(wait=False, cancel_futures=True)

    # -- the batch ----------------------------------------------------------

    def process_batch(
        self,
        messages: Sequence[Mapping[str, Any]],
        started: Mapping[str, float] | None = None,
    ) -> list[Processed]:
        """One verdict per message, in order. Never raises for a message's failure."""
        now = time.monotonic()
        works = [_Work(m, (started or {}).get(str(m.get("MessageId")), now)) for m in messages]
        # 1. parse
        for work in works:
            try:
                work.events = parse_message(str(work.message.get("Body", "")))
            except PermanentError as exc:
                work.fail(exc)
        # 2. download + extract concurrently
        futures: list[tuple[_Work, S3ObjectEvent, Future[Document]]] = []
        for work in works:
            if work.outcome is Outcome.PERMANENT:
                continue
            for event in work.events:
                if event.kind == "created":
                    futures.append((work, event, self.pool.submit(self._fetch, event)))
        for work, event, future in futures:
            try:
                doc = future.result()
            except WorkerError as exc:
                work.fail(exc)
                continue
            except Exception as exc:
                log.exception("unexpected error processing %s", event.key)
                work.fail(
                    PermanentError(f"{type(exc).__name__}: {str(exc)[:500]}", "unexpected-error")
                )
                continue
            work.docs[document_id(event.key)] = doc
            if doc.get("extraction_error"):
                work.notes.append(str(doc["extraction_error"]).split(":", 1)[0])
        # 3. one bulk request for the batch
        pending = [w for w in works if not w.failed]
        all_docs: dict[str, Document] = {}
        for work in pending:
            all_docs.update(work.docs)
        results = self.indexer.bulk_index(all_docs) if all_docs else {}
        # 4. retry store for what was not indexed; removals
        stores: list[tuple[_Work, Future[str], str]] = []
        for work in pending:
            for doc_id, doc in work.docs.items():
                error = results.get(doc_id, "bulk: no result for this document")
                if error is None:
                    work.worsen(Outcome.INDEXED, work.notes[0] if work.notes else "")
                else:
                    reason = error.split(":", 1)[0]
                    stored = self.pool.submit(self.retry_store.put, doc, doc_id, error)
                    stores.append((work, stored, reason))
            for event in work.events:
                if event.kind == "removed":
                    self._remove(work, event, stores)
                elif event.kind == "test":
                    work.worsen(Outcome.ACKNOWLEDGED, "test-event")
        for work, stored, reason in stores:
            try:
                stored.result()
            except WorkerError as exc:
                work.fail(exc)
            else:
                work.worsen(Outcome.RETRY_STORED, reason)
        return [self._processed(w) for w in works]

    def _remove(
        self, work: _Work, event: S3ObjectEvent, stores: list[tuple[_Work, Future[str], str]]
    ) -> None:
        try:
            self.indexer.delete(document_id(event.key))
        except TransientError as exc:
            doc = tombstone(event.key, event.event_time)
            future = self.pool.submit(self.retry_store.put, doc, event.key, str(exc))
            stores.append((work, future, exc.error_type))
            return
        work.worsen(Outcome.REMOVED, "removed")

    def _processed(self, work: _Work) -> Processed:
        message = work.message
        keys = tuple(dict.fromkeys(e.key for e in work.events if e.key))
        return Processed(
            message_id=str(message.get("MessageId", "")),
            receipt_handle=str(message.get("ReceiptHandle", "")),
            outcome=work.outcome,
            reason=work.reason,
            detail=work.detail,
            keys=keys,
            seconds=round(time.monotonic() - work.started, 3),
            receive_count=receive_count(message),
            body=str(message.get("Body", "")),
            attributes=message.get("MessageAttributes", {}) or {},
        )

    # -- one object -----------------------------------------------------------

    def _fetch(self, event: S3ObjectEvent) -> Document:
        """Download and extract one object into its document (raises WorkerError)."""
        hook = self.settings.test_raise_on_key
        if hook and hook in event.key:
            raise RuntimeError(f"WORKER_TEST_RAISE_ON_KEY matched {event.key!r}")
        if self.settings.mode == "metadata-only":
            return build_document(event, Extraction(method="skipped", metadata_only=True))
        try:
            response = self.s3.get_object(Bucket=event.bucket, Key=event.key)
        except ClientError as exc:
            raise _s3_error(exc, event) from None
        except BotoCoreError as exc:
            raise TransientError(f"S3 get {event.key!r}: {exc}", "s3-unavailable") from None
        size = int(response.get("ContentLength", 0))
        body = response["Body"]
        try:
            if size > self.settings.max_file_bytes:
                extraction = metadata_only(
                    f"file-too-large: {size} bytes > WORKER_MAX_FILE_BYTES="
                    f"{self.settings.max_file_bytes}"
                )
            else:
                with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
                    _copy(body, spool, self.settings.max_file_bytes)
                    spool.seek(0)
                    if self.settings.test_extract_delay:
                        time.sleep(self.settings.test_extract_delay)  # documented test hook
                    extraction = extract(spool, event.key, size, self.settings.max_text_chars)
        except (BotoCoreError, OSError) as exc:
            raise TransientError(f"S3 read {event.key!r}: {exc}", "s3-read-failed") from None
        finally:
            body.close()
        last_modified = response.get("LastModified")
        modified = last_modified.isoformat() if isinstance(last_modified, datetime) else None
        return build_document(
            event,
            extraction,
            size=size,
            content_type=response.get("ContentType"),
            last_modified=modified,
            etag=response.get("ETag"),
        )


def _copy(body: Any, out: IO[bytes], limit: int) -> None:
    total = 0
    for chunk in body.iter_chunks(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise OSError(f"object grew beyond WORKER_MAX_FILE_BYTES={limit} while reading")
        out.write(chunk)


def _s3_error(exc: ClientError, event: S3ObjectEvent) -> WorkerError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    where = f"s3://{event.bucket}/{event.key}"
    if code in _S3_PERMANENT:
        return PermanentError(f"{where}: {code}", _S3_PERMANENT[code])
    if code in ("AccessDenied", "403"):
        return TransientError(f"{where}: access denied (IAM?)", "s3-access-denied")
    if (
        isinstance(status, int)
        and 400 <= status < 500
        and code not in ("RequestTimeout", "SlowDown")
    ):
        return PermanentError(f"{where}: {code}: {error.get('Message', '')}", f"s3-{code}")
    return TransientError(f"{where}: {code}: {error.get('Message', '')}", "s3-error")
