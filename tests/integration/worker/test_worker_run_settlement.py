"""The real ``filesearch-worker run`` against LocalStack + osmem-server: the seed's problems fixed.

Each test has its own queue, DLQ, bucket and index (the ``stack`` fixture).
"""

from __future__ import annotations

import signal
import socket
from typing import Any

import pytest
from worker_it_helpers import (
    drain_dlq,
    index_count,
    queue_counts,
    retry_keys,
    run_cli,
    s3_event_body,
    send,
    send_many,
    wait_until,
)

pytestmark = pytest.mark.sandbox


def upload(s3: Any, bucket: str, keys: list[str], body: bytes = b"some text") -> None:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_exception_during_processing_leaves_nothing_in_flight(
    stack: Any, sqs: Any, s3: Any, opensearch: Any, start_worker: Any
) -> None:
    keys = [f"ok/{i}.txt" for i in range(6)] + ["explode/bad.txt"]
    upload(s3, stack.bucket, keys)
    ids = send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, k) for k in keys])
    worker = start_worker(stack.env, WORKER_TEST_RAISE_ON_KEY="explode/")
    settled = {line["message_id"]: line for line in worker.wait_settled(len(keys))}
    wait_until(lambda: queue_counts(sqs, stack.queue_url) == (0, 0), 20, "an empty queue")
    bad = settled[ids[-1]]
    assert (bad["outcome"], bad["reason"]) == ("dead_lettered", "unexpected-error")
    assert all(settled[i]["outcome"] == "indexed" for i in ids[:-1])
    (dead,) = drain_dlq(sqs, stack.dlq_url)
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["error-type"] == "unexpected-error"
    assert attributes["original-message-id"] == ids[-1]
    assert index_count(opensearch, stack.index) == 6
    assert worker.stop() == 0


def test_opensearch_down_uses_the_retry_store_and_replay_recovers(
    stack: Any, sqs: Any, s3: Any, opensearch: Any, start_worker: Any
) -> None:
    with socket.socket() as sock:  # a port nothing listens on: OpenSearch "down"
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    keys = [f"reports/{i} 報告.txt" for i in range(12)]
    upload(s3, stack.bucket, keys, "本文".encode())
    worker = start_worker(
        stack.env, OPENSEARCH_ENDPOINT=dead, CB_FAILURE_THRESHOLD="1", CB_COOLDOWN_SECONDS="60"
    )
    # one message first: its failed bulk request opens the breaker (threshold 1) ...
    send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, keys[0])])
    worker.wait_settled(1)
    # ... so the rest are retry-stored without a request (whatever batches they come in)
    send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, k) for k in keys[1:]])
    settled = worker.wait_settled(len(keys))
    assert {line["outcome"] for line in settled} == {"retry_stored"}
    assert {line["reason"] for line in settled} <= {"opensearch-unavailable", "circuit-open"}
    assert "circuit-open" in {line["reason"] for line in settled}  # the breaker saved timeouts
    wait_until(lambda: queue_counts(sqs, stack.queue_url) == (0, 0), 20, "an empty queue")
    assert queue_counts(sqs, stack.dlq_url) == (0, 0)  # DLQ unchanged
    stored = retry_keys(s3, stack.bucket)
    assert sorted(k.split("/", 2)[2] for k in stored) == sorted(f"{k}.json" for k in keys)
    head = s3.head_object(Bucket=stack.bucket, Key=stored[0])
    assert set(head["Metadata"]) == {"original-key", "retry-reason", "failed-at"}
    assert worker.stop() == 0
    # OpenSearch is back: replay indexes everything, then removes the entries
    replay = run_cli(stack.env, "replay-retries")
    assert replay.returncode == 0, replay.stderr
    assert '"indexed": 12' in replay.stdout
    assert retry_keys(s3, stack.bucket) == []
    assert index_count(opensearch, stack.index) == 12
    doc = opensearch.get(index=stack.index, id=keys[3])["_source"]
    assert doc["content"] == "本文"
    again = run_cli(stack.env, "replay-retries")
    assert again.returncode == 0 and '"found": 0' in again.stdout  # idempotent


