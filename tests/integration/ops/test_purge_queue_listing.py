"""purge_queue.yml's archive listing: every key (past 1,000), without a deprecated module.

The playbook compares the message ids it archived with an independent listing of
``s3://<bucket>/<prefix>/<date>/``. ``amazon.aws.s3_object_info`` (without
``max_keys``) pages through ListObjectsV2; one call returns at most 1,000 keys.
Here 1,050 other objects sort before the real archive keys under the same prefix,
so a listing that stopped at one page would miss every archived message and
refuse the purge.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from ops_helpers import run_playbook, wait_for

pytestmark = pytest.mark.sandbox

PREFIX = "purge-archive"
# "!" sorts before every character of a message id (hex digits and "-").
DECOYS = 1050


def _send(sqs: Any, queue_url: str, count: int) -> set[str]:
    return {
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"n": i}))["MessageId"]
        for i in range(count)
    }


def _visible_and_in_flight(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def _purge(sandbox: Any, stack: Any) -> Any:
    return run_playbook(
        "purge_queue.yml",
        sandbox.env,
        {
            "purge_queue_name": stack.queue_url,
            "purge_queue_bucket": stack.bucket,
            "purge_queue_archive_prefix": PREFIX,
            "purge_queue_visibility_timeout": 120,
            "confirm_purge": stack.queue_url,
        },
    )


def test_purges_when_the_archive_prefix_holds_more_than_1000_keys(
    sandbox: Any, sqs: Any, s3: Any, stack: Any
) -> None:
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda i: s3.put_object(
                    Bucket=stack.bucket, Key=f"{PREFIX}/{date}/!decoy-{i:05d}.json", Body=b"{}"
                ),
                range(DECOYS),
            )
        )
    sent = _send(sqs, stack.queue_url, 3)

    run = _purge(sandbox, stack)

    assert run.rc == 0, run.output[-3000:]
    assert '"archived": 3' in run.output
    keys = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=stack.bucket, Prefix=f"{PREFIX}/"
        )
        for item in page.get("Contents", [])
    }
    assert len(keys) == DECOYS + len(sent)
    assert {f"{PREFIX}/{date}/{message_id}.json" for message_id in sent} <= keys
    wait_for(
        lambda: _visible_and_in_flight(sqs, stack.queue_url) == 0,
        timeout=60,
        what="the purged queue to be empty",
    )


def test_the_listing_uses_no_deprecated_module(sandbox: Any, sqs: Any, stack: Any) -> None:
    _send(sqs, stack.queue_url, 2)

    run = _purge(sandbox, stack)

    assert run.rc == 0, run.output[-3000:]
    assert "DEPRECATION WARNING" not in run.output, run.output[-3000:]
