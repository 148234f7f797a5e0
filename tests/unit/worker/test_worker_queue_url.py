"""queue_status.resolve_queue_url: the one name/URL/ARN -> queue URL of the modules and scripts."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from filesearch_worker.queue_status import is_queue_url, queue_name_from_url, resolve_queue_url


def test_a_url_is_returned_as_is_without_a_call(sqs: Any) -> None:
    url = "http://127.0.0.1:4566/000000000000/not-created-here"
    assert resolve_queue_url(sqs, url) == url


def test_a_name_and_an_arn_resolve_to_the_url(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="cis-filesearch-index-queue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    assert resolve_queue_url(sqs, "cis-filesearch-index-queue") == url
    assert resolve_queue_url(sqs, arn) == url
    assert is_queue_url(url) and queue_name_from_url(url) == "cis-filesearch-index-queue"


def test_an_unknown_name_raises_the_sqs_error(sqs: Any) -> None:
    with pytest.raises(ClientError):
        resolve_queue_url(sqs, "no-such-queue")


@pytest.mark.parametrize(
    "arn", ["arn:aws:s3:::bucket", "arn:aws:sqs:ap-northeast-1:000000000000", "arn:"]
)
def test_an_arn_of_no_queue_is_refused(sqs: Any, arn: str) -> None:
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        resolve_queue_url(sqs, arn)
