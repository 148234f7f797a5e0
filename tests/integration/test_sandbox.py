"""The local stack's AWS emulator and OpenSearch endpoint, as the worker sees them."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # conftest is pytest's; import it for types only
    from conftest import Sandbox, Stack
    from opensearchpy import OpenSearch

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"

pytestmark = pytest.mark.sandbox


def _receive(sqs: Any, url: str, timeout: float, **kwargs: Any) -> list[dict[str, Any]]:
    """Receive until something arrives or ``timeout`` passes (long polls of 1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = sqs.receive_message(
            QueueUrl=url,
            WaitTimeSeconds=1,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            **kwargs,
        ).get("Messages", [])
        if msgs or time.monotonic() > deadline:
            return msgs


def test_shared_queues_have_the_redrive_policy(sandbox: Sandbox, sqs: Any) -> None:
    attrs = sqs.get_queue_attributes(QueueUrl=sandbox.queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=sandbox.dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert attrs["VisibilityTimeout"] == "600"
    assert int(redrive["maxReceiveCount"]) == 3
    assert redrive["deadLetterTargetArn"] == dlq_arn
    assert sandbox.queue_url.endswith("/cis-filesearch-index-queue")
    assert sandbox.dlq_url.endswith("/cis-filesearch-dlq")


def test_shared_bucket_exists(sandbox: Sandbox, s3: Any) -> None:
    assert sandbox.bucket == "cis-filesearch-local"
    s3.head_bucket(Bucket=sandbox.bucket)


def test_env_file_exports_the_worker_settings(sandbox: Sandbox) -> None:
    out = subprocess.run(
        ["bash", "-c", f". {sandbox.state_dir / 'env'} && env"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    exported = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert exported["SQS_QUEUE_URL"] == sandbox.queue_url
    assert exported["SQS_DLQ_URL"] == sandbox.dlq_url
    assert exported["S3_BUCKET"] == sandbox.bucket
    assert exported["AWS_ENDPOINT_URL"] == sandbox.aws_endpoint
    assert exported["OPENSEARCH_ENDPOINT"] == sandbox.opensearch_url
    assert exported["OPENSEARCH_INDEX"] == "filesearch"
    assert exported["AWS_REGION"] == exported["AWS_DEFAULT_REGION"] == "ap-northeast-1"


def test_sandbox_playbook_is_idempotent(sandbox: Sandbox) -> None:
    done = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-e",
            f"sandbox_aws_endpoint_url={sandbox.aws_endpoint}",
            "playbooks/sandbox.yml",
        ],
        cwd=REPO,
        env={**sandbox.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed=0" in done.stdout and "failed=0" in done.stdout, done.stdout


def test_sandbox_playbook_refuses_a_non_local_endpoint(sandbox: Sandbox) -> None:
    done = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-e",
            "sandbox_aws_endpoint_url=https://sqs.ap-northeast-1.amazonaws.com",
            "playbooks/sandbox.yml",
        ],
        cwd=REPO,
        env={**sandbox.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "only creates resources on the local emulator" in done.stdout


@pytest.mark.stack(visibility_timeout=30)
def test_message_received_three_times_lands_in_dlq(stack: Stack, sqs: Any) -> None:
    body = json.dumps({"probe": uuid.uuid4().hex})
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body)

    counts = []
    for _ in range(stack.max_receive_count):
        # VisibilityTimeout=0 puts it straight back: a receive that was never settled
        msgs = _receive(sqs, stack.queue_url, timeout=10, VisibilityTimeout=0)
        assert [m["Body"] for m in msgs] == [body]
        counts.append(int(msgs[0]["Attributes"]["ApproximateReceiveCount"]))
    assert counts == [1, 2, 3]

    # the next receive exceeds maxReceiveCount: SQS moves it to the DLQ instead
    assert _receive(sqs, stack.queue_url, timeout=2) == []
    dead = _receive(sqs, stack.dlq_url, timeout=15)
    assert [m["Body"] for m in dead] == [body]


def test_stack_fixture_isolates_resources(stack: Stack, sandbox: Sandbox) -> None:
    assert stack.queue_url != sandbox.queue_url
    assert stack.bucket != sandbox.bucket and stack.index != sandbox.opensearch_index
    assert stack.env["SQS_QUEUE_URL"] == stack.queue_url
    assert stack.env["SQS_DLQ_URL"] == stack.dlq_url
    assert stack.env["S3_BUCKET"] == stack.bucket
    assert stack.env["OPENSEARCH_INDEX"] == stack.index
    assert stack.env["AWS_ENDPOINT_URL"] == sandbox.aws_endpoint


def test_s3_roundtrip_on_a_private_bucket(stack: Stack, s3: Any) -> None:
    s3.put_object(Bucket=stack.bucket, Key="docs/a b.txt", Body=b"hello", Metadata={"k": "v"})
    got = s3.get_object(Bucket=stack.bucket, Key="docs/a b.txt")
    assert got["Body"].read() == b"hello"
    assert got["Metadata"] == {"k": "v"}


def test_cloudwatch_accepts_and_lists_metrics(cloudwatch: Any) -> None:
    namespace = f"Test/{uuid.uuid4().hex[:8]}"
    cloudwatch.put_metric_data(
        Namespace=namespace, MetricData=[{"MetricName": "Probe", "Value": 1.0, "Unit": "Count"}]
    )
    metrics = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    assert [m["MetricName"] for m in metrics] == ["Probe"]


def test_opensearch_info_index_search(opensearch: OpenSearch) -> None:
    index = f"t-sandbox-{uuid.uuid4().hex[:8]}"
    try:
        assert "version" in opensearch.info()
        opensearch.index(
            index=index,
            id="inbox/report.pdf",
            body={"file_name": "report.pdf", "content": "quarterly backlog"},
            refresh=True,
        )
        hits = opensearch.search(index=index, body={"query": {"match": {"content": "backlog"}}})
        assert [h["_id"] for h in hits["hits"]["hits"]] == ["inbox/report.pdf"]
        missing = opensearch.search(index=index, body={"query": {"match": {"content": "nothing"}}})
        assert missing["hits"]["hits"] == []
    finally:
        opensearch.indices.delete(index=index, ignore=[404])
