"""playbooks/dlq_recovery.yml through ansible-playbook on the local stack (LocalStack, osmem).

The seed's scenario: 8,158 messages in a DLQ (already indexed, recoverable and
poison); one run leaves the DLQ empty with every message indexed or archived,
counted; a second run changes nothing. Each test has its own queue pair, bucket
and index (the ``stack`` fixture), passed to the playbook as extra vars.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playbook_helpers import REPO, load_scenario, run_playbook

PLAYBOOK = REPO / "playbooks" / "dlq_recovery.yml"
scenario_lib = load_scenario()

pytestmark = pytest.mark.sandbox


def extra_vars(stack: Any, **more: Any) -> dict[str, Any]:
    return {
        "dlq_recovery_dlq": stack.dlq_url,
        "dlq_recovery_bucket": stack.bucket,
        "dlq_recovery_opensearch_index": stack.index,
        **more,
    }


def archived(s3: Any, bucket: str) -> list[dict[str, Any]]:
    records = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="dlq-archive/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            records.append(json.loads(body))
    return records


def indexed_ids(opensearch: Any, index: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 1000):
        response = opensearch.mget(
            index=index, body={"ids": ids[start : start + 1000]}, _source=False
        )
        found.update(d["_id"] for d in response["docs"] if d.get("found"))
    return found


@pytest.mark.slow
@pytest.mark.timeout(1800)  # seeding and recovering 8,158 messages: minutes under load
def test_seed_scenario_8158_messages_none_lost(
    stack: Any, sqs: Any, s3: Any, opensearch: Any
) -> None:
    scenario = scenario_lib.build(stack.bucket)
    assert scenario.total == 8158
    scenario_lib.seed(
        scenario, sqs=sqs, s3=s3, opensearch=opensearch, dlq_url=stack.dlq_url, index=stack.index
    )
    scenario_lib.wait_for(
        lambda: scenario_lib.depth(sqs, stack.dlq_url) == (8158, 0), 60, "the seeded DLQ"
    )

    first = run_playbook(PLAYBOOK, extra_vars(stack))
    assert first.rc == 0, first.failures()
    recovery = first.result("Recover the messages of the dead-letter queue")
    assert recovery["changed"] is True
    counts = recovery["counts"]
    assert counts == {
        "deduplicated": len(scenario.indexed),
        "redriven": 0,
        "reindexed": len(scenario.recoverable),
        "retry_stored": 0,
        "archived": scenario.poison,
        "released": 0,
    }, recovery["samples"]
    assert recovery["examined"] == 8158 and recovery["delete_failed"] == 0

    # the DLQ is empty: nothing visible, nothing in flight
    assert scenario_lib.depth(sqs, stack.dlq_url) == (0, 0)
    # every message is accounted for: indexed ...
    keys = scenario.indexed + scenario.recoverable
    assert indexed_ids(opensearch, stack.index, keys) == set(keys)
    # ... or archived, once each, with its body and reason
    records = archived(s3, stack.bucket)
    assert len(records) == scenario.poison
    assert len({r["message_id"] for r in records}) == scenario.poison
    missing_keys = {f"s3://{stack.bucket}/{k}" for k in scenario.missing}
    reasons = [r["reason"] for r in records]
    assert sum(1 for r in reasons if r.startswith("object-not-found")) == len(scenario.missing)
    assert all(
        any(m in r for m in missing_keys) for r in reasons if r.startswith("object-not-found")
    )
    archived_bodies = sorted(r["body"] for r in records if not r["reason"].startswith("object-not"))
    assert archived_bodies == sorted(scenario.garbage)

    second = run_playbook(PLAYBOOK, extra_vars(stack))
    assert second.rc == 0, second.failures()
    assert second.stats["changed"] == 0
    assert second.result("Recover the messages of the dead-letter queue")["examined"] == 0


def test_check_mode_is_a_dry_run(stack: Any, sqs: Any, s3: Any, opensearch: Any) -> None:
    scenario = scenario_lib.build(stack.bucket, total=60)
    scenario_lib.seed(
        scenario, sqs=sqs, s3=s3, opensearch=opensearch, dlq_url=stack.dlq_url, index=stack.index
    )
    run = run_playbook(PLAYBOOK, extra_vars(stack), check=True)
    assert run.rc == 0, run.failures()
    recovery = run.result("Recover the messages of the dead-letter queue")
    assert recovery["changed"] is True and recovery["dry_run"] is True
    assert recovery["examined"] == 60
    assert recovery["counts"]["deduplicated"] == len(scenario.indexed)
    # the messages it looked at are visible again at once, nothing archived
    assert scenario_lib.depth(sqs, stack.dlq_url) == (60, 0)
    assert archived(s3, stack.bucket) == []


def test_redrive_strategy_and_first_batch(stack: Any, sqs: Any, s3: Any, opensearch: Any) -> None:
    scenario = scenario_lib.build(stack.bucket, total=40, poison_share=0.0)
    scenario_lib.seed(
        scenario, sqs=sqs, s3=s3, opensearch=opensearch, dlq_url=stack.dlq_url, index=stack.index
    )
    scenario_lib.wait_for(lambda: scenario_lib.depth(sqs, stack.dlq_url) == (40, 0), 30, "seed")
    one = run_playbook(
        PLAYBOOK,
        extra_vars(
            stack,
            dlq_recovery_strategy="redrive",
            dlq_recovery_batch_size=5,
            dlq_recovery_max_batches=1,
        ),
    )
    assert one.rc == 0, one.failures()
    assert one.result("Recover the messages of the dead-letter queue")["examined"] == 5
    rest = run_playbook(PLAYBOOK, extra_vars(stack, dlq_recovery_strategy="redrive"))
    assert rest.rc == 0, rest.failures()
    recovery = rest.result("Recover the messages of the dead-letter queue")
    assert recovery["source_queue_url"] == stack.queue_url
    assert scenario_lib.depth(sqs, stack.dlq_url) == (0, 0)
    # the recoverable ones are back on the source queue, with the recovery counter
    scenario_lib.wait_for(
        lambda: scenario_lib.depth(sqs, stack.queue_url)[0] == len(scenario.recoverable),
        30,
        "the redriven messages on the source queue",
    )
    got = sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert {m["MessageAttributes"]["dlq-recoveries"]["StringValue"] for m in got} == {"1"}


def test_native_strategy_moves_with_sqs_move_task(stack: Any, sqs: Any) -> None:
    for chunk in range(3):
        sqs.send_message_batch(
            QueueUrl=stack.dlq_url,
            Entries=[{"Id": str(i), "MessageBody": f"m{chunk}-{i}"} for i in range(10)],
        )
    run = run_playbook(
        PLAYBOOK,
        extra_vars(stack, dlq_recovery_strategy="native", dlq_recovery_queue=stack.queue_url),
    )
    assert run.rc == 0, run.failures()
    native = run.result("Recover the messages of the dead-letter queue")
    assert native["changed"] is True
    assert native["native"]["started"] is True or native["native"]["running"] is True
    scenario_lib.wait_for(
        lambda: scenario_lib.depth(sqs, stack.queue_url)[0] == 30, 30, "the moved messages"
    )
    assert scenario_lib.depth(sqs, stack.dlq_url) == (0, 0)
    again = run_playbook(
        PLAYBOOK,
        extra_vars(stack, dlq_recovery_strategy="native", dlq_recovery_queue=stack.queue_url),
    )
    assert again.rc == 0 and again.stats["changed"] == 0


def test_missing_bucket_is_refused_before_any_aws_call(stack: Any) -> None:
    run = run_playbook(PLAYBOOK, extra_vars(stack, dlq_recovery_bucket=""))
    assert run.rc != 0
    assert "Set dlq_recovery_bucket" in run.result("Check the variables")["msg"]
