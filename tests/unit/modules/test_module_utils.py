"""module_utils/filesearch.py: amazon.aws options kept, retries, error codes, the task's session."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any, ClassVar
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.filesearch import RETRY_MAX_ATTEMPTS, FilesearchAWSModule
from ansible.module_utils.testing import patch_module_args
from botocore.exceptions import ClientError, EndpointConnectionError

from .conftest import AnsibleExitJson, AnsibleFailJson, _exit_json, _fail_json

#: The AWS options and aliases the modules took before amazon.aws (module_utils/filesearch_aws).
OPTIONS_BEFORE = {
    "region": ["aws_region"],
    "endpoint_url": ["aws_endpoint_url"],
    "profile": ["aws_profile"],
    "access_key": ["aws_access_key_id", "aws_access_key"],
    "secret_key": ["aws_secret_access_key", "aws_secret_key"],
    "session_token": ["aws_session_token"],
}


def make_module(**params: Any) -> FilesearchAWSModule:
    with (
        patch_module_args(params),
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
    ):
        return FilesearchAWSModule(argument_spec={}, supports_check_mode=True)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the keys this file sets: no AWS_* from the caller's environment."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_amazon_aws_options_cover_every_old_option_and_alias() -> None:
    from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec

    spec = aws_argument_spec()
    for option, aliases in OPTIONS_BEFORE.items():
        assert option in spec, option
        assert set(aliases) <= set(spec[option].get("aliases", [])), option
    assert spec["secret_key"]["no_log"] is True and spec["session_token"]["no_log"] is True


@pytest.mark.parametrize(
    ("alias", "value"),
    [("aws_access_key_id", "AKIDALIAS"), ("aws_access_key", "AKIDALIAS")],
)
def test_old_aliases_still_set_the_keys(env: None, alias: str, value: str) -> None:
    module = make_module(**{alias: value, "aws_secret_key": "s", "aws_region": "eu-west-1"})
    credentials = module.boto3_session().get_credentials()
    assert (credentials.access_key, credentials.secret_key) == (value, "s")
    assert module.boto3_session().region_name == "eu-west-1"


def test_clients_keep_the_standard_retry_mode(env: None) -> None:
    client = make_module(region="us-east-1", access_key="a", secret_key="b").client("sqs")
    # botocore turns the client config's max_attempts (retries) into total_max_attempts (calls)
    assert client.meta.config.retries == {
        "mode": "standard",
        "total_max_attempts": RETRY_MAX_ATTEMPTS + 1,
    }


class _Failing(http.server.BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.calls.append(self.path)
        body = b'{"__type": "InternalError", "message": "boom"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing_endpoint() -> Iterator[str]:
    _Failing.calls = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_failing_call_is_made_six_times(env: None, failing_endpoint: str) -> None:
    # docs/modules.md: up to 6 calls, the first and 5 retries (botocore's max_attempts = retries)
    module = make_module(
        region="us-east-1", access_key="a", secret_key="b", endpoint_url=failing_endpoint
    )
    sqs = module.client("sqs")
    with mock.patch("time.sleep"), pytest.raises(ClientError, match="InternalError"):
        sqs.list_queues()  # backoff sleeps skipped, not the retries
    assert len(_Failing.calls) == RETRY_MAX_ATTEMPTS + 1 == 6


def test_aws_endpoint_url_from_the_environment(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    client = make_module(region="ap-northeast-1", access_key="a", secret_key="b").client("sqs")
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"


def test_explicit_endpoint_url_wins(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    module = make_module(region="us-east-1", aws_endpoint_url="http://127.0.0.1:5000")
    assert module.client("s3").meta.endpoint_url == "http://127.0.0.1:5000"


def fail_with(module: FilesearchAWSModule, error: BaseException) -> dict[str, Any]:
    with (
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
        pytest.raises(AnsibleFailJson) as failed,
    ):
        module.fail_json_aws(error, msg="Cannot read")
    return failed.value.result


def test_fail_json_aws_reports_the_client_error_code(env: None) -> None:
    error = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetQueueUrl")
    result = fail_with(make_module(region="us-east-1"), error)
    assert result["error_code"] == "AccessDenied"
    assert result["msg"] == f"Cannot read: AccessDenied: {error}"
    assert result["error"] == {"code": "AccessDenied", "message": "no"}  # amazon.aws's


def test_fail_json_aws_reports_the_botocore_error_class(env: None) -> None:
    error = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    result = fail_with(make_module(region="us-east-1"), error)
    assert result["error_code"] == "EndpointConnectionError"
    assert result["msg"].startswith("Cannot read: EndpointConnectionError: Could not connect")


def test_session_holds_the_tasks_keys_not_the_environments(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    module = make_module(region="us-east-1", access_key="AKIDTASK", secret_key="task-secret")
    assert module.signing_credentials().access_key == "AKIDTASK"
    default = make_module(region="us-east-1")  # no keys given: the default chain (environment)
    assert default.signing_credentials().access_key == "AKIDENVIRONMENT"


def test_signing_without_any_credentials_fails_clearly(env: None) -> None:
    module = make_module(region="us-east-1")
    with (
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
        pytest.raises(AnsibleFailJson, match="sigv4 needs AWS credentials"),
    ):
        module.signing_credentials()


def test_unknown_profile_fails_with_its_error_name(env: None) -> None:
    module = make_module(region="us-east-1", profile="no-such-profile")
    with (
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
        pytest.raises(AnsibleFailJson) as failed,
    ):
        module.boto3_session()
    assert failed.value.result["error_code"] == "ProfileNotFound"


def test_access_key_without_secret_key_fails_with_its_error_name(env: None) -> None:
    module = make_module(region="us-east-1", access_key="AKIDONLY")
    with (
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
        pytest.raises(AnsibleFailJson) as failed,
    ):
        module.client("sqs")
    assert failed.value.result["error_code"] == "PartialCredentialsError"
    assert failed.value.result["msg"].startswith("Couldn't connect to AWS: PartialCredentialsError")


def test_warnings_are_returned_once_without_a_deprecation(env: None) -> None:
    # ansible-core >= 2.19 returns module.warn() itself; warnings passed to exit_json as well
    # would be warned again, with "Passing `warnings` to `exit_json` ... is deprecated"
    module = make_module(region="us-east-1")
    module.warn("2 message(s) could not be settled now; rerun later")
    with (
        mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json),
        pytest.raises(AnsibleExitJson) as done,
    ):
        module.exit_json(changed=False)
    assert "warnings" not in done.value.result
