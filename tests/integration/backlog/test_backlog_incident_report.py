"""incident_report.yml on the local stack: CloudWatch points, alarms, journal, chart."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from backlog_it_helpers import run_playbook, wait_for_stats_event

pytestmark = [pytest.mark.sandbox, pytest.mark.hosts]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_report_from_metrics_alarms_and_journal(
    sandbox: Any, make_stack: Any, cloudwatch: Any, tmp_path: Path
) -> None:
    for host in ("worker1", "worker2"):  # the report's statistics rows need one each
        wait_for_stats_event(sandbox, host)
    # The window ends before the test queue exists, so LocalStack's own AWS/SQS
    # publishing (for existing queues, at "now") cannot add points to it.
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    start = end - timedelta(minutes=30)
    stack = make_stack()
    queue, dlq = stack.name, f"{stack.name}-dlq"
    published = [(start + timedelta(minutes=m), v) for m, v in ((5, 7.0), (12, 120.0), (20, 40.0))]
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": queue}],
                "Timestamp": when,
                "Value": value,
            }
            for when, value in published
        ],
    )
    # Module results mask the sandbox's dummy secret ("test") wherever it occurs, so the
    # alarm's name must not contain it (the queue's does: it comes from the test's name).
    prefix = f"incident-{uuid.uuid4().hex[:8]}-"
    alarm = f"{prefix}Backlog"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": queue}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1000,
        ComparisonOperator="GreaterThanThreshold",
    )
    try:
        run = run_playbook(
            "incident_report.yml",
            sandbox.env,
            {
                "incident_queue": queue,
                "incident_dlq": dlq,
                "incident_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "incident_end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "incident_alarm_prefix": prefix,
                "incident_report_dir": str(tmp_path),
                "incident_root_cause": "test: synthetic backlog",
                "incident_actions": ["scaled worker2 to 2 processes (scale.yml)"],
            },
        )
    finally:
        cloudwatch.delete_alarms(AlarmNames=[alarm])
    assert run.rc == 0, run.failures()
    (report_dir,) = tmp_path.iterdir()
    series = json.loads((report_dir / "series.json").read_text())
    by_id = {s["id"]: s for s in series["series"]}
    assert by_id["queue"]["values"] == [v for _, v in published]
    assert by_id["dlq"]["values"] == [], "no point may be invented for the DLQ"
    assert (report_dir / "queue-depth.png").read_bytes().startswith(PNG_SIGNATURE)

    report = (report_dir / "report.md").read_text()
    assert "## Queue Backlog Incident Report" in report
    assert "**Peak Queue Size**: 120 (at " in report
    assert "**Peak DLQ Size**: no CloudWatch data in the window" in report
    assert "CloudWatch had no data points for dlq in the window" in report
    assert "**Root Cause**: test: synthetic backlog" in report
    assert f"| {queue} | 0 | 0 | 0 |" in report
    assert f"| {alarm} | INSUFFICIENT_DATA |" in report or f"| {alarm} | OK |" in report
    for host in ("worker1", "worker2"):
        assert f"| {host} | phased-worker" in report, f"no statistics row for {host}"
        assert f"{host} (last 20 warnings and errors in the window)" in report
    assert "- scaled worker2 to 2 processes (scale.yml)" in report
    assert "![Queue depth and DLQ depth](queue-depth.png)" in report
    for heading in ("### Timeline", "### Actions Taken", "### Lessons Learned", "### Prevention"):
        assert heading in report
