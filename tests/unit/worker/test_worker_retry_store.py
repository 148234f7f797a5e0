"""RetryStore on moto S3, replayed into osmem-server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from filesearch_worker.documents import tombstone
from filesearch_worker.errors import TransientError
from filesearch_worker.index import Indexer
from filesearch_worker.retry_store import RetryStore

DAY1 = datetime(2026, 1, 1, 12, tzinfo=UTC)
DAY2 = datetime(2026, 1, 2, 12, tzinfo=UTC)


@pytest.fixture
def store(s3: Any, bucket: str) -> RetryStore:
    return RetryStore(s3, bucket)


def test_put_layout_and_metadata(store: RetryStore, s3: Any, bucket: str) -> None:
    key = "部署/報告 2026.pdf"
    object_key = store.put(
        {"file_key": key, "content": "本文"}, key, "opensearch-unavailable: x", now=DAY1
    )
    assert object_key == f"retry-index/2026-01-01/{key}.json"
    head = s3.head_object(Bucket=bucket, Key=object_key)
    assert head["Metadata"]["retry-reason"] == "opensearch-unavailable: x"
    assert head["Metadata"]["failed-at"] == "2026-01-01T12:00:00Z"
    assert head["Metadata"]["original-key"] == "%E9%83%A8%E7%BD%B2/%E5%A0%B1%E5%91%8A%202026.pdf"
    body = s3.get_object(Bucket=bucket, Key=object_key)["Body"].read().decode()
    assert json.loads(body)["content"] == "本文"
    (entry,) = store.iter_entries()
    document, metadata = store.load(entry)
    assert metadata["original-key"] == key
    assert document["file_key"] == key


def test_very_long_keys_are_hashed(store: RetryStore) -> None:
    key = "d/" + "x" * 1010
    object_key = store.put({"file_key": key}, key, "r", now=DAY1)
    assert object_key.startswith("retry-index/2026-01-01/_long-keys/")
    assert len(object_key) < 1024


def test_put_failure_is_transient(s3: Any) -> None:
    store = RetryStore(s3, "no-such-bucket")
    with pytest.raises(TransientError) as caught:
        store.put({"file_key": "k"}, "k", "r")
    assert caught.value.error_type == "retry-store-failed"


def test_iter_entries_by_date(store: RetryStore) -> None:
    store.put({"file_key": "a"}, "a", "r", now=DAY1)
    store.put({"file_key": "b"}, "b", "r", now=DAY2)
    assert [e.date for e in store.iter_entries()] == ["2026-01-01", "2026-01-02"]
    assert [e.object_key for e in store.iter_entries("2026-01-02")] == [
        "retry-index/2026-01-02/b.json"
    ]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        list(store.iter_entries("01/02/2026"))


def test_replay_indexes_then_deletes_and_is_idempotent(store: RetryStore, osmem_url: str) -> None:
    indexer = Indexer.for_endpoint(osmem_url, "files")
    indexer.bulk_index({"gone.txt": {"file_key": "gone.txt"}})
    for i in range(7):
        store.put({"file_key": f"k{i}.txt", "content": f"c{i}"}, f"k{i}.txt", "r", now=DAY1)
    store.put({"file_key": "k0.txt", "content": "newer"}, "k0.txt", "r", now=DAY2)
    store.put(tombstone("gone.txt"), "gone.txt", "r", now=DAY2)
    dry = store.replay(indexer, dry_run=True)
    assert (dry.found, dry.indexed) == (9, 0)
    assert len(list(store.iter_entries())) == 9
    seen: list[tuple[int, int]] = []
    report = store.replay(indexer, chunk_size=4, progress=lambda d, t: seen.append((d, t)))
    assert report.ok
    assert (report.found, report.indexed, report.deleted_from_index) == (9, 8, 1)
    assert seen[-1] == (9, 9)
    assert list(store.iter_entries()) == []
    assert indexer.existing_ids([f"k{i}.txt" for i in range(7)]) == {f"k{i}.txt" for i in range(7)}
    assert indexer.existing_ids(["gone.txt"]) == set()
    again = store.replay(indexer)
    assert (again.found, again.indexed, again.failed) == (0, 0, 0)


def test_replay_refuses_when_opensearch_is_down(store: RetryStore, closed_port: int) -> None:
    store.put({"file_key": "a"}, "a", "r", now=DAY1)
    indexer = Indexer.for_endpoint(f"http://127.0.0.1:{closed_port}", "files", timeout=1)
    with pytest.raises(TransientError):
        store.replay(indexer)
    assert len(list(store.iter_entries())) == 1


def test_replay_limit_and_unreadable_entries(
    store: RetryStore, s3: Any, bucket: str, osmem_url: str
) -> None:
    s3.put_object(Bucket=bucket, Key="retry-index/2026-01-01/broken.json", Body=b"{not json")
    store.put({"file_key": "z"}, "z", "r", now=DAY2)
    indexer = Indexer.for_endpoint(osmem_url, "files")
    report = store.replay(indexer, limit=1)
    assert (report.found, report.unreadable, report.indexed) == (1, 1, 0)
    assert not report.ok
    report = store.replay(indexer)
    assert (report.found, report.unreadable, report.indexed) == (2, 1, 1)
    assert [e.object_key for e in store.iter_entries()] == ["retry-index/2026-01-01/broken.json"]


@pytest.mark.parametrize("limit", [0, -1])
def test_replay_refuses_a_limit_below_one(store: RetryStore, osmem_url: str, limit: int) -> None:
    store.put({"file_key": "a"}, "a", "r", now=DAY1)
    indexer = Indexer.for_endpoint(osmem_url, "files")
    with pytest.raises(ValueError, match="limit must be at least 1"):
        store.replay(indexer, limit=limit)
    assert len(list(store.iter_entries())) == 1  # nothing replayed, nothing deleted
