"""The OpenSearch document built for one S3 object (document id = S3 key)."""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime
from typing import Any

from filesearch_worker.events import S3ObjectEvent
from filesearch_worker.extract import Extraction

Document = dict[str, Any]

# A retry-store entry whose document is a tombstone replays as a delete.
TOMBSTONE_OP = "delete"


def utcnow_iso() -> str:
    """Now, UTC, ISO 8601 with a Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_document(
    event: S3ObjectEvent,
    extraction: Extraction,
    *,
    size: int | None = None,
    content_type: str | None = None,
    last_modified: str | None = None,
    etag: str | None = None,
    indexed_at: str | None = None,
) -> Document:
    """The document for ``event``'s object; ``file_key`` is also its id."""
    name = posixpath.basename(event.key) or event.key
    ext = posixpath.splitext(name)[1].lower().lstrip(".")
    return {
        "file_key": event.key,
        "bucket": event.bucket,
        "file_name": name,
        "file_extension": ext,
        "content_type": content_type,
        "file_size": size if size is not None else event.size,
        "etag": (etag or event.etag or "").strip('"') or None,
        "last_modified": last_modified,
        "event_name": event.event_name,
        "event_time": event.event_time,
        "content": extraction.text,
        "content_length": len(extraction.text),
        "content_truncated": extraction.truncated,
        "extraction_method": extraction.method,
        "extraction_error": extraction.error,
        "metadata_only": extraction.metadata_only,
        "indexed_at": indexed_at or utcnow_iso(),
    }


def tombstone(key: str, event_time: str | None = None) -> Document:
    """A retry-store document that replays as "delete ``key`` from the index"."""
    return {
        "_op": TOMBSTONE_OP,
        "file_key": key,
        "event_time": event_time,
        "failed_at": utcnow_iso(),
    }


def is_tombstone(document: Document) -> bool:
    """True for documents made by ``tombstone``."""
    return document.get("_op") == TOMBSTONE_OP
