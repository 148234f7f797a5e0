"""In-memory SQS, S3 and OpenSearch that inject faults and watch every delete.

Only the API surface the engine (``filesearch_worker``) calls is here, with
the errors the real clients raise, so the engine's own error handling runs:

* SQS (``FakeSqs``): receive_message (MaxNumberOfMessages, VisibilityTimeout,
  system and message attributes, ``ApproximateReceiveCount``), a new receipt
  handle per receive (older ones go stale), visibility on a fake clock, a
  RedrivePolicy that moves a message to the DLQ on the receive after
  ``maxReceiveCount``, send/delete/change-visibility (single and batch),
  get_queue_attributes, list_dead_letter_source_queues, get_queue_url.
* S3 (``FakeS3``): get_object (a Body with iter_chunks/read/close),
  put_object with Metadata, list_objects_v2 and its paginator, delete_objects.
* OpenSearch (``FakeOpenSearch``): the opensearch-py client surface that
  ``filesearch_worker.index.Indexer`` and ``opensearchpy.helpers.streaming_bulk``
  use: bulk (NDJSON), mget, delete, get, info, indices.exists/create and
  ``transport.serializer``.

Every call passes :meth:`World.enter`, where the step's :class:`FaultPlan`
decides: succeed, fail before taking effect (a 5xx, a throttle, a refused
connection), time out AFTER taking effect (the effect stays, the caller gets
a read timeout), partially succeed (batch calls: some entries fail), or crash
the process (:class:`Crash`, a ``BaseException``, before or after the call
takes effect). Once crashed, every call raises ``Crash`` until the test
discards the engine objects and calls :meth:`World.revive`.

Decisions are keyed by what a call is about (operation, queue or bucket,
message ids, object keys, document ids) and how often that was called in the
step, never by the order threads happen to run in, so one schedule always
injects the same faults (hypothesis replays and shrinks it).

The invariant lives here too: every SQS delete that removes a message checks,
at that moment and against the fakes' own state, that the message's outcome
is durable somewhere else (:meth:`World.durable_record`); every delete of a
retry-store object checks that its document is indexed. A failed check is
recorded in ``World.violations``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import threading
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from opensearchpy.exceptions import (
    ConnectionError as OpenSearchConnectionError,
)
from opensearchpy.exceptions import (
    ConnectionTimeout,
    NotFoundError,
    TransportError,
)
from opensearchpy.serializer import JSONSerializer

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
RETRY_PREFIX = "retry-index/"
ARCHIVE_PREFIX = "dlq-archive/"
SQS_MAX_VISIBILITY = 43_200
#: One entry of an SQS batch call: its Successful fields, or (code, message) of its failure.
EntryResult = dict[str, Any] | tuple[str, str]


class Crash(BaseException):
    """The process is killed here: unwinds the engine (no ``except Exception`` stops it)."""


class Fault(enum.Enum):
    """What happens to one call."""

    OK = "ok"
    FAIL_SERVICE = "fail-service"  # 5xx before taking effect
    FAIL_THROTTLE = "fail-throttle"  # throttled before taking effect
    FAIL_CONNECT = "fail-connect"  # connection refused, nothing sent
    TIMEOUT_AFTER = "timeout-after"  # took effect, then the response was lost
    PARTIAL = "partial"  # batch calls: some entries fail; other calls: as FAIL_SERVICE

    def __repr__(self) -> str:
        return f"Fault.{self.name}"


FAULTS: tuple[Fault, ...] = tuple(Fault)


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


#: The operations a plan can aim at (``FaultPlan.only`` / ``crash_only``).
OPERATIONS: tuple[str, ...] = (
    "ReceiveMessage",
    "SendMessageBatch",
    "DeleteMessageBatch",
    "ChangeMessageVisibilityBatch",
    "GetQueueAttributes",
    "ListDeadLetterSourceQueues",
    "GetObject",
    "PutObject",
    "ListObjectsV2",
    "DeleteObjects",
    "bulk",
    "mget",
    "info",
)


@dataclass(frozen=True, repr=False)
class FaultPlan:
    """The faults of one step (one worker batch, one recovery run, one replay).

    A call about ``site`` (its ``n``-th in the step) gets
    ``tape[hash(salt, site, n) % len(tape)]``; an empty tape injects nothing;
    ``only`` limits faults to one operation. With ``crash_every`` > 0, a call
    (of ``crash_only``, if set) crashes the process when
    ``hash(crash_salt, site, n) % crash_every == 0``: before it takes effect,
    or after (``crash_after``).
    """

    tape: tuple[Fault, ...] = ()
    salt: int = 0
    only: str = ""
    crash_every: int = 0
    crash_salt: int = 0
    crash_only: str = ""
    crash_after: bool = False

    def fault(self, operation: str, site: str, n: int) -> Fault:
        if not self.tape or (self.only and operation != self.only):
            return Fault.OK
        return self.tape[_hash(f"{self.salt}|{site}#{n}") % len(self.tape)]

    def crashes(self, operation: str, site: str, n: int) -> bool:
        if self.crash_every <= 0 or (self.crash_only and operation != self.crash_only):
            return False
        return _hash(f"crash{self.crash_salt}|{site}#{n}") % self.crash_every == 0

    @property
    def quiet(self) -> bool:
        """Injects nothing."""
        return self.crash_every <= 0 and all(f is Fault.OK for f in self.tape)

    def __repr__(self) -> str:
        """Only what differs from no faults (hypothesis prints schedules with it)."""
        fields = {
            "tape": self.tape,
            "salt": self.salt,
            "only": self.only,
            "crash_every": self.crash_every,
            "crash_salt": self.crash_salt,
            "crash_only": self.crash_only,
            "crash_after": self.crash_after,
        }
        shown = [f"{k}={v!r}" for k, v in fields.items() if v != getattr(NO_FAULTS, k)]
        return f"FaultPlan({', '.join(shown)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


NO_FAULTS = FaultPlan()


@dataclass
class Call:
    """One call in progress: its fault, and whether the process dies after it."""

    service: str
    operation: str
    site: str
    fault: Fault
    crash_after: bool = False

    @property
    def fails_before(self) -> bool:
        return self.fault in (Fault.FAIL_SERVICE, Fault.FAIL_THROTTLE, Fault.FAIL_CONNECT)

    @property
    def partial(self) -> bool:
        return self.fault is Fault.PARTIAL


@dataclass
class Origin:
    """One message the test sent: what it is about and where it may end."""

    number: int
    kind: str
    body: str
    keys: tuple[str, ...] = ()


# --- errors as the real clients raise them ------------------------------------------


def client_error(operation: str, code: str, message: str, status: int, **extra: Any) -> ClientError:
    error = {"Code": code, "Message": message, **extra}
    response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


def _aws_failure(call: Call, endpoint: str) -> Exception:
    if call.fault is Fault.FAIL_CONNECT:
        return EndpointConnectionError(endpoint_url=endpoint)
    if call.fault is Fault.FAIL_THROTTLE:
        if call.service == "s3":
            return client_error(call.operation, "SlowDown", "Please reduce your request rate.", 503)
        return client_error(call.operation, "ThrottlingException", "Rate exceeded", 400)
    if call.service == "s3":
        return client_error(
            call.operation, "InternalError", "We encountered an internal error.", 500
        )
    return client_error(
        call.operation, "ServiceUnavailable", "Service is unable to handle request.", 503
    )


def _opensearch_failure(call: Call) -> Exception:
    if call.fault is Fault.FAIL_CONNECT:
        refused = ConnectionRefusedError(111, "Connection refused")
        return OpenSearchConnectionError("N/A", f"ConnectionRefusedError: {refused}", refused)
    if call.fault is Fault.FAIL_THROTTLE:
        return TransportError(
            429,
            "es_rejected_execution_exception",
            {"error": {"type": "es_rejected_execution_exception"}, "status": 429},
        )
    return TransportError(
        503, "service_unavailable", {"error": {"type": "service_unavailable"}, "status": 503}
    )


# --- the world: clock, fault plan, crash state, the invariant -----------------------


class World:
    """The fakes' shared state: one set of AWS and OpenSearch services."""

    def __init__(self, *, bucket: str, index: str, event_log: int = 60) -> None:
        self.bucket = bucket  # retry store and archive
        self.index = index
        self.now = 0.0
        self.epoch = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self.plan = NO_FAULTS
        self.step = 0
        self.dead = False
        self.lock = threading.RLock()
        self._counters: Counter[str] = Counter()
        self.events: deque[str] = deque(maxlen=event_log)
        self.violations: list[str] = []
        self.origins: dict[str, Origin] = {}
        self.faults_injected = 0
        self.crashes = 0
        self.deletes_checked = 0
        self.opensearch_up = True
        self.sqs = FakeSqs(self)
        self.s3 = FakeS3(self)
        self.opensearch = FakeOpenSearch(self)

    # -- clock and steps ---------------------------------------------------------------

    def clock(self) -> float:
        """The fake monotonic clock (seconds)."""
        return self.now

    def wall(self) -> datetime:
        return self.epoch + timedelta(seconds=self.now)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds

    def begin(self, plan: FaultPlan) -> None:
        """A new step under ``plan``."""
        with self.lock:
            self.plan = plan
            self.step += 1
            self._counters.clear()

    def revive(self) -> None:
        """A new process after a crash (the test discarded the old engine objects)."""
        with self.lock:
            self.dead = False

    # -- the gate every call passes ----------------------------------------------------

    def enter(self, service: str, operation: str, site: str) -> Call:
        """Decide this call's fault; raises ``Crash`` when the process dies before it."""
        with self.lock:
            if self.dead:
                raise Crash(f"{service}.{operation} called by a dead process")
            key = f"{service}.{operation}[{site}]"
            n = self._counters[key]
            self._counters[key] += 1
            fault = self.plan.fault(operation, key, n)
            crash = self.plan.crashes(operation, key, n)
            call = Call(service, operation, site, fault, crash and self.plan.crash_after)
            if fault is not Fault.OK or crash:
                self.faults_injected += fault is not Fault.OK
                what = fault.name
                if crash:
                    what += ", crash " + ("after" if self.plan.crash_after else "before")
                self.events.append(f"step {self.step}: {key}#{n} -> {what}")
            if crash and not self.plan.crash_after:
                self._die(key)
            return call

    def leave(self, call: Call, endpoint: str = "") -> None:
        """The call took effect: crash after it, or lose its response (timeout)."""
        with self.lock:
            if call.crash_after:
                self._die(f"{call.service}.{call.operation}[{call.site}]")
        if call.fault is Fault.TIMEOUT_AFTER:
            if call.service == "opensearch":
                cause = TimeoutError("timed out")
                raise ConnectionTimeout("TIMEOUT", "Read timed out. (read timeout=10)", cause)
            raise ReadTimeoutError(endpoint_url=endpoint)

    def _die(self, where: str) -> None:
        self.dead = True
        self.crashes += 1
        raise Crash(f"process killed at {where}")

    # -- origins and the invariant -----------------------------------------------------

    def add_origin(self, kind: str, body: str, keys: Sequence[str] = ()) -> Origin:
        origin = Origin(len(self.origins) + 1, kind, body, tuple(keys))
        if body in self.origins:
            raise ValueError("every test message needs its own body")
        self.origins[body] = origin
        return origin

    def tag(self, body: str) -> str:
        """A short stable name of a body (its origin number) for fault sites."""
        origin = self.origins.get(body)
        return f"o{origin.number}" if origin else f"b{_hash(body):08x}"

    def live_copies(self, body: str) -> list[tuple[str, str]]:
        """(queue name, message id) of every message in any queue with this body."""
        return [
            (queue.name, message.message_id)
            for queue in self.sqs.queues.values()
            for message in queue.messages.values()
            if message.body == body
        ]

    def indexed(self, key: str) -> bool:
        return key in self.opensearch.docs.get(self.index, {})

    def retry_stored(self, key: str) -> bool:
        return any(
            unquote(obj.metadata.get("original-key", "")) == key
            for name, obj in self.s3.objects(self.bucket, RETRY_PREFIX)
        )

    def archived(self, message_id: str, body: str) -> bool:
        for name, obj in self.s3.objects(self.bucket, ARCHIVE_PREFIX):
            if name.endswith(f"/{message_id}.json") and _json(obj.body).get("body") == body:
                return True
        return False

    def archives_of(self, body: str) -> int:
        return sum(
            1
            for _name, obj in self.s3.objects(self.bucket, ARCHIVE_PREFIX)
            if _json(obj.body).get("body") == body
        )

    def durable_record(self, queue: FakeQueue, message: SqsMessage) -> str | None:
        """Where ``message``'s outcome is durable besides itself, or None."""
        for name, message_id in self.live_copies(message.body):
            if name != queue.name or message_id != message.message_id:
                return f"a copy {message_id} in {name}"
        if self.archived(message.message_id, message.body):
            return "its archive object"
        origin = self.origins.get(message.body)
        keys = origin.keys if origin is not None else ()
        if keys and all(self.indexed(k) or self.retry_stored(k) for k in keys):
            return "its documents (indexed or in the retry store)"
        return None

    def check_delete(self, queue: FakeQueue, message: SqsMessage) -> None:
        """The invariant, at the moment ``message`` is deleted."""
        self.deletes_checked += 1
        if self.durable_record(queue, message) is not None:
            return
        origin = self.origins.get(message.body)
        what = f"{origin.kind} message o{origin.number}" if origin else "an unknown message"
        keys = f" (keys {list(origin.keys)})" if origin and origin.keys else " (no S3 records)"
        self.violations.append(
            f"step {self.step}: DELETE of {what}{keys}, message id {message.message_id}, "
            f"from {queue.name}, before its outcome was durable anywhere: not indexed, not "
            f"in the retry store, no DLQ or source-queue copy, no archive object. "
            f"Faults so far: {list(self.events)[-12:] or 'none'}"
        )

    def check_retry_delete(self, name: str, obj: S3Object) -> None:
        """A retry-store entry may go only once its document is applied to the index."""
        document = _json(obj.body)
        key = document.get("file_key") or unquote(obj.metadata.get("original-key", ""))
        if document.get("_op") == "delete":
            applied = not self.indexed(str(key))
        else:
            applied = self.indexed(str(key))
        if not applied:
            self.violations.append(
                f"step {self.step}: DELETE of retry-store entry {name} before its document "
                f"{key!r} was applied to the index. Faults so far: {list(self.events)[-12:]}"
            )


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- SQS ------------------------------------------------------------------------------


