"""Bad input to the Redis modules: a clear error naming the key, and nothing moved.

Each case seeds a small backlog with stuck jobs that *could* be moved plus one
piece of bad data, runs the module as a real ansible-playbook process and
checks the message and that every key under the test's prefix is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_it_helpers import Keys, free_port, make_keys, run_module, sandbox_redis_url

pytestmark = [pytest.mark.sandbox]

QUEUES = ["high_priority_queue", "low_priority_queue"]


@pytest.fixture
def keys(sandbox: Any, request: pytest.FixtureRequest) -> Iterator[Keys]:
    yield from make_keys(sandbox_redis_url(sandbox.state_dir), request.node.name)


def seed(keys: Keys) -> None:
    """Three stuck jobs that would go back to high_priority_queue, one live one."""
    now = int(keys.client.time()[0])
    for job in ("a1", "a2", "a3"):
        keys.client.sadd(keys.processing, job)
        keys.client.hset(keys.job(job), "queue", keys("high_priority_queue"))
    keys.client.set(keys.heartbeat("a1"), now - 5000)
    keys.client.sadd(keys.processing, "live")
    keys.client.set(keys.heartbeat("live"), now)
    keys.client.lpush(keys("low_priority_queue"), "w1", "w2")


def snapshot(keys: Keys) -> dict[bytes, bytes | None]:
    """Every key of the test with its serialized value (DUMP): equal means untouched."""
    return {k: keys.client.dump(k) for k in sorted(keys.client.scan_iter(match=f"{keys.prefix}*"))}


BadData = Callable[[Keys], str]  # makes the bad data, returns the key the error must name


def queue_is_a_hash(keys: Keys) -> str:
    keys.client.hset(keys("high_priority_queue"), "oops", "1")
    return keys("high_priority_queue")


def malformed_job_id(keys: Keys) -> str:
    keys.client.sadd(keys.processing, "bad id\n")
    return keys.processing


def processing_set_is_a_list(keys: Keys) -> str:
    keys.client.delete(keys.processing)
    keys.client.rpush(keys.processing, "a1", "a2")
    return keys.processing


def heartbeat_is_a_hash(keys: Keys) -> str:
    keys.client.hset(keys.heartbeat("a2"), "at", "1")
    return keys.heartbeat("a2")


def heartbeat_is_no_timestamp(keys: Keys) -> str:
    keys.client.set(keys.heartbeat("a3"), "soon")
    return keys.heartbeat("a3")


def job_is_a_string(keys: Keys) -> str:
    keys.client.delete(keys.job("a2"))
    keys.client.set(keys.job("a2"), "high_priority_queue")
    return keys.job("a2")


@pytest.mark.parametrize(
    "bad",
    [
        queue_is_a_hash,
        malformed_job_id,
        processing_set_is_a_list,
        heartbeat_is_a_hash,
        heartbeat_is_no_timestamp,
        job_is_a_string,
    ],
)
def test_stuck_jobs_refuses_bad_data_naming_the_key(
    keys: Keys, tmp_path: Path, bad: BadData
) -> None:
    seed(keys)
    key = bad(keys)
    before = snapshot(keys)
    run = run_module(tmp_path, "redis_stuck_jobs", keys.layout_args(QUEUES))
    assert run.failed, run.result
    assert key in run.result["msg"], run.result["msg"]
    assert "nothing moved" in run.result["msg"], run.result["msg"]
    assert run.result.get("changed") is not True
    assert snapshot(keys) == before


@pytest.mark.parametrize("bad", [queue_is_a_hash, malformed_job_id, heartbeat_is_a_hash])
def test_queue_info_refuses_bad_data_naming_the_key(
    keys: Keys, tmp_path: Path, bad: BadData
) -> None:
    seed(keys)
    key = bad(keys)
    run = run_module(tmp_path, "redis_queue_info", keys.layout_args(QUEUES))
    assert run.failed, run.result
    assert key in run.result["msg"], run.result["msg"]
    assert run.result["key"] == key


@pytest.mark.parametrize("module", ["redis_stuck_jobs", "redis_queue_info"])
def test_an_unreachable_redis_is_named(tmp_path: Path, module: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    run = run_module(tmp_path, module, {"url": url, "socket_timeout": 2})
    assert run.failed, run.result
    assert f"Cannot connect to Redis at {url}" in run.result["msg"]
    assert run.result["error_code"] == "ConnectionError"


def test_the_password_is_not_shown(tmp_path: Path) -> None:
    """``password`` is no_log; one given in the URL is masked in the message."""
    port = free_port()
    run = run_module(
        tmp_path,
        "redis_queue_info",
        {"url": f"redis://127.0.0.1:{port}/0", "password": "s3cr3t-word", "socket_timeout": 2},
    )
    assert run.failed
    assert "s3cr3t-word" not in run.stdout
    url = f"redis://:s3cr3t-word@127.0.0.1:{port}/0"
    run = run_module(tmp_path, "redis_queue_info", {"url": url, "socket_timeout": 2})
    assert run.failed
    assert "s3cr3t-word" not in run.result["msg"]
    assert f"redis://:***@127.0.0.1:{port}/0" in run.result["msg"]


def test_a_job_without_a_queue_is_reported_not_moved(keys: Keys, tmp_path: Path) -> None:
    seed(keys)
    keys.client.delete(keys.job("a3"))  # no hash: the job names no queue
    run = run_module(tmp_path, "redis_stuck_jobs", keys.layout_args(QUEUES))
    assert not run.failed, run.result.get("msg")
    assert [u["id"] for u in run.result["unroutable"]] == ["a3"]
    assert "no default_queue" in run.result["unroutable"][0]["why"]
    assert sorted(run.result["moved"][keys("high_priority_queue")]) == ["a1", "a2"]
    assert keys.client.sismember(keys.processing, "a3")  # left where it was
    # with a default queue it goes there
    args = {**keys.layout_args(QUEUES), "default_queue": keys("low_priority_queue")}
    again = run_module(tmp_path, "redis_stuck_jobs", args)
    assert again.result["moved"] == {keys("low_priority_queue"): ["a3"]}
    assert keys.client.scard(keys.processing) == 1  # the live one
