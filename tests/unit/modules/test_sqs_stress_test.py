"""Unit tests of library/sqs_stress_test.py (moto in-process, a stand-in index)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from filesearch_worker.events import parse_message, s3_event_body

from .conftest import AnsibleFailJson, RunModule, load_module

MOD = load_module("sqs_stress_test")
BASE = {
    "run_id": "r1",
    "bucket": "bucket-b",
    "opensearch_endpoint": "http://127.0.0.1:9",
    "opensearch_index": "i",
}


class FakeIndexer:
    """Stands in for filesearch_worker.index.Indexer: a set of ids that 'exist'."""

    def __init__(self, present: Iterable[str]) -> None:
        self.present = set(present)
        self.deleted: list[str] = []

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        return self.present & set(ids)

    def delete(self, doc_id: str) -> bool:
        self.deleted.append(doc_id)
        self.present.discard(doc_id)
        return True


@pytest.fixture
def setup(aws: None) -> dict[str, Any]:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="bucket-b")
    sqs = boto3.client("sqs")
    return {
        "s3": s3,
        "sqs": sqs,
        "queue": sqs.create_queue(QueueName="q")["QueueUrl"],
        "dlq": sqs.create_queue(QueueName="q-dlq")["QueueUrl"],
    }


def test_synthetic_file_has_the_size_and_names_its_key() -> None:
    body = MOD.synthetic_text("stress-test/r1/file-00001.txt", 300)
    assert len(body) == 300
    assert body.startswith(b"stress test file stress-test/r1/file-00001.txt\n")


def test_run_counts_indexed_retry_stored_and_unaccounted(
    setup: dict[str, Any], run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = MOD.run_keys("stress-test/", "r1", 5)
    fake = FakeIndexer(keys[:3])
    monkeypatch.setattr(MOD, "make_indexer", lambda _p: fake)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    setup["s3"].put_object(Bucket="bucket-b", Key=f"retry-index/{day}/{keys[3]}.json", Body=b"{}")
    result = run_module(MOD, {**BASE, "queue": "q", "count": 5, "timeout": 2, "size_bytes": 64})
    assert result["sent"] == 5 and result["send_failed"] == 0
    assert (result["indexed"], result["retry_stored"], result["unaccounted"]) == (3, 1, 1)
    assert result["errors"] == 2 and result["error_rate_percent"] == 40.0
    assert result["timed_out"] is True
    assert result["failed_keys"] == keys[3:]
    assert any(line.startswith("error rate") and "40.00 %" in line for line in result["table"])
    listed = setup["s3"].list_objects_v2(Bucket="bucket-b", Prefix="stress-test/r1/")["Contents"]
    assert sorted(o["Key"] for o in listed) == keys
    bodies = []
    while True:
        got = setup["sqs"].receive_message(QueueUrl=setup["queue"], MaxNumberOfMessages=10)
        if not got.get("Messages"):
            break
        bodies += [m["Body"] for m in got["Messages"]]
        for m in got["Messages"]:
            setup["sqs"].delete_message(QueueUrl=setup["queue"], ReceiptHandle=m["ReceiptHandle"])
    events = [e for body in bodies for e in parse_message(body)]
    assert sorted(e.key for e in events) == keys
    assert {(e.bucket, e.kind, e.size) for e in events} == {("bucket-b", "created", 64)}


def test_cleanup_removes_only_the_runs_things(
    setup: dict[str, Any], run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, sqs = setup["s3"], setup["sqs"]
    keys = MOD.run_keys("stress-test/", "r1", 3)
    for key in [*keys, "stress-test/r2/file-00000.txt", "other/keep.txt"]:
        s3.put_object(Bucket="bucket-b", Key=key, Body=b"x")
    s3.put_object(Bucket="bucket-b", Key=f"retry-index/2026-11-22/{keys[0]}.json", Body=b"{}")
    s3.put_object(Bucket="bucket-b", Key="retry-index/2026-11-22/other/keep.txt.json", Body=b"{}")
    sqs.send_message(QueueUrl=setup["dlq"], MessageBody=s3_event_body("bucket-b", keys[1]))
    sqs.send_message(QueueUrl=setup["dlq"], MessageBody=s3_event_body("bucket-b", "other/x"))
    fake = FakeIndexer([keys[0], keys[2], "other/keep.txt"])
    monkeypatch.setattr(MOD, "make_indexer", lambda _p: fake)
    result = run_module(MOD, {**BASE, "state": "cleanup", "dlq": "q-dlq", "scan_batches": 5})
    assert result["changed"] is True
    assert result["removed"] == {
        "objects": 3,
        "retry_entries": 1,
        "documents": 2,
        "dlq_messages": 1,
        "queue_messages": 0,
    }
    left = {o["Key"] for o in s3.list_objects_v2(Bucket="bucket-b")["Contents"]}
    assert left == {
        "stress-test/r2/file-00000.txt",
        "other/keep.txt",
        "retry-index/2026-11-22/other/keep.txt.json",
    }
    assert fake.present == {"other/keep.txt"}
    attrs = sqs.get_queue_attributes(QueueUrl=setup["dlq"], AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"  # the foreign message, visible again
    again = run_module(MOD, {**BASE, "state": "cleanup", "dlq": "q-dlq", "scan_batches": 5})
    assert again["changed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"count": 0}, "count must be 1-10000"),
        ({"count": 10001}, "count must be 1-10000"),
        ({"timeout": 0}, "timeout must be 1-3600"),
        ({"run_id": "a/b"}, "run_id must be"),
        ({"prefix": "retry-index/x/"}, "prefix must end with '/' and lie outside"),
        ({"prefix": "no-slash"}, "prefix must end with '/'"),
        ({"size_bytes": 1}, "size_bytes must be 16-1048576"),
    ],
)
def test_bad_arguments_are_refused(
    setup: dict[str, Any], run_module: RunModule, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(AnsibleFailJson, match=message):
        run_module(MOD, {**BASE, "queue": "q", **args})
    assert "Contents" not in setup["s3"].list_objects_v2(Bucket="bucket-b")


def test_check_mode_sends_nothing(setup: dict[str, Any], run_module: RunModule) -> None:
    result = run_module(MOD, {**BASE, "queue": "q", "count": 3}, check_mode=True)
    assert result["changed"] is True
    assert "Contents" not in setup["s3"].list_objects_v2(Bucket="bucket-b")
