#!/usr/bin/env python3
"""Wall time of the operations playbooks on the sandbox, side by side in one run.

1. ``alarms.yml``: first apply of the seven alarms, a repeat (must change nothing),
   removal (``cloudwatch_alarms_state=absent``); unique alarm prefix and names.
2. ``purge_queue.yml`` on N messages (default 1,000) of a unique queue: wall time and
   messages/s, next to (b) a bare boto3 loop doing the same archive work (receive 10,
   one PutObject per message, then PurgeQueue) on a second queue of the same size, so the
   playbook's overhead (Ansible, the independent S3 listing, the checks) is visible.

No targets are set by the issue for these; the figures are for operators (how long a
purge of the incident report's 8,158 messages would take) and to notice regressions. Prints a table
and appends it, with the command and the machine, to docs/benchmarks.md (unless
--no-append). Every queue, bucket and alarm it makes is removed afterwards.

    .venv/bin/python bench/ops_playbooks.py [--messages 1000] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=20)


def _stack() -> dict[str, Any]:
    path = Path(os.environ.get("SANDBOX_DIR", REPO / ".sandbox")) / "stack.json"
    if not path.is_file():
        subprocess.run([str(REPO / "sandbox" / "ctl"), "up"], check=True)
    return dict(json.loads(path.read_text()))


def _env(stack: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        **stack["env"],
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }


def _playbook(name: str, extra: dict[str, Any], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "ansible-playbook"),
            f"playbooks/{name}",
            "-e",
            json.dumps(extra),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}")
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP") :]
    changed = recap.split("changed=")[1].split()[0] if "changed=" in recap else "?"
    return seconds, changed


def _client(stack: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack["aws_endpoint"],
        region_name=stack["region"],
        aws_access_key_id=stack["env"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack["env"]["AWS_SECRET_ACCESS_KEY"],
        config=CONFIG,
    )


def _fill(sqs: Any, url: str, count: int) -> None:
    def batch(start: int) -> None:
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps({"n": start + i, "key": f"docs/報告 {start + i}.pdf"}),
            }
            for i in range(min(10, count - start))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(batch, range(0, count, 10)))


def _bare_archive_then_purge(sqs: Any, s3: Any, url: str, bucket: str) -> int:
    """(b): receive 10 at a time, one PutObject each, until empty; then PurgeQueue."""
    archived = 0
    empty = 0
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    while empty < 2:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=900
        ).get("Messages", [])
        if not messages:
            empty += 1
            continue
        empty = 0
        for m in messages:
            s3.put_object(
                Bucket=bucket,
                Key=f"bare-archive/{day}/{m['MessageId']}.json",
                Body=json.dumps({"message_id": m["MessageId"], "body": m["Body"]}),
            )
            archived += 1
    sqs.purge_queue(QueueUrl=url)
    return archived


def _cleanup(sqs: Any, s3: Any, urls: list[str], bucket: str) -> None:
    for url in urls:
        sqs.delete_queue(QueueUrl=url)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def main() -> int:
    """Run the measurements; print and append the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--no-append", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    stack = _stack()
    env = _env(stack)
    tag = uuid.uuid4().hex[:8]
    rows: list[tuple[str, str, float, str]] = []

    alarm_vars = {
        "cloudwatch_alarms_name_prefix": f"bench-{tag}-",
        "cloudwatch_alarms_queue_name": f"bench-{tag}-queue",
        "cloudwatch_alarms_dlq_name": f"bench-{tag}-dlq",
        "cloudwatch_alarms_dashboard_name": f"bench-{tag}-dashboard",
    }
    for label, extra in (
        ("alarms.yml, first apply (7 alarms + dashboard)", {}),
        ("alarms.yml, repeat (no change)", {}),
        ("alarms.yml, state=absent", {"cloudwatch_alarms_state": "absent"}),
    ):
        seconds, changed = _playbook("alarms.yml", {**alarm_vars, **extra}, env)
        rows.append((label, "-", seconds, f"changed={changed}"))

    sqs, s3 = _client(stack, "sqs"), _client(stack, "s3")
    bucket = f"bench-{tag}"
    s3.create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": stack["region"]}
    )
    urls = [sqs.create_queue(QueueName=f"bench-{tag}-{n}")["QueueUrl"] for n in ("purge", "bare")]
    try:
        _fill(sqs, urls[0], args.messages)
        _fill(sqs, urls[1], args.messages)
        seconds, changed = _playbook(
            "purge_queue.yml",
            {"purge_queue_name": urls[0], "confirm_purge": urls[0], "purge_queue_bucket": bucket},
            env,
        )
        purge_seconds = seconds
        rows.append(
            (
                "purge_queue.yml (archive + check + purge)",
                str(args.messages),
                seconds,
                f"{args.messages / seconds:.0f} msg/s",
            )
        )
        started = time.monotonic()
        archived = _bare_archive_then_purge(sqs, s3, urls[1], bucket)
        bare = time.monotonic() - started
        rows.append(
            (
                "(b) bare boto3: receive 10, PutObject each, PurgeQueue",
                str(archived),
                bare,
                f"{archived / bare:.0f} msg/s",
            )
        )
    finally:
        _cleanup(sqs, s3, urls, bucket)

    machine = (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {stack.get('aws_emulator', 'localstack')}"
    )
    load = os.getloadavg()[0]
    table = [
        "| run | messages | seconds | note |",
        "| --- | ---: | ---: | --- |",
        *[f"| {label} | {n} | {seconds:.1f} | {note} |" for label, n, seconds, note in rows],
    ]
    text = (
        f"\n## Operations playbooks ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Command: `.venv/bin/python bench/ops_playbooks.py --messages {args.messages}`  \n"
        f"Machine: {machine}; load average {load:.1f} at the end (shared cores)\n\n"
        + "\n".join(table)
        + f"\n\n- purge_queue.yml / bare loop: {bare / purge_seconds:.2f}x the bare loop's speed"
        f" (the playbook adds Ansible start-up, an independent S3 listing of the archive and the"
        f" queue checks); at this rate the incident report's 8,158 messages take about"
        f" {8158 / (args.messages / purge_seconds) / 60:.0f} min.\n"
    )
    print(text)
    if not args.no_append:
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
