"""redis_stuck_jobs on the sandbox's redis-server: 10,000 jobs, 500 stuck, a consumer racing it.

The module runs as a real ansible-playbook process while a consumer thread keeps
taking jobs from the lists into the processing set (atomically with their first
heartbeat, as the data model requires), and finishing them or pushing them back.
At the end every one of the 10,000 jobs is in exactly one place: a list, the
processing set, or the consumer's finished set.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_it_helpers import Keys, make_keys, run_module, sandbox_redis_url

from filesearch_worker.redis_queue import Layout, recover_stuck, scan_processing

pytestmark = [pytest.mark.sandbox]

QUEUES = [
    "email_processing_queue",
    "high_priority_queue",
    "normal_priority_queue",
    "low_priority_queue",
]
TOTAL, STUCK, LIVE = 10_000, 500, 100

# The consumer's two atomic steps (a real worker does the same in MULTI/EXEC or a script).
CLAIM = """
local id = redis.call('RPOP', KEYS[1])
if not id then return false end
redis.call('SADD', KEYS[2], id)
redis.call('SET', ARGV[1] .. id, redis.call('TIME')[1])
return id
"""
SETTLE = """
-- KEYS[1] processing, KEYS[2] heartbeat, KEYS[3] finished set, KEYS[4] the job's list
-- ARGV[1] id, ARGV[2] 'finish' | 'release'
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
if ARGV[2] == 'finish' then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('INCR', KEYS[3] .. ':count')
else
  redis.call('LPUSH', KEYS[4], ARGV[1])
