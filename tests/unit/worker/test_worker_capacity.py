"""queue_status.capacity_advice: the runbook's rule, depth sampling, clamping (moto SQS)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from filesearch_worker.queue_status import CapacityPlan, capacity_advice, read_queue


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_two_depth_samples_give_the_net_rate(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="cap-sample")["QueueUrl"]
    for i in range(10):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    clock = FakeClock()

    def consume_during_sleep(seconds: float) -> None:  # a worker deletes 4 in 30 s
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4)["Messages"]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )
        clock.now += seconds

    plan = CapacityPlan(rate_sample_seconds=30, current_workers=2, target_minutes=1)
    cap = capacity_advice(
        sqs, read_queue(sqs, url), plan, None, sleep=consume_during_sleep, clock=clock
    )
    assert (cap.rate_per_minute, cap.rate_source) == (8.0, "samples")  # 4 per 30 s
    assert cap.backlog == 6  # the second reading
    assert cap.drain_eta_minutes == 0.75
    assert (cap.rate_per_worker, cap.rate_per_worker_source) == (4.0, "measured")
    assert cap.recommended_workers == 2  # ceil(6 / (4 * 1)) = 2


def test_growing_queue_has_no_eta(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="cap-grow")["QueueUrl"]
    clock = FakeClock()

    def arrivals(seconds: float) -> None:
        sqs.send_message(QueueUrl=url, MessageBody="new")
        clock.now += seconds

    cap = capacity_advice(
        sqs,
        read_queue(sqs, url),
        CapacityPlan(rate_sample_seconds=60, current_workers=1),
        sleep=arrivals,
        clock=clock,
    )
    assert cap.rate_per_minute == -1.0
    assert cap.drain_eta_minutes is None and cap.recommended_workers is None


@pytest.mark.parametrize(
    ("backlog", "per_worker", "target", "bounds", "expected"),
    [
        (8158, 50.0, 10.0, (2, 20), 17),  # the runbook's numbers: ceil(8158 / 500)
        (8158, 50.0, 10.0, (2, 8), 8),  # clamped to max
        (10, 50.0, 10.0, (2, 20), 2),  # clamped to min
        (0, 50.0, 10.0, (0, 20), 0),  # empty queue, min 0
        (1000, 50.0, 10.0, (1, 20), 2),  # exactly 2
        (1001, 50.0, 10.0, (1, 20), 3),  # one more message: one more worker
    ],
)
def test_the_runbook_rule(
    sqs: Any,
    backlog: int,
    per_worker: float,
    target: float,
    bounds: tuple[int, int],
    expected: int,
) -> None:
    url = sqs.create_queue(QueueName="cap-rule")["QueueUrl"]
    queue = read_queue(sqs, url)
    queue = replace(queue, visible=backlog)
    plan = CapacityPlan(
        rate_per_worker=per_worker,
        target_minutes=target,
        min_workers=bounds[0],
        max_workers=bounds[1],
        rate_window_minutes=0,
    )
    cap = capacity_advice(sqs, queue, plan)
    assert cap.recommended_workers == expected
    assert cap.drain_eta_minutes == (0.0 if backlog == 0 else None)
