"""``filesearch-worker recover-dlq`` as a real process against the local stack: the partial
exit code (3), JSON on stdout for it, and a dry run that leaves the DLQ as it found it."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from worker_it_helpers import WORKER, s3_event_body, wait_until

pytestmark = pytest.mark.sandbox


def depth(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def seed(sqs: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
        )
    wait_until(lambda: depth(sqs, url) == (len(bodies), 0), 30, "the DLQ filled")


def recover_dlq(env: dict[str, str], *flags: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [str(WORKER), "recover-dlq", "--json", "--progress", "never", *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def test_messages_left_for_a_later_run_exit_3(stack: Any, sqs: Any) -> None:
    seed(sqs, stack.dlq_url, [f"junk {i}" for i in range(12)])
    env = {**stack.env, "S3_BUCKET": f"{stack.bucket}-missing"}  # every archive PUT fails
    rc, report, err = recover_dlq(env, "--strategy", "archive-only", "--no-dedupe")
    assert rc == 3, err
    assert report["exit_code"] == 3 and report["error"] is None
    assert report["counts"]["released"] == 12 and report["counts"]["archived"] == 0
    assert any("NoSuchBucket" in e for e in report["errors"])
    assert depth(sqs, stack.dlq_url) == (12, 0)  # released at the end of the run


def test_dry_run_leaves_the_dlq_as_it_found_it(stack: Any, sqs: Any, s3: Any) -> None:
    bodies = [s3_event_body(stack.bucket, f"docs/{i}.txt") for i in range(15)]
    seed(sqs, stack.dlq_url, bodies + ["not json"] * 5)
    before = depth(sqs, stack.dlq_url)
    rc, report, err = recover_dlq(stack.env, "--dry-run", "--strategy", "redrive")
    assert rc == 0, err
    assert report["dry_run"] is True and report["examined"] == 20
    assert report["counts"]["redriven"] == 15 and report["counts"]["archived"] == 5
    assert depth(sqs, stack.dlq_url) == before == (20, 0)  # visible again, none deleted
    assert depth(sqs, stack.queue_url) == (0, 0)  # nothing sent back
    assert s3.list_objects_v2(Bucket=stack.bucket, Prefix="dlq-archive/")["KeyCount"] == 0
