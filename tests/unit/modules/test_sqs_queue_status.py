"""Unit tests of library/sqs_queue_status.py (moto in-process)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from .conftest import AnsibleFailJson, RunModule, load_module

MOD = load_module("sqs_queue_status")


@pytest.fixture
def queues(aws: None) -> dict[str, str]:
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="t-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
    main = sqs.create_queue(
        QueueName="t-main", Attributes={"VisibilityTimeout": "600", "RedrivePolicy": redrive}
    )["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"dead {i}")
    for i in range(2):
        sqs.send_message(QueueUrl=main, MessageBody=f"live {i}")
    sqs.send_message(QueueUrl=main, MessageBody="later", DelaySeconds=60)
    sqs.receive_message(QueueUrl=main, MaxNumberOfMessages=1)
    return {"main": main, "dlq": dlq}


def test_reports_queue_and_dlq_from_redrive_policy(run_module: RunModule, queues: Any) -> None:
    result = run_module(MOD, {"queue": "t-main"})
    assert result["changed"] is False
    q, d = result["queue"], result["dlq"]
    assert (q["name"], q["url"]) == ("t-main", queues["main"])
    assert (q["visible"], q["in_flight"], q["delayed"]) == (1, 1, 1)
    assert q["visibility_timeout"] == 600
    assert q["redrive_policy"]["deadLetterTargetArn"].endswith(":t-dlq")
    assert (d["name"], d["visible"], d["in_flight"]) == ("t-dlq", 3, 0)
    assert d["redrive_policy"] is None
    assert result["healthy"] is True and result["problems"] == []


def test_queue_by_url_and_explicit_dlq(run_module: RunModule, queues: Any) -> None:
    result = run_module(MOD, {"queue": queues["dlq"], "dlq": "t-main"})
    assert result["queue"]["name"] == "t-dlq"
    assert result["dlq"]["name"] == "t-main"


def test_no_dlq_is_null(run_module: RunModule, queues: Any) -> None:
    result = run_module(MOD, {"queue": "t-dlq", "max_visible": 10})
    assert result["dlq"] is None
    assert result["healthy"] is True


def test_thresholds_give_problems(run_module: RunModule, queues: Any) -> None:
    result = run_module(
        MOD, {"queue": "t-main", "max_visible": 0, "max_in_flight": 0, "max_dlq": 2}
    )
    assert result["healthy"] is False
    assert result["changed"] is False
    assert result["problems"] == [
        "t-main: 1 messages visible (over max_visible 0)",
        "t-main: 1 messages in flight (over max_in_flight 0)",
        "t-dlq: 3 messages in the DLQ (over max_dlq 2)",
    ]


def test_thresholds_at_the_limit_are_healthy(run_module: RunModule, queues: Any) -> None:
    result = run_module(MOD, {"queue": "t-main", "max_visible": 1, "max_dlq": 3})
    assert result["healthy"] is True


def test_fail_on_unhealthy(run_module: RunModule, queues: Any) -> None:
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, {"queue": "t-main", "max_dlq": 0, "fail_on_unhealthy": True})
    result = failed.value.result
    assert "t-dlq: 3 messages in the DLQ" in result["msg"]
    assert result["dlq"]["visible"] == 3 and result["healthy"] is False


def test_max_dlq_without_dlq_is_a_problem(run_module: RunModule, queues: Any) -> None:
    result = run_module(MOD, {"queue": "t-dlq", "max_dlq": 10})
    assert result["problems"] == ["t-dlq: no dead-letter queue (max_dlq is set)"]


def test_check_mode_is_the_same(run_module: RunModule, queues: Any) -> None:
    normal = run_module(MOD, {"queue": "t-main"})
    checked = run_module(MOD, {"queue": "t-main"}, check_mode=True)
    assert checked["changed"] is False
    assert checked["queue"]["visible"] == normal["queue"]["visible"]


def test_missing_queue_fails_with_error_code(run_module: RunModule, aws: None) -> None:
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, {"queue": "no-such-queue"})
    result = failed.value.result
    # the JSON protocol says QueueDoesNotExist, the query protocol the legacy code
    assert result["error_code"] in ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
    assert result["error_code"] in result["msg"]


def test_negative_threshold_is_rejected(run_module: RunModule, aws: None) -> None:
    with pytest.raises(AnsibleFailJson, match="max_visible must be >= 0"):
        run_module(MOD, {"queue": "t-main", "max_visible": -1})


def test_bad_arn_is_rejected(run_module: RunModule, aws: None) -> None:
    with pytest.raises(AnsibleFailJson, match="not an SQS queue ARN"):
        run_module(MOD, {"queue": "arn:aws:s3:::bucket"})


def test_missing_boto3(run_module: RunModule, without_boto3: None) -> None:
    missing = r"Failed to import the required Python library \(botocore and boto3\)"
    with pytest.raises(AnsibleFailJson, match=missing):
        run_module(MOD, {"queue": "t-main"})


def test_missing_worker_package(run_module: RunModule, without_filesearch_worker: None) -> None:
    with pytest.raises(AnsibleFailJson, match=r"filesearch-worker \(pip install files/worker\)"):
        run_module(MOD, {"queue": "t-main"})


def test_profile_and_keys_are_mutually_exclusive(run_module: RunModule, aws: None) -> None:
    with pytest.raises(AnsibleFailJson, match="Passing both a profile and access tokens"):
        run_module(MOD, {"queue": "q", "profile": "p", "access_key": "a", "secret_key": "s"})


def test_unknown_profile_fails_with_its_error_name(
    run_module: RunModule, aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # amazon.aws also reads the keys from the environment, and refuses them with a profile
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, {"queue": "q", "profile": "no-such-profile"})
    assert failed.value.result["error_code"] == "ProfileNotFound"
    assert "ProfileNotFound" in failed.value.result["msg"]


def test_age_from_cloudwatch(run_module: RunModule, queues: Any) -> None:
    import datetime as dt

    boto3.client("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": "t-main"}],
                "Timestamp": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
                "Value": 900.0,
            }
        ],
    )
    result = run_module(MOD, {"queue": "t-main", "max_oldest_age_seconds": 600})
    assert result["queue"]["oldest_age_seconds"] == 900
    assert result["queue"]["oldest_age_source"] == "cloudwatch"
    assert result["problems"] == [
        "t-main: 900 seconds age of the oldest message (over max_oldest_age_seconds 600)"
    ]
    assert result["dlq"]["oldest_age_seconds"] is None


# -- capacity advice -----------------------------------------------------------


def put_deleted(queue: str, per_minute: list[float]) -> None:
    """NumberOfMessagesDeleted points, one per minute ending a minute ago."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    boto3.client("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "NumberOfMessagesDeleted",
                "Dimensions": [{"Name": "QueueName", "Value": queue}],
                "Timestamp": now - dt.timedelta(minutes=len(per_minute) - i),
                "Value": value,
            }
            for i, value in enumerate(per_minute)
        ],
    )


