"""Shared fixtures: the local stack and per-test AWS/OpenSearch resources.

Fixtures
--------
``sandbox`` (session)
    Runs ``sandbox/ctl up`` (idempotent: a no-op when the stack is up; in CI it
    starts everything) and returns a :class:`Sandbox` read from
    ``$SANDBOX_DIR/stack.json``: endpoints, region, the shared queue/DLQ/bucket,
    an ``env`` dict for subprocesses and the test hosts. If the stack cannot be
    started, every test using it fails with ctl's message; nothing is skipped.
``sqs``, ``s3``, ``cloudwatch`` (session)
    boto3 clients at the sandbox's emulator (retry mode ``standard``).
``opensearch`` (session)
    opensearch-py client at osmem-server.
``stack`` (function)
    A UNIQUE queue + DLQ (RedrivePolicy maxReceiveCount 3), bucket and index
    name for one test, deleted afterwards. Options through a marker:
    ``@pytest.mark.stack(visibility_timeout=5, max_receive_count=3)``.
``make_stack`` (function)
    Factory behind ``stack`` for tests that need several:
    ``make_stack(visibility_timeout=2)``; all are deleted afterwards.

Never use or wipe the shared ``cis-filesearch-*`` resources in a test unless
the test is about exactly those. Mark tests that need the stack ``sandbox`` and
those that need the nspawn hosts ``hosts``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
CTL = REPO / "sandbox" / "ctl"
VENV_BIN = REPO / ".venv" / "bin"
# ssh options for the test hosts: sandboxctl's own (key login, no host key
# bookkeeping since hosts are rebuilt, no prompts).
sys.path.insert(0, str(REPO / "sandbox"))
from sandboxctl.hosts import SSH_OPTS as SSH_OPTIONS  # noqa: E402

BOTO_CONFIG = BotoConfig(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stack(**options): options for the `stack` fixture (visibility_timeout, ...)"
    )


# --- the local stack -------------------------------------------------------------
@dataclass(frozen=True)
class SandboxHost:
    """One nspawn test host, reachable over ssh on 127.0.0.1."""

    name: str
    address: str
    port: int
    user: str

    @property
    def login(self) -> str:
        """``user@address`` for ssh."""
        return f"{self.user}@{self.address}"


@dataclass(frozen=True)
class Sandbox:
    """A running local stack, as described by ``$SANDBOX_DIR/stack.json``."""

    state_dir: Path
    aws_emulator: str  # "localstack" or "moto"
    aws_endpoint: str
    region: str
    opensearch_url: str
    opensearch_index: str
    queue_url: str  # the shared cis-filesearch-index-queue
    dlq_url: str  # the shared cis-filesearch-dlq
    bucket: str  # the shared cis-filesearch-local
    env: dict[str, str]  # os.environ + AWS_*/SQS_*/S3_*/OPENSEARCH_*, .venv/bin first on PATH
    ssh_key: Path
    hosts: dict[str, SandboxHost] = field(default_factory=dict)

    @classmethod
    def load(cls, stack_file: Path) -> Sandbox:
        data = json.loads(stack_file.read_text())
        env = {**os.environ, **data["env"]}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        return cls(
            state_dir=Path(data["state_dir"]),
            aws_emulator=data["aws_emulator"],
            aws_endpoint=data["aws_endpoint"],
            region=data["region"],
            opensearch_url=data["opensearch_endpoint"],
            opensearch_index=data["opensearch_index"],
            queue_url=data["queue_url"],
            dlq_url=data["dlq_url"],
            bucket=data["bucket"],
            env=env,
            ssh_key=Path(data["ssh_key"]),
            hosts={name: SandboxHost(name=name, **h) for name, h in data["hosts"].items()},
        )

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` at the emulator."""
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=self.region,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            config=BOTO_CONFIG,
        )

    def ssh(
        self,
        host: str,
        command: str,
        *,
        sudo: bool = True,
        timeout: float = 60,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on test host ``host`` over ssh (as root with ``sudo``).

        With ``check`` a non-zero exit fails the test with the command's stderr.
        """
        h = self.hosts[host]
        remote = f"sudo sh -c {shlex.quote(command)}" if sudo else command
        done = subprocess.run(
            [
                "ssh",
                *SSH_OPTIONS,
                "-i",
                str(self.ssh_key),
                "-p",
                str(h.port),
                f"{h.user}@{h.address}",
                remote,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{command!r} on {host} exited {done.returncode}: {done.stderr.strip()}",
                pytrace=False,
            )
        return done

    def write_inventory(self, path: Path) -> Path:
        """An Ansible inventory (YAML) for this sandbox's hosts, for private instances."""
        hosts = {
            h.name: {"ansible_host": h.address, "ansible_port": h.port} for h in self.hosts.values()
        }
        inventory = {
            "all": {
                "children": {
                    "workers": {
                        "hosts": hosts,
                        "vars": {
                            "ansible_user": next(iter(self.hosts.values())).user
                            if self.hosts
                            else "ec2-user",
                            "ansible_ssh_private_key_file": str(self.ssh_key),
                            "ansible_python_interpreter": "/usr/bin/python3",
                        },
                    }
                }
            }
        }
        path.write_text(json.dumps(inventory, indent=2))  # JSON is valid YAML
        return path


def sandbox_up(env: dict[str, str] | None = None, timeout: float = 900) -> Path:
    """Run ``sandbox/ctl up``; return its stack.json. Fails the test with ctl's output."""
    env = dict(os.environ if env is None else env)
    try:
        done = subprocess.run(
            [str(CTL), "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"sandbox/ctl up did not finish in {timeout:.0f}s:\n{exc.stdout}", pytrace=False
        )
    if done.returncode != 0:
        pytest.fail(
            f"sandbox/ctl up failed (exit {done.returncode}); the local stack is needed here.\n"
            f"{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    state = Path(env.get("SANDBOX_DIR") or REPO / ".sandbox")
    return state / "stack.json"


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    """The shared local stack, started if needed (see module docstring)."""
    return Sandbox.load(sandbox_up())


@pytest.fixture(scope="session")
def sqs(sandbox: Sandbox) -> Any:
    return sandbox.client("sqs")


@pytest.fixture(scope="session")
def s3(sandbox: Sandbox) -> Any:
    return sandbox.client("s3")


@pytest.fixture(scope="session")
def cloudwatch(sandbox: Sandbox) -> Any:
    return sandbox.client("cloudwatch")


@pytest.fixture(scope="session")
def opensearch(sandbox: Sandbox) -> OpenSearch:
    return OpenSearch(hosts=[sandbox.opensearch_url], timeout=30)


# --- per-test resources ----------------------------------------------------------
@dataclass(frozen=True)
class Stack:
    """Resources of one test: unique queue + DLQ, bucket and index name."""

    name: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    bucket: str
    index: str
    visibility_timeout: int
    max_receive_count: int
    env: dict[str, str]  # ready for `filesearch-worker run` and friends


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24].strip("-") or "t"


def _create_stack(
    sandbox: Sandbox,
    sqs: Any,
    s3: Any,
    label: str,
    visibility_timeout: int = 600,
    max_receive_count: int = 3,
) -> Stack:
    name = f"t-{_slug(label)}-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    queue_url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": sandbox.region})
    env = {
        **sandbox.env,
        "SQS_QUEUE_URL": queue_url,
        "SQS_DLQ_URL": dlq_url,
        "SQS_VISIBILITY_TIMEOUT": str(visibility_timeout),
        "S3_BUCKET": name,
        "OPENSEARCH_ENDPOINT": sandbox.opensearch_url,
        "OPENSEARCH_INDEX": name,
    }
    return Stack(
        name=name,
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        dlq_arn=dlq_arn,
        bucket=name,
        index=name,
        visibility_timeout=visibility_timeout,
        max_receive_count=max_receive_count,
        env=env,
    )


