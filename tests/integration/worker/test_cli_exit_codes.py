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


def test_progress_bar_on_a_tty_log_lines_otherwise(stack: Any, sqs: Any) -> None:
    import os
    import pty
    import threading

    seed(sqs, stack.dlq_url, [f"junk {i}" for i in range(25)])
    argv = [str(WORKER), "recover-dlq", "--json", "--dry-run", "--batch-size", "5"]
    argv += ["--strategy", "archive-only", "--no-dedupe", "--threads", "1"]

    # stderr on a pseudo-terminal: a tqdm bar, no progress log lines; stdout still JSON
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the other end is closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        done = subprocess.run(
            argv,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        os.close(slave)
        reader.join(timeout=30)
        os.close(master)
    tty = b"".join(chunks).decode("utf-8", "replace")
    assert done.returncode == 0, tty
    assert json.loads(done.stdout)["examined"] == 25
    assert "recover-dlq" in tty and "25/25" in tty and "100%|" in tty
    assert '"event": "progress"' not in tty

    # stderr a pipe: progress log lines, no bar
    rc, report, err = recover_dlq(stack.env, *argv[3:])
    assert rc == 0 and report["examined"] == 25
    lines = [json.loads(x) for x in err.splitlines() if '"event": "progress"' in x]
    assert lines[0]["done"] == 0 and lines[-1]["done"] == 25 and lines[-1]["total"] == 25
    assert "%|" not in err
