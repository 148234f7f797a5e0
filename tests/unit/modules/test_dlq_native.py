"""Strategy native (StartMessageMoveTask) of filesearch_worker.dlq, with a scripted SQS client.

moto has no message move tasks and LocalStack's finish at once, so a task that is
still running is only reproducible with a stand-in.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from filesearch_worker.dlq import DlqRecovery, RecoveryError, RecoveryOptions

DLQ = "http://127.0.0.1:4566/queue/ap-northeast-1/000000000000/d"
ARN = "arn:aws:sqs:ap-northeast-1:000000000000:d"


class ScriptedSqs:
    def __init__(self, tasks: list[dict[str, Any]], visible: int = 7) -> None:
        self.tasks = tasks
        self.visible = visible
        self.started: list[dict[str, Any]] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        return {"Attributes": {"QueueArn": ARN, "ApproximateNumberOfMessages": str(self.visible)}}

    def list_message_move_tasks(self, SourceArn: str, MaxResults: int) -> dict[str, Any]:
        return {"Results": self.tasks}

    def start_message_move_task(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"TaskHandle": "handle-1"}


def recover(sqs: Any, **options: Any) -> Any:
    return DlqRecovery(sqs, DLQ, RecoveryOptions(strategy="native", **options)).run()


def test_running_task_is_reported_not_restarted() -> None:
    sqs = ScriptedSqs(
        [
            {
                "TaskHandle": "h0",
                "Status": "RUNNING",
                "ApproximateNumberOfMessagesMoved": 1200,
                "ApproximateNumberOfMessagesToMove": 8158,
                "MaxNumberOfMessagesPerSecond": 500,
            }
        ]
    )
    report = recover(sqs)
    assert sqs.started == []
    assert report.changed is False
    assert report.native["running"] is True
    assert (report.native["messages_moved"], report.native["messages_to_move"]) == (1200, 8158)


def test_starts_a_task_with_the_rate_limit() -> None:
    sqs = ScriptedSqs([{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 3}])
    report = recover(sqs, messages_per_second=100)
    assert sqs.started == [{"SourceArn": ARN, "MaxNumberOfMessagesPerSecond": 100}]
    assert report.changed is True
    assert report.native["task_handle"] == "handle-1"
    assert report.native["last_task"]["status"] == "COMPLETED"


def test_dry_run_only_says_it_would_start() -> None:
    sqs = ScriptedSqs([])
    report = recover(sqs, dry_run=True)
    assert sqs.started == []
    assert report.changed is True and report.native["would_start"] is True


def test_empty_dlq_starts_nothing() -> None:
    sqs = ScriptedSqs([], visible=0)
    report = recover(sqs)
    assert sqs.started == [] and report.changed is False


@pytest.mark.parametrize("code", ["InvalidAction", "UnsupportedOperation", "NotImplemented"])
def test_unsupported_endpoint_is_named(code: str) -> None:
    sqs = ScriptedSqs([])

    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "nope"}}, "ListMessageMoveTasks")

    sqs.list_message_move_tasks = refuse  # type: ignore[method-assign,assignment]
    with pytest.raises(RecoveryError, match="does not support SQS message move tasks"):
        recover(sqs)


def test_other_errors_are_not_called_unsupported() -> None:
    sqs = ScriptedSqs([])

    def deny(**kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "no"}}, "StartMessageMoveTask"
        )

    sqs.start_message_move_task = deny  # type: ignore[method-assign,assignment]
    with pytest.raises(RecoveryError, match=r"strategy native: ClientError.*AccessDenied"):
        recover(sqs)