end
return 1
"""


@pytest.fixture
def keys(sandbox: Any, request: pytest.FixtureRequest) -> Iterator[Keys]:
    yield from make_keys(sandbox_redis_url(sandbox.state_dir), request.node.name)


def job_ids() -> list[str]:
    return [f"job-{n:05d}" for n in range(TOTAL)]


def load_backlog(keys: Keys) -> dict[str, Any]:
    """10,000 jobs: 9,400 on the lists, 500 stuck (250 no heartbeat, 250 stale), 100 live."""
    rng = random.Random(12)
    ids = job_ids()
    rng.shuffle(ids)
    stuck, live, queued = ids[:STUCK], ids[STUCK : STUCK + LIVE], ids[STUCK + LIVE :]
    queue_of = {job: keys(QUEUES[n % len(QUEUES)]) for n, job in enumerate(sorted(ids))}
    now = int(keys.client.time()[0])
    pipe = keys.client.pipeline(transaction=False)
    for job in ids:
        pipe.hset(keys.job(job), mapping={"queue": queue_of[job], "enqueued_at": now - 60})
    for job in queued:
        pipe.lpush(queue_of[job], job)
    for n, job in enumerate(stuck):
        pipe.sadd(keys.processing, job)
        if n % 2:
            pipe.set(keys.heartbeat(job), now - 3600)  # stale: an hour old
    for job in live:
        pipe.sadd(keys.processing, job)
        pipe.set(keys.heartbeat(job), now)
    pipe.execute()
    return {"stuck": set(stuck), "live": set(live), "queue_of": queue_of}


class Consumer(threading.Thread):
    """Takes jobs (list -> processing set + heartbeat) and finishes 2 of 3, releases 1 of 3."""

    def __init__(self, keys: Keys, queue_of: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(keys.url)
        self.keys = keys
        self.queue_of = queue_of
        self.stop = threading.Event()
        self.claimed: set[str] = set()
        self.finished = self.released = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        claim = self.client.register_script(CLAIM)
        settle = self.client.register_script(SETTLE)
        hb_prefix = self.keys("heartbeat:")
        done = self.keys("finished")
        n = 0
        try:
            while not self.stop.is_set():
                queue = self.keys(QUEUES[n % len(QUEUES)])
                n += 1
                raw = claim(keys=[queue, self.keys.processing], args=[hb_prefix])
                if raw is None:
                    continue
                job = raw.decode()
                self.claimed.add(job)
                action = "release" if n % 3 == 0 else "finish"
                settled = settle(
                    keys=[self.keys.processing, hb_prefix + job, done, self.queue_of[job]],
                    args=[job, action],
                )
                assert settled == 1, f"{job} left the processing set while the consumer held it"
                if action == "finish":
                    self.finished += 1
                else:
                    self.released += 1
                self.stop.wait(0.003)  # a steady pace: busy through all three module runs
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            self.error = exc

    def join_checked(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        assert not self.is_alive(), "the consumer did not stop"
        assert self.error is None, f"the consumer failed: {self.error!r}"
        self.client.close()


def where_is_everything(keys: Keys) -> Counter[str]:
    """How often each job id occurs across the lists, the processing set and the finished set."""
    seen: Counter[str] = Counter()
    for queue in QUEUES:
        seen.update(v.decode() for v in keys.client.lrange(keys(queue), 0, -1))
    seen.update(v.decode() for v in keys.client.smembers(keys.processing))
    seen.update(v.decode() for v in keys.client.smembers(keys("finished")))
    return seen


def moved_ids(result: dict[str, Any]) -> list[str]:
    return [job for ids in result["moved"].values() for job in ids]


def test_500_stuck_of_10000_move_once_while_a_consumer_runs(keys: Keys, tmp_path: Path) -> None:
    backlog = load_backlog(keys)
    args = keys.layout_args(QUEUES)
    consumer = Consumer(keys, backlog["queue_of"])
    consumer.start()
    try:
        # check mode: lists exactly the 500, moves nothing
        dry = run_module(tmp_path, "redis_stuck_jobs", args, check=True)
        assert dry.rc == 0 and not dry.failed, dry.result.get("msg")
        assert dry.result["changed"] is True
        assert sorted(moved_ids(dry.result)) == sorted(backlog["stuck"])
        members = {m.decode() for m in keys.client.smembers(keys.processing)}
        assert backlog["stuck"] <= members  # nothing moved
        for queue in QUEUES:
            listed = {v.decode() for v in keys.client.lrange(keys(queue), 0, -1)}
            assert not listed & backlog["stuck"]

        settled_before = consumer.finished + consumer.released
        real = run_module(tmp_path, "redis_stuck_jobs", args)
        assert consumer.finished + consumer.released > settled_before  # it ran alongside
        assert real.rc == 0 and not real.failed, real.result.get("msg")
        moved = moved_ids(real.result)
        assert real.result["changed"] is True
        assert len(moved) == len(set(moved)) == STUCK  # none twice
        assert set(moved) == backlog["stuck"]  # exactly the 500
        for queue, ids in real.result["moved"].items():  # each back on its own list
            assert {backlog["queue_of"][job] for job in ids} == {queue}
        counts = real.result["counts"]
        assert counts["moved"] == STUCK
        assert counts["skipped_alive"] == counts["skipped_finished"] == 0
        assert counts["already_queued"] == counts["unroutable"] == 0
        assert counts["live"] >= LIVE  # the 100 plus whatever the consumer held

        again = run_module(tmp_path, "redis_stuck_jobs", args)
        assert again.rc == 0 and not again.failed, again.result.get("msg")
        assert again.result["changed"] is False
        assert moved_ids(again.result) == []
    finally:
        consumer.join_checked()

    # every job accounted for: exactly once in a list, the processing set or finished
    seen = where_is_everything(keys)
    assert set(seen) == set(job_ids()), f"lost: {sorted(set(job_ids()) - set(seen))[:10]}"
    assert [job for job, n in seen.items() if n > 1] == []
    assert int(keys.client.get(keys("finished:count")) or 0) == keys.client.scard(keys("finished"))
    assert consumer.finished > 0 and consumer.released > 0
    assert sum(keys.client.llen(keys(q)) for q in QUEUES) > 0  # work was left for it throughout
    members = {m.decode() for m in keys.client.smembers(keys.processing)}
    assert backlog["live"] <= members  # the live jobs were never touched
    assert all(keys.client.exists(keys.heartbeat(job)) for job in backlog["live"])
    # a stuck job is in the set again only if the consumer took it from its list since
    assert {job for job in backlog["stuck"] if job in members} <= consumer.claimed


def test_a_worker_that_finishes_or_heartbeats_during_the_run_wins(keys: Keys) -> None:
    """Jobs stuck at the scan but settled or re-heartbeated before the move stay where they are."""
    layout = Layout(
        queues=(keys("high_priority_queue"),),
        processing_set=keys.processing,
        heartbeat_prefix=keys("heartbeat:"),
        job_prefix=keys("job:"),
    )
    now = int(keys.client.time()[0])
    ids = [f"race-{n}" for n in range(6)]
    for job in ids:
        keys.client.sadd(keys.processing, job)
        keys.client.hset(keys.job(job), "queue", keys("high_priority_queue"))
        keys.client.set(keys.heartbeat(job), now - 7200)
    scan = scan_processing(keys.client, layout)
    assert {job.id for job in scan.stuck} == set(ids)
    # after the scan: a worker finishes two and heartbeats two; two stay stuck
    keys.client.srem(keys.processing, "race-0", "race-1")
    keys.client.delete(keys.heartbeat("race-0"), keys.heartbeat("race-1"))
    keys.client.set(keys.heartbeat("race-2"), int(time.time()))
    keys.client.set(keys.heartbeat("race-3"), int(time.time()))
    result = recover_stuck(keys.client, layout, scan=scan)
    assert sorted(result.skipped_finished) == ["race-0", "race-1"]
    assert sorted(result.skipped_alive) == ["race-2", "race-3"]
    assert result.moved == {keys("high_priority_queue"): ["race-4", "race-5"]}
    queue = [v.decode() for v in keys.client.lrange(keys("high_priority_queue"), 0, -1)]
    assert sorted(queue) == ["race-4", "race-5"]  # the finished ones were not requeued
    members = {m.decode() for m in keys.client.smembers(keys.processing)}
    assert members == {"race-2", "race-3"}


def test_a_job_already_on_its_list_is_only_taken_out_of_the_set(keys: Keys) -> None:
    layout = Layout(
        queues=(keys("low_priority_queue"),),
        processing_set=keys.processing,
        heartbeat_prefix=keys("heartbeat:"),
        job_prefix=keys("job:"),
        default_queue=keys("low_priority_queue"),
    )
    keys.client.sadd(keys.processing, "twice")
    keys.client.lpush(keys("low_priority_queue"), "twice")
    result = recover_stuck(keys.client, layout)
    assert result.already_queued == {keys("low_priority_queue"): ["twice"]}
    assert result.moved == {}
    assert keys.client.lrange(keys("low_priority_queue"), 0, -1) == [b"twice"]
    assert keys.client.scard(keys.processing) == 0
