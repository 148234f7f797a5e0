"""The S3 retry store: documents that could not be indexed (seed Fixes 2 and 3).

Layout: ``s3://BUCKET/retry-index/YYYY-MM-DD/<key>.json``, the document as
JSON, object metadata ``original-key`` (percent-encoded: S3 metadata is
ASCII), ``retry-reason`` and ``failed-at``. ``replay`` re-indexes entries and
deletes each object only after its document is indexed, so it is idempotent
and safe to interrupt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from botocore.exceptions import BotoCoreError, ClientError

from filesearch_worker.documents import Document, is_tombstone
from filesearch_worker.errors import TransientError
from filesearch_worker.index import document_id

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from filesearch_worker.index import Indexer
    from filesearch_worker.progress import ProgressHook

log = logging.getLogger(__name__)

PREFIX = "retry-index/"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_S3_KEY = 1024
_METADATA_VALUE_MAX = 1024


@dataclass(frozen=True)
class RetryEntry:
    """One object in the retry store."""

    object_key: str
    date: str
    size: int
    last_modified: datetime | None = None


@dataclass
class ReplayReport:
    """What a replay did (or would do, with ``dry_run``)."""

    found: int = 0
    indexed: int = 0
    deleted_from_index: int = 0
    failed: int = 0
    unreadable: int = 0
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No failures."""
        return self.failed == 0 and self.unreadable == 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "found": self.found,
            "indexed": self.indexed,
            "deleted_from_index": self.deleted_from_index,
            "failed": self.failed,
            "unreadable": self.unreadable,
            "dry_run": self.dry_run,
            "errors": self.errors[:20],
        }


def validate_date(date: str) -> str:
    """``YYYY-MM-DD`` or ValueError."""
    if not _DATE.match(date):
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}")
    datetime.strptime(date, "%Y-%m-%d")
    return date