@dataclass
class SqsMessage:
    message_id: str
    body: str
    attributes: dict[str, Any]
    sent_at: float
    receive_count: int = 0
    first_receive: float | None = None
    visible_at: float = 0.0
    handle: str | None = None  # the newest receipt handle (the only one that deletes)


@dataclass
class FakeQueue:
    name: str
    url: str
    arn: str
    visibility_timeout: int = 30
    dead_letter_arn: str | None = None
    max_receive_count: int = 0
    messages: dict[str, SqsMessage] = field(default_factory=dict)


@dataclass
class _Handle:
    queue: str
    message_id: str


class FakeSqs:
    """A standard SQS queue set on the world's clock."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.queues: dict[str, FakeQueue] = {}
        self._handles: dict[str, _Handle] = {}
        self._ids = 0
        self._receipts = 0
        #: every SendMessage(Batch) entry the engine got accepted: (queue name, body, attributes)
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.moved_by_redrive_policy = 0

    # -- harness (no faults) ----------------------------------------------------------

    def create_queue(
        self,
        name: str,
        *,
        visibility_timeout: int = 30,
        dead_letter_queue: str | None = None,
        max_receive_count: int = 0,
    ) -> str:
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        dlq_arn = self.queues[dead_letter_queue].arn if dead_letter_queue else None
        self.queues[url] = FakeQueue(
            name, url, arn, visibility_timeout, dlq_arn, max_receive_count if dlq_arn else 0
        )
        return url

    def enqueue(
        self, queue_url: str, body: str, attributes: Mapping[str, Any] | None = None
    ) -> str:
        """Put a message into a queue as S3's notification would (no faults)."""
        with self.world.lock:
            return self._add(self.queues[queue_url], body, dict(attributes or {})).message_id

    def depth(self, queue_url: str) -> int:
        """Messages in the queue, visible or in flight."""
        return len(self.queues[queue_url].messages)

    # -- internals ---------------------------------------------------------------------

    def _endpoint(self) -> str:
        return f"https://sqs.{REGION}.amazonaws.com/"

    def _queue(self, url: str, operation: str) -> FakeQueue:
        queue = self.queues.get(url)
        if queue is None:
            raise client_error(
                operation,
                "AWS.SimpleQueueService.NonExistentQueue",
                "The specified queue does not exist.",
                400,
            )
        return queue

    def _add(self, queue: FakeQueue, body: str, attributes: dict[str, Any]) -> SqsMessage:
        self._ids += 1
        message = SqsMessage(
            str(uuid.UUID(int=self._ids)), body, attributes, self.world.now, visible_at=0.0
        )
        queue.messages[message.message_id] = message
        return message

    def _resolve(self, handle: str) -> tuple[FakeQueue | None, SqsMessage | None, bool]:
        """(queue, message, current) for a receipt handle; (None, None, False) if never issued."""
        known = self._handles.get(handle)
        if known is None:
            return None, None, False
        queue = next((q for q in self.queues.values() if q.name == known.queue), None)
        message = queue.messages.get(known.message_id) if queue else None
        return queue, message, message is not None and message.handle == handle

    def _site(self, queue: FakeQueue, entries: Sequence[Mapping[str, Any]]) -> str:
        parts = []
        for e in entries:
            if "ReceiptHandle" in e:
                known = self._handles.get(str(e["ReceiptHandle"]))
                parts.append(known.message_id[-6:] if known else "?")
            else:
                parts.append(self.world.tag(str(e.get("MessageBody", ""))))
        return f"{queue.name}:{','.join(sorted(parts))}"

    @staticmethod
    def _check_batch(operation: str, entries: Sequence[Mapping[str, Any]]) -> None:
        if not entries:
            raise client_error(
                operation,
                "AWS.SimpleQueueService.EmptyBatchRequest",
                "There should be at least one entry in the request.",
                400,
            )
        if len(entries) > 10:
            raise client_error(
                operation,
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                f"Maximum number of entries per request are 10. You have sent {len(entries)}.",
                400,
            )
        ids = [str(e.get("Id")) for e in entries]
        if len(set(ids)) != len(ids):
            raise client_error(
                operation,
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                "Two or more batch entries in the request have the same Id.",
                400,
            )

    @staticmethod
    def _entry_problem(entry: Mapping[str, Any]) -> str | None:
        body = entry.get("MessageBody")
        if not isinstance(body, str) or not body:
            return "The request must contain the parameter MessageBody."
        attributes = entry.get("MessageAttributes") or {}
        if len(attributes) > 10:
            return f"Number of message attributes [{len(attributes)}] exceeds the maximum [10]."
        for name, value in attributes.items():
            data_type = str(value.get("DataType", ""))
            if not data_type:
                return f"The message attribute '{name}' must contain a non-empty attribute type."
            if data_type.startswith(("String", "Number")) and not value.get("StringValue"):
                return f"The message attribute '{name}' must contain a non-empty message value."
            if data_type.startswith("Binary") and not value.get("BinaryValue"):
                return f"The message attribute '{name}' must contain a non-empty message value."
        return None

    def _rendered(
        self, message: SqsMessage, system: Sequence[str], names: Sequence[str]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "MessageId": message.message_id,
            "ReceiptHandle": message.handle,
            "MD5OfBody": hashlib.md5(message.body.encode("utf-8")).hexdigest(),  # noqa: S324
            "Body": message.body,
        }
        every = {
            "SenderId": "AIDAEXAMPLE",
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(int((self.world.epoch.timestamp() + message.sent_at) * 1000)),
            "ApproximateFirstReceiveTimestamp": str(
                int((self.world.epoch.timestamp() + (message.first_receive or 0.0)) * 1000)
            ),
        }
        wanted = every if "All" in system else {k: v for k, v in every.items() if k in system}
        if wanted:
            out["Attributes"] = wanted
        if message.attributes and names:
            if "All" in names or ".*" in names:
                out["MessageAttributes"] = dict(message.attributes)
            else:
                picked = {k: v for k, v in message.attributes.items() if k in names}
                if picked:
                    out["MessageAttributes"] = picked
        return out

    def _delete(self, queue: FakeQueue, message: SqsMessage) -> None:
        self.world.check_delete(queue, message)
        del queue.messages[message.message_id]

    # -- the API -----------------------------------------------------------------------

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        VisibilityTimeout: int | None = None,
        WaitTimeSeconds: int = 0,
        AttributeNames: Sequence[str] = (),
        MessageSystemAttributeNames: Sequence[str] = (),
        MessageAttributeNames: Sequence[str] = (),
        **_: Any,
    ) -> dict[str, Any]:
        with self.world.lock:
            queue = self._queue(QueueUrl, "ReceiveMessage")
            if not 1 <= MaxNumberOfMessages <= 10:
                raise client_error(
                    "ReceiveMessage",
                    "InvalidParameterValue",
                    "Value for parameter MaxNumberOfMessages is invalid.",
                    400,
                )
            call = self.world.enter("sqs", "ReceiveMessage", queue.name)
            if call.fails_before:
                raise _aws_failure(call, self._endpoint())
            limit = 1 if call.partial else MaxNumberOfMessages
            visibility = (
                queue.visibility_timeout if VisibilityTimeout is None else VisibilityTimeout
            )
            now = self.world.now
            out = []
            for message in list(queue.messages.values()):
                if len(out) >= limit:
                    break
                if message.visible_at > now:
                    continue
                if queue.dead_letter_arn and message.receive_count >= queue.max_receive_count:
                    self._move_to_dead_letter_queue(queue, message)
                    continue
                message.receive_count += 1
                if message.first_receive is None:
                    message.first_receive = now
                self._receipts += 1
                message.handle = f"AQEB-{queue.name}-{message.message_id}-{self._receipts}"
                self._handles[message.handle] = _Handle(queue.name, message.message_id)
                message.visible_at = now + visibility
                system = [*AttributeNames, *MessageSystemAttributeNames]
                out.append(self._rendered(message, system, MessageAttributeNames))
            self.world.leave(call, self._endpoint())
            return {"Messages": out} if out else {}

    def _move_to_dead_letter_queue(self, queue: FakeQueue, message: SqsMessage) -> None:
        target = next(q for q in self.queues.values() if q.arn == queue.dead_letter_arn)
        del queue.messages[message.message_id]
        message.handle = None
        message.visible_at = 0.0
        target.messages[message.message_id] = message
        self.moved_by_redrive_policy += 1

    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        MessageAttributes: Mapping[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        entry = {"Id": "0", "MessageBody": MessageBody, "MessageAttributes": MessageAttributes}
        result = self._batch(QueueUrl, [entry], "SendMessage", "SendMessageBatch", self._send_entry)
        if result["Failed"]:
            failure = result["Failed"][0]
            raise client_error("SendMessage", failure["Code"], failure["Message"], 400)
        return {
            "MessageId": result["Successful"][0]["MessageId"],
            "MD5OfMessageBody": result["Successful"][0]["MD5OfMessageBody"],
        }

    def send_message_batch(
        self,
        *,
        QueueUrl: str,
        Entries: Sequence[Mapping[str, Any]],
        **_: Any,
    ) -> dict[str, Any]:
        return self._batch(
            QueueUrl, Entries, "SendMessageBatch", "SendMessageBatch", self._send_entry
        )

    def _send_entry(self, queue: FakeQueue, entry: Mapping[str, Any]) -> EntryResult:
        problem = self._entry_problem(entry)
        if problem:
            return "InvalidParameterValue", problem
        attributes = dict(entry.get("MessageAttributes") or {})
        body = str(entry["MessageBody"])
        message = self._add(queue, body, attributes)
        self.sent.append((queue.name, body, attributes))
        return {
            "MessageId": message.message_id,
            "MD5OfMessageBody": hashlib.md5(body.encode("utf-8")).hexdigest(),  # noqa: S324
        }

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str, **_: Any) -> dict[str, Any]:
        entry = {"Id": "0", "ReceiptHandle": ReceiptHandle}
        result = self._batch(
            QueueUrl, [entry], "DeleteMessage", "DeleteMessageBatch", self._delete_entry
        )
        if result["Failed"]:
            failure = result["Failed"][0]
            raise client_error("DeleteMessage", failure["Code"], failure["Message"], 400)
        return {}

    def delete_message_batch(
        self,
        *,
        QueueUrl: str,
        Entries: Sequence[Mapping[str, Any]],
        **_: Any,
    ) -> dict[str, Any]:
        return self._batch(
            QueueUrl, Entries, "DeleteMessageBatch", "DeleteMessageBatch", self._delete_entry
        )

    def _delete_entry(self, queue: FakeQueue, entry: Mapping[str, Any]) -> EntryResult:
        handle = str(entry.get("ReceiptHandle", ""))
        owner, message, current = self._resolve(handle)
        if owner is None or owner is not queue:
            return "ReceiptHandleIsInvalid", f'The input receipt handle "{handle}" is not valid.'
        # SQS: an older receipt handle of a message received again "succeeds"
        # without deleting it; a handle of a deleted message succeeds too.
        if current and message is not None:
            self._delete(queue, message)
        return {}

    def change_message_visibility(
        self,
        *,
        QueueUrl: str,
        ReceiptHandle: str,
        VisibilityTimeout: int,
        **_: Any,
    ) -> dict[str, Any]:
        entry = {"Id": "0", "ReceiptHandle": ReceiptHandle, "VisibilityTimeout": VisibilityTimeout}
        result = self._batch(
            QueueUrl,
            [entry],
            "ChangeMessageVisibility",
            "ChangeMessageVisibilityBatch",
            self._change_entry,
        )
        if result["Failed"]:
            failure = result["Failed"][0]
            raise client_error("ChangeMessageVisibility", failure["Code"], failure["Message"], 400)
        return {}

    def change_message_visibility_batch(
        self,
        *,
        QueueUrl: str,
        Entries: Sequence[Mapping[str, Any]],
        **_: Any,
    ) -> dict[str, Any]:
        return self._batch(
            QueueUrl,
            Entries,
            "ChangeMessageVisibilityBatch",
            "ChangeMessageVisibilityBatch",
            self._change_entry,
        )

    def _change_entry(self, queue: FakeQueue, entry: Mapping[str, Any]) -> EntryResult:
        handle = str(entry.get("ReceiptHandle", ""))
        timeout = int(entry.get("VisibilityTimeout", -1))
        owner, message, current = self._resolve(handle)
        if not 0 <= timeout <= SQS_MAX_VISIBILITY:
            return (
                "InvalidParameterValue",
                f"Value {timeout} for parameter VisibilityTimeout is invalid.",
            )
        if owner is None or owner is not queue or message is None:
            return "ReceiptHandleIsInvalid", f'The input receipt handle "{handle}" is not valid.'
        if not current:
            return (
                "InvalidParameterValue",
                f"Value {handle} for parameter ReceiptHandle is invalid. "
                "Reason: The receipt handle has expired.",
            )
        if message.visible_at <= self.world.now:
            return (
                "AWS.SimpleQueueService.MessageNotInflight",
                "Message does not exist or is not available for visibility timeout change.",
            )
        message.visible_at = self.world.now + timeout
        return {}

    def _batch(
        self,
        url: str,
        entries: Sequence[Mapping[str, Any]],
        operation: str,
        api: str,
        settle: Callable[[FakeQueue, Mapping[str, Any]], EntryResult],
    ) -> dict[str, Any]:
        """One SQS batch call (``api``; ``operation`` is what the caller called).

        The request checks, then the injected fault: the whole call fails before or
        after, or (``partial``) every other entry fails with InternalError; the rest
        go through ``settle``, which gives the entry's Successful fields, or
        (code, message) for a failure that is the sender's fault.
        """
        with self.world.lock:
            queue = self._queue(url, operation)
            self._check_batch(operation, entries)
            call = self.world.enter("sqs", api, self._site(queue, entries))
            if call.fails_before:
                raise _aws_failure(call, self._endpoint())
            ok: list[dict[str, Any]] = []
            failed: list[dict[str, Any]] = []
            for i, entry in enumerate(entries):
                if call.partial and i % 2 == 0:
                    code, text, sender = "InternalError", "An internal error occurred.", False
                else:
                    result = settle(queue, entry)
                    if isinstance(result, dict):
                        ok.append({"Id": entry["Id"], **result})
                        continue
                    (code, text), sender = result, True
                failed.append(
                    {"Id": entry["Id"], "SenderFault": sender, "Code": code, "Message": text}
                )
            self.world.leave(call, self._endpoint())
            return {"Successful": ok, "Failed": failed}

    def get_queue_attributes(
        self,
        *,
        QueueUrl: str,
        AttributeNames: Sequence[str] = (),
        **_: Any,
    ) -> dict[str, Any]:
        with self.world.lock:
            queue = self._queue(QueueUrl, "GetQueueAttributes")
            call = self.world.enter("sqs", "GetQueueAttributes", queue.name)
            if call.fails_before or call.partial:
                raise _aws_failure(call, self._endpoint())
            now = self.world.now
            visible = sum(1 for m in queue.messages.values() if m.visible_at <= now)
            every: dict[str, str] = {
                "QueueArn": queue.arn,
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(len(queue.messages) - visible),
                "ApproximateNumberOfMessagesDelayed": "0",
                "VisibilityTimeout": str(queue.visibility_timeout),
            }
            if queue.dead_letter_arn:
                every["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": queue.dead_letter_arn,
                        "maxReceiveCount": queue.max_receive_count,
                    }
                )
            names = set(AttributeNames)
            attributes = every if "All" in names else {k: v for k, v in every.items() if k in names}
            self.world.leave(call, self._endpoint())
            return {"Attributes": attributes}

    def list_dead_letter_source_queues(
        self,
        *,
        QueueUrl: str,
        **_: Any,
    ) -> dict[str, Any]:
        with self.world.lock:
            queue = self._queue(QueueUrl, "ListDeadLetterSourceQueues")
            call = self.world.enter("sqs", "ListDeadLetterSourceQueues", queue.name)
            if call.fails_before or call.partial:
                raise _aws_failure(call, self._endpoint())
            urls = [q.url for q in self.queues.values() if q.dead_letter_arn == queue.arn]
            self.world.leave(call, self._endpoint())
            return {"queueUrls": urls}

    def get_queue_url(self, *, QueueName: str, **_: Any) -> dict[str, Any]:
        with self.world.lock:
            call = self.world.enter("sqs", "GetQueueUrl", QueueName)
            if call.fails_before or call.partial:
                raise _aws_failure(call, self._endpoint())
            queue = next((q for q in self.queues.values() if q.name == QueueName), None)
            if queue is None:
                raise client_error(
                    "GetQueueUrl",
                    "AWS.SimpleQueueService.NonExistentQueue",
                    "The specified queue does not exist.",
                    400,
                )
            self.world.leave(call, self._endpoint())
            return {"QueueUrl": queue.url}