def test_capacity_without_a_rate_is_null_not_invented(run_module: RunModule, queues: Any) -> None:
    cap = run_module(MOD, {"queue": "t-main", "current_workers": 2})["capacity"]
    assert cap["backlog"] == 3  # visible + in flight + delayed
    assert (cap["rate_per_minute"], cap["rate_source"]) == (None, None)
    assert cap["drain_eta_minutes"] is None
    assert cap["rate_per_worker"] is None and cap["recommended_workers"] is None
    assert "CloudWatch has no NumberOfMessagesDeleted for t-main" in cap["notes"]
    assert "no depth sampling (rate_sample_seconds is 0)" in cap["notes"]


def test_capacity_from_cloudwatch_rate(run_module: RunModule, queues: Any) -> None:
    put_deleted("t-main", [60.0, 120.0])
    cap = run_module(
        MOD, {"queue": "t-main", "current_workers": 3, "min_workers": 1, "max_workers": 4}
    )["capacity"]
    assert (cap["rate_per_minute"], cap["rate_source"]) == (90.0, "cloudwatch")
    assert cap["drain_eta_minutes"] == round(3 / 90, 2)
    assert (cap["rate_per_worker"], cap["rate_per_worker_source"]) == (30.0, "measured")
    assert cap["recommended_workers"] == 1  # ceil(3 / (30 * 10)) = 1
    assert cap["notes"] == []


def test_capacity_stalled_queue_has_no_eta(run_module: RunModule, queues: Any) -> None:
    put_deleted("t-main", [0.0, 0.0, 0.0])
    cap = run_module(MOD, {"queue": "t-main", "current_workers": 2})["capacity"]
    assert cap["rate_per_minute"] == 0.0  # measured: nothing deleted
    assert cap["drain_eta_minutes"] is None and cap["recommended_workers"] is None
    assert "the queue is not draining (rate <= 0): no ETA" in cap["notes"]


def test_capacity_with_given_rate_per_worker(run_module: RunModule, queues: Any) -> None:
    cap = run_module(
        MOD, {"queue": "t-main", "rate_per_worker": 0.1, "target_minutes": 5, "max_workers": 4}
    )["capacity"]
    assert (cap["rate_per_worker"], cap["rate_per_worker_source"]) == (0.1, "given")
    assert cap["recommended_workers"] == 4  # ceil(3 / 0.5) = 6, clamped to max 4
    assert cap["drain_eta_minutes"] is None  # the queue's own rate is still unknown


def test_capacity_off_and_rate_window_off(run_module: RunModule, queues: Any) -> None:
    assert run_module(MOD, {"queue": "t-main", "capacity": False})["capacity"] is None
    put_deleted("t-main", [60.0])
    cap = run_module(MOD, {"queue": "t-main", "rate_window_minutes": 0})["capacity"]
    assert cap["rate_per_minute"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"min_workers": 5, "max_workers": 3}, "max_workers must be >= 1 and >= min_workers (5)"),
        ({"target_minutes": 0}, "target_minutes must be > 0"),
        ({"rate_per_worker": -1}, "rate_per_worker must be > 0"),
        ({"current_workers": 0}, "current_workers must be >= 1"),
        ({"rate_sample_seconds": 301}, "rate_sample_seconds must be 0..300"),
    ],
)
def test_capacity_bad_inputs_are_refused(
    run_module: RunModule, aws: None, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(AnsibleFailJson) as failed:
        run_module(MOD, {"queue": "t-main", **args})
    assert message in failed.value.result["msg"]