@pytest.mark.stack(visibility_timeout=4)
def test_processing_slower_than_the_visibility_timeout_is_not_done_twice(
    stack: Any, sqs: Any, s3: Any, opensearch: Any, start_worker: Any
) -> None:
    keys = [f"slow/{i}.txt" for i in range(3)]
    upload(s3, stack.bucket, keys)
    ids = send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, k) for k in keys])
    # two competing workers; each extraction takes 10 s, 2.5 x the visibility timeout
    workers = [
        start_worker(stack.env, WORKER_TEST_EXTRACT_DELAY="10", WORKER_POLLERS="2")
        for _ in range(2)
    ]
    wait_until(lambda: sum(len(w.settled()) for w in workers) >= len(keys), 60, "all slow messages")
    wait_until(lambda: queue_counts(sqs, stack.queue_url) == (0, 0), 20, "an empty queue")
    settled = [line for w in workers for line in w.settled()]
    assert sorted(line["message_id"] for line in settled) == sorted(ids)  # once each
    assert all(line["receive_count"] == 1 for line in settled)
    assert all(line["seconds"] >= 10 for line in settled)
    assert index_count(opensearch, stack.index) == 3
    assert queue_counts(sqs, stack.dlq_url) == (0, 0)
    for worker in workers:
        assert worker.stop() == 0


@pytest.mark.stack(visibility_timeout=3)
def test_kill_9_mid_batch_then_restart_loses_nothing(
    stack: Any, sqs: Any, s3: Any, opensearch: Any, start_worker: Any
) -> None:
    keys = [f"batch/{i:03d}.txt" for i in range(40)]
    upload(s3, stack.bucket, keys)
    send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, k) for k in keys])
    first = start_worker(stack.env, WORKER_TEST_EXTRACT_DELAY="0.3", WORKER_CONCURRENCY="2")
    first.wait_settled(5)
    wait_until(lambda: queue_counts(sqs, stack.queue_url)[1] > 0, 10, "messages in flight")
    first.kill9()
    done_before = len(first.settled())
    assert done_before < len(keys)
    second = start_worker(stack.env)
    wait_until(
        lambda: queue_counts(sqs, stack.queue_url) == (0, 0), 60, "the restarted worker to finish"
    )
    indexed = set()
    for page in range(0, 100, 50):
        hits = opensearch.search(
            index=stack.index, body={"query": {"match_all": {}}, "size": 50, "from": page}
        )["hits"]["hits"]
        indexed.update(h["_id"] for h in hits)
    stored = {k.split("/", 2)[2][: -len(".json")] for k in retry_keys(s3, stack.bucket)}
    dead = drain_dlq(sqs, stack.dlq_url)
    accounted = indexed | stored
    assert accounted == set(keys), f"lost: {sorted(set(keys) - accounted)}; dlq: {len(dead)}"
    assert dead == []
    assert second.stop() == 0


def test_sigterm_drains_in_flight_work_and_exits_0(
    stack: Any, sqs: Any, s3: Any, opensearch: Any, start_worker: Any
) -> None:
    keys = [f"drain/{i}.txt" for i in range(4)]
    upload(s3, stack.bucket, keys)
    send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, k) for k in keys])
    worker = start_worker(stack.env, WORKER_TEST_EXTRACT_DELAY="3", WORKER_POLLERS="1")
    wait_until(lambda: queue_counts(sqs, stack.queue_url)[1] == 4, 20, "4 messages in flight")
    assert worker.stop(signal.SIGTERM) == 0
    assert len(worker.settled()) == 4  # finished, not abandoned
    (stopped,) = worker.events("stopped")
    assert stopped["drained"] is True
    assert queue_counts(sqs, stack.queue_url) == (0, 0)
    assert index_count(opensearch, stack.index) == 4


def test_sigterm_past_the_grace_period_releases_what_is_left(
    stack: Any, sqs: Any, s3: Any, start_worker: Any
) -> None:
    keys = [f"stuck/{i}.txt" for i in range(3)]
    upload(s3, stack.bucket, keys)
    send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, k) for k in keys])
    worker = start_worker(
        stack.env,
        WORKER_TEST_EXTRACT_DELAY="30",
        WORKER_SHUTDOWN_GRACE_SECONDS="1",
        WORKER_POLLERS="1",
    )
    wait_until(lambda: queue_counts(sqs, stack.queue_url)[1] == 3, 20, "3 messages in flight")
    assert worker.stop(signal.SIGINT, timeout=20) == 0
    (stopped,) = worker.events("stopped")
    assert (stopped["drained"], stopped["released"]) == (False, 3)
    assert worker.settled() == []
    # released with visibility 0: available to the next worker at once, long before 600 s
    assert queue_counts(sqs, stack.queue_url) == (3, 0)


