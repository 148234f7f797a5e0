"""stress_test.yml through the deployed fleet at a small N, and its failure path."""

from __future__ import annotations

from typing import Any

import pytest
from backlog_it_helpers import run_playbook

pytestmark = [pytest.mark.sandbox, pytest.mark.hosts]

LOAD_TASK = "Send the files through the fleet and wait for them"


def leftovers(s3: Any, opensearch: Any, bucket: str, index: str, keys: list[str]) -> list[str]:
    """What a run left behind: its files, retry entries and documents."""
    left = [
        o["Key"]
        for prefix in ("stress-test/", "retry-index/")
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        if any(k in o["Key"] for k in keys)
    ]
    if keys and opensearch.indices.exists(index=index):
        docs = opensearch.mget(index=index, body={"ids": keys}, _source=False)["docs"]
        left += [d["_id"] for d in docs if d.get("found")]
    return left


def test_fifty_files_through_the_fleet(sandbox: Any, s3: Any, opensearch: Any) -> None:
    run = run_playbook("stress_test.yml", sandbox.env, {"stress_count": 50, "stress_timeout": 180})
    assert run.rc == 0, run.failures()
    load = run.result(LOAD_TASK)
    assert load["sent"] == 50 and load["indexed"] == 50
    assert load["error_rate_percent"] == 0.0 and not load["timed_out"]
    assert load["rate_per_second"] > 0
    table = run.result("Show the results")["msg"]
    assert any(line.startswith("error rate") and "0.00 %" in line for line in table)
    memory = [line for line in table if line.startswith(("worker1 ", "worker2 "))]
    assert len(memory) >= 2 and all(" KiB" in line and "RESTARTED" not in line for line in memory)
    assert run.result("Remove what the run created")["removed"]["objects"] == 50
    assert run.result("Remove what the run created")["removed"]["documents"] == 50
    keys = [f"stress-test/{load['run_id']}/file-{i:05d}.txt" for i in range(50)]
    assert leftovers(s3, opensearch, sandbox.bucket, sandbox.opensearch_index, keys) == []


def test_a_queue_nobody_consumes_fails_the_test_and_is_cleaned_up(
    sandbox: Any, stack: Any, s3: Any, sqs: Any, opensearch: Any
) -> None:
    run = run_playbook(
        "stress_test.yml",
        sandbox.env,
        {
            "stress_count": 10,
            "stress_timeout": 3,
            "stress_queue": stack.queue_url,
            "stress_dlq": stack.dlq_url,
            "stress_bucket": stack.bucket,
            "stress_opensearch_index": stack.index,
        },
    )
    assert run.rc != 0
    load = run.result(LOAD_TASK)
    assert (load["indexed"], load["unaccounted"], load["timed_out"]) == (0, 10, True)
    assert "Error rate 100.0 %" in run.failures()
    removed = run.result("Remove what the run created")["removed"]
    assert removed["objects"] == 10 and removed["queue_messages"] == 10
    attrs = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    keys = [f"stress-test/{load['run_id']}/file-{i:05d}.txt" for i in range(10)]
    assert leftovers(s3, opensearch, stack.bucket, stack.index, keys) == []
