"""Fixtures for the worker's unit tests: moto in-process AWS, osmem-server for OpenSearch.

Every test runs with fake credentials and without AWS_ENDPOINT_URL*, so moto
intercepts all boto3 calls and nothing can reach a real account.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from osmem_server import OsmemServer

from filesearch_worker.config import Settings

REGION = "ap-northeast-1"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("AWS_", "SQS_", "S3_", "OPENSEARCH_", "WORKER_", "CB_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for every AWS service, for one test."""
    with mock_aws():
        yield


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def s3(aws: None) -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket="files", CreateBucketConfiguration={"LocationConstraint": REGION})
    return "files"


@pytest.fixture
def queues(sqs: Any) -> tuple[str, str]:
    """(queue_url, dlq_url) with a RedrivePolicy like production's."""
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = sqs.create_queue(
        QueueName="work",
        Attributes={
            "VisibilityTimeout": "600",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    return queue, dlq


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"region": REGION, "metrics": "off"}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def osmem_server() -> Iterator[OsmemServer]:
    """osmem-server for these tests (overrides the plugin's: no Japanese analysis, faster)."""
    server = OsmemServer.start(japanese=False)
    yield server
    server.close()
