#!/usr/bin/env python3
"""Wall time of the deploy playbooks on the sandbox's two hosts.

Measures, in one run and side by side:

1. the first deploy to worker1 + worker2 (build cached or not, fresh venvs),
2. a repeat deploy of the same release (must change nothing),
3. ``rollback.yml`` after a second release (v2) was deployed.

Targets (issue 5): the no-change repeat under half the first deploy; the
rollback under 20 s. Uses a private layout on the hosts (its own base dir,
unit, environment file, backups) and its own queue, DLQ and bucket on the
sandbox's LocalStack, all removed afterwards. Prints a table and appends it
to docs/benchmarks.md with the command and the machine.

    .venv/bin/python bench/deploy_times.py [--no-append]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
HOSTS = ("worker1", "worker2")


def _stack() -> dict[str, Any]:
    path = Path(os.environ.get("SANDBOX_DIR", REPO / ".sandbox")) / "stack.json"
    if not path.is_file():
        subprocess.run([str(REPO / "sandbox" / "ctl"), "up"], check=True)
    return dict(json.loads(path.read_text()))


def _playbook(name: str, extra: dict[str, Any]) -> tuple[float, str]:
    """Run a playbook; (seconds, recap). Raises on failure."""
    started = time.monotonic()
    proc = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "ansible-playbook"),
            f"playbooks/{name}",
            "-e",
            json.dumps(extra),
        ],
        cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    seconds = time.monotonic() - started
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP") :]
    if proc.returncode != 0:
        raise SystemExit(
            f"{name} failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        )
    return seconds, recap


def _ssh(stack: dict[str, Any], host: str, command: str) -> None:
    """``command`` as root on a test host (sandbox/ctl ssh); failures are ignored (cleanup)."""
    subprocess.run(
        [
            str(REPO / "sandbox" / "ctl"),
            "ssh",
            host,
            "--",
            "sudo",
            "sh",
            "-c",
            shlex.quote(command),
        ],
        check=False,
        timeout=180,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements, print and append the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-append", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    stack = _stack()
    env = stack["env"]
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=stack["region"],
    )
    config = Config(retries={"mode": "standard"})
    sqs = session.client("sqs", endpoint_url=stack["aws_endpoint"], config=config)
    s3 = session.client("s3", endpoint_url=stack["aws_endpoint"], config=config)
    slug = f"bench-{uuid.uuid4().hex[:6]}"
    dlq = sqs.create_queue(QueueName=f"{slug}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName=slug,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
        },
    )["QueueUrl"]
    s3.create_bucket(Bucket=slug, CreateBucketConfiguration={"LocationConstraint": stack["region"]})
    base_dir = f"/home/ec2-user/{slug}"
    # A frozen copy of the worker's source: the shared tree may change during the run.
    source = Path(tempfile.mkdtemp(prefix="bench-worker-")) / "worker"
    shutil.copytree(
        REPO / "files" / "worker",
        source,
        ignore=shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__", "*.pyc"),
    )
    layout = {
        "sqs_worker_source_dir": str(source),
        "sqs_worker_base_dir": base_dir,
        "sqs_worker_service_name": slug,
        "worker_backup_dir": f"/home/ec2-user/{slug}-backups",
        "sqs_worker_queue_url": queue,
        "sqs_worker_dlq_url": dlq,
        "sqs_worker_s3_bucket": slug,
        "sqs_worker_opensearch_index": slug,
        "deploy_serial": 2,
    }
    load = os.getloadavg()
    try:
        first, _ = _playbook("deploy.yml", {**layout, "sqs_worker_build_tag": f"{slug}-v1"})
        repeat, recap = _playbook("deploy.yml", {**layout, "sqs_worker_build_tag": f"{slug}-v1"})
        no_change = all(re.search(rf"^{h}\s*:.*\bchanged=0\b", recap, re.M) for h in HOSTS)
        _playbook("deploy.yml", {**layout, "sqs_worker_build_tag": f"{slug}-v2"})
        rollback, _ = _playbook("rollback.yml", layout)
    finally:
        for host in HOSTS:
            _ssh(
                stack,
                host,
                f"systemctl disable --now {slug}; rm -rf {base_dir} /home/ec2-user/{slug}-backups "
                f"/etc/systemd/system/{slug}.service /etc/{slug}.env; systemctl daemon-reload",
            )
        for url in (queue, dlq):
            sqs.delete_queue(QueueUrl=url)
        for obj in s3.list_objects_v2(Bucket=slug).get("Contents", []):
            s3.delete_object(Bucket=slug, Key=obj["Key"])
        s3.delete_bucket(Bucket=slug)
        shutil.rmtree(source.parent, ignore_errors=True)

    rows = [
        ("first deploy, 2 hosts (serial 2)", first, ""),
        (
            "repeat deploy, same release",
            repeat,
            f"{repeat / first:.2f} x first (target < 0.5); no change reported: {no_change}",
        ),
        ("rollback.yml, 2 hosts", rollback, "target < 20 s"),
    ]
    table = ["| step | wall time (s) | |", "| --- | ---: | --- |"]
    table += [f"| {name} | {sec:.1f} | {note} |" for name, sec, note in rows]
    machine = (
        f"{platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average at start {load[0]:.1f} (shared machine)"
    )
    text = "\n".join(table)
    print(text)
    if not args.no_append:
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(
                f"\n### Deploy times ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
                f"`.venv/bin/python bench/deploy_times.py` - {machine}. Sandbox hosts worker1 and "
                "worker2 (systemd-nspawn, Debian 12), a private queue/bucket and layout; the "
                "wheelhouse was cached on the controller.\n\n"
                f"{text}\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