# --- S3 -------------------------------------------------------------------------------


@dataclass
class S3Object:
    body: bytes
    metadata: dict[str, str]
    content_type: str
    last_modified: datetime

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.body).hexdigest() + '"'  # noqa: S324


class FakeStreamingBody:
    """botocore's StreamingBody surface: read, iter_chunks, close; may fail mid-read."""

    def __init__(self, data: bytes, *, fail_at: int | None = None, endpoint: str = "") -> None:
        self._data = data
        self._pos = 0
        self._fail_at = fail_at
        self._endpoint = endpoint
        self.closed = False

    def read(self, amt: int | None = None) -> bytes:
        end = len(self._data) if amt is None else min(len(self._data), self._pos + amt)
        if self._fail_at is not None and end >= self._fail_at:
            raise ReadTimeoutError(endpoint_url=self._endpoint)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        while True:
            chunk = self.read(chunk_size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self.closed = True


class _ListObjectsPaginator:
    def __init__(self, s3: FakeS3) -> None:
        self._s3 = s3

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            args = dict(kwargs)
            if token:
                args["ContinuationToken"] = token
            page = self._s3.list_objects_v2(**args)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return


class FakeS3:
    """Buckets of objects; faults per call, keyed by bucket and key."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.buckets: dict[str, dict[str, S3Object]] = {}
        #: (bucket, key) whose reads are denied (a bucket policy or IAM mistake): 403
        self.denied: set[tuple[str, str]] = set()

    # -- harness -----------------------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        self.buckets.setdefault(name, {})

    def store(self, bucket: str, key: str, data: bytes, content_type: str = "text/plain") -> None:
        with self.world.lock:
            self.buckets[bucket][key] = S3Object(data, {}, content_type, self.world.wall())

    def objects(self, bucket: str, prefix: str = "") -> list[tuple[str, S3Object]]:
        with self.world.lock:
            return sorted(
                (k, o) for k, o in self.buckets.get(bucket, {}).items() if k.startswith(prefix)
            )

    # -- internals ---------------------------------------------------------------------

    def _endpoint(self, bucket: str) -> str:
        return f"https://{bucket}.s3.{REGION}.amazonaws.com/"

    def _bucket(self, name: str, operation: str) -> dict[str, S3Object]:
        bucket = self.buckets.get(name)
        if bucket is None:
            raise client_error(
                operation,
                "NoSuchBucket",
                "The specified bucket does not exist",
                404,
                BucketName=name,
            )
        return bucket

    def _gate(self, operation: str, bucket: str, site: str, *, partial: bool = False) -> Call:
        """Pass the world's gate; ``partial``: the call has a partial-failure form."""
        call = self.world.enter("s3", operation, f"{bucket}/{site}")
        if call.fails_before or (call.partial and not partial):
            raise _aws_failure(call, self._endpoint(bucket))
        return call

    # -- the API -----------------------------------------------------------------------

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        with self.world.lock:
            call = self._gate("GetObject", Bucket, Key, partial=True)
            obj = self._bucket(Bucket, "GetObject").get(Key)
            if (Bucket, Key) in self.denied:
                raise client_error("GetObject", "AccessDenied", "Access Denied", 403)
            if obj is None:
                raise client_error(
                    "GetObject", "NoSuchKey", "The specified key does not exist.", 404, Key=Key
                )
            fail_at = len(obj.body) // 2 if call.partial else None
            body = FakeStreamingBody(obj.body, fail_at=fail_at, endpoint=self._endpoint(Bucket))
            self.world.leave(call, self._endpoint(Bucket))
            return {
                "Body": body,
                "ContentLength": len(obj.body),
                "ContentType": obj.content_type,
                "LastModified": obj.last_modified,
                "ETag": obj.etag,
                "Metadata": dict(obj.metadata),
            }

    def put_object(
        self,
        *,
        Bucket: str,
        Key: str,
        Body: bytes | str = b"",
        ContentType: str = "binary/octet-stream",
        Metadata: Mapping[str, str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        with self.world.lock:
            call = self._gate("PutObject", Bucket, Key)
            bucket = self._bucket(Bucket, "PutObject")
            data = Body.encode("utf-8") if isinstance(Body, str) else bytes(Body)
            for name, value in (Metadata or {}).items():
                if not value.isascii() or not name.isascii():
                    raise client_error(
                        "PutObject", "InvalidArgument", "Metadata must be ASCII.", 400
                    )
            obj = S3Object(data, dict(Metadata or {}), ContentType, self.world.wall())
            bucket[Key] = obj
            self.world.leave(call, self._endpoint(Bucket))
            return {"ETag": obj.etag}

    def list_objects_v2(
        self,
        *,
        Bucket: str,
        Prefix: str = "",
        ContinuationToken: str | None = None,
        MaxKeys: int = 1000,
        **_: Any,
    ) -> dict[str, Any]:
        with self.world.lock:
            call = self._gate("ListObjectsV2", Bucket, f"{Prefix}@{ContinuationToken or ''}")
            names = sorted(k for k in self._bucket(Bucket, "ListObjectsV2") if k.startswith(Prefix))
            if ContinuationToken:
                names = [k for k in names if k > ContinuationToken]
            page, rest = names[:MaxKeys], names[MaxKeys:]
            bucket = self.buckets[Bucket]
            result: dict[str, Any] = {
                "Name": Bucket,
                "Prefix": Prefix,
                "KeyCount": len(page),
                "MaxKeys": MaxKeys,
                "IsTruncated": bool(rest),
            }
            if page:
                result["Contents"] = [
                    {
                        "Key": k,
                        "Size": len(bucket[k].body),
                        "LastModified": bucket[k].last_modified,
                        "ETag": bucket[k].etag,
                        "StorageClass": "STANDARD",
                    }
                    for k in page
                ]
            if rest:
                result["NextContinuationToken"] = page[-1]
            self.world.leave(call, self._endpoint(Bucket))
            return result

    def get_paginator(self, operation_name: str) -> _ListObjectsPaginator:
        if operation_name != "list_objects_v2":
            raise NotImplementedError(f"the fake S3 has no paginator for {operation_name}")
        return _ListObjectsPaginator(self)

    def delete_objects(
        self,
        *,
        Bucket: str,
        Delete: Mapping[str, Any],
        **_: Any,
    ) -> dict[str, Any]:
        with self.world.lock:
            keys = [str(o["Key"]) for o in Delete.get("Objects", [])]
            call = self._gate("DeleteObjects", Bucket, ",".join(sorted(keys)), partial=True)
            bucket = self._bucket(Bucket, "DeleteObjects")
            deleted, errors = [], []
            for i, key in enumerate(keys):
                if call.partial and i % 2 == 0:
                    errors.append(
                        {"Key": key, "Code": "InternalError", "Message": "We encountered an error."}
                    )
                    continue
                obj = bucket.pop(key, None)
                if obj is not None and key.startswith(RETRY_PREFIX) and Bucket == self.world.bucket:
                    self.world.check_retry_delete(key, obj)
                deleted.append({"Key": key})
            self.world.leave(call, self._endpoint(Bucket))
            result: dict[str, Any] = {"Errors": errors} if errors else {}
            if not Delete.get("Quiet"):
                result["Deleted"] = deleted
            return result


# --- OpenSearch -----------------------------------------------------------------------


class _FakeIndices:
    def __init__(self, client: FakeOpenSearch) -> None:
        self._client = client

    def exists(self, index: str, **_: Any) -> bool:
        with self._client.world.lock:
            call = self._client._gate("indices.exists", index)
            found = index in self._client.docs
            self._client.world.leave(call)
            return found

    def create(self, index: str, body: Any = None, **_: Any) -> dict[str, Any]:
        with self._client.world.lock:
            call = self._client._gate("indices.create", index)
            if index in self._client.docs:
                raise TransportError(
                    400,
                    "resource_already_exists_exception",
                    {"error": {"type": "resource_already_exists_exception"}},
                )
            self._client.docs[index] = {}
            self._client.world.leave(call)
            return {"acknowledged": True, "index": index}


class FakeOpenSearch:
    """The opensearch-py ``OpenSearch`` client surface the worker uses, in memory."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}
        self.indices = _FakeIndices(self)
        self.transport = SimpleNamespace(serializer=JSONSerializer())
        self.writes: Counter[str] = Counter()  # document id -> times indexed

    def _gate(self, operation: str, site: str) -> Call:
        call = self.world.enter("opensearch", operation, site)
        if not self.world.opensearch_up:
            refused = ConnectionRefusedError(111, "Connection refused")
            raise OpenSearchConnectionError("N/A", f"ConnectionRefusedError: {refused}", refused)
        if call.fails_before or (call.partial and operation not in ("bulk", "mget")):
            raise _opensearch_failure(call)
        return call

    def info(self, **_: Any) -> dict[str, Any]:
        with self.world.lock:
            call = self._gate("info", "")
            self.world.leave(call)
            return {
                "name": "fake-node",
                "cluster_name": "proof",
                "version": {"number": "2.19.0", "distribution": "opensearch"},
            }

    def bulk(self, body: Any, index: str | None = None, **_: Any) -> dict[str, Any]:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
        lines = [line for line in text.split("\n") if line.strip()]
        operations: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        i = 0
        while i < len(lines):
            op, meta = next(iter(json.loads(lines[i]).items()))
            if op == "delete":
                operations.append((op, meta, None))
                i += 1
            else:
                operations.append((op, meta, json.loads(lines[i + 1])))
                i += 2
        with self.world.lock:
            ids = sorted(str(meta.get("_id")) for _op, meta, _src in operations)
            call = self._gate("bulk", ",".join(ids))
            items = []
            for n, (op, meta, source) in enumerate(operations):
                target = str(meta.get("_index") or index)
                doc_id = str(meta.get("_id"))
                if call.partial and n % 2 == 0:
                    items.append(
                        {
                            op: {
                                "_index": target,
                                "_id": doc_id,
                                "status": 429,
                                "error": {
                                    "type": "es_rejected_execution_exception",
                                    "reason": "rejected execution of coordinating operation",
                                },
                            }
                        }
                    )
                    continue
                docs = self.docs.setdefault(target, {})
                if op == "delete":
                    found = docs.pop(doc_id, None) is not None
                    status, result = (200, "deleted") if found else (404, "not_found")
                else:
                    status, result = (200, "updated") if doc_id in docs else (201, "created")
                    docs[doc_id] = dict(source or {})
                    self.writes[doc_id] += 1
                items.append(
                    {op: {"_index": target, "_id": doc_id, "status": status, "result": result}}
                )
            self.world.leave(call)
            errors = any(next(iter(item.values())).get("error") for item in items)
            return {"took": 1, "errors": errors, "items": items}

    def mget(self, body: Mapping[str, Any], index: str | None = None, **_: Any) -> dict[str, Any]:
        wanted = [str(i) for i in body.get("ids", [])]
        with self.world.lock:
            call = self._gate("mget", ",".join(sorted(wanted)))
            if index not in self.docs:
                raise NotFoundError(
                    404,
                    "index_not_found_exception",
                    {"error": {"type": "index_not_found_exception"}},
                )
            docs = []
            for n, doc_id in enumerate(wanted):
                if call.partial and n % 2 == 0:
                    docs.append(
                        {
                            "_index": index,
                            "_id": doc_id,
                            "error": {"type": "es_rejected_execution_exception"},
                        }
                    )
                else:
                    docs.append(
                        {"_index": index, "_id": doc_id, "found": doc_id in self.docs[index]}
                    )
            self.world.leave(call)
            return {"docs": docs}

    def delete(self, index: str, id: str, **_: Any) -> dict[str, Any]:
        with self.world.lock:
            call = self._gate("delete", id)
            if id not in self.docs.get(index, {}):
                raise NotFoundError(404, "not_found", {"_index": index, "_id": id, "found": False})
            del self.docs[index][id]
            self.world.leave(call)
            return {"_index": index, "_id": id, "result": "deleted"}

    def get(self, index: str, id: str, **_: Any) -> dict[str, Any]:
        with self.world.lock:
            call = self._gate("get", id)
            source = self.docs.get(index, {}).get(id)
            if source is None:
                raise NotFoundError(404, "not_found", {"_index": index, "_id": id, "found": False})
            self.world.leave(call)
            return {"_index": index, "_id": id, "found": True, "_source": dict(source)}