class RetryStore:
    """Write, list and replay retry-store entries in one bucket."""

    def __init__(self, s3_client: S3Client, bucket: str, prefix: str = PREFIX) -> None:
        if not bucket:
            raise ValueError("S3_BUCKET must be set for the retry store")
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix

    def object_key_for(self, key: str, when: datetime) -> str:
        """``retry-index/YYYY-MM-DD/<key>.json`` (hashed when that would exceed S3's limit)."""
        day = when.strftime("%Y-%m-%d")
        candidate = f"{self.prefix}{day}/{key}.json"
        if len(candidate.encode("utf-8")) <= _MAX_S3_KEY:
            return candidate
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return f"{self.prefix}{day}/_long-keys/{digest}.json"

    def put(
        self,
        document: Document,
        key: str,
        reason: str,
        *,
        now: datetime | None = None,
    ) -> str:
        """Store ``document`` for ``key``; returns the object key. Raises TransientError."""
        when = now or datetime.now(UTC)
        object_key = self.object_key_for(key, when)
        body = json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
        metadata = {
            "original-key": quote(key, safe="/")[:_METADATA_VALUE_MAX],
            "retry-reason": _ascii(reason)[:_METADATA_VALUE_MAX],
            "failed-at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=object_key,
                Body=body,
                ContentType="application/json; charset=utf-8",
                Metadata=metadata,
            )
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                f"retry store write s3://{self.bucket}/{object_key} failed: {exc}",
                "retry-store-failed",
            ) from exc
        return object_key

    def iter_entries(self, date: str | None = None) -> Iterator[RetryEntry]:
        """Entries, oldest date first (S3 lists keys in order), optionally for one date."""
        prefix = f"{self.prefix}{validate_date(date)}/" if date else self.prefix
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                object_key = obj["Key"]
                rest = object_key[len(self.prefix) :]
                day = rest.split("/", 1)[0]
                if not _DATE.match(day) or not object_key.endswith(".json"):
                    continue
                yield RetryEntry(
                    object_key=object_key,
                    date=day,
                    size=int(obj.get("Size", 0)),
                    last_modified=obj.get("LastModified"),
                )

    def load(self, entry: RetryEntry) -> tuple[Document, dict[str, str]]:
        """The stored document and its metadata (``original-key`` decoded)."""
        response = self.s3.get_object(Bucket=self.bucket, Key=entry.object_key)
        raw = response["Body"].read()
        document = json.loads(raw.decode("utf-8"))
        if not isinstance(document, dict):
            raise TypeError("retry entry is not a JSON object")
        metadata = dict(response.get("Metadata", {}))
        if "original-key" in metadata:
            metadata["original-key"] = unquote(metadata["original-key"])
        return document, metadata

    def delete(self, object_keys: list[str]) -> list[str]:
        """Delete entries (batches of 1000); returns the keys that could not be deleted."""
        failed: list[str] = []
        for start in range(0, len(object_keys), 1000):
            chunk = object_keys[start : start + 1000]
            try:
                response = self.s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("retry store delete failed: %s", exc)
                failed.extend(chunk)
                continue
            failed.extend(e.get("Key", "") for e in response.get("Errors", []))
        return failed

    def replay(
        self,
        indexer: Indexer,
        date: str | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        *,
        chunk_size: int = 50,
        progress: ProgressHook | None = None,
    ) -> ReplayReport:
        """Re-index entries; delete each entry only once its document is indexed.

        Raises TransientError when OpenSearch is not reachable at the start.
        ``progress(done, total)`` is called once with 0 when the entries are listed
        and after each chunk (:mod:`filesearch_worker.progress`).
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 (or None for every entry), got {limit}")
        report = ReplayReport(dry_run=dry_run)
        entries = []
        for entry in self.iter_entries(date):
            entries.append(entry)
            if limit is not None and len(entries) >= limit:
                break
        report.found = len(entries)
        if dry_run or not entries:
            if progress:
                progress(len(entries), len(entries))
            return report
        if not indexer.ping():
            raise TransientError(
                "OpenSearch is not reachable; nothing replayed", "opensearch-unavailable"
            )
        if progress:
            progress(0, len(entries))
        done = 0
        for start in range(0, len(entries), chunk_size):
            chunk = entries[start : start + chunk_size]
            self._replay_chunk(indexer, chunk, report)
            done += len(chunk)
            if progress:
                progress(done, len(entries))
        return report

    def _replay_chunk(
        self, indexer: Indexer, chunk: list[RetryEntry], report: ReplayReport
    ) -> None:
        docs: dict[str, Document] = {}
        owners: dict[str, list[str]] = {}
        removals: list[tuple[str, str]] = []
        for entry in chunk:
            try:
                document, metadata = self.load(entry)
            except Exception as exc:  # noqa: BLE001 - reported, entry left in place
                report.unreadable += 1
                report.errors.append(f"{entry.object_key}: unreadable: {exc}")
                continue
            key = document.get("file_key") or metadata.get("original-key")
            if not isinstance(key, str) or not key:
                report.unreadable += 1
                report.errors.append(f"{entry.object_key}: unreadable: no file_key")
                continue
            if is_tombstone(document):
                removals.append((key, entry.object_key))
                continue
            doc_id = document_id(key)
            docs[doc_id] = document  # a later entry for the same key wins (dates ascend)
            owners.setdefault(doc_id, []).append(entry.object_key)
        done: list[str] = []
        for key, object_key in removals:
            try:
                indexer.delete(document_id(key))
            except TransientError as exc:
                report.failed += 1
                report.errors.append(f"{object_key}: {exc}")
                continue
            report.deleted_from_index += 1
            done.append(object_key)
        for doc_id, error in indexer.bulk_index(docs).items():
            if error is None:
                report.indexed += 1
                done.extend(owners[doc_id])
            else:
                report.failed += len(owners[doc_id])
                report.errors.append(f"{doc_id}: {error}")
        undeleted = self.delete(done)
        for object_key in undeleted:
            report.errors.append(f"{object_key}: indexed but the retry entry could not be deleted")


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\n", " ")
