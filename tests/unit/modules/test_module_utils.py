"""module_utils/filesearch_aws.py: option names, client construction, error reporting."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from ansible.module_utils import filesearch_aws
from botocore.exceptions import ClientError, EndpointConnectionError


class FakeModule:
    def __init__(self, **params: Any) -> None:
        self.params = dict.fromkeys(filesearch_aws.aws_argument_spec()) | params
        self.failed: dict[str, Any] | None = None

    def fail_json(self, **kwargs: Any) -> NoReturn:
        self.failed = kwargs
        raise SystemExit(1)


def test_option_names_follow_amazon_aws() -> None:
    spec = filesearch_aws.aws_argument_spec()
    assert set(spec) == {
        "region",
        "endpoint_url",
        "profile",
        "access_key",
        "secret_key",
        "session_token",
    }
    assert "aws_endpoint_url" in spec["endpoint_url"]["aliases"]
    assert spec["secret_key"]["no_log"] is True and spec["session_token"]["no_log"] is True


def test_aws_endpoint_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SQS", raising=False)
    client = filesearch_aws.aws_client(
        FakeModule(region="ap-northeast-1", access_key="a", secret_key="b"), "sqs"
    )
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.meta.config.retries["mode"] == "standard"


def test_explicit_endpoint_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    client = filesearch_aws.aws_client(
        FakeModule(region="us-east-1", endpoint_url="http://127.0.0.1:5000"), "s3"
    )
    assert client.meta.endpoint_url == "http://127.0.0.1:5000"


def test_fail_aws_reports_client_error_code() -> None:
    module = FakeModule()
    error = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetQueueUrl")
    with pytest.raises(SystemExit):
        filesearch_aws.fail_aws(module, error, "Cannot read")  # type: ignore[arg-type]
    assert module.failed is not None
    assert module.failed["error_code"] == "AccessDenied"
    assert module.failed["msg"].startswith("Cannot read: AccessDenied: ")


def test_fail_aws_reports_botocore_error_class() -> None:
    module = FakeModule()
    error = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    with pytest.raises(SystemExit):
        filesearch_aws.fail_aws(module, error, "Cannot read")  # type: ignore[arg-type]
    assert module.failed is not None
    assert module.failed["error_code"] == "EndpointConnectionError"
