"""Queue health: what a queue and its dead-letter queue hold, judged against thresholds.

The engine behind the ``sqs_queue_status`` Ansible module (and anything else
that wants the seed's ``aws sqs get-queue-attributes`` checks as data). Needs
only boto3 clients; it reads and never writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections.abc import Callable
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
    capacity: Capacity | None = None

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue.to_dict(),
            "dlq": self.dlq.to_dict() if self.dlq else None,
            "healthy": self.healthy,
            "problems": list(self.problems),
            "capacity": self.capacity.to_dict() if self.capacity else None,
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
    plan: CapacityPlan | None = None,
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
    if plan is not None:
        report.capacity = capacity_advice(sqs, main, plan, cloudwatch, warnings)
    return report


# -- capacity advice (runbook seed 003: recommend_scaling) ----------------------


@dataclass(frozen=True)
class CapacityPlan:
    """Inputs of the runbook's rule ceil(backlog / (rate per worker x target minutes))."""

    target_minutes: float = 10.0
    min_workers: int = 2
    max_workers: int = 20
    #: messages per minute one worker process settles; None = measured rate / current_workers
    rate_per_worker: float | None = None
    current_workers: int | None = None
    #: CloudWatch NumberOfMessagesDeleted window (minutes); 0 = do not ask CloudWatch
    rate_window_minutes: int = 15
    #: seconds between two depth samples when CloudWatch has no rate; 0 = no sampling
    rate_sample_seconds: float = 0.0

    def check(self) -> None:
        """ValueError naming the option for inconsistent inputs."""
        if self.target_minutes <= 0:
            raise ValueError(f"target_minutes must be > 0, got {self.target_minutes}")
        if self.min_workers < 0:
            raise ValueError(f"min_workers must be >= 0, got {self.min_workers}")
        if self.max_workers < max(1, self.min_workers):
            raise ValueError(
                f"max_workers must be >= 1 and >= min_workers ({self.min_workers}), "
                f"got {self.max_workers}"
            )
        if self.rate_per_worker is not None and self.rate_per_worker <= 0:
            raise ValueError(f"rate_per_worker must be > 0, got {self.rate_per_worker}")
        if self.current_workers is not None and self.current_workers < 1:
            raise ValueError(f"current_workers must be >= 1, got {self.current_workers}")
        if not 0 <= self.rate_window_minutes <= 1440:
            raise ValueError(f"rate_window_minutes must be 0..1440, got {self.rate_window_minutes}")
        if not 0 <= self.rate_sample_seconds <= 300:
            raise ValueError(f"rate_sample_seconds must be 0..300, got {self.rate_sample_seconds}")


@dataclass(frozen=True)
class Capacity:
    """Processing rate, drain ETA and recommended worker count; None where not measurable."""

    backlog: int
    rate_per_minute: float | None
    rate_source: str | None
    drain_eta_minutes: float | None
    rate_per_worker: float | None
    rate_per_worker_source: str | None
    current_workers: int | None
    recommended_workers: int | None
    target_minutes: float
    min_workers: int
    max_workers: int
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def deleted_per_minute(
    cloudwatch: CloudWatchClient, name: str, window_minutes: int, now: dt.datetime | None = None
) -> float | None:
    """Mean NumberOfMessagesDeleted per minute over the minutes CloudWatch has points for.

    None when CloudWatch has no point in the window (a queue it does not
    report on, or an emulator); a window of zeros is a measured rate of 0.
    """
    end = now or dt.datetime.now(dt.UTC)
    stats = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="NumberOfMessagesDeleted",
        Dimensions=[{"Name": "QueueName", "Value": name}],
        StartTime=end - dt.timedelta(minutes=window_minutes),
        EndTime=end,
        Period=60,
        Statistics=["Sum"],
    )
    points = [p for p in stats.get("Datapoints", []) if "Sum" in p]
    if not points:
        return None
    minutes = len({p["Timestamp"] for p in points})
    return sum(float(p["Sum"]) for p in points) / minutes


def depth(queue: QueueStatus) -> int:
    """Messages still to process: visible + in flight + delayed."""
    return queue.visible + queue.in_flight + queue.delayed


def sampled_per_minute(
    sqs: SQSClient,
    queue: QueueStatus,
    seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[float, QueueStatus]:
    """Net drain rate from two depth readings ``seconds`` apart (arrivals subtract)."""
    first = read_queue(sqs, queue.url)
    started = clock()
    sleep(seconds)
    second = read_queue(sqs, queue.url)
    elapsed = max(clock() - started, 1e-9)
    return (depth(first) - depth(second)) * 60.0 / elapsed, second


def capacity_advice(
    sqs: SQSClient,
    queue: QueueStatus,
    plan: CapacityPlan,
    cloudwatch: CloudWatchClient | None = None,
    warnings: list[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Capacity:
    """The runbook's capacity advice for ``queue``; what cannot be measured is None."""
    plan.check()
    notes: list[str] = []
    rate: float | None = None
    source: str | None = None
    if cloudwatch is not None and plan.rate_window_minutes > 0:
        try:
            rate = deleted_per_minute(cloudwatch, queue.name, plan.rate_window_minutes)
        except (BotoCoreError, ClientError) as exc:
            log.warning("no NumberOfMessagesDeleted for %s: %s", queue.name, exc)
            if warnings is not None:
                warnings.append(f"{queue.name}: processing rate unavailable: {exc}")
        if rate is not None:
            source = "cloudwatch"
        else:
            notes.append(f"CloudWatch has no NumberOfMessagesDeleted for {queue.name}")
    if rate is None and plan.rate_sample_seconds > 0:
        rate, queue = sampled_per_minute(sqs, queue, plan.rate_sample_seconds, sleep, clock)
        source = "samples"
    if rate is None and plan.rate_sample_seconds <= 0:
        notes.append("no depth sampling (rate_sample_seconds is 0)")
    return plan_capacity(depth(queue), rate, source, plan, notes)


def plan_capacity(
    backlog: int, rate: float | None, source: str | None, plan: CapacityPlan, notes: list[str]
) -> Capacity:
    """The runbook's advice for ``backlog`` at ``rate`` (per minute, None = unmeasured).

    Shared by every queue backend (``filesearch_worker.backends``); ``notes``
    gets why a value is None.
    """
    eta: float | None = None
    if backlog == 0:
        eta = 0.0
    elif rate is not None and rate > 0:
        eta = round(backlog / rate, 2)
    elif rate is not None:
        notes.append("the queue is not draining (rate <= 0): no ETA")
    per_worker: float | None = plan.rate_per_worker
    per_worker_source: str | None = "given" if per_worker is not None else None
    if per_worker is None and rate is not None and plan.current_workers:
        if rate > 0:
            per_worker, per_worker_source = rate / plan.current_workers, "measured"
        else:
            notes.append("measured rate is not positive: no rate per worker")
    elif per_worker is None and rate is not None:
        notes.append("current_workers not given: no rate per worker")
    recommended: int | None = None
    if per_worker is not None:
        needed = math.ceil(backlog / (per_worker * plan.target_minutes))
        recommended = min(plan.max_workers, max(plan.min_workers, needed))
    return Capacity(
        backlog=backlog,
        rate_per_minute=None if rate is None else round(rate, 2),
        rate_source=source,
        drain_eta_minutes=eta,
        rate_per_worker=None if per_worker is None else round(per_worker, 2),
        rate_per_worker_source=per_worker_source,
        current_workers=plan.current_workers,
        recommended_workers=recommended,
        target_minutes=plan.target_minutes,
        min_workers=plan.min_workers,
        max_workers=plan.max_workers,
        notes=notes,
    )