def _delete_stack(stack: Stack, sqs: Any, s3: Any, opensearch: OpenSearch) -> None:
    """Best effort: a failed cleanup is logged, never hides the test's own result."""
    for url in (stack.queue_url, stack.dlq_url):
        try:
            sqs.delete_queue(QueueUrl=url)
        except ClientError as exc:
            log.warning("cleanup: queue %s: %s", url, exc)
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=stack.bucket, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=stack.bucket)
    except ClientError as exc:
        log.warning("cleanup: bucket %s: %s", stack.bucket, exc)
    opensearch.indices.delete(index=stack.index, ignore=[404])


@pytest.fixture
def make_stack(
    request: pytest.FixtureRequest,
    sandbox: Sandbox,
    sqs: Any,
    s3: Any,
    opensearch: OpenSearch,
) -> Iterator[Callable[..., Stack]]:
    """Factory: ``make_stack(visibility_timeout=600, max_receive_count=3) -> Stack``."""
    made: list[Stack] = []

    def make(**options: int) -> Stack:
        stack = _create_stack(sandbox, sqs, s3, request.node.name, **options)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        _delete_stack(stack, sqs, s3, opensearch)


@pytest.fixture
def stack(request: pytest.FixtureRequest, make_stack: Callable[..., Stack]) -> Stack:
    """One unique queue + DLQ, bucket and index; ``@pytest.mark.stack(...)`` sets options."""
    marker = request.node.get_closest_marker("stack")
    return make_stack(**(marker.kwargs if marker else {}))
