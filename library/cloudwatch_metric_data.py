#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module cloudwatch_metric_data: CloudWatch GetMetricData as an information module."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudwatch_metric_data
short_description: Read metric time series from CloudWatch (GetMetricData)
description:
  - Returns the data points of one or more CloudWatch metrics (or metric math expressions) over
    a time window, oldest first - for reports and charts (C(playbooks/incident_report.yml)).
    amazon.aws has no module for C(GetMetricData).
  - Points CloudWatch does not have are not invented - a metric without data in the window
    comes back with empty RV(series[].timestamps) and RV(series[].values).
  - An information module, it never changes anything and always returns C(changed=false).
version_added: "1.0.0"
author:
  - filesearch-ops contributors
options:
  queries:
    description: The series to read (at most 500).
    type: list
    elements: dict
    required: true
    suboptions:
      id:
        description: Identifier of the series (lower-case letter first, then letters, digits, C(_)).
        type: str
        required: true
      namespace:
        description:
          - Metric namespace, for example C(AWS/SQS).
          - Required unless O(queries[].expression) is given.
        type: str
      metric_name:
        description: Metric name, for example C(ApproximateNumberOfMessagesVisible).
        type: str
      dimensions:
        description:
          - Dimensions as a name-value mapping.
          - "For example C({QueueName: cis-filesearch-dlq})."
        type: dict
        default: {}
      stat:
        description:
          - Statistic.
          - C(Average), C(Maximum), C(Minimum), C(Sum), C(SampleCount), C(p99)...
        type: str
        default: Average
      period:
        description:
          - Period in seconds.
          - A multiple of 60, or 1, 5, 10, 30 for high-resolution metrics.
        type: int
        default: 60
      expression:
        description: A metric math expression over the other queries' ids, instead of a metric.
        type: str
      label:
        description: Label of the series (defaults to CloudWatch's).
        type: str
      return_data:
        description: Return this series (false for inputs of an expression only).
        type: bool
        default: true
  start_time:
    description:
      - Start of the window, ISO 8601 (C(2026-11-23T19:00:00Z)).
      - Default O(end_time) minus O(window_minutes).
    type: str
  end_time:
    description: End of the window, ISO 8601. Default now.
    type: str
  window_minutes:
    description: Length of the window when O(start_time) is not given (1-64800).
    type: int
    default: 60
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
requirements:
  - python >= 3.11
  - boto3
notes:
  - Needs C(cloudwatch:GetMetricData).
  - Reads every page (boto3's C(get_metric_data) paginator, C(NextToken)); partial results
    (C(PartialData)) are followed to the end and merged per series.
"""

EXAMPLES = r"""
- name: Queue and DLQ depth over the last two hours
  cloudwatch_metric_data:
    window_minutes: 120
    queries:
      - id: queue
        namespace: AWS/SQS
        metric_name: ApproximateNumberOfMessagesVisible
        dimensions: {QueueName: cis-filesearch-index-queue}
        stat: Maximum
      - id: dlq
        namespace: AWS/SQS
        metric_name: ApproximateNumberOfMessagesVisible
        dimensions: {QueueName: cis-filesearch-dlq}
        stat: Maximum
  register: __depth

- name: Peak backlog
  ansible.builtin.debug:
    msg: >-
      {{ (__depth.series | selectattr('id', 'equalto', 'queue') | first)['values']
         | max | default('no data') }}
"""

RETURN = r"""
start_time:
  description: Start of the window (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-23T19:00:00Z"
end_time:
  description: End of the window (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-23T20:00:00Z"
series:
  description: One entry per query with O(queries[].return_data), in the order of O(queries).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The query's id.
      type: str
      sample: queue
    label:
      description: The series' label.
      type: str
      sample: ApproximateNumberOfMessagesVisible
    status_code:
      description:
        - CloudWatch's status after every page was read - C(Complete), C(PartialData),
          C(InternalError) or C(Forbidden).
        - C(PartialData) on a page that has a next one is followed, so it only remains when the
          last page says so; an error on any page is kept.
      type: str
      sample: Complete
    timestamps:
      description: Times of the points, UTC ISO 8601, oldest first.
      type: list
      elements: str
      sample: ["2026-11-23T19:01:00Z", "2026-11-23T19:02:00Z"]
    values:
      description: The points' values, in the order of RV(series[].timestamps).
      type: list
      elements: float
      sample: [812.0, 790.0]
    messages:
      description: CloudWatch's messages about this series.
      type: list
      elements: str
      sample: []
"""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule

MAX_QUERIES = 500
_ID = re.compile(r"^[a-z][A-Za-z0-9_]{0,254}$")


def argument_spec() -> dict[str, Any]:
    """The module's own options (AnsibleAWSModule adds the common AWS ones)."""
    return {
        "queries": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "id": {"type": "str", "required": True},
                "namespace": {"type": "str"},
                "metric_name": {"type": "str"},
                "dimensions": {"type": "dict", "default": {}},
                "stat": {"type": "str", "default": "Average"},
                "period": {"type": "int", "default": 60},
                "expression": {"type": "str"},
                "label": {"type": "str"},
                "return_data": {"type": "bool", "default": True},
            },
        },
        "start_time": {"type": "str"},
        "end_time": {"type": "str"},
        "window_minutes": {"type": "int", "default": 60},
    }


def parse_time(name: str, text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (naive times are taken as UTC)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO 8601 time such as 2026-11-23T19:00:00Z, got {text!r}"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a Z, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(params: dict[str, Any], now: datetime | None = None) -> tuple[datetime, datetime]:
    """The (start, end) of the window; raises ValueError with the option at fault."""
    minutes = params["window_minutes"]
    if not 1 <= minutes <= 64800:
        raise ValueError(f"window_minutes must be 1-64800, got {minutes}")
    end = (
        parse_time("end_time", params["end_time"])
        if params.get("end_time")
        else now or datetime.now(UTC)
    )
    start = (
        parse_time("start_time", params["start_time"])
        if params.get("start_time")
        else end - timedelta(minutes=minutes)
    )
    if start >= end:
        raise ValueError(f"start_time {iso(start)} must be before end_time {iso(end)}")
    return start, end


def build_queries(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GetMetricData MetricDataQueries from the module's queries; raises ValueError."""
    if not queries:
        raise ValueError("queries must name at least one metric")
    if len(queries) > MAX_QUERIES:
        raise ValueError(f"at most {MAX_QUERIES} queries, got {len(queries)}")
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for n, q in enumerate(queries):
        qid = q["id"]
        if not _ID.match(qid):
            raise ValueError(
                f"queries[{n}].id {qid!r} must start with a lower-case letter "
                "and hold only letters, digits and _"
            )
        if qid in seen:
            raise ValueError(f"queries[{n}].id {qid!r} is used twice")
        seen.add(qid)
        entry: dict[str, Any] = {"Id": qid, "ReturnData": q["return_data"]}
        if q.get("label"):
            entry["Label"] = q["label"]
        if q.get("expression"):
            if q.get("metric_name") or q.get("namespace"):
                raise ValueError(
                    f"queries[{n}] ({qid}): give either expression or namespace/metric_name"
                )
            entry["Expression"] = q["expression"]
            entry["Period"] = q["period"]
        else:
            if not q.get("namespace") or not q.get("metric_name"):
                raise ValueError(f"queries[{n}] ({qid}): namespace and metric_name are required")
            if q["period"] not in (1, 5, 10, 30) and (q["period"] < 60 or q["period"] % 60):
                raise ValueError(
                    f"queries[{n}] ({qid}): period must be 1, 5, 10, 30 or a multiple of 60, "
                    f"got {q['period']}"
                )
            entry["MetricStat"] = {
                "Metric": {
                    "Namespace": q["namespace"],
                    "MetricName": q["metric_name"],
                    "Dimensions": [
                        {"Name": str(k), "Value": str(v)}
                        for k, v in sorted(q["dimensions"].items())
                    ],
                },
                "Period": q["period"],
                "Stat": q["stat"],
            }
        out.append(entry)
    return out


def get_metric_data(
    cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """All pages of GetMetricData, merged per id, points sorted oldest first.

    A series whose points span pages comes back once per page (each with its
    own status); the pages are merged per id.
    """
    merged: dict[str, dict[str, Any]] = {}
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
    )
    for response in pages:
        for result in response.get("MetricDataResults", []):
            entry = merged.setdefault(
                result["Id"],
                {
                    "label": result.get("Label", result["Id"]),
                    "points": {},
                    "status": [],
                    "messages": [],
                },
            )
            for stamp, value in zip(
                result.get("Timestamps", []), result.get("Values", []), strict=False
            ):
                entry["points"][stamp] = float(value)
            entry["status"].append(result.get("StatusCode", "Complete"))
            entry["messages"].extend(m.get("Value", "") for m in result.get("Messages", []))
    series = []
    for q in queries:
        if not q["ReturnData"]:
            continue
        entry = merged.get(
            q["Id"], {"label": q.get("Label", q["Id"]), "points": {}, "status": [], "messages": []}
        )
        ordered = sorted(entry["points"].items())
        # PartialData means "more on the next page": the last page's status is the series';
        # an error (InternalError, Forbidden) on any page stays
        errors = [s for s in entry["status"] if s not in ("Complete", "PartialData")]
        statuses = errors or entry["status"][-1:]
        series.append(
            {
                "id": q["Id"],
                "label": q.get("Label") or entry["label"],
                "status_code": statuses[-1] if statuses else "Complete",
                "timestamps": [iso(t) for t, _ in ordered],
                "values": [v for _, v in ordered],
                "messages": entry["messages"],
            }
        )
    return series


def main() -> None:
    module = FilesearchAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        start, end = window(module.params)
        queries = build_queries(module.params["queries"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    cloudwatch = module.client("cloudwatch")
    try:
        series = get_metric_data(cloudwatch, queries, start, end)
    except BOTO_ERRORS as exc:
        module.fail_json_aws(exc, msg="Cannot read the metric data")
    module.exit_json(changed=False, start_time=iso(start), end_time=iso(end), series=series)


if __name__ == "__main__":
    main()
