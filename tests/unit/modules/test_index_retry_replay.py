"""Unit tests of library/index_retry_replay.py (moto S3, in-memory index stand-in)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from filesearch_worker.documents import tombstone
from filesearch_worker.retry_store import RetryStore

from .conftest import AnsibleFailJson, Recorder, RunModule, load_module
from .test_sqs_dlq_recover import FakeIndexer

MOD = load_module("index_retry_replay")
BUCKET = "t-retry"
DAY1 = datetime(2026, 11, 20, tzinfo=UTC)
DAY2 = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> FakeIndexer:
    fake = FakeIndexer()

    class _Indexer:
        @classmethod
        def for_endpoint(cls, *args: Any, **kwargs: Any) -> FakeIndexer:
            return fake

    monkeypatch.setattr(MOD, "Indexer", _Indexer)
    return fake


@pytest.fixture
def store(aws: None, index: FakeIndexer) -> RetryStore:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    retry = RetryStore(s3, BUCKET)
    for i in range(3):
        retry.put({"file_key": f"a/{i}.txt", "content": str(i)}, f"a/{i}.txt", "down", now=DAY1)
    retry.put({"file_key": "b/new.txt", "content": "new"}, "b/new.txt", "down", now=DAY2)
    index.docs["b/old.txt"] = {"file_key": "b/old.txt"}
    retry.put(tombstone("b/old.txt"), "b/old.txt", "down", now=DAY2)
    return retry


def args(**extra: Any) -> dict[str, Any]:
    return {"bucket": BUCKET, "opensearch_endpoint": "http://127.0.0.1:9", **extra}


def left(retry: RetryStore) -> int:
    return len(list(retry.iter_entries()))


def test_replays_everything_then_is_idempotent(
    run_module: RunModule, store: RetryStore, index: FakeIndexer
) -> None:
    result = run_module(MOD, args())
    assert result["changed"] is True
    assert (result["found"], result["indexed"], result["deleted_from_index"]) == (5, 4, 1)
    assert result["not_replayed"] == 0 and result["unreadable"] == 0
    assert "failed" not in result
    assert index.docs["a/2.txt"]["content"] == "2"
    assert "b/old.txt" not in index.docs
    assert left(store) == 0
    again = run_module(MOD, args())
    assert again["changed"] is False and again["found"] == 0


def test_date_and_limit(run_module: RunModule, store: RetryStore) -> None:
    result = run_module(MOD, args(date="2026-11-20", limit=2))
    assert (result["found"], result["indexed"]) == (2, 2)
    assert left(store) == 3


def test_check_mode_counts_only(
    run_module: RunModule, store: RetryStore, index: FakeIndexer
) -> None:
    result = run_module(MOD, args(), check_mode=True)
    assert result["changed"] is True and result["dry_run"] is True
    assert result["found"] == 5 and result["indexed"] == 0
    assert left(store) == 5
    assert "a/0.txt" not in index.docs


def test_opensearch_down_fails_and_keeps_entries(
    run_module: RunModule, store: RetryStore, index: FakeIndexer
) -> None:
    index.down = True
    with pytest.raises(AnsibleFailJson, match="Replay not started") as failed:
        run_module(MOD, args())
    assert failed.value.result["error_code"] == "opensearch-unavailable"
    assert left(store) == 5


def test_refused_documents_fail_the_task_and_stay(
    run_module: RunModule, store: RetryStore, index: FakeIndexer
) -> None:
    index.bulk_index = lambda docs: dict.fromkeys(docs, "index-rejected: 400")  # type: ignore[method-assign]
    with pytest.raises(AnsibleFailJson, match="4 of 5 retry entries not replayed") as failed:
        run_module(MOD, args())
    result = failed.value.result
    assert result["not_replayed"] == 4 and result["deleted_from_index"] == 1
    assert result["changed"] is True
    assert left(store) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"date": "20-11-2026"}, "date must be YYYY-MM-DD"),
        ({"limit": 0}, "limit must be >= 1"),
        ({"opensearch_username": "u"}, "parameters are required together"),
    ],
)
def test_bad_options(
    run_module: RunModule, aws: None, index: FakeIndexer, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(AnsibleFailJson, match=message):
        run_module(MOD, args(**extra))


def test_missing_bucket_has_error_code(
    run_module: RunModule, aws: None, index: FakeIndexer
) -> None:
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, args(bucket="no-such-bucket"))
    assert failed.value.result["error_code"] == "NoSuchBucket"


def test_missing_worker_package(run_module: RunModule, without_filesearch_worker: None) -> None:
    with pytest.raises(AnsibleFailJson, match=r"filesearch-worker \(pip install files/worker\)"):
        run_module(MOD, args())


def test_missing_boto3(run_module: RunModule, without_boto3: None) -> None:
    with pytest.raises(AnsibleFailJson, match=r"required Python library \(botocore and boto3\)"):
        run_module(MOD, args())


def test_sigv4_signs_with_the_tasks_keys(
    run_module: RunModule, aws: None, opensearch_recorder: Recorder
) -> None:
    # the environment holds other keys (testing): the task's access_key must sign
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    RetryStore(s3, BUCKET).put({"file_key": "a.txt"}, "a.txt", "down", now=DAY1)
    task = args(
        opensearch_endpoint=opensearch_recorder.url,
        opensearch_auth="sigv4",
        aws_access_key_id="AKIDTASKKEY",
        aws_secret_access_key="task-secret",
    )
    with pytest.raises(AnsibleFailJson, match="not replayed"):  # the stand-in indexes nothing
        run_module(MOD, task)
    signed = opensearch_recorder.authorizations()
    assert signed, "OpenSearch was not called"
    assert all(h.startswith("AWS4-HMAC-SHA256 Credential=AKIDTASKKEY/") for h in signed)
    assert all("/us-east-1/es/aws4_request" in h for h in signed)
