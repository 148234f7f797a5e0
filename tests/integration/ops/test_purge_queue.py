"""playbooks/purge_queue.yml against LocalStack: refusals, archive before purge, counts.

Every test has its own queue and bucket (the ``stack`` fixture). Queue names are
passed as URLs where the name would contain the sandbox's dummy secret "test"
(Ansible masks that string in results).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ops_helpers import run_playbook, wait_for

pytestmark = pytest.mark.sandbox

BODIES = [
    json.dumps({"Records": [{"s3": {"object": {"key": f"docs/報告書 {i}.pdf"}}}], "n": i})
    for i in range(23)
] + ["not json at all", ""]


def _send_all(sqs: Any, queue_url: str, bodies: list[str]) -> dict[str, str]:
    """Send ``bodies``; return message id -> body."""
    sent: dict[str, str] = {}
    for i, body in enumerate(bodies):
        response = sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=body or " ",
            MessageAttributes={"seq": {"DataType": "Number", "StringValue": str(i)}},
        )
        sent[response["MessageId"]] = body or " "
    return sent


def _total(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def _archive(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    objects: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix="purge-archive/"
    ):
        for item in page.get("Contents", []):
            record = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            objects[item["Key"]] = record
    return objects


def _purge(sandbox: Any, stack: Any, **extra: Any) -> Any:
    variables = {
        "purge_queue_name": stack.queue_url,
        "purge_queue_bucket": stack.bucket,
        "purge_queue_visibility_timeout": 120,
        **extra,
    }
    return run_playbook("purge_queue.yml", sandbox.env, variables)


def test_refuses_without_confirmation(sandbox: Any, sqs: Any, s3: Any, stack: Any) -> None:
    _send_all(sqs, stack.queue_url, BODIES[:5])
    run = _purge(sandbox, stack)
    assert run.rc != 0
    assert "Refusing to purge" in run.output and "confirm_purge=" in run.output
    assert _total(sqs, stack.queue_url) == 5
    assert _archive(s3, stack.bucket) == {}


def test_refuses_a_wrong_confirmation(sandbox: Any, sqs: Any, s3: Any, stack: Any) -> None:
    _send_all(sqs, stack.queue_url, BODIES[:5])
    # the queue's name instead of the URL that was given, and a near miss: both refused
    for wrong in (stack.name, stack.queue_url + " "):
        run = _purge(sandbox, stack, confirm_purge=wrong)
        assert run.rc != 0
        assert "Refusing to purge" in run.output
    assert _total(sqs, stack.queue_url) == 5
    assert _archive(s3, stack.bucket) == {}


def test_archives_every_message_then_purges(sandbox: Any, sqs: Any, s3: Any, stack: Any) -> None:
    sent = _send_all(sqs, stack.queue_url, BODIES)
    run = _purge(sandbox, stack, confirm_purge=stack.queue_url)
    assert run.rc == 0, run.output
    archive = _archive(s3, stack.bucket)
    assert len(archive) == len(sent)
    for key, record in archive.items():
        assert key.endswith(f"/{record['message_id']}.json")
        assert key.split("/")[1] == record["archived_at"][:10]
        assert record["body"] == sent[record["message_id"]]
        assert record["reason"] == "purge"
        assert "seq" in record["message_attributes"]
        assert int(record["attributes"]["ApproximateReceiveCount"]) >= 1
    assert {r["message_id"] for r in archive.values()} == set(sent)
    wait_for(lambda: _total(sqs, stack.queue_url) == 0, timeout=60, what="the queue to be empty")
    assert f'"archived": {len(sent)}' in run.output


def test_nothing_is_purged_when_the_archive_fails(
    sandbox: Any, sqs: Any, s3: Any, stack: Any
) -> None:
    _send_all(sqs, stack.queue_url, BODIES[:12])
    run = _purge(
        sandbox, stack, confirm_purge=stack.queue_url, purge_queue_bucket=f"{stack.bucket}-missing"
    )
    assert run.rc != 0
    assert "Archiving failed, nothing was purged" in run.output and "NoSuchBucket" in run.output
    assert _total(sqs, stack.queue_url) == 12


def test_refuses_when_another_consumer_holds_messages(
    sandbox: Any, sqs: Any, s3: Any, stack: Any
) -> None:
    sent = _send_all(sqs, stack.queue_url, BODIES[:10])
    held = sqs.receive_message(
        QueueUrl=stack.queue_url, MaxNumberOfMessages=3, VisibilityTimeout=600
    )
    held_ids = {m["MessageId"] for m in held["Messages"]}
    assert held_ids
    run = _purge(sandbox, stack, confirm_purge=stack.queue_url)
    assert run.rc != 0
    assert "not archived" in run.output and "stop the producers and the workers" in run.output
    assert _total(sqs, stack.queue_url) == len(sent)
    archived = {r["message_id"] for r in _archive(s3, stack.bucket).values()}
    assert archived == set(sent) - held_ids


def test_check_mode_is_refused(sandbox: Any, sqs: Any, s3: Any, stack: Any) -> None:
    _send_all(sqs, stack.queue_url, BODIES[:3])
    run = run_playbook(
        "purge_queue.yml",
        sandbox.env,
        {
            "purge_queue_name": stack.queue_url,
            "purge_queue_bucket": stack.bucket,
            "confirm_purge": stack.queue_url,
        },
        check=True,
    )
    assert run.rc != 0
    assert "has no dry run" in run.output
    assert _total(sqs, stack.queue_url) == 3
    assert _archive(s3, stack.bucket) == {}
