"""Unit tests of library/sqs_dlq_recover.py and its engine filesearch_worker.dlq (moto in-process).

OpenSearch is replaced by an in-memory stand-in with the Indexer methods the
engine and the worker's processor call (existing_ids, bulk_index, delete).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import boto3
import pytest

from filesearch_worker.errors import TransientError
from filesearch_worker.events import s3_event_body

from .conftest import AnsibleFailJson, Recorder, RunModule, load_module

MOD = load_module("sqs_dlq_recover")
BUCKET = "t-files"


class FakeIndexer:
    """In-memory index with the Indexer interface used by recovery."""

    skip = False

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.down = False

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        if self.down:
            raise TransientError("connection refused", "opensearch-unavailable")
        return {i for i in ids if i in self.docs}

    def bulk_index(self, docs: Mapping[str, Any]) -> dict[str, str | None]:
        if self.down:
            return dict.fromkeys(docs, "opensearch-unavailable: down")
        self.docs.update(docs)
        return dict.fromkeys(docs, None)

    def delete(self, doc_id: str) -> bool:
        return self.docs.pop(doc_id, None) is not None

    def ping(self) -> bool:
        return not self.down


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> FakeIndexer:
    fake = FakeIndexer()

    from filesearch_worker.index import Indexer

    def from_settings(cls: type, settings: Any, **_kwargs: Any) -> FakeIndexer:
        return fake if settings.opensearch_endpoint else Indexer(None, "i", skip=True)

    monkeypatch.setattr(Indexer, "from_settings", classmethod(from_settings))
    return fake


def event(key: str, name: str = "ObjectCreated:Put") -> str:
    return s3_event_body(BUCKET, key, size=5, event_name=name)


@pytest.fixture
def world(aws: None, index: FakeIndexer) -> dict[str, Any]:
    """A source queue, its DLQ with a mix of messages, a bucket with the files."""
    sqs = boto3.client("sqs")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    dlq = sqs.create_queue(QueueName="t-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    source = sqs.create_queue(
        QueueName="t-src",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})
        },
    )["QueueUrl"]
    for i in range(3):  # already indexed
        index.docs[f"done/{i}.txt"] = {"file_key": f"done/{i}.txt"}
        sqs.send_message(QueueUrl=dlq, MessageBody=event(f"done/{i}.txt"))
    for i in range(4):  # recoverable: the file is there
        key = f"todo/ファイル {i}.txt"
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"hello {i}".encode())
        sqs.send_message(QueueUrl=dlq, MessageBody=event(key))
    sqs.send_message(  # poison, with a binary attribute
        QueueUrl=dlq,
        MessageBody="not json at all",
        MessageAttributes={"blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}},
    )
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"hello": "world"}))  # poison
    sqs.send_message(QueueUrl=dlq, MessageBody=event("gone/missing.txt"))  # object deleted
    s3.put_object(Bucket=BUCKET, Key="tired.txt", Body=b"x")
    sqs.send_message(  # recovered three times already
        QueueUrl=dlq,
        MessageBody=event("tired.txt"),
        MessageAttributes={"dlq-recoveries": {"DataType": "Number", "StringValue": "3"}},
    )
    return {"sqs": sqs, "s3": s3, "dlq": dlq, "source": source, "total": 11}


def args(**extra: Any) -> dict[str, Any]:
    base = {
        "dlq": "t-dlq",
        "bucket": BUCKET,
        "opensearch_endpoint": "http://127.0.0.1:9",
        "threads": 1,  # moto's SQS is not thread-safe (duplicate deliveries across threads)
        "wait_time_seconds": 0,
    }
    base.update(extra)
    return base


def depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def archived(s3: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix="dlq-archive/").get("Contents", []):
        out[obj["Key"]] = json.loads(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
    return out


def test_reindex_settles_every_message_then_is_idempotent(
    run_module: RunModule, world: dict[str, Any], index: FakeIndexer
) -> None:
    result = run_module(MOD, args())
    assert result["changed"] is True
    counts = result["counts"]
    assert counts == {
        "deduplicated": 3,
        "redriven": 0,
        "reindexed": 4,
        "retry_stored": 0,
        "archived": 4,
        "released": 0,
    }
    assert result["examined"] == world["total"] == sum(counts.values())
    assert depth(world["sqs"], world["dlq"]) == 0
    assert result["remaining"] == 0
    assert {f"todo/ファイル {i}.txt" for i in range(4)} <= set(index.docs)
    assert index.docs["todo/ファイル 0.txt"]["content"] == "hello 0"
    records = archived(world["s3"])
    assert len(records) == 4
    reasons = sorted(r["reason"].split(":")[0] for r in records.values())
    assert reasons == [
        "invalid-json",
        "missing-records",
        "object-not-found",
        "recovered 3 times and still failing",
    ]
    for key, record in records.items():
        assert key == f"dlq-archive/{record['archived_at'][:10]}/{record['message_id']}.json"
        assert record["body"] and "attributes" in record
    blob = next(r for r in records.values() if r["body"] == "not json at all")
    assert blob["message_attributes"]["blob"]["BinaryValue"] == "AP8="  # base64 of 00 ff
    assert result["samples"]["archived"]
    again = run_module(MOD, args())
    assert again["changed"] is False
    assert again["examined"] == 0


def test_check_mode_counts_and_changes_nothing(
    run_module: RunModule, world: dict[str, Any], index: FakeIndexer
) -> None:
    before = dict(index.docs)
    result = run_module(MOD, args(), check_mode=True)
    assert result["changed"] is True and result["dry_run"] is True
    assert result["counts"]["deduplicated"] == 3
    assert result["counts"]["archived"] == 3  # two poison + one over max_attempts
    assert result["counts"]["reindexed"] == 5  # the missing object is found only when processing
    assert result["examined"] == world["total"]
    # nothing written, nothing deleted, and everything visible again at once
    attrs = world["sqs"].get_queue_attributes(
        QueueUrl=world["dlq"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attrs == {
        "ApproximateNumberOfMessages": str(world["total"]),
        "ApproximateNumberOfMessagesNotVisible": "0",
    }
    assert archived(world["s3"]) == {}
    assert index.docs == before


def test_redrive_sends_back_with_counter(run_module: RunModule, world: dict[str, Any]) -> None:
    result = run_module(MOD, args(strategy="redrive"))
    assert result["source_queue_url"] == world["source"]  # found from the RedrivePolicy
    assert result["counts"]["redriven"] == 5
    assert result["counts"]["deduplicated"] == 3
    assert result["counts"]["archived"] == 3
    assert depth(world["sqs"], world["dlq"]) == 0
    got = world["sqs"].receive_message(
        QueueUrl=world["source"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert len(got) == 5
    assert {m["MessageAttributes"]["dlq-recoveries"]["StringValue"] for m in got} == {"1"}


def test_archive_only(run_module: RunModule, world: dict[str, Any]) -> None:
    result = run_module(MOD, args(strategy="archive-only"))
    assert result["counts"]["archived"] == 8, result
    assert result["counts"]["deduplicated"] == 3
    assert len(archived(world["s3"])) == 8


def test_limits_max_batches_and_max_messages(run_module: RunModule, world: dict[str, Any]) -> None:
    one = run_module(MOD, args(batch_size=2, max_batches=1, threads=1))
    assert one["examined"] == 2 and one["batches"] == 1
    few = run_module(MOD, args(max_messages=5, batch_size=2))
    assert few["examined"] == 5
    assert depth(world["sqs"], world["dlq"]) == world["total"] - 7


def test_rate_limit_is_applied(
    run_module: RunModule, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from filesearch_worker.dlq import engine

    acquired: list[tuple[float | None, int]] = []

    class Recording(engine.RateLimiter):
        def acquire(self, n: int) -> None:
            acquired.append((self.rate, n))

    monkeypatch.setattr(engine, "RateLimiter", Recording)
    result = run_module(MOD, args(messages_per_second=20.0, batch_size=5))
    assert result["examined"] == world["total"]
    assert acquired == [(20.0, 5), (20.0, 5), (20.0, 1)]  # every batch asks before it is handled


def test_rate_limiter_spaces_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from filesearch_worker.dlq import engine

    now = [100.0]
    limiter = engine.RateLimiter(10.0, clock=lambda: now[0])
    slept: list[float] = []
    monkeypatch.setattr(engine.time, "sleep", slept.append)
    limiter.acquire(10)  # first batch: at once
    limiter.acquire(10)  # second: one second later
    now[0] += 0.5
    limiter.acquire(5)  # third: at 2.0 s, i.e. 1.5 s from now
    assert slept == [pytest.approx(1.0), pytest.approx(1.5)]


def test_empty_dlq_is_unchanged(run_module: RunModule, aws: None, index: FakeIndexer) -> None:
    boto3.client("sqs").create_queue(QueueName="t-dlq")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    result = run_module(MOD, args())
    assert result["changed"] is False and result["examined"] == 0


def test_archive_write_failure_loses_nothing(run_module: RunModule, world: dict[str, Any]) -> None:
    result = run_module(MOD, args(bucket="no-such-bucket", strategy="archive-only"))
    assert result["counts"]["archived"] == 0
    assert result["counts"]["released"] == 8
    assert result["counts"]["deduplicated"] == 3
    assert any("NoSuchBucket" in e for e in result["errors"])
    # released at once: the 8 are visible again, none deleted
    attrs = world["sqs"].get_queue_attributes(
        QueueUrl=world["dlq"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "8"


def test_opensearch_down_holds_what_needs_it_and_releases(
    run_module: RunModule, world: dict[str, Any], index: FakeIndexer
) -> None:
    # every multi-get fails (and is retried once); this stand-in has no circuit breaker, so
    # the run goes on: what does not need OpenSearch is archived, the rest held and released
    index.down = True
    result = run_module(MOD, args())
    assert result["counts"]["archived"] == 2  # the two unparseable bodies
    assert result["counts"]["released"] == world["total"] - 2
    assert any("OpenSearch multi-get failed twice" in e for e in result["errors"])
    attrs = world["sqs"].get_queue_attributes(
        QueueUrl=world["dlq"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == str(world["total"] - 2)


def test_reindex_with_opensearch_refusing_goes_to_retry_store(
    run_module: RunModule, world: dict[str, Any], index: FakeIndexer
) -> None:
    original = index.bulk_index
    index.bulk_index = lambda docs: dict.fromkeys(docs, "opensearch-unavailable: x")  # type: ignore[method-assign]
    result = run_module(MOD, args())
    index.bulk_index = original  # type: ignore[method-assign]
    assert result["counts"]["retry_stored"] == 4
    stored = world["s3"].list_objects_v2(Bucket=BUCKET, Prefix="retry-index/")["KeyCount"]
    assert stored == 4


def test_native_reports_unsupported_endpoint(run_module: RunModule, world: dict[str, Any]) -> None:
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, {"dlq": "t-dlq", "strategy": "native"})
    assert "does not support SQS message move tasks" in failed.value.result["msg"]
    assert depth(world["sqs"], world["dlq"]) == world["total"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"threads": 0}, "threads must be >= 1"),
        ({"messages_per_second": 0.0}, "messages_per_second must be > 0"),
        ({"wait_time_seconds": 21}, "wait_time_seconds must be <= 20"),
        ({"opensearch_endpoint": None}, "deduplication needs OpenSearch"),
        (
            {"opensearch_endpoint": None, "dedupe": False},
            "strategy reindex needs OpenSearch",
        ),
        ({"bucket": ""}, "strategy reindex needs an S3 bucket"),
    ],
)
def test_bad_options(
    run_module: RunModule, aws: None, index: FakeIndexer, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(AnsibleFailJson, match=message):
        run_module(MOD, args(**extra))


def test_bucket_is_required_unless_native(run_module: RunModule, aws: None) -> None:
    no_bucket = {k: v for k, v in args().items() if k != "bucket"}
    with pytest.raises(AnsibleFailJson, match="missing: bucket"):
        run_module(MOD, no_bucket)


def test_missing_dlq_has_error_code(run_module: RunModule, aws: None, index: FakeIndexer) -> None:
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, args(dlq="nope"))
    assert failed.value.result["error_code"] in (
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
    )


def test_redrive_without_a_single_source_fails(
    run_module: RunModule, aws: None, index: FakeIndexer
) -> None:
    boto3.client("sqs").create_queue(QueueName="t-dlq")
    with pytest.raises(AnsibleFailJson, match="0 queues redrive into this DLQ"):
        run_module(MOD, args(strategy="redrive"))


def test_missing_boto3(run_module: RunModule, without_boto3: None) -> None:
    with pytest.raises(AnsibleFailJson, match=r"required Python library \(botocore and boto3\)"):
        run_module(MOD, args())


def test_missing_worker_package(run_module: RunModule, without_filesearch_worker: None) -> None:
    with pytest.raises(AnsibleFailJson, match=r"filesearch-worker \(pip install files/worker\)"):
        run_module(MOD, args())


def test_sigv4_dedupe_signs_with_the_tasks_keys(
    run_module: RunModule, aws: None, opensearch_recorder: Recorder
) -> None:
    # the environment holds other keys (testing): the task's access_key must sign the multi-get
    sqs = boto3.client("sqs")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    dlq = sqs.create_queue(QueueName="t-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody=event("a/1.txt"))
    result = run_module(
        MOD,
        args(
            strategy="archive-only",
            threads=1,
            opensearch_endpoint=opensearch_recorder.url,
            opensearch_auth="sigv4",
            access_key="AKIDTASKKEY",
            secret_key="task-secret",
        ),
    )
    assert result["counts"]["archived"] == 1
    signed = [r["authorization"] for r in opensearch_recorder.requests if "_mget" in r["path"]]
    assert signed, "the multi-get did not reach OpenSearch"
    assert all(h.startswith("AWS4-HMAC-SHA256 Credential=AKIDTASKKEY/") for h in signed)
