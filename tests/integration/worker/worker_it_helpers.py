"""Helpers for the worker integration tests (imported by name; this directory is on sys.path)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filesearch_worker import events

REPO = Path(__file__).resolve().parents[3]
WORKER = REPO / ".venv" / "bin" / "filesearch-worker"


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def s3_event_body(bucket: str, key: str, name: str = "ObjectCreated:Put") -> str:
    """``events.s3_event_body`` with a fixed event time (key URL-encoded, spaces as +)."""
    return events.s3_event_body(bucket, key, event_name=name, event_time="2026-01-01T00:00:00.000Z")


def send(sqs: Any, queue_url: str, body: str) -> str:
    """Send one message; returns its MessageId."""
    return str(sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"])


def send_many(sqs: Any, queue_url: str, bodies: list[str]) -> list[str]:
    """Send in batches of 10; returns the MessageIds in order."""
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)],
        )
        assert not response.get("Failed"), response.get("Failed")
        by_id = {int(s["Id"]): s["MessageId"] for s in response["Successful"]}
        ids.extend(by_id[i] for i in range(len(chunk)))
    return ids


def queue_counts(sqs: Any, queue_url: str) -> tuple[int, int]:
    """(visible, in flight)."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def drain_dlq(sqs: Any, dlq_url: str) -> list[dict[str, Any]]:
    """Receive everything in a DLQ (left in place, invisible for 60 s)."""
    got: dict[str, dict[str, Any]] = {}
    empty = 0
    while empty < 2:
        msgs = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        empty = empty + 1 if not msgs else 0
        for m in msgs:
            got[m["MessageId"]] = m
    return list(got.values())


def retry_keys(s3: Any, bucket: str) -> list[str]:
    """Object keys under retry-index/."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="retry-index/"):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``filesearch-worker ARGS`` to completion."""
    return subprocess.run(
        [str(WORKER), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def index_count(opensearch: Any, index: str) -> int:
    opensearch.indices.refresh(index=index)
    return int(opensearch.count(index=index)["count"])
