"""queue_status.yml, cloudwatch_dashboard and index_retry_replay through ansible-playbook
on the local stack (LocalStack, osmem-server), each test with its own resources."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playbook_helpers import REPO, run_playbook

from filesearch_worker.retry_store import RetryStore

QUEUE_STATUS = REPO / "playbooks" / "queue_status.yml"
MODULES = Path(__file__).with_name("playbooks") / "dashboard_and_replay.yml"

pytestmark = pytest.mark.sandbox


def test_queue_status_reports_and_fails_on_unhealthy(stack: Any, sqs: Any) -> None:
    sqs.send_message_batch(
        QueueUrl=stack.dlq_url,
        Entries=[{"Id": str(i), "MessageBody": f"dead {i}"} for i in range(3)],
    )
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="live")
    base = {"queue_status_queue": stack.queue_url, "queue_status_cloudwatch_age": False}
    run = run_playbook(QUEUE_STATUS, base)
    assert run.rc == 0, run.failures()
    status = run.result("Read the queue and its dead-letter queue")
    assert status["changed"] is False
    assert status["queue"]["visible"] == 1
    assert status["queue"]["visibility_timeout"] == stack.visibility_timeout
    assert status["dlq"]["visible"] == 3  # found from the RedrivePolicy
    assert status["healthy"] is True
    assert run.stats["changed"] == 0
    # capacity advice: LocalStack has no NumberOfMessagesDeleted points, so the
    # module samples the depth; nobody consumes, so the rate is 0 and no ETA
    capacity = run_playbook(
        QUEUE_STATUS,
        {
            **base,
            "queue_status_current_workers": 2,
            "queue_status_rate_per_worker": 0.5,
            "queue_status_target_minutes": 1,
            "queue_status_min_workers": 1,
            "queue_status_rate_sample_seconds": 1,
        },
    )
    assert capacity.rc == 0, capacity.failures()
    cap = capacity.result("Read the queue and its dead-letter queue")["capacity"]
    assert (cap["backlog"], cap["rate_per_minute"], cap["rate_source"]) == (1, 0.0, "samples")
    assert cap["drain_eta_minutes"] is None
    assert cap["rate_per_worker_source"] == "given"
    assert cap["recommended_workers"] == 2  # ceil(1 / (0.5 * 1)), above min_workers 1

    failing = run_playbook(
        QUEUE_STATUS,
        {**base, "queue_status_max_dlq": 2, "queue_status_fail_on_unhealthy": True},
    )
    assert failing.rc == 2
    result = failing.result("Read the queue and its dead-letter queue")
    assert result["failed"] is True
    # no_log masks the sandbox's dummy secret where it appears (it used to be "test")
    assert [p.replace("********", "test") for p in result["problems"]] == [
        f"{stack.name}-dlq: 3 messages in the DLQ (over max_dlq 2)"
    ]


def test_cloudwatch_dashboard_lifecycle(sandbox: Any, cloudwatch: Any) -> None:
    name = f"it-{uuid.uuid4().hex[:8]}"
    try:
        first = run_playbook(MODULES, {"it_dashboard": name, "it_phase": "create"})
        assert first.rc == 0, first.failures()
        assert first.stats["changed"] == 1
        body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
        assert body["widgets"][0]["properties"]["title"] == "Queue depth"
        same = run_playbook(MODULES, {"it_dashboard": name, "it_phase": "create"})
        assert same.rc == 0 and same.stats["changed"] == 0
        retitled = run_playbook(
            MODULES, {"it_dashboard": name, "it_phase": "update", "it_title": "DLQ"}
        )
        assert retitled.stats["changed"] == 1
        body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
        assert body["widgets"][0]["properties"]["title"] == "DLQ"
        gone = run_playbook(MODULES, {"it_dashboard": name, "it_phase": "delete"})
        assert gone.rc == 0 and gone.stats["changed"] == 1
        names = [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]]
        assert name not in names
        again = run_playbook(MODULES, {"it_dashboard": name, "it_phase": "delete"})
        assert again.rc == 0 and again.stats["changed"] == 0
    finally:
        cloudwatch.delete_dashboards(DashboardNames=[name])


def test_index_retry_replay(stack: Any, s3: Any, opensearch: Any) -> None:
    store = RetryStore(s3, stack.bucket)
    day = datetime(2026, 11, 20, tzinfo=UTC)
    keys = [f"docs/{i} 報告.txt" for i in range(12)]
    for key in keys:
        store.put({"file_key": key, "content": key}, key, "opensearch-unavailable", now=day)
    extra = {"it_bucket": stack.bucket, "it_index": stack.index, "it_phase": "replay"}
    run = run_playbook(MODULES, extra)
    assert run.rc == 0, run.failures()
    replay = run.result("Replay the retry store")
    assert (replay["changed"], replay["found"], replay["indexed"]) == (True, 12, 12)
    opensearch.indices.refresh(index=stack.index)
    docs = opensearch.mget(index=stack.index, body={"ids": keys}, _source=False)["docs"]
    assert all(d["found"] for d in docs)
    assert list(store.iter_entries()) == []
    again = run_playbook(MODULES, extra)
    assert again.rc == 0 and again.stats["changed"] == 0
