"""The archive format: ``s3://BUCKET/dlq-archive/YYYY-MM-DD/<message-id>.json``."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from filesearch_worker.dlq.engine import DlqMessage

ARCHIVE_PREFIX = "dlq-archive/"


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


def archive_body(record: dict[str, Any]) -> bytes:
    """The object's bytes: UTF-8 JSON, binary attributes base64-encoded."""
    return json.dumps(record, ensure_ascii=False, default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    return str(value)
