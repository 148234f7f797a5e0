"""Settler on moto SQS: delete, DLQ-then-delete, backoff release, and the failure paths."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from filesearch_worker.outcomes import Outcome
from filesearch_worker.processor import Processed
from filesearch_worker.settle import ExponentialBackoff, Settler


class RecordingMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.outcomes: list[str] = []

    def incr(self, name: str, value: float = 1.0, *, outcome: str = "") -> None:
        self.counts[name] = self.counts.get(name, 0) + value
        if outcome:
            self.outcomes.append(outcome)

    def observe(self, name: str, value: float) -> None:
        self.incr(f"{name}.n")

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingHeartbeat:
    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.cancelled: list[str] = []

    def cancel(self, handles: Any) -> None:
        self.cancelled.extend(handles)
        self.order.append("cancel")


def receive(sqs: Any, url: str, n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < n:
        got += sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
    return got


def outcome(msg: dict[str, Any], status: str, reason: str = "", detail: str = "") -> Processed:
    return Processed(
        message_id=msg["MessageId"],
        receipt_handle=msg["ReceiptHandle"],
        outcome=Outcome(status),
        reason=reason,
        detail=detail,
        keys=("k",),
        body=msg["Body"],
        receive_count=int(msg["Attributes"]["ApproximateReceiveCount"]),
    )


def counts(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def order() -> list[str]:
    return []


def make_settler(sqs: Any, queue: str, dlq: str, order: list[str], **kw: Any) -> Settler:
    sqs.meta.events.register(
        "before-call.sqs.DeleteMessageBatch", lambda **_: order.append("delete")
    )
    sqs.meta.events.register(
        "before-call.sqs.SendMessageBatch", lambda **_: order.append("dlq-send")
    )
    return Settler(sqs, queue, dlq, heartbeat=RecordingHeartbeat(order), **kw)  # type: ignore[arg-type]


def test_one_batch(sqs: Any, queues: tuple[str, str], order: list[str]) -> None:
    queue, dlq = queues
    for i in range(5):
        sqs.send_message(QueueUrl=queue, MessageBody=f"body-{i}")
    msgs = sorted(receive(sqs, queue, 5), key=lambda m: m["Body"])
    metrics = RecordingMetrics()
    settler = make_settler(
        sqs, queue, dlq, order, metrics=metrics, backoff=ExponentialBackoff(0, 0)
    )
    report = settler.settle(
        [
            outcome(msgs[0], "indexed"),
            outcome(msgs[1], "retry_stored", "opensearch-unavailable"),
            outcome(msgs[2], "acknowledged", "test-event"),
            outcome(msgs[3], "permanent", "invalid-json", "body is not JSON"),
            outcome(msgs[4], "transient", "s3-unavailable"),
        ]
    )
    assert order == ["dlq-send", "cancel", "delete"]  # heartbeat cancelled before delete
    assert len(report.deleted) == 3
    assert report.dead_lettered == [msgs[3]["ReceiptHandle"]]
    assert report.released == [msgs[4]["ReceiptHandle"]]
    (dead,) = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    assert dead["Body"] == "body-3"
    attrs = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attrs["error-type"] == "invalid-json"
    assert attrs["error-message"] == "body is not JSON"
    assert attrs["original-message-id"] == msgs[3]["MessageId"]
    assert attrs["receive-count"] == "1"
    assert attrs["failed-at"].endswith("Z")
    (again,) = receive(sqs, queue, 1)  # only the transient one comes back
    assert again["Body"] == "body-4"
    assert metrics.counts["MessagesSucceeded"] == 3
    assert metrics.counts["IndexRetryStored"] == 1
    assert metrics.counts["MessagesFailed"] == 1
    assert metrics.counts["MessagesReleased"] == 1
    # one outcome per settled message (the Prometheus messages_total{outcome})
    assert sorted(metrics.outcomes) == [
        "acknowledged",
        "dead_lettered",
        "indexed",
        "released",
        "retry_stored",
    ]


def test_dlq_copy_keeps_the_recovery_counter(
    sqs: Any, queues: tuple[str, str], order: list[str]
) -> None:
    """A message DLQ recovery sent back keeps dlq-recoveries when it fails again.

    Without it, strategy redrive would send a poison message round forever
    instead of archiving it after max_attempts (the model checker's
    WORKER_DROPS_RECOVERIES variant, tests/proof/).
    """
    queue, dlq = queues
    counter = {"dlq-recoveries": {"DataType": "Number", "StringValue": "2"}}
    sqs.send_message(QueueUrl=queue, MessageBody="poison", MessageAttributes=counter)
    (msg,) = sqs.receive_message(
        QueueUrl=queue,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
        MessageAttributeNames=["All"],
    )["Messages"]
    failed = dataclasses.replace(
        outcome(msg, "permanent", "invalid-json"), attributes=msg["MessageAttributes"]
    )
    report = make_settler(sqs, queue, dlq, order).settle([failed])
    assert report.dead_lettered == [msg["ReceiptHandle"]]
    (dead,) = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    assert dead["MessageAttributes"]["dlq-recoveries"]["StringValue"] == "2"
    assert dead["MessageAttributes"]["error-type"]["StringValue"] == "invalid-json"


def test_dlq_send_failure_keeps_the_message(
    sqs: Any, queues: tuple[str, str], order: list[str]
) -> None:
    queue, _ = queues
    sqs.send_message(QueueUrl=queue, MessageBody="poison")
    (msg,) = receive(sqs, queue, 1)
    missing_dlq = queue.replace("/work", "/no-such-dlq")
    metrics = RecordingMetrics()
    settler = make_settler(
        sqs, queue, missing_dlq, order, metrics=metrics, backoff=ExponentialBackoff(0, 0)
    )
    report = settler.settle([outcome(msg, "permanent", "invalid-json")])
    assert report.dlq_failed == [msg["ReceiptHandle"]]
    assert report.deleted == [] and report.dead_lettered == []
    assert "delete" not in order or not report.deleted
    assert metrics.counts["DLQSendFailed"] == 1
    assert metrics.outcomes == ["released"]  # counted once, not also as dead_lettered
    (back,) = receive(sqs, queue, 1)  # released, not lost
    assert back["Body"] == "poison"
    assert back["Attributes"]["ApproximateReceiveCount"] == "2"


def test_failed_delete_is_logged_and_counted(
    sqs: Any, queues: tuple[str, str], order: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    queue, dlq = queues
    metrics = RecordingMetrics()
    settler = make_settler(sqs, queue, dlq, order, metrics=metrics)
    bogus = {
        "MessageId": "gone",
        "ReceiptHandle": "not-a-receipt-handle",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    report = settler.settle([outcome(bogus, "indexed")])
    assert report.delete_failed == ["not-a-receipt-handle"]
    assert metrics.counts["MessageDeleteFailed"] == 1
    assert metrics.outcomes == []  # not settled: the message comes back
    assert "FAILED to delete" in caplog.text


def test_no_dlq_configured_releases_for_the_redrive_policy(
    sqs: Any, queues: tuple[str, str], order: list[str]
) -> None:
    queue, _ = queues
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    (msg,) = receive(sqs, queue, 1)
    settler = make_settler(sqs, queue, "", order, backoff=ExponentialBackoff(0, 0))
    report = settler.settle([outcome(msg, "permanent", "invalid-json")])
    assert report.released == [msg["ReceiptHandle"]]
    assert counts(sqs, queue) == (1, 0)


def test_release_for_shutdown(sqs: Any, queues: tuple[str, str], order: list[str]) -> None:
    queue, dlq = queues
    for i in range(12):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"i": i}))
    msgs = receive(sqs, queue, 12)
    assert counts(sqs, queue) == (0, 12)
    settler = make_settler(sqs, queue, dlq, order)
    assert settler.release([m["ReceiptHandle"] for m in msgs]) == 12
    assert counts(sqs, queue) == (12, 0)


@pytest.mark.parametrize(
    ("count", "low", "high"),
    [(1, 30, 33), (2, 60, 66), (3, 120, 132), (10, 900, 900), (0, 30, 33)],
)
def test_exponential_backoff(count: int, low: int, high: int) -> None:
    delay = ExponentialBackoff(30, 900).delay(count)
    assert low <= delay <= high
