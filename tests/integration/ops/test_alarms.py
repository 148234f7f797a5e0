"""playbooks/alarms.yml (role cloudwatch_alarms) against LocalStack's CloudWatch.

Each test uses its own alarm-name prefix, dashboard name and queue names, so
nothing touches the shared ``CIS-*`` alarms. The queues need not exist: an
alarm names its metrics only. (The names avoid the sandbox's dummy secret key
"test": Ansible masks that string in module results, which would make every
description that contains it differ from what was written.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ops_helpers import PlaybookRun, run_playbook

pytestmark = pytest.mark.sandbox

# What the seed and issue 5 ask for, written out independently of the role's variables:
# suffix -> (namespace, metric, dimension queue ("queue"/"dlq"/None), statistic, period,
#            evaluation periods, threshold)
W = "CISFileSearch/Worker"
SQS = "AWS/SQS"
VISIBLE = "ApproximateNumberOfMessagesVisible"
EXPECTED_SINGLE = {
    "Worker-MessageDeleteFailed": (W, "MessageDeleteFailed", None, "Sum", 300, 1, 0.0),
    "Worker-CriticalError": (W, "CriticalError", None, "Sum", 300, 1, 0.0),
    "DLQ-Accumulation": (SQS, VISIBLE, "dlq", "Average", 900, 2, 100.0),
    "Queue-MessagesStuckInFlight": (
        SQS, "ApproximateNumberOfMessagesNotVisible", "queue", "Minimum", 300, 2, 5.0,
    ),
    "Queue-Backlog": (SQS, VISIBLE, "queue", "Minimum", 300, 2, 1000.0),
    "Queue-OldestMessageAge": (
        SQS, "ApproximateAgeOfOldestMessage", "queue", "Minimum", 300, 2, 1800.0,
    ),
}  # fmt: skip


def _alarms(cloudwatch: Any, prefix: str) -> dict[str, dict[str, Any]]:
    found = cloudwatch.describe_alarms(AlarmNamePrefix=prefix, MaxRecords=100)["MetricAlarms"]
    return {a["AlarmName"][len(prefix) :]: a for a in found}


@pytest.fixture
def alarm_vars(cloudwatch: Any) -> Iterator[dict[str, Any]]:
    """Variables that point the role at unique names; whatever is left is deleted after."""
    tag = uuid.uuid4().hex[:8]
    variables = {
        "cloudwatch_alarms_name_prefix": f"ops-{tag}-",
        "cloudwatch_alarms_queue_name": f"ops-{tag}-queue",
        "cloudwatch_alarms_dlq_name": f"ops-{tag}-dlq",
        "cloudwatch_alarms_dashboard_name": f"ops-{tag}-dashboard",
        # the dashboard has its own test; the alarm tests do not depend on it
        "cloudwatch_alarms_dashboard_enabled": False,
    }
    yield variables
    left = list(_alarms(cloudwatch, variables["cloudwatch_alarms_name_prefix"]))
    if left:
        prefix = variables["cloudwatch_alarms_name_prefix"]
        cloudwatch.delete_alarms(AlarmNames=[prefix + suffix for suffix in left])
    cloudwatch.delete_dashboards(DashboardNames=[variables["cloudwatch_alarms_dashboard_name"]])


def _apply(sandbox: Any, variables: dict[str, Any], **more: Any) -> PlaybookRun:
    return run_playbook("alarms.yml", sandbox.env, {**variables, **more})


def _check_single_metric_alarms(alarms: dict[str, Any], variables: dict[str, Any]) -> None:
    queues = {
        "queue": variables["cloudwatch_alarms_queue_name"],
        "dlq": variables["cloudwatch_alarms_dlq_name"],
    }
    for suffix, expected in EXPECTED_SINGLE.items():
        namespace, metric, queue, stat, period, periods, threshold = expected
        alarm = alarms[suffix]
        assert alarm["Namespace"] == namespace, suffix
        assert alarm["MetricName"] == metric, suffix
        dims = [{"Name": "QueueName", "Value": queues[queue]}] if queue else []
        assert alarm["Dimensions"] == dims, suffix
        assert alarm["Statistic"] == stat, suffix
        assert alarm["Period"] == period, suffix
        assert alarm["EvaluationPeriods"] == periods, suffix
        assert alarm["Threshold"] == threshold, suffix
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", suffix
        assert alarm["TreatMissingData"] == "notBreaching", suffix
        assert alarm["AlarmActions"] == [], suffix


def _check_processing_stalled(alarm: dict[str, Any], queue: str, minutes: int) -> None:
    assert not alarm.get("MetricName")
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    visible = metrics["visible"]["MetricStat"]
    deleted = metrics["deleted"]["MetricStat"]
    assert visible["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert deleted["Metric"]["MetricName"] == "NumberOfMessagesDeleted"
    for stat in (visible, deleted):
        assert stat["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": queue}]
    returned = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert [m["Id"] for m in returned] == ["stalled"]
    assert "visible" in returned[0]["Expression"] and "deleted" in returned[0]["Expression"]
    assert alarm["EvaluationPeriods"] * visible["Period"] == minutes * 60
    assert alarm["Threshold"] == 0.0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_alarm_lifecycle(sandbox: Any, cloudwatch: Any, alarm_vars: dict[str, Any]) -> None:
    """Create, re-apply (no change), retune, narrow the selection, delete."""
    prefix = alarm_vars["cloudwatch_alarms_name_prefix"]
    first = _apply(sandbox, alarm_vars)
    assert first.rc == 0, first.output
    assert first.recap()["changed"] > 0
    alarms = _alarms(cloudwatch, prefix)
    assert set(alarms) == {*EXPECTED_SINGLE, "Queue-ProcessingStalled"}
    _check_single_metric_alarms(alarms, alarm_vars)
    queue = alarm_vars["cloudwatch_alarms_queue_name"]
    _check_processing_stalled(alarms["Queue-ProcessingStalled"], queue, 15)

    again = _apply(sandbox, alarm_vars)
    assert again.rc == 0, again.output
    assert again.recap()["changed"] == 0, again.output

    topic = "arn:aws:sns:ap-northeast-1:000000000000:ops-alerts"
    retuned = _apply(
        sandbox,
        alarm_vars,
        cloudwatch_alarms_backlog_threshold=2500,
        cloudwatch_alarms_stalled_minutes=30,
        cloudwatch_alarms_alarm_actions=[topic],
        cloudwatch_alarms_ok_actions=[topic],
    )
    assert retuned.rc == 0, retuned.output
    alarms = _alarms(cloudwatch, prefix)
    assert alarms["Queue-Backlog"]["Threshold"] == 2500.0
    _check_processing_stalled(alarms["Queue-ProcessingStalled"], queue, 30)
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name

    fewer = _apply(
        sandbox, alarm_vars, cloudwatch_alarms_enabled=["message_delete_failed", "dlq_accumulation"]
    )
    assert fewer.rc == 0, fewer.output
    assert set(_alarms(cloudwatch, prefix)) == {"Worker-MessageDeleteFailed", "DLQ-Accumulation"}

    gone = _apply(sandbox, alarm_vars, cloudwatch_alarms_state="absent")
    assert gone.rc == 0, gone.output
    assert _alarms(cloudwatch, prefix) == {}


def test_dashboard_lifecycle(sandbox: Any, cloudwatch: Any, alarm_vars: dict[str, Any]) -> None:
    """The dashboard shows this fleet's queues; a second run changes nothing; absent deletes it."""
    alarm_vars["cloudwatch_alarms_dashboard_enabled"] = True
    alarm_vars["cloudwatch_alarms_enabled"] = ["backlog"]
    name = alarm_vars["cloudwatch_alarms_dashboard_name"]
    made = _apply(sandbox, alarm_vars)
    assert made.rc == 0, made.output
    body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
    series = [m for w in body["widgets"] for m in w["properties"]["metrics"]]
    queue, dlq = (
        alarm_vars["cloudwatch_alarms_queue_name"],
        alarm_vars["cloudwatch_alarms_dlq_name"],
    )
    assert ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", "QueueName", queue] in [
        s[:4] for s in series
    ]
    assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", dlq] in [
        s[:4] for s in series
    ]
    assert ["CISFileSearch/Worker", "MessageDeleteFailed"] in [s[:2] for s in series]

    again = _apply(sandbox, alarm_vars)
    assert again.rc == 0, again.output
    assert again.recap()["changed"] == 0, again.output

    gone = _apply(sandbox, alarm_vars, cloudwatch_alarms_state="absent")
    assert gone.rc == 0, gone.output
    assert cloudwatch.list_dashboards(DashboardNamePrefix=name)["DashboardEntries"] == []


def test_unknown_alarm_key_is_refused(
    sandbox: Any, cloudwatch: Any, alarm_vars: dict[str, Any]
) -> None:
    run = _apply(sandbox, alarm_vars, cloudwatch_alarms_enabled=["backlog", "disk_full"])
    assert run.rc != 0
    assert "unknown alarm keys" in run.output and "disk_full" in run.output
    assert _alarms(cloudwatch, alarm_vars["cloudwatch_alarms_name_prefix"]) == {}


def test_durations_must_be_whole_periods(
    sandbox: Any, cloudwatch: Any, alarm_vars: dict[str, Any]
) -> None:
    run = _apply(sandbox, alarm_vars, cloudwatch_alarms_backlog_minutes=7)
    assert run.rc != 0
    assert "cloudwatch_alarms_backlog_minutes must be a multiple of 5 minutes" in run.output
    assert _alarms(cloudwatch, alarm_vars["cloudwatch_alarms_name_prefix"]) == {}