def test_each_poller_logs_polled_after_a_short_first_receive(stack: Any, start_worker: Any) -> None:
    """Deploy verification keys on "polled": one per poller, before any long poll ends.

    With a 20 s long poll on an empty queue and statistics only every 60 s, the
    events can only arrive within the wait below if the first receive is short.
    """
    worker = start_worker(
        stack.env,
        WORKER_CONCURRENCY="2",
        SQS_WAIT_TIME_SECONDS="20",
        WORKER_STATS_INTERVAL_SECONDS="60",
    )
    polled = wait_until(
        lambda: len(worker.events("polled")) >= 2 and worker.events("polled"),
        15,
        "a polled event from each of the 2 pollers",
    )
    assert sorted(e["poller"] for e in polled) == ["poller-0", "poller-1"]
    assert all(e["received"] == 0 for e in polled)
    assert worker.events("stats") == []
    assert worker.stop() == 0


def test_health_and_metrics(
    stack: Any, sqs: Any, s3: Any, cloudwatch: Any, start_worker: Any
) -> None:
    healthy = run_cli(stack.env, "health", "--verbose")
    assert healthy.returncode == 0, healthy.stdout
    assert [line.split(":")[0] for line in healthy.stdout.splitlines()] == [
        "ok sqs",
        "ok sqs-dlq",
        "ok s3",
        "ok opensearch",
    ]
    broken = run_cli({**stack.env, "S3_BUCKET": f"{stack.bucket}-missing"}, "health")
    assert broken.returncode == 1
    assert broken.stdout.startswith("FAIL s3:")
    assert len(broken.stdout.splitlines()) == 1
    namespace = f"CISFileSearch/Test/{stack.name}"
    upload(s3, stack.bucket, ["m.txt"])
    send(sqs, stack.queue_url, s3_event_body(stack.bucket, "m.txt"))
    send(sqs, stack.queue_url, "not json")
    worker = start_worker(
        stack.env,
        WORKER_METRICS="cloudwatch",
        WORKER_METRICS_INTERVAL_SECONDS="1",
        CLOUDWATCH_NAMESPACE=namespace,
    )
    worker.wait_settled(2)
    wait_until(lambda: worker.events("stats"), 10, "a statistics line")

    def names() -> set[str]:
        metrics = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
        return {m["MetricName"] for m in metrics}

    wait_until(
        lambda: {"MessagesSucceeded", "MessagesFailed", "ProcessingSeconds"} <= names(),
        20,
        "CloudWatch metrics",
    )
    assert worker.stop() == 0


def test_message_received_by_a_long_poll_during_shutdown_is_processed_not_bounced(
    stack: Any, sqs: Any, s3: Any, opensearch: Any, start_worker: Any
) -> None:
    """Releasing it instead would spend a receive per poller: one restart could dead-letter it."""
    upload(s3, stack.bucket, ["shutdown/first.txt", "shutdown/late.txt"])
    worker = start_worker(stack.env, SQS_WAIT_TIME_SECONDS="10", WORKER_POLLERS="4")
    send(sqs, stack.queue_url, s3_event_body(stack.bucket, "shutdown/first.txt"))
    worker.wait_settled(1)  # the pollers are in their long polls now
    worker.proc.send_signal(signal.SIGTERM)
    send(sqs, stack.queue_url, s3_event_body(stack.bucket, "shutdown/late.txt"))
    assert worker.stop(timeout=60) == 0
    late = [e for e in worker.settled() if e["key"] == "shutdown/late.txt"]
    assert [(e["outcome"], e["receive_count"]) for e in late] == [("indexed", 1)], worker.tail()
    assert queue_counts(sqs, stack.queue_url) == (0, 0)
    assert index_count(opensearch, stack.index) == 2
