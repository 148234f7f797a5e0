"""Unit tests of library/cloudwatch_dashboard.py (moto in-process)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from .conftest import AnsibleFailJson, RunModule, load_module, use_client

MOD = load_module("cloudwatch_dashboard")

BODY = {
    "widgets": [
        {
            "type": "metric",
            "x": 0,
            "y": 0,
            "width": 12,
            "height": 6,
            "properties": {
                "metrics": [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "q"]],
                "region": "us-east-1",
                "title": "Queue depth",
            },
        }
    ]
}


def stored(name: str) -> dict[str, object]:
    body = boto3.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"]
    loaded: dict[str, object] = json.loads(body)
    return loaded


def test_create_then_idempotent(run_module: RunModule, aws: None) -> None:
    first = run_module(MOD, {"name": "d1", "body": BODY})
    assert first["changed"] is True
    assert first["dashboard_arn"].endswith("dashboard/d1")
    assert stored("d1") == BODY
    second = run_module(MOD, {"name": "d1", "body": BODY})
    assert second["changed"] is False


def test_json_string_with_other_key_order_is_unchanged(run_module: RunModule, aws: None) -> None:
    run_module(MOD, {"name": "d1", "body": BODY})
    reordered = json.dumps(
        {"widgets": [dict(reversed(list(BODY["widgets"][0].items())))]}, indent=4
    )
    assert run_module(MOD, {"name": "d1", "body": reordered})["changed"] is False


def test_update_with_diff(run_module: RunModule, aws: None) -> None:
    run_module(MOD, {"name": "d1", "body": BODY})
    new = {"widgets": [], "periodOverride": "inherit"}
    result = run_module(MOD, {"name": "d1", "body": new}, diff=True)
    assert result["changed"] is True
    assert '"title": "Queue depth"' in result["diff"]["before"]
    assert '"periodOverride": "inherit"' in result["diff"]["after"]
    assert stored("d1") == new


def test_check_mode_reports_without_writing(run_module: RunModule, aws: None) -> None:
    result = run_module(MOD, {"name": "d1", "body": BODY}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == ""
    assert boto3.client("cloudwatch").list_dashboards()["DashboardEntries"] == []
    run_module(MOD, {"name": "d1", "body": BODY})
    result = run_module(MOD, {"name": "d1", "state": "absent"}, check_mode=True)
    assert result["changed"] is True
    assert stored("d1") == BODY


def test_delete_then_idempotent(run_module: RunModule, aws: None) -> None:
    run_module(MOD, {"name": "d1", "body": BODY})
    result = run_module(MOD, {"name": "d1", "state": "absent"}, diff=True)
    assert result["changed"] is True
    assert result["diff"]["after"] == ""
    assert boto3.client("cloudwatch").list_dashboards()["DashboardEntries"] == []
    assert run_module(MOD, {"name": "d1", "state": "absent"})["changed"] is False


def test_body_required_when_present(run_module: RunModule, aws: None) -> None:
    with pytest.raises(
        AnsibleFailJson, match="state is present but all of the following are missing: body"
    ):
        run_module(MOD, {"name": "d1"})


@pytest.mark.parametrize(
    ("body", "message"),
    [("{not json", "body is not valid JSON"), ("[1, 2]", "body must be a JSON object, got list")],
)
def test_bad_body(run_module: RunModule, aws: None, body: str, message: str) -> None:
    with pytest.raises(AnsibleFailJson, match=message):
        run_module(MOD, {"name": "d1", "body": body})


def test_aws_error_has_its_code(
    run_module: RunModule, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto accepts any name; AWS answers a bad body with InvalidParameterInput
    client = boto3.client("cloudwatch")

    def reject(**kwargs: object) -> None:
        error = {"Error": {"Code": "InvalidParameterInput", "Message": "widgets bad"}}
        raise ClientError(error, "PutDashboard")  # type: ignore[arg-type]

    monkeypatch.setattr(client, "put_dashboard", reject)
    use_client(monkeypatch, client)
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, {"name": "d1", "body": BODY})
    result = failed.value.result
    assert result["error_code"] == "InvalidParameterInput"
    assert result["msg"] == "Cannot put dashboard d1: InvalidParameterInput: " + str(
        ClientError(
            {"Error": {"Code": "InvalidParameterInput", "Message": "widgets bad"}}, "PutDashboard"
        )
    )
    assert result["changed"] is True  # the result so far is reported with the failure


def test_read_error_other_than_not_found_fails(
    run_module: RunModule, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("cloudwatch")

    def deny(**kwargs: object) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetDashboard")

    monkeypatch.setattr(client, "get_dashboard", deny)
    use_client(monkeypatch, client)
    with pytest.raises(AnsibleFailJson, match="Cannot read dashboard d1: AccessDenied"):
        run_module(MOD, {"name": "d1", "body": BODY})


def test_missing_boto3(run_module: RunModule, without_boto3: None) -> None:
    with pytest.raises(AnsibleFailJson, match=r"required Python library \(botocore and boto3\)"):
        run_module(MOD, {"name": "d1", "body": BODY})


def test_localstack_style_not_found_counts_as_absent(
    run_module: RunModule, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("cloudwatch")

    def missing(**kwargs: object) -> None:
        error = {
            "Error": {"Code": "InvalidParameterValue", "Message": "Dashboard d1 does not exist"}
        }
        raise ClientError(error, "GetDashboard")  # type: ignore[arg-type]

    monkeypatch.setattr(client, "get_dashboard", missing)
    use_client(monkeypatch, client)
    assert run_module(MOD, {"name": "d1", "state": "absent"})["changed"] is False
