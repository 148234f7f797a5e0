"""CloudWatch metrics batching (moto), JSON logs, and the CLI's health/config/replay paths."""

from __future__ import annotations

import json
import logging
from typing import Any

import boto3
import pytest
from botocore.config import Config

from filesearch_worker import cli, logs
from filesearch_worker.metrics import CloudWatchMetrics

REGION = "ap-northeast-1"


def test_metrics_are_aggregated_and_sent_in_one_call(aws: None) -> None:
    client = boto3.client("cloudwatch", region_name=REGION)
    calls: list[int] = []
    client.meta.events.register(
        "provide-client-params.cloudwatch.PutMetricData",
        lambda params, **_: calls.append(len(params["MetricData"])),
    )
    metrics = CloudWatchMetrics(client, "CISFileSearch/Worker", interval=3600)
    for _ in range(50):
        metrics.incr("MessagesSucceeded")
        metrics.observe("ProcessingSeconds", 0.25)
    metrics.incr("MessageDeleteFailed")
    assert calls == []  # recording never calls CloudWatch
    assert metrics.flush() == 3
    assert calls == [3]
    names = {
        m["MetricName"] for m in client.list_metrics(Namespace="CISFileSearch/Worker")["Metrics"]
    }
    assert names == {"MessagesSucceeded", "ProcessingSeconds", "MessageDeleteFailed"}
    assert metrics.flush() == 0


def test_metrics_failures_are_swallowed(closed_port: int) -> None:
    client = boto3.client(
        "cloudwatch",
        region_name=REGION,
        endpoint_url=f"http://127.0.0.1:{closed_port}",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )
    metrics = CloudWatchMetrics(client, "X", interval=3600)
    metrics.incr("CriticalError")
    assert metrics.flush() == 0
    assert metrics.send_failures == 1


def test_json_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info")
    logs.event(logging.getLogger("t"), "settled", key="日本.txt", outcome="indexed", detail=None)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "settled"
    assert line["key"] == "日本.txt"
    assert "detail" not in line


def test_config_error_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKER_CONCURRENCY", "lots")
    assert cli.main(["health"]) == 2
    assert "WORKER_CONCURRENCY" in capsys.readouterr().err


def test_run_requires_queue_and_bucket(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run"]) == 2
    assert "SQS_QUEUE_URL, S3_BUCKET must be set" in capsys.readouterr().err


def test_health_prints_one_line_per_failed_dependency(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    dead = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("SQS_QUEUE_URL", f"{dead}/queue/q")
    monkeypatch.setenv("S3_BUCKET", "bkt")
    monkeypatch.setenv("OPENSEARCH_ENDPOINT", dead)
    assert cli.main(["health"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["FAIL sqs", "FAIL s3", "FAIL opensearch"]


def test_health_passes_on_moto(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("SQS_QUEUE_URL", sqs.create_queue(QueueName="q")["QueueUrl"])
    monkeypatch.setenv("S3_BUCKET", "bkt")
    monkeypatch.setenv("SKIP_OPENSEARCH", "true")
    assert cli.main(["health", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.count("ok ") == 3


def test_replay_dry_run(
    aws: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="bkt", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(
        Bucket="bkt", Key="retry-index/2026-01-01/a.txt.json", Body=b'{"file_key":"a.txt"}'
    )
    monkeypatch.setenv("S3_BUCKET", "bkt")
    assert cli.main(["replay-retries", "--dry-run", "--progress", "always"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["found"] == 1
    assert "1/1" in captured.err  # the progress bar
    assert cli.main(["replay-retries", "--date", "2026/01/01", "--dry-run"]) == 2


def test_replay_needs_opensearch(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("S3_BUCKET", "bkt")
    assert cli.main(["replay-retries"]) == 2
    assert "OPENSEARCH_ENDPOINT" in capsys.readouterr().err


def test_recover_dlq_is_wired() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(
        ["recover-dlq", "--batch-size", "5", "--max-batches", "1", "--dry-run"]
    )
    assert (args.batch_size, args.max_batches, args.dry_run) == (5, 1, True)
