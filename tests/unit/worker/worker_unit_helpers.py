"""Helpers shared by the worker unit tests (imported by name; this directory is on sys.path)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus


def s3_event(bucket: str, key: str, name: str = "ObjectCreated:Put", size: int = 1) -> str:
    """An S3 event notification body for one object, key encoded as S3 does."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "eventName": name,
                    "eventTime": "2026-01-01T00:00:00.000Z",
                    "s3": {
                        "bucket": {"name": bucket},
                        "object": {"key": quote_plus(key, safe="/"), "size": size},
                    },
                }
            ]
        }
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
