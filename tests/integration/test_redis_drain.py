"""emergency_drain.yml -e drain_backend=redis: back up to S3, check, empty; restore in one command.

Real processes throughout: ansible-playbook, the sandbox's redis-server and
LocalStack's S3 (a bucket of the test's own, from the ``stack`` fixture).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playbook_process import ansible_playbook
from redis_it_helpers import Keys, make_keys, sandbox_redis_url

from filesearch_worker.redis_queue import (
    PARK_SCRIPT,
    RedisQueueError,
    drain_lists,
    staging_key,
)

pytestmark = [pytest.mark.sandbox]

SIZES = {"high_priority_queue": 3000, "normal_priority_queue": 2000, "low_priority_queue": 1000}


@pytest.fixture
def keys(sandbox: Any, request: pytest.FixtureRequest) -> Iterator[Keys]:
    yield from make_keys(sandbox_redis_url(sandbox.state_dir), request.node.name)


def seed(keys: Keys) -> dict[str, list[bytes]]:
    """The three priority lists as producers fill them (LPUSH); returns LRANGE 0 -1 of each."""
    pipe = keys.client.pipeline(transaction=False)
    for name, size in SIZES.items():
        ids = [f"{name[:4]}-{n:05d}" for n in range(size)]
        ids.append("ünïcode-jöb")  # backed up as UTF-8
        for chunk in range(0, len(ids), 500):
            pipe.lpush(keys(name), *ids[chunk : chunk + 500])
    pipe.execute()
    return {name: keys.client.lrange(keys(name), 0, -1) for name in SIZES}


def drain(
    keys: Keys, bucket: str, check: bool = False, **extra: Any
) -> tuple[int, dict[str, Any], str]:
    """emergency_drain.yml on the Redis backend; (rc, the module's result or {}, output)."""
    variables = {
        "drain_backend": "redis",
        "redis_drain_url": keys.url,
        "redis_drain_lists": [keys(name) for name in SIZES],
        "redis_drain_bucket": bucket,
        **extra,
    }
    done = ansible_playbook("emergency_drain.yml", extra=variables, check=check, json_output=True)
    output = json.loads(done.stdout)
    result: dict[str, Any] = {}
    messages = []
    for play in output["plays"]:
        for task in play["tasks"]:
            host = task["hosts"].get("localhost", {})
            if task["task"]["name"] == "Back the lists up to S3, check the copies, then empty them":
                result = host
            if host.get("failed"):
                messages.append(str(host.get("msg")))
    return done.returncode, result, "\n".join(messages) + done.stderr


def confirm(keys: Keys) -> str:
    return ",".join(keys(name) for name in SIZES)


def s3_keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_drain_needs_the_exact_confirmation(keys: Keys, stack: Any, s3: Any) -> None:
    before = seed(keys)
    for extra in ({}, {"confirm_drain": "yes"}, {"confirm_drain": keys("high_priority_queue")}):
        rc, result, messages = drain(keys, stack.bucket, **extra)
        assert rc != 0
        assert "Refusing to drain" in messages and "Nothing was done" in messages, messages
        assert result == {}
    assert {name: keys.client.lrange(keys(name), 0, -1) for name in SIZES} == before
    assert s3_keys(s3, stack.bucket) == []


def test_drain_then_restore_in_one_command(keys: Keys, stack: Any, s3: Any) -> None:
    before = seed(keys)
    run_id = "t20261203T170000Z"

    rc, dry, messages = drain(keys, stack.bucket, check=True, redis_drain_run_id=run_id)
    assert rc == 0, messages
    assert dry["changed"] is True and dry["jobs"] == sum(SIZES.values()) + 3
    assert {name: keys.client.lrange(keys(name), 0, -1) for name in SIZES} == before
    assert s3_keys(s3, stack.bucket) == []

    rc, done, messages = drain(
        keys, stack.bucket, confirm_drain=confirm(keys), redis_drain_run_id=run_id
    )
    assert rc == 0, messages
    assert done["changed"] is True and done["jobs"] == sum(SIZES.values()) + 3
    for name, items in before.items():  # gone from Redis, complete in S3
        assert not keys.client.exists(keys(name))
        key = f"redis-drain-archive/{run_id}/{keys(name)}.json"
        doc = json.loads(s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read())
        assert doc["count"] == len(items) and doc["encoding"] == "utf-8"
        assert [i.encode() for i in doc["items"]] == items
        assert done["lists"][keys(name)]["state"] == "drained"
    assert not list(keys.client.scan_iter(match="filesearch-drain:*"))  # nothing left parked

    # producers go on meanwhile; a repeated drain of this run leaves their jobs alone
    keys.client.lpush(keys("high_priority_queue"), "new-1", "new-2")
    rc, again, messages = drain(
        keys, stack.bucket, confirm_drain=confirm(keys), redis_drain_run_id=run_id
    )
    assert rc == 0, messages
    assert again["changed"] is False
    assert keys.client.lrange(keys("high_priority_queue"), 0, -1) == [b"new-2", b"new-1"]

    rc, restored, messages = drain(
        keys, stack.bucket, redis_drain_action="restore", redis_drain_run_id=run_id
    )
    assert rc == 0, messages
    assert restored["changed"] is True and restored["jobs"] == sum(SIZES.values()) + 3
    # the old jobs at the consumers' (right) end, in their order; the new ones behind them
    assert keys.client.lrange(keys("high_priority_queue"), 0, -1) == [
        b"new-2",
        b"new-1",
        *before["high_priority_queue"],
    ]
    for name in ("normal_priority_queue", "low_priority_queue"):
        assert keys.client.lrange(keys(name), 0, -1) == before[name]

    rc, twice, messages = drain(
        keys, stack.bucket, redis_drain_action="restore", redis_drain_run_id=run_id
    )
    assert rc == 0, messages
    assert twice["changed"] is False  # a backup is restored once
    assert keys.client.llen(keys("high_priority_queue")) == len(before["high_priority_queue"]) + 2
    for key in keys.client.scan_iter(match="filesearch-drain:restored:t20261203T170000Z:*"):
        keys.client.delete(key)  # the markers are not under the test's prefix


def test_restore_needs_a_run_id(keys: Keys, stack: Any) -> None:
    rc, result, messages = drain(keys, stack.bucket, redis_drain_action="restore")
    assert rc != 0 and result == {}
    assert "-e redis_drain_run_id=" in messages and "Nothing was restored" in messages


def test_an_interrupted_drain_is_finished_by_its_run_id_and_blocks_others(
    keys: Keys, stack: Any, s3: Any
) -> None:
    """Jobs parked by a drain that died before its backup are never lost, nor drained twice."""
    park = f"{keys.prefix}park:"
    lists = [keys("high_priority_queue")]
    keys.client.lpush(lists[0], "old-1", "old-2")
    # the drain of run r1 died right after parking the list
    keys.client.register_script(PARK_SCRIPT)(keys=[lists[0], staging_key("r1", lists[0], park)])
    keys.client.lpush(lists[0], "new-1")  # a producer, after the rename

    with pytest.raises(RedisQueueError) as refused:
        drain_lists(keys.client, s3, stack.bucket, "drains", "r2", lists, park_prefix=park)
    assert refused.value.key == staging_key("r1", lists[0], park)
    assert keys.client.llen(staging_key("r1", lists[0], park)) == 2

    report = drain_lists(keys.client, s3, stack.bucket, "drains", "r1", lists, park_prefix=park)
    assert report.lists[lists[0]]["jobs"] == 2  # the parked two
    doc = json.loads(
        s3.get_object(Bucket=stack.bucket, Key=f"drains/r1/{lists[0]}.json")["Body"].read()
    )
    assert doc["items"] == ["old-2", "old-1"]
    assert not keys.client.exists(staging_key("r1", lists[0], park))
    # the producer's job, pushed after the rename, stays on the live list
    assert keys.client.lrange(lists[0], 0, -1) == [b"new-1"]


def test_a_list_of_the_wrong_type_stops_the_drain_before_anything(
    keys: Keys, stack: Any, s3: Any
) -> None:
    lists = [keys("high_priority_queue"), keys("low_priority_queue")]
    keys.client.lpush(lists[0], "j1")
    keys.client.hset(lists[1], "not", "a list")
    with pytest.raises(RedisQueueError) as refused:
        drain_lists(keys.client, s3, stack.bucket, "drains", "r3", lists)
    assert refused.value.key == lists[1]
    assert keys.client.lrange(lists[0], 0, -1) == [b"j1"]
    assert s3_keys(s3, stack.bucket) == []
