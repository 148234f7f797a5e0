"""Helpers shared by the worker unit tests (imported by name; this directory is on sys.path)."""

from __future__ import annotations

from typing import Any

from filesearch_worker import events


def s3_event(bucket: str, key: str, name: str = "ObjectCreated:Put", size: int = 1) -> str:
    """``events.s3_event_body`` with a fixed event time, key encoded as S3 does."""
    return events.s3_event_body(
        bucket, key, size=size, event_name=name, event_time="2026-01-01T00:00:00.000Z"
    )


def message(
    body: str, message_id: str = "m-1", receipt: str = "r-1", count: int = 1
) -> dict[str, Any]:
    """A received SQS message as boto3 returns it."""
    return {
        "MessageId": message_id,
        "ReceiptHandle": receipt,
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": str(count)},
    }
