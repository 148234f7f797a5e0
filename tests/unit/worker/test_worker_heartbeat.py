"""Heartbeat on moto SQS: extension keeps a message invisible; cancel; 12 h cap."""

from __future__ import annotations

import time
from typing import Any

from filesearch_worker.heartbeat import Heartbeat


def receive_one(sqs: Any, url: str, visibility: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msgs = sqs.receive_message(QueueUrl=url, VisibilityTimeout=visibility).get("Messages", [])
        if msgs:
            return msgs[0]  # type: ignore[no-any-return]
    raise AssertionError("no message within 10 s")


def test_heartbeat_keeps_a_slow_message_invisible(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="hb")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="slow")
    # A 3 s timeout extended every 0.5 s leaves 2.5 s of slack for a loaded CI
    # machine to schedule the heartbeat thread (1 s and 0.3 s flaked there).
    msg = receive_one(sqs, url, visibility=3)
    heartbeat = Heartbeat(sqs, url, visibility_timeout=3, interval=0.5)
    heartbeat.track([msg["ReceiptHandle"]])
    heartbeat.start()
    try:
        # three visibility timeouts long, the message must never come back
        window_end = time.monotonic() + 9.0
        while time.monotonic() < window_end:
            assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []
        assert heartbeat.extensions >= 3
        heartbeat.cancel([msg["ReceiptHandle"]])
        assert heartbeat.tracked() == []
        # after cancel the message becomes visible again once the last extension ends
        again = receive_one(sqs, url, visibility=30)
        assert again["Body"] == "slow"
    finally:
        heartbeat.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_due_messages_are_extended_and_the_cap_is_respected(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="hb2")["QueueUrl"]
    for i in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    handles: list[str] = []
    while len(handles) < 12:
        handles += [
            m["ReceiptHandle"]
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        ]
    clock = Clock()
    heartbeat = Heartbeat(sqs, url, visibility_timeout=600, interval=200, clock=clock)
    heartbeat.track(handles[:11])
    clock.now = 100
    heartbeat.track(handles[11:])
    clock.now = 199
    assert heartbeat.beat() == 0
    clock.now = 200
    assert heartbeat.beat() == 11  # two batch calls (10 + 1)
    clock.now = 300
    assert heartbeat.beat() == 1
    clock.now = 43_200  # the first 11 reached the 12 h cap: dropped, not extended;
    assert heartbeat.beat() == 1  # the 12th (received at 100) gets what is left of its 12 h
    assert heartbeat.tracked() == handles[11:]
    clock.now = 43_400
    assert heartbeat.beat() == 0
    assert heartbeat.tracked() == []


def test_invalid_receipt_handles_are_dropped(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="hb3")["QueueUrl"]
    failures: list[str] = []
    clock = Clock()
    heartbeat = Heartbeat(
        sqs, url, 600, 200, clock=clock, on_failure=lambda _h, code: failures.append(code)
    )
    heartbeat.track(["bogus"])
    clock.now = 250
    assert heartbeat.beat() == 0
    assert failures
    assert heartbeat.failures >= 1
