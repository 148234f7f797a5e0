"""The incident report's DLQ: 8,158 messages, a mix of already indexed, recoverable and poison.

Shared by bench/dlq_recovery.py and tests/integration/modules (imported by path).
Seeding uses send_message_batch from several threads, S3 puts and one bulk
index request per 500 documents.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from filesearch_worker.events import s3_event_body

SEED_TOTAL = 8158  # the messages the incident report found in the DLQ


@dataclass
class Scenario:
    """What a seeded DLQ holds, by category (keys are S3 keys = document ids)."""

    bucket: str
    indexed: list[str] = field(default_factory=list)  # in the index already: dedupe
    recoverable: list[str] = field(default_factory=list)  # object in S3, not indexed
    missing: list[str] = field(default_factory=list)  # object gone: permanent failure
    garbage: list[str] = field(default_factory=list)  # bodies that are no S3 event at all

    @property
    def total(self) -> int:
        return len(self.indexed) + len(self.recoverable) + len(self.missing) + len(self.garbage)

    @property
    def poison(self) -> int:
        return len(self.missing) + len(self.garbage)

    def bodies(self) -> list[str]:
        keys = self.indexed + self.recoverable + self.missing
        return [s3_event(self.bucket, k) for k in keys] + list(self.garbage)


def s3_event(bucket: str, key: str) -> str:
    """An S3 ObjectCreated notification body for one object (``events.s3_event_body``)."""
    return s3_event_body(bucket, key, size=32, event_time="2025-12-15T01:00:00.000Z")


def build(
    bucket: str,
    total: int = SEED_TOTAL,
    indexed_share: float = 0.37,
    poison_share: float = 0.14,
) -> Scenario:
    """Deterministic mix: ~37 % indexed, ~14 % poison (half missing objects), rest recoverable."""
    n_indexed = int(total * indexed_share)
    n_poison = int(total * poison_share)
    n_missing = n_poison // 2
    n_garbage = n_poison - n_missing
    n_recoverable = total - n_indexed - n_poison
    garbage_kinds = [
        "not json {",
        json.dumps({"hello": "no Records here"}),
        json.dumps({"Records": []}),
        json.dumps({"Records": [{"eventSource": "aws:sns"}]}),
        "",
    ]
    return Scenario(
        bucket=bucket,
        indexed=[f"indexed/{i:05d} 報告書.txt" for i in range(n_indexed)],
        recoverable=[f"recoverable/{i:05d}+file.txt" for i in range(n_recoverable)],
        missing=[f"missing/{i:05d}.txt" for i in range(n_missing)],
        garbage=[garbage_kinds[i % len(garbage_kinds)] or f"   {i}" for i in range(n_garbage)],
    )


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed(
    scenario: Scenario,
    *,
    sqs: Any,
    s3: Any,
    opensearch: Any,
    dlq_url: str,
    index: str,
    threads: int = 8,
    objects: bool = True,
) -> None:
    """Objects to S3, documents to the index, messages to the DLQ (in random-ish order).

    ``objects=False`` skips the S3 objects (only strategy reindex reads them).
    """

    def put(key: str) -> None:
        s3.put_object(Bucket=scenario.bucket, Key=key, Body=f"contents of {key}\n".encode())

    if objects:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, scenario.recoverable))
    for chunk in _chunks(scenario.indexed, 500):
        body: list[dict[str, Any]] = []
        for key in chunk:
            body.append({"index": {"_index": index, "_id": key}})
            body.append({"file_key": key, "content": "indexed before the incident"})
        response = opensearch.bulk(body=body, refresh=True)
        if response.get("errors"):
            raise RuntimeError(f"seeding the index failed: {str(response)[:500]}")
    bodies = scenario.bodies()
    # interleave categories so every batch is a mix
    bodies = bodies[::3] + bodies[1::3] + bodies[2::3]

    def send(chunk: list[str]) -> None:
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
        response = sqs.send_message_batch(QueueUrl=dlq_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"seeding the DLQ failed: {response['Failed'][:2]}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, list(_chunks(bodies, 10))))


def depth(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) of a queue."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    """Poll ``condition`` until true; RuntimeError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
