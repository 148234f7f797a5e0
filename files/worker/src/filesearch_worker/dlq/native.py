"""Strategy ``native``: hand the move to SQS (StartMessageMoveTask).

Reports on a task already running instead of starting a second one; a dry
run says whether it would start one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from filesearch_worker.dlq.options import RecoveryConfigError, RecoveryError

if TYPE_CHECKING:
    from filesearch_worker.dlq.options import RecoveryOptions, RecoveryReport

#: Error codes of endpoints without StartMessageMoveTask / ListMessageMoveTasks.
UNSUPPORTED_CODES = frozenset(
    {
        "InvalidAction",
        "UnsupportedOperation",
        "UnknownOperationException",
        "NotImplemented",
        "InternalFailure",
        "AWS.SimpleQueueService.UnsupportedOperation",
    }
)


def visible_count(sqs: Any, queue_url: str) -> int | None:
    """``ApproximateNumberOfMessages`` of a queue, None when it cannot be read."""
    try:
        attrs = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
    except (ClientError, BotoCoreError):
        return None
    return int(attrs.get("ApproximateNumberOfMessages", 0))


def native_move(
    sqs: Any,
    dlq_url: str,
    source_queue_url: str | None,
    options: RecoveryOptions,
    report: RecoveryReport,
) -> dict[str, Any]:
    """Start (or report on) the DLQ's message move task; the report's ``native`` part."""
    try:
        arn = _queue_arn(sqs, dlq_url)
        tasks = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=10).get("Results", [])
    except (ClientError, BotoCoreError, NotImplementedError) as exc:
        raise _native_error(exc, report) from exc
    running = [t for t in tasks if t.get("Status") == "RUNNING"]
    if running:
        task = running[0]
        return {
            "started": False,
            "running": True,
            "task_handle": task.get("TaskHandle"),
            "status": task.get("Status"),
            "messages_moved": task.get("ApproximateNumberOfMessagesMoved"),
            "messages_to_move": task.get("ApproximateNumberOfMessagesToMove"),
            "destination_arn": task.get("DestinationArn"),
            "max_messages_per_second": task.get("MaxNumberOfMessagesPerSecond"),
        }
    visible = visible_count(sqs, dlq_url) or 0
    info: dict[str, Any] = {"started": False, "running": False, "messages_to_move": visible}
    if tasks:
        last = tasks[0]
        info["last_task"] = {
            "status": last.get("Status"),
            "messages_moved": last.get("ApproximateNumberOfMessagesMoved"),
            "failure_reason": last.get("FailureReason"),
        }
    if visible == 0:
        return info
    if options.dry_run:
        info["would_start"] = True
        return info
    kwargs: dict[str, Any] = {"SourceArn": arn}
    try:
        if source_queue_url:
            kwargs["DestinationArn"] = _queue_arn(sqs, source_queue_url)
        if options.messages_per_second:
            kwargs["MaxNumberOfMessagesPerSecond"] = int(options.messages_per_second)
        started = sqs.start_message_move_task(**kwargs)
    except (ClientError, BotoCoreError, NotImplementedError) as exc:
        raise _native_error(exc, report) from exc
    info.update(started=True, running=True, task_handle=started.get("TaskHandle"))
    return info


def _queue_arn(sqs: Any, queue_url: str) -> str:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return str(attrs["Attributes"]["QueueArn"])


def _unsupported(exc: BaseException) -> str | None:
    if isinstance(exc, NotImplementedError):
        return "NotImplemented"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in UNSUPPORTED_CODES or status == 501 or "not implemented" in str(exc).lower():
            return code or str(status)
    return None


def _native_error(exc: BaseException, report: RecoveryReport) -> RecoveryError:
    code = _unsupported(exc)
    if code:
        return RecoveryConfigError(
            "strategy native: this endpoint does not support SQS message move tasks "
            f"(StartMessageMoveTask/ListMessageMoveTasks: {code}); use strategy redrive",
            report,
        )
    return RecoveryError(f"strategy native: {type(exc).__name__}: {exc}", report)
