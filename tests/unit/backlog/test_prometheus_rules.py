"""files/prometheus/filesearch-worker.rules.yml: structure (promtool is not available) and
thresholds in step with the cloudwatch_alarms role."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "files" / "prometheus" / "filesearch-worker.rules.yml"
ALARM_DEFAULTS = ROOT / "roles" / "cloudwatch_alarms" / "defaults" / "main.yml"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
SEVERITIES = {"info", "warning", "critical"}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def by_name(name: str) -> dict[str, Any]:
    return next(r for r in rules() if r["alert"] == name)


def test_file_is_a_rule_file() -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    names = [g["name"] for g in doc["groups"]]
    assert len(names) == len(set(names)), "group names must be unique"
    for group in doc["groups"]:
        assert set(group) <= {"name", "rules", "interval", "limit"}
        assert group["rules"], f"group {group['name']} has no rules"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_each_alert_is_complete(rule: dict[str, Any]) -> None:
    assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
    assert re.match(r"^[A-Za-z_:][A-Za-z0-9_:]*$", rule["alert"])
    assert DURATION.match(rule["for"]), rule["for"]
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"]
    expr = str(rule["expr"])
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0, f"unbalanced ')' in {expr}"
    assert depth == 0, f"unbalanced '(' in {expr}"
    assert expr.count("{") == expr.count("}")
    assert expr.count('"') % 2 == 0
    for template in re.findall(r"{{(.*?)}}", " ".join(rule["annotations"].values())):
        assert template.strip() in {"$value", "$labels.instance"}, template


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))


def test_runbook_alerts_are_there() -> None:
    names = {r["alert"] for r in rules()}
    assert {"SQSQueueBacklog", "WorkerProcessingStalled"} <= names
    assert by_name("WorkerProcessingStalled")["labels"]["severity"] == "critical"
    stalled = by_name("WorkerProcessingStalled")["expr"]
    assert "number_of_messages_deleted" in stalled and "> 0" in stalled and "== 0" in stalled


def _threshold(expr: str) -> float:
    match = re.search(r">\s*([0-9.]+)\s*$", expr.strip())
    assert match, f"no trailing '> N' in {expr}"
    return float(match.group(1))


def _minutes(duration: str) -> int:
    match = re.fullmatch(r"([0-9]+)m", duration)
    assert match, duration
    return int(match.group(1))


def test_thresholds_match_the_cloudwatch_alarms() -> None:
    defaults = yaml.safe_load(ALARM_DEFAULTS.read_text())
    backlog = by_name("SQSQueueBacklog")
    assert _threshold(backlog["expr"]) == defaults["cloudwatch_alarms_backlog_threshold"]
    assert _minutes(backlog["for"]) == defaults["cloudwatch_alarms_backlog_minutes"]
    stuck = by_name("SQSMessagesStuckInFlight")
    assert _threshold(stuck["expr"]) == defaults["cloudwatch_alarms_in_flight_threshold"]
    assert _minutes(stuck["for"]) == defaults["cloudwatch_alarms_in_flight_minutes"]
    assert (
        _minutes(by_name("WorkerProcessingStalled")["for"])
        == defaults["cloudwatch_alarms_stalled_minutes"]
    )
    assert (
        _threshold(by_name("SQSDeadLetterQueueAccumulating")["expr"])
        == defaults["cloudwatch_alarms_dlq_visible_threshold"]
    )
    oldest = by_name("SQSOldestMessageTooOld")
    assert _threshold(oldest["expr"]) == defaults["cloudwatch_alarms_oldest_message_age_seconds"]
    assert _minutes(oldest["for"]) == defaults["cloudwatch_alarms_oldest_message_age_minutes"]


def test_queue_names_are_the_alarm_roles() -> None:
    defaults = yaml.safe_load(ALARM_DEFAULTS.read_text())
    queues = {q for r in rules() for q in re.findall(r'dimension_QueueName="([^"]+)"', r["expr"])}
    assert queues == {
        defaults["cloudwatch_alarms_queue_name"],
        defaults["cloudwatch_alarms_dlq_name"],
    }
