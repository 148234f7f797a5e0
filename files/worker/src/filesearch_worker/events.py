"""SQS message body -> S3 object events.

Understands S3 event notifications (``Records[]``), the same wrapped in an SNS
notification, EventBridge ``aws.s3`` events, and the ``s3:TestEvent`` S3 sends
when a notification is configured. Keys arrive URL-encoded (``+`` is a
space, UTF-8 percent-escapes) and are decoded here. Anything else raises
``PermanentError`` with a specific ``error_type``.

:func:`s3_event_body` is the other direction: the one synthetic S3
notification that the stress test, the smoke test, the demo, the benchmarks
and the tests send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote_plus, unquote_plus

from filesearch_worker.errors import PermanentError

EventKind = Literal["created", "removed", "test"]

MAX_RECORDS = 100
MAX_KEY_BYTES = 1024  # S3's own limit

_EVENTBRIDGE_KINDS: dict[str, EventKind] = {
    "Object Created": "created",
    "Object Deleted": "removed",
}


@dataclass(frozen=True)
class S3ObjectEvent:
    """One S3 object event, key decoded."""

    bucket: str
    key: str
    event_name: str
    kind: EventKind
    size: int | None = None
    etag: str | None = None
    event_time: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    source: str = "s3"  # s3 | sns | eventbridge


def parse_message(body: str) -> list[S3ObjectEvent]:
    """Parse one SQS message body into its S3 events (at least one)."""
    doc = _loads(body, "message body")
    return _parse_doc(doc, source="s3", depth=0)


def s3_event_body(
    bucket: str,
    key: str,
    *,
    size: int | None = 0,
    region: str = "ap-northeast-1",
    event_name: str = "ObjectCreated:Put",
    event_time: datetime | str | None = None,
    configuration_id: str | None = None,
) -> str:
    """An SQS message body as an S3 bucket notification sends it, for one object.

    The key is URL-encoded as S3 encodes it (spaces as ``+``, ``/`` kept), so
    :func:`parse_message` gives ``key`` back. ``size`` None leaves the size
    out; ``event_time`` None is now (UTC, milliseconds, as S3 writes it).
    """
    if event_time is None:
        event_time = datetime.now(UTC)
    if isinstance(event_time, datetime):
        utc = event_time.astimezone(UTC) if event_time.tzinfo else event_time
        event_time = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if size is not None:
        obj["size"] = size
    s3: dict[str, Any] = {"s3SchemaVersion": "1.0"}
    if configuration_id is not None:
        s3["configurationId"] = configuration_id
    s3["bucket"] = {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}
    s3["object"] = obj
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": event_time,
        "eventName": event_name,
        "s3": s3,
    }
    return json.dumps({"Records": [record]}, ensure_ascii=False)


def _loads(text: str, what: str) -> Any:
    if not isinstance(text, str) or not text.strip():
        raise PermanentError(f"{what} is empty", "empty-body")
    try:
        return json.loads(text)
    except RecursionError:
        raise PermanentError(f"{what} is nested too deeply to parse", "invalid-json") from None
    except ValueError as exc:
        raise PermanentError(f"{what} is not JSON: {exc}", "invalid-json") from None


def _parse_doc(doc: Any, source: str, depth: int) -> list[S3ObjectEvent]:
    if not isinstance(doc, dict):
        raise PermanentError(
            f"message body is a JSON {type(doc).__name__}, expected an object", "not-an-object"
        )
    # SNS notification wrapping an S3 event
    if doc.get("Type") == "Notification" and "Message" in doc:
        if depth > 0:
            raise PermanentError("SNS notification nested in another one", "unrecognised-message")
        inner = doc["Message"]
        if not isinstance(inner, str):
            raise PermanentError("SNS Message is not a string", "malformed-sns")
        return _parse_doc(_loads(inner, "SNS Message"), source="sns", depth=depth + 1)
    # s3:TestEvent, sent once when a notification configuration is saved
    if doc.get("Event") == "s3:TestEvent":
        bucket = doc.get("Bucket")
        return [
            S3ObjectEvent(
                bucket=bucket if isinstance(bucket, str) else "",
                key="",
                event_name="s3:TestEvent",
                kind="test",
                event_time=_opt_str(doc.get("Time")),
                source=source,
            )
        ]
    # EventBridge
    if "detail-type" in doc and "detail" in doc:
        return [_parse_eventbridge(doc)]
    if "Records" not in doc:
        raise PermanentError(
            "no Records, not an S3, SNS or EventBridge event "
            f"(top-level keys: {', '.join(sorted(map(str, doc))[:8]) or 'none'})",
            "missing-records",
        )
    records = doc["Records"]
    if not isinstance(records, list):
        raise PermanentError(
            f"Records is a JSON {type(records).__name__}, expected a list", "malformed-records"
        )
    if not records:
        raise PermanentError("Records is empty", "missing-records")
    if len(records) > MAX_RECORDS:
        raise PermanentError(
            f"{len(records)} records in one message (limit {MAX_RECORDS})", "too-many-records"
        )
    return [_parse_record(r, i, source) for i, r in enumerate(records)]


def _parse_record(record: Any, index: int, source: str) -> S3ObjectEvent:
    where = f"Records[{index}]"
    if not isinstance(record, dict):
        raise PermanentError(f"{where} is not an object", "malformed-record")
    event_source = record.get("eventSource")
    if event_source != "aws:s3":
        raise PermanentError(
            f"{where}.eventSource is {event_source!r}, expected 'aws:s3'",
            "unsupported-event-source",
        )
    name = record.get("eventName")
    if not isinstance(name, str) or not name:
        raise PermanentError(f"{where}.eventName is missing", "malformed-record")
    kind = _kind_of(name)
    if kind is None:
        raise PermanentError(f"{where}.eventName {name!r} is not handled", "unsupported-event")
    s3 = record.get("s3")
    bucket = _dig(s3, "bucket", "name")
    obj = s3.get("object") if isinstance(s3, dict) else None
    raw_key = obj.get("key") if isinstance(obj, dict) else None
    if not isinstance(bucket, str) or not bucket:
        raise PermanentError(f"{where}.s3.bucket.name is missing", "malformed-record")
    if not isinstance(raw_key, str) or not raw_key:
        raise PermanentError(f"{where}.s3.object.key is missing", "malformed-record")
    assert isinstance(obj, dict)
    return S3ObjectEvent(
        bucket=bucket,
        key=decode_key(raw_key),
        event_name=name,
        kind=kind,
        size=_opt_int(obj.get("size")),
        etag=_opt_str(obj.get("eTag") or obj.get("etag")),
        event_time=_opt_str(record.get("eventTime")),
        version_id=_opt_str(obj.get("versionId")),
        sequencer=_opt_str(obj.get("sequencer")),
        source=source,
    )


def _parse_eventbridge(doc: dict[str, Any]) -> S3ObjectEvent:
    if doc.get("source") != "aws.s3":
        raise PermanentError(
            f"EventBridge source is {doc.get('source')!r}, expected 'aws.s3'",
            "unsupported-event-source",
        )
    detail_type = doc.get("detail-type")
    kind = _EVENTBRIDGE_KINDS.get(detail_type) if isinstance(detail_type, str) else None
    if kind is None:
        raise PermanentError(
            f"EventBridge detail-type {detail_type!r} is not handled", "unsupported-event"
        )
    detail = doc.get("detail")
    bucket = _dig(detail, "bucket", "name")
    obj = detail.get("object") if isinstance(detail, dict) else None
    raw_key = obj.get("key") if isinstance(obj, dict) else None
    if not isinstance(bucket, str) or not bucket:
        raise PermanentError("EventBridge detail.bucket.name is missing", "malformed-record")
    if not isinstance(raw_key, str) or not raw_key:
        raise PermanentError("EventBridge detail.object.key is missing", "malformed-record")
    assert isinstance(obj, dict)
    return S3ObjectEvent(
        bucket=bucket,
        key=decode_key(raw_key),
        event_name=str(detail_type),
        kind=kind,
        size=_opt_int(obj.get("size")),
        etag=_opt_str(obj.get("etag")),
        event_time=_opt_str(doc.get("time")),
        version_id=_opt_str(obj.get("version-id")),
        sequencer=_opt_str(obj.get("sequencer")),
        source="eventbridge",
    )


def decode_key(raw: str) -> str:
    """Decode an S3 event key: ``+`` is a space, ``%XX`` are UTF-8 bytes."""
    try:
        key = unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise PermanentError(
            f"object key {raw[:200]!r} is not valid percent-encoded UTF-8: {exc.reason}",
            "malformed-key",
        ) from None
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise PermanentError(f"object key is longer than {MAX_KEY_BYTES} bytes", "malformed-key")
    if "\x00" in key:
        raise PermanentError("object key contains a NUL character", "malformed-key")
    return key


def _kind_of(event_name: str) -> EventKind | None:
    if event_name.startswith("ObjectCreated:"):
        return "created"
    if event_name.startswith("ObjectRemoved:"):
        return "removed"
    return None


def _dig(doc: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None
