"""Processor.process_batch on moto S3 + osmem-server: outcomes, never settlement."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from worker_unit_helpers import message, s3_event

from filesearch_worker.config import Settings
from filesearch_worker.index import Indexer
from filesearch_worker.processor import Processed, Processor
from filesearch_worker.retry_store import RetryStore


@pytest.fixture
def build(
    s3: Any, bucket: str, osmem_url: str, make_settings: Callable[..., Settings]
) -> Callable[..., Processor]:
    def make(
        endpoint: str | None = None, store_bucket: str | None = None, **overrides: Any
    ) -> Processor:
        settings = make_settings(
            s3_bucket=store_bucket or bucket,
            opensearch_endpoint=endpoint or osmem_url,
            opensearch_index="files",
            concurrency=2,
            **overrides,
        )
        return Processor(
            settings,
            s3,
            Indexer.from_settings(settings),
            RetryStore(s3, store_bucket or bucket),
        )

    return make


def batch(*bodies: str) -> list[dict[str, Any]]:
    return [message(b, f"m{i}", f"r{i}") for i, b in enumerate(bodies)]


def by_id(outcomes: list[Processed]) -> dict[str, Processed]:
    return {o.message_id: o for o in outcomes}


def test_indexes_a_batch_in_one_go(build: Callable[..., Processor], s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a b.txt", Body=b"alpha")
    s3.put_object(Bucket=bucket, Key="日本/文書.txt", Body="ベータ".encode("cp932"))
    s3.put_object(Bucket=bucket, Key="empty.txt", Body=b"")
    processor = build()
    outcomes = processor.process_batch(
        batch(
            s3_event(bucket, "a b.txt"),
            s3_event(bucket, "日本/文書.txt"),
            s3_event(bucket, "empty.txt"),
            json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}),
        )
    )
    assert [(o.outcome, o.reason, o.action) for o in outcomes] == [
        ("indexed", "", "delete"),
        ("indexed", "", "delete"),
        ("indexed", "empty-file", "delete"),
        ("acknowledged", "test-event", "delete"),
    ]
    assert outcomes[1].keys == ("日本/文書.txt",)
    doc = processor.indexer.get("日本/文書.txt")
    assert doc is not None
    assert doc["content"] == "ベータ"
    assert doc["extraction_method"] == "text/cp932"
    assert doc["file_size"] == len("ベータ".encode("cp932"))


def test_permanent_failures_are_classified(build: Callable[..., Processor], bucket: str) -> None:
    outcomes = by_id(
        build(test_raise_on_key="boom").process_batch(
            batch(
                "not json",
                s3_event(bucket, "missing.txt"),
                s3_event("no-such-bucket", "x.txt"),
                s3_event(bucket, "boom.txt"),
            )
        )
    )
    assert {k: (o.outcome, o.reason) for k, o in outcomes.items()} == {
        "m0": ("permanent", "invalid-json"),
        "m1": ("permanent", "object-not-found"),
        "m2": ("permanent", "bucket-not-found"),
        "m3": ("permanent", "unexpected-error"),
    }
    assert all(o.action == "dead_letter" for o in outcomes.values())
    assert "WORKER_TEST_RAISE_ON_KEY" in outcomes["m3"].detail


def test_opensearch_down_goes_to_the_retry_store(
    build: Callable[..., Processor], s3: Any, bucket: str, closed_port: int
) -> None:
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"text")
    s3.put_object(Bucket=bucket, Key="doc2.txt", Body=b"text2")
    processor = build(endpoint=f"http://127.0.0.1:{closed_port}", cb_failure_threshold=1)
    outcomes = processor.process_batch(
        batch(s3_event(bucket, "doc.txt"), s3_event(bucket, "doc2.txt"))
    )
    assert [(o.outcome, o.reason, o.action) for o in outcomes] == [
        ("retry_stored", "opensearch-unavailable", "delete"),
        ("retry_stored", "opensearch-unavailable", "delete"),
    ]
    stored = [e.object_key.split("/", 2)[2] for e in processor.retry_store.iter_entries()]
    assert sorted(stored) == ["doc.txt.json", "doc2.txt.json"]
    # the removal of a document while OpenSearch is down is kept as a tombstone
    (removed,) = processor.process_batch(batch(s3_event(bucket, "doc.txt", "ObjectRemoved:Delete")))
    assert (removed.outcome, removed.reason) == ("retry_stored", "circuit-open")


def test_retry_store_failure_is_transient(
    build: Callable[..., Processor], s3: Any, bucket: str, closed_port: int
) -> None:
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"text")
    processor = build(endpoint=f"http://127.0.0.1:{closed_port}", store_bucket="missing-bucket")
    (outcome,) = processor.process_batch(batch(s3_event(bucket, "doc.txt")))
    assert (outcome.outcome, outcome.reason, outcome.action) == (
        "transient",
        "retry-store-failed",
        "release",
    )


def test_removal_and_size_cap(build: Callable[..., Processor], s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="big.txt", Body=b"x" * 2048)
    processor = build(max_file_bytes=1024)
    (big,) = processor.process_batch(batch(s3_event(bucket, "big.txt")))
    assert (big.outcome, big.reason) == ("indexed", "file-too-large")
    doc = processor.indexer.get("big.txt")
    assert doc is not None and doc["metadata_only"] and doc["content"] == ""
    (removed,) = processor.process_batch(batch(s3_event(bucket, "big.txt", "ObjectRemoved:Delete")))
    assert (removed.outcome, removed.reason) == ("removed", "removed")
    assert processor.indexer.get("big.txt") is None


def test_metadata_only_mode_skips_the_download(
    build: Callable[..., Processor], bucket: str
) -> None:
    processor = build(mode="metadata-only")
    (outcome,) = processor.process_batch(batch(s3_event(bucket, "never-uploaded.pdf")))
    assert outcome.outcome == "indexed"
    doc = processor.indexer.get("never-uploaded.pdf")
    assert doc is not None and doc["extraction_method"] == "skipped"


def test_receive_count_and_body_are_kept(build: Callable[..., Processor]) -> None:
    (outcome,) = build().process_batch([message("oops", "m9", "r9", count=3)])
    assert (outcome.receive_count, outcome.body, outcome.receipt_handle) == (3, "oops", "r9")
