"""Queue health: what a queue and its dead-letter queue hold, judged against thresholds.

The engine behind the ``sqs_queue_status`` Ansible module (and anything else
that wants the seed's ``aws sqs get-queue-attributes`` checks as data). Needs
only boto3 clients; it reads and never writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

#: How far back CloudWatch is asked for ApproximateAgeOfOldestMessage.
AGE_LOOKBACK = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class QueueStatus:
    """One queue's counters and settings as SQS (and CloudWatch) report them."""

    url: str
    name: str
    arn: str
    visible: int
    in_flight: int
    delayed: int
    visibility_timeout: int
    message_retention_seconds: int
    fifo: bool
    redrive_policy: dict[str, Any] | None
    oldest_age_seconds: int | None
    oldest_age_source: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Limits above which a queue counts as unhealthy; None means not checked."""

    max_visible: int | None = None
    max_in_flight: int | None = None
    max_dlq: int | None = None
    max_oldest_age_seconds: int | None = None


@dataclass
class StatusReport:
    """The queue, its DLQ (if it has one) and the problems found."""

    queue: QueueStatus
    dlq: QueueStatus | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue.to_dict(),
            "dlq": self.dlq.to_dict() if self.dlq else None,
            "healthy": self.healthy,
            "problems": list(self.problems),
        }


def is_queue_url(queue: str) -> bool:
    return urlparse(queue).scheme in ("http", "https")


def queue_name_from_url(url: str) -> str:
    return urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]


def resolve_queue_url(sqs: SQSClient, queue: str) -> str:
    """A queue URL from a URL (returned as is), an ARN or a name (GetQueueUrl)."""
    if is_queue_url(queue):
        return queue
    if queue.startswith("arn:"):
        return url_from_arn(sqs, queue)
    return sqs.get_queue_url(QueueName=queue)["QueueUrl"]


def url_from_arn(sqs: SQSClient, arn: str) -> str:
    """The URL of the queue named by an SQS ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    account, name = parts[4], parts[5]
    if account:
        return sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def oldest_age_seconds(
    cloudwatch: CloudWatchClient, name: str, now: dt.datetime | None = None
) -> int | None:
    """Latest ApproximateAgeOfOldestMessage (Maximum) of the last minutes; None if none."""
    end = now or dt.datetime.now(dt.UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": name}],
        StartTime=end - AGE_LOOKBACK,
        EndTime=end,
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(stats.get("Datapoints", []), key=lambda p: p["Timestamp"])
    if not points or "Maximum" not in points[-1]:
        return None
    return int(points[-1]["Maximum"])


def read_queue(
    sqs: SQSClient,
    url: str,
    cloudwatch: CloudWatchClient | None = None,
    warnings: list[str] | None = None,
) -> QueueStatus:
    """Read one queue's attributes (and the age of its oldest message when available)."""
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    name = queue_name_from_url(url)
    redrive_raw = attrs.get("RedrivePolicy")
    redrive = json.loads(redrive_raw) if redrive_raw else None
    age: int | None = None
    source: str | None = None
    if cloudwatch is not None:
        try:
            age = oldest_age_seconds(cloudwatch, name)
        except (BotoCoreError, ClientError) as exc:
            log.warning("no ApproximateAgeOfOldestMessage for %s: %s", name, exc)
            if warnings is not None:
                warnings.append(f"{name}: age of oldest message unavailable: {exc}")
        else:
            source = "cloudwatch" if age is not None else None
    return QueueStatus(
        url=url,
        name=name,
        arn=attrs.get("QueueArn", ""),
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        visibility_timeout=int(attrs.get("VisibilityTimeout", 30)),
        message_retention_seconds=int(attrs.get("MessageRetentionPeriod", 345600)),
        fifo=attrs.get("FifoQueue", "false").lower() == "true",
        redrive_policy=redrive,
        oldest_age_seconds=age,
        oldest_age_source=source,
    )


def evaluate(queue: QueueStatus, dlq: QueueStatus | None, limits: Thresholds) -> list[str]:
    """Problems of ``queue`` and ``dlq`` against ``limits``, one sentence each."""
    problems: list[str] = []
    checks: list[tuple[QueueStatus | None, int | None, int | None, str, str]] = [
        (queue, queue.visible, limits.max_visible, "messages visible", "max_visible"),
        (queue, queue.in_flight, limits.max_in_flight, "messages in flight", "max_in_flight"),
        (
            queue,
            queue.oldest_age_seconds,
            limits.max_oldest_age_seconds,
            "seconds age of the oldest message",
            "max_oldest_age_seconds",
        ),
    ]
    if dlq is not None:
        checks.append((dlq, dlq.visible, limits.max_dlq, "messages in the DLQ", "max_dlq"))
    for subject, value, limit, what, option in checks:
        if subject is None or value is None or limit is None:
            continue
        if value > limit:
            problems.append(f"{subject.name}: {value} {what} (over {option} {limit})")
    if limits.max_dlq is not None and dlq is None:
        problems.append(f"{queue.name}: no dead-letter queue (max_dlq is set)")
    return problems


def queue_status(
    sqs: SQSClient,
    queue: str,
    dlq: str | None = None,
    limits: Thresholds | None = None,
    cloudwatch: CloudWatchClient | None = None,
) -> StatusReport:
    """Status of ``queue`` (name, URL or ARN) and its DLQ (given, or from its RedrivePolicy)."""
    warnings: list[str] = []
    main = read_queue(sqs, resolve_queue_url(sqs, queue), cloudwatch, warnings)
    dead: QueueStatus | None = None
    if dlq:
        dead = read_queue(sqs, resolve_queue_url(sqs, dlq), cloudwatch, warnings)
    elif main.redrive_policy and main.redrive_policy.get("deadLetterTargetArn"):
        dlq_url = url_from_arn(sqs, str(main.redrive_policy["deadLetterTargetArn"]))
        dead = read_queue(sqs, dlq_url, cloudwatch, warnings)
    report = StatusReport(queue=main, dlq=dead, warnings=warnings)
    report.problems = evaluate(main, dead, limits or Thresholds())
    return report
