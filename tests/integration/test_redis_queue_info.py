"""redis_queue_info on the sandbox's redis-server, as a real ansible-playbook process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_it_helpers import Keys, make_keys, run_module, sandbox_redis_url

pytestmark = [pytest.mark.sandbox]

QUEUES = ["high_priority_queue", "normal_priority_queue", "low_priority_queue"]


@pytest.fixture
def keys(sandbox: Any, request: pytest.FixtureRequest) -> Iterator[Keys]:
    yield from make_keys(sandbox_redis_url(sandbox.state_dir), request.node.name)


def seed(keys: Keys) -> None:
    now = int(keys.client.time()[0])
    pipe = keys.client.pipeline(transaction=False)
    for n, name in enumerate(QUEUES):
        ids = [f"{name[:4]}-{i}" for i in range(1000 * (n + 1))]
        pipe.lpush(keys(name), *ids)
        # the oldest job (the right end) says when it was enqueued
        pipe.hset(
            keys.job(ids[0]), mapping={"queue": keys(name), "enqueued_at": now - 300 * (n + 1)}
        )
    for i in range(30):
        pipe.sadd(keys.processing, f"p-{i}")
        pipe.hset(keys.job(f"p-{i}"), "queue", keys("normal_priority_queue"))
        if i < 10:
            pipe.set(keys.heartbeat(f"p-{i}"), now)  # live
        elif i < 20:
            pipe.set(keys.heartbeat(f"p-{i}"), now - 601)  # stale
    pipe.execute()


def test_depths_processing_and_stuck_jobs(keys: Keys, tmp_path: Path) -> None:
    seed(keys)
    args = {**keys.layout_args(QUEUES), "max_listed": 5, "max_stuck": 0, "current_workers": 2}
    for check in (False, True):  # an information module: the same in check mode
        run = run_module(tmp_path, "redis_queue_info", args, check=check)
        assert run.rc == 0 and not run.failed, run.result.get("msg")
        result = run.result
        assert result["changed"] is False
        assert [(q["name"], q["depth"]) for q in result["queues"]] == [
            (keys(name), 1000 * (n + 1)) for n, name in enumerate(QUEUES)
        ]
        assert [q["oldest_age_seconds"] // 100 for q in result["queues"]] == [3, 6, 9]
        assert result["depth"] == 6000
        assert result["processing"] == {
            "key": keys.processing,
            "size": 30,
            "live": 10,
            "stuck": 20,
            "unroutable": 0,
        }
        assert len(result["stuck_jobs"]) == 5
        assert {j["reason"] for j in result["stuck_jobs"]} <= {"missing", "stale"}
        assert result["healthy"] is False
        assert result["problems"] == [f"{keys.processing}: 20 stuck jobs (over max_stuck 0)"]
        assert result["sample"]["backlog"] == 6030 and result["sample"]["in_flight"] == 30
        assert result["capacity"]["rate_per_minute"] is None  # no sampling asked for
    assert keys.client.scard(keys.processing) == 30  # nothing moved


def test_capacity_advice_from_two_samples(keys: Keys, tmp_path: Path) -> None:
    seed(keys)
    stop = threading.Event()
    popped = 0

    def consume() -> None:  # a consumer draining the high-priority list meanwhile
        nonlocal popped
        client = redis.Redis.from_url(keys.url)
        while not stop.is_set() and client.rpop(keys("high_priority_queue")) is not None:
            popped += 1
            stop.wait(0.002)
        client.close()

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    try:
        args = {
            **keys.layout_args(QUEUES),
            "rate_sample_seconds": 2,
            "current_workers": 1,
            "target_minutes": 1,
            "min_workers": 1,
        }
        run = run_module(tmp_path, "redis_queue_info", args)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert run.rc == 0 and not run.failed, run.result.get("msg")
    capacity = run.result["capacity"]
    assert popped > 0
    assert capacity["rate_source"] == "samples" and capacity["rate_per_minute"] > 0
    assert capacity["drain_eta_minutes"] == round(
        capacity["backlog"] / capacity["rate_per_minute"], 2
    )
    assert capacity["rate_per_worker_source"] == "measured"
    assert capacity["recommended_workers"] >= 1
