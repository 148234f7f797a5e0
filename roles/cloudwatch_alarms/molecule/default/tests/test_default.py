"""Verify of role cloudwatch_alarms: what LocalStack's CloudWatch now holds (describe_alarms)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

TOPIC = "arn:aws:sns:ap-northeast-1:000000000000:mol-alerts"


@pytest.fixture(scope="module")
def cloudwatch() -> Any:
    # endpoint, region and credentials from the scenario's provisioner env
    return boto3.client("cloudwatch")


@pytest.fixture(scope="module")
def alarms(cloudwatch: Any) -> dict[str, Any]:
    found = cloudwatch.describe_alarms(AlarmNamePrefix="mol-", MaxRecords=100)["MetricAlarms"]
    return {a["AlarmName"]: a for a in found}


def test_the_seven_alarms_exist(alarms: dict[str, Any]) -> None:
    assert set(alarms) == {
        "mol-Worker-MessageDeleteFailed",
        "mol-Worker-CriticalError",
        "mol-DLQ-Accumulation",
        "mol-Queue-MessagesStuckInFlight",
        "mol-Queue-Backlog",
        "mol-Queue-ProcessingStalled",
        "mol-Queue-OldestMessageAge",
    }


def test_dlq_alarm_is_the_seed_one(alarms: dict[str, Any]) -> None:
    dlq = alarms["mol-DLQ-Accumulation"]
    assert (dlq["Namespace"], dlq["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": "mol-dlq"}]
    assert (dlq["Statistic"], dlq["Period"], dlq["EvaluationPeriods"]) == ("Average", 900, 2)
    assert (dlq["ComparisonOperator"], dlq["Threshold"]) == ("GreaterThanThreshold", 100.0)


def test_in_flight_alarm_is_more_than_5_for_10_minutes(alarms: dict[str, Any]) -> None:
    alarm = alarms["mol-Queue-MessagesStuckInFlight"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "mol-index-queue"}]
    assert alarm["Period"] * alarm["EvaluationPeriods"] == 600
    assert (alarm["Statistic"], alarm["Threshold"]) == ("Minimum", 5.0)


def test_stalled_alarm_uses_metric_math(alarms: dict[str, Any]) -> None:
    metrics = alarms["mol-Queue-ProcessingStalled"]["Metrics"]
    assert {m["Id"] for m in metrics} == {"visible", "deleted", "stalled"}
    assert [m["Id"] for m in metrics if m.get("ReturnData")] == ["stalled"]


def test_every_alarm_notifies_the_topic(alarms: dict[str, Any]) -> None:
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [TOPIC], name
        assert alarm["OKActions"] == [TOPIC], name
        assert alarm["TreatMissingData"] == "notBreaching", name


def test_dashboard_exists(cloudwatch: Any) -> None:
    body = json.loads(
        cloudwatch.get_dashboard(DashboardName="mol-filesearch-worker")["DashboardBody"]
    )
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert "mol-index-queue: visible and in flight" in titles
    assert "mol-dlq: visible" in titles
