"""Unit tests of library/cloudwatch_metric_data.py (moto in-process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from .conftest import AnsibleFailJson, RunModule, load_module, use_client

MOD = load_module("cloudwatch_metric_data")
END = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


def depth_query(qid: str, queue: str) -> dict[str, object]:
    return {
        "id": qid,
        "namespace": "AWS/SQS",
        "metric_name": "ApproximateNumberOfMessagesVisible",
        "dimensions": {"QueueName": queue},
        "stat": "Maximum",
    }


def test_points_come_back_oldest_first_and_missing_series_stay_empty(
    aws: None, run_module: RunModule
) -> None:
    cloudwatch = boto3.client("cloudwatch")
    published = {10: 5.0, 20: 120.0, 30: 40.0}  # minutes into the window -> value
    start = END - timedelta(hours=1)
    cloudwatch.put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Dimensions": [{"Name": "QueueName", "Value": "q-main"}],
                "Timestamp": start + timedelta(minutes=m),
                "Value": v,
            }
            for m, v in published.items()
        ],
    )
    result = run_module(
        MOD,
        {
            "start_time": start.isoformat(),
            "end_time": END.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "queries": [depth_query("queue", "q-main"), depth_query("dlq", "q-dlq")],
        },
    )
    assert result["changed"] is False
    assert result["start_time"] == "2026-11-23T19:00:00Z"
    assert result["end_time"] == "2026-11-23T20:00:00Z"
    queue, dlq = result["series"]
    assert queue["id"] == "queue" and dlq["id"] == "dlq"
    assert queue["values"] == list(published.values())
    assert queue["timestamps"] == sorted(queue["timestamps"])
    assert dlq["values"] == [] and dlq["timestamps"] == []


def test_window_defaults_to_the_last_minutes() -> None:
    start, end = MOD.window({"window_minutes": 90, "start_time": None, "end_time": None}, END)
    assert (start, end) == (END - timedelta(minutes=90), END)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"start_time": "2026-11-23T21:00:00Z", "end_time": "2026-11-23T20:00:00Z"}, "before"),
        ({"start_time": "yesterday"}, "start_time must be an ISO 8601"),
        ({"window_minutes": 0}, "window_minutes must be 1-64800"),
    ],
)
def test_bad_windows_are_refused(
    aws: None, run_module: RunModule, args: dict[str, object], message: str
) -> None:
    with pytest.raises(AnsibleFailJson, match=message):
        run_module(MOD, {"queries": [depth_query("queue", "q")], **args})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"id": "Queue", "namespace": "AWS/SQS", "metric_name": "M"}, "lower-case letter"),
        ({"id": "queue", "namespace": "AWS/SQS"}, "namespace and metric_name are required"),
        ({"id": "queue", "namespace": "AWS/SQS", "metric_name": "M", "period": 90}, "period"),
        ({"id": "e", "expression": "m1 * 2", "metric_name": "M"}, "either expression"),
    ],
)
def test_bad_queries_are_refused(
    aws: None, run_module: RunModule, query: dict[str, object], message: str
) -> None:
    with pytest.raises(AnsibleFailJson, match=message):
        run_module(MOD, {"queries": [query]})


def test_duplicate_ids_are_refused(aws: None, run_module: RunModule) -> None:
    with pytest.raises(AnsibleFailJson, match="used twice"):
        run_module(MOD, {"queries": [depth_query("q", "a"), depth_query("q", "b")]})


def test_every_page_is_read_with_the_paginator_and_merged_per_series(
    aws: None, run_module: RunModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto answers in one page; the Stubber gives two, as CloudWatch does for long windows
    from botocore.stub import ANY, Stubber

    cloudwatch = boto3.client("cloudwatch")
    start = END - timedelta(hours=1)
    queries = [depth_query("queue", "q-main"), depth_query("dlq", "q-dlq")]
    expected = {
        "MetricDataQueries": ANY,
        "StartTime": ANY,
        "EndTime": ANY,
        "ScanBy": "TimestampAscending",
    }
    minute = timedelta(minutes=1)
    stub = Stubber(cloudwatch)
    stub.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                {
                    "Id": "queue",
                    "Label": "depth",
                    "Timestamps": [start + minute, start + 2 * minute],
                    "Values": [1.0, 2.0],
                    "StatusCode": "PartialData",
                },
                {"Id": "dlq", "Label": "dlq depth", "StatusCode": "PartialData"},
            ],
            "NextToken": "page-2",
        },
        expected,
    )
    stub.add_response(
        "get_metric_data",
        {
            "MetricDataResults": [
                {
                    "Id": "queue",
                    "Label": "depth",
                    "Timestamps": [start + 3 * minute],
                    "Values": [3.0],
                    "StatusCode": "Complete",
                },
                {
                    "Id": "dlq",
                    "Label": "dlq depth",
                    "Timestamps": [start + 3 * minute],
                    "Values": [7.0],
                    "StatusCode": "Complete",
                },
            ]
        },
        {**expected, "NextToken": "page-2"},
    )
    use_client(monkeypatch, cloudwatch)
    with stub:
        result = run_module(
            MOD,
            {
                "start_time": start.isoformat(),
                "end_time": END.isoformat(),
                "queries": queries,
            },
        )
        stub.assert_no_pending_responses()
    queue, dlq = result["series"]
    assert queue["values"] == [1.0, 2.0, 3.0]
    assert queue["timestamps"] == [
        "2026-11-23T19:01:00Z",
        "2026-11-23T19:02:00Z",
        "2026-11-23T19:03:00Z",
    ]
    assert dlq["values"] == [7.0] and dlq["label"] == "dlq depth"
    # PartialData only meant "more on the next page": read to the end, the series is complete
    assert queue["status_code"] == dlq["status_code"] == "Complete"


def test_an_error_status_on_any_page_is_kept() -> None:
    from botocore.stub import Stubber

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    pages = [
        {"MetricDataResults": [{"Id": "q", "StatusCode": "Forbidden"}], "NextToken": "2"},
        {"MetricDataResults": [{"Id": "q", "StatusCode": "Complete"}]},
    ]
    stub = Stubber(cloudwatch)
    for page in pages:
        stub.add_response("get_metric_data", page, None)
    queries = MOD.build_queries(
        [{**depth_query("q", "a"), "period": 60, "return_data": True, "label": None}]
    )
    with stub:
        (series,) = MOD.get_metric_data(cloudwatch, queries, END - timedelta(hours=1), END)
    assert series["status_code"] == "Forbidden"
