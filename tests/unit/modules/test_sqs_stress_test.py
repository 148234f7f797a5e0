"""Unit tests of library/sqs_stress_test.py (moto in-process, a stand-in index)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from filesearch_worker.events import parse_message, s3_event_body

from .conftest import AnsibleFailJson, Recorder, RunModule, load_module

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
    monkeypatch.setattr(MOD, "make_indexer", lambda *_a: fake)
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
    monkeypatch.setattr(MOD, "make_indexer", lambda *_a: fake)
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
    assert queue_counts(setup["sqs"], setup["queue"]) == (0, 0)


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) of a queue."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attrs["ApproximateNumberOfMessages"]),
        int(attrs["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_cleanup_in_check_mode_reads_only(
    setup: dict[str, Any], run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, sqs = setup["s3"], setup["sqs"]
    keys = MOD.run_keys("stress-test/", "r1", 3)
    for key in keys:
        s3.put_object(Bucket="bucket-b", Key=key, Body=b"x")
    s3.put_object(Bucket="bucket-b", Key=f"retry-index/2026-11-22/{keys[0]}.json", Body=b"{}")
    sqs.send_message(QueueUrl=setup["dlq"], MessageBody=s3_event_body("bucket-b", keys[1]))
    sqs.send_message(QueueUrl=setup["queue"], MessageBody=s3_event_body("bucket-b", keys[2]))
    fake = FakeIndexer([keys[0], keys[2]])
    monkeypatch.setattr(MOD, "make_indexer", lambda *_a: fake)
    cleanup = {**BASE, "state": "cleanup", "queue": "q", "dlq": "q-dlq", "scan_queue": True}
    result = run_module(MOD, cleanup, check_mode=True)
    assert result["changed"] is True
    assert result["would_remove"] == {"objects": 3, "retry_entries": 1, "documents": 2}
    assert set(result["removed"].values()) == {0}
    listed = s3.list_objects_v2(Bucket="bucket-b")["Contents"]
    assert len(listed) == 4  # the files and the retry entry are still there
    assert fake.deleted == [] and fake.present == {keys[0], keys[2]}
    for url in (setup["dlq"], setup["queue"]):
        assert queue_counts(sqs, url) == (1, 0)  # visible, not held
        got = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])
        assert got["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "1"  # never received


def test_cleanup_check_mode_does_not_count_queued_messages(
    setup: dict[str, Any], run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # documented (check_mode support partial): only a real cleanup scans the queues
    keys = MOD.run_keys("stress-test/", "r1", 1)
    setup["sqs"].send_message(QueueUrl=setup["dlq"], MessageBody=s3_event_body("bucket-b", keys[0]))
    monkeypatch.setattr(MOD, "make_indexer", lambda *_a: FakeIndexer([]))
    cleanup = {**BASE, "state": "cleanup", "dlq": "q-dlq", "scan_batches": 5}
    checked = run_module(MOD, cleanup, check_mode=True)
    assert checked["changed"] is False
    assert "queued messages are not looked at in check mode" in checked["msg"]
    done = run_module(MOD, cleanup)
    assert done["changed"] is True and done["removed"]["dlq_messages"] == 1


def test_sigv4_signs_with_the_tasks_keys(
    setup: dict[str, Any], run_module: RunModule, opensearch_recorder: Recorder
) -> None:
    # the environment holds other keys (testing): the task's must sign the index lookups
    task = {
        **BASE,
        "state": "cleanup",
        "opensearch_endpoint": opensearch_recorder.url,
        "opensearch_auth": "sigv4",
        "access_key": "AKIDTASKKEY",
        "secret_key": "task-secret",
        "region": "ap-northeast-1",
    }
    result = run_module(MOD, task, check_mode=True)
    assert result["changed"] is False
    signed = opensearch_recorder.authorizations()
    assert signed, "OpenSearch was not called"
    assert all(h.startswith("AWS4-HMAC-SHA256 Credential=AKIDTASKKEY/") for h in signed)
    assert all("/ap-northeast-1/es/aws4_request" in h for h in signed)


class StubSqs:
    """Records batch calls; refuses the entries whose Id is in ``refuse`` (per call)."""

    def __init__(self, refuse: set[str] | None = None, raise_on: str | None = None) -> None:
        self.refuse = refuse or set()
        self.raise_on = raise_on
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    def _batch(self, name: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append((name, entries))
        if name == self.raise_on:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, name)
        return {
            "Successful": [{"Id": e["Id"]} for e in entries if e["Id"] not in self.refuse],
            "Failed": [
                {"Id": e["Id"], "Code": "InvalidParameterValue", "Message": "refused"}
                for e in entries
                if e["Id"] in self.refuse
            ],
        }

    def send_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        return self._batch("send_message_batch", kwargs["Entries"])

    def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        return self._batch("delete_message_batch", kwargs["Entries"])

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        return self._batch("change_message_visibility_batch", kwargs["Entries"])

    def receive_message(self, **_kwargs: Any) -> dict[str, Any]:
        if any(name == "receive" for name, _ in self.calls):
            return {}
        self.calls.append(("receive", []))
        return {
            "Messages": [
                {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": body}
                for i, body in enumerate(["run/r1/a", "other", "run/r1/b", "run/r1/c"])
            ]
        }


def test_send_events_goes_through_the_batch_layer_and_returns_the_refused_keys() -> None:
    keys = [f"stress-test/r1/file-{i:05d}.txt" for i in range(12)]
    sqs = StubSqs(refuse={"1"})
    failed = MOD.send_events(sqs, "url", "b", keys, 16, "ap-northeast-1")
    assert [name for name, _ in sqs.calls] == ["send_message_batch", "send_message_batch"]
    assert [len(entries) for _, entries in sqs.calls] == [10, 2]
    assert [key for key, _ in failed] == [keys[1], keys[11]]
    assert all("InvalidParameterValue" in reason for _, reason in failed)


def test_a_failed_send_call_counts_its_events_as_refused() -> None:
    keys = [f"k{i}" for i in range(3)]
    failed = MOD.send_events(StubSqs(raise_on="send_message_batch"), "url", "b", keys, 16, "r")
    assert [key for key, _ in failed] == keys
    assert "AccessDenied" in failed[0][1]


def test_run_fails_when_sqs_accepts_no_event(
    setup: dict[str, Any], run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MOD, "make_indexer", lambda *_a: FakeIndexer([]))
    monkeypatch.setattr(
        MOD, "send_events", lambda _sqs, _url, _b, keys, _s, _r: [(k, "AccessDenied") for k in keys]
    )
    with pytest.raises(AnsibleFailJson, match="accepted none of the 3 events") as failure:
        run_module(MOD, {**BASE, "queue": "q", "count": 3, "timeout": 60, "size_bytes": 64})
    assert (failure.value.result["sent"], failure.value.result["send_failed"]) == (0, 3)


def test_scan_queue_counts_confirmed_deletes_and_reports_failures() -> None:
    sqs = StubSqs(refuse={"2"})  # the third of "ours" is not deleted
    problems: list[str] = []
    removed = MOD.scan_queue(sqs, "url", "run/r1/", 5, problems)
    assert removed == 2
    calls = {name: entries for name, entries in sqs.calls if name != "receive"}
    assert [e["ReceiptHandle"] for e in calls["delete_message_batch"]] == ["r0", "r2", "r3"]
    assert calls["change_message_visibility_batch"] == [
        {"ReceiptHandle": "r1", "VisibilityTimeout": 0, "Id": "0"}
    ]
    assert problems == ["m3: InvalidParameterValue: refused"]
