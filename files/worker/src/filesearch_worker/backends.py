"""The queue backend seam: what status, capacity advice and backlog alarms need of a queue.

Two kinds of queue carry file jobs: SQS (the worker's own) and Redis lists
(the backlog runbook's ``LLEN email_processing_queue`` world). Everything that
only needs numbers about a queue talks to a :class:`QueueBackend`:

- ``depth`` (waiting): SQS ApproximateNumberOfMessages + delayed; Redis, the sum
  of ``LLEN`` of the lists.
- ``in_flight`` (taken, not finished): SQS ApproximateNumberOfMessagesNotVisible;
  Redis, ``SCARD`` of the processing set.
- ``oldest_age_seconds``: SQS, CloudWatch ApproximateAgeOfOldestMessage; Redis,
  ``enqueued_at`` of the hash of the oldest job (None when producers do not write it).
- ``consumers``: SQS does not say (None); Redis, the clients blocked in a list pop
  at that moment (idle consumers; busy ones are not counted).

The capacity advice (:func:`sampled_capacity`) is the runbook's
``recommend_scaling`` over two samples of any backend, computed by
``queue_status.plan_capacity`` exactly as ``sqs_queue_status`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .queue_status import Capacity, CapacityPlan, plan_capacity, read_queue

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class QueueSample:
    """One reading of a queue; None where the backend cannot know."""

    name: str
    depth: int  # waiting to be taken
    in_flight: int  # taken, not finished
    oldest_age_seconds: int | None = None
    oldest_age_source: str | None = None
    consumers: int | None = None

    @property
    def backlog(self) -> int:
        """Work still to do: waiting + in flight (what the capacity advice drains)."""
        return self.depth + self.in_flight

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "backlog": self.backlog}


class QueueBackend(Protocol):
    """A queue that can be read; reading never changes it."""

    @property
    def name(self) -> str: ...

    def sample(self) -> QueueSample: ...


class SqsBackend:
    """An SQS queue by URL (``queue_status.resolve_queue_url`` turns names and ARNs into one)."""

    def __init__(
        self, sqs: SQSClient, url: str, cloudwatch: CloudWatchClient | None = None
    ) -> None:
        self.sqs = sqs
        self.url = url
        self.cloudwatch = cloudwatch

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def sample(self) -> QueueSample:
        status = read_queue(self.sqs, self.url, self.cloudwatch)
        return QueueSample(
            name=status.name,
            depth=status.visible + status.delayed,
            in_flight=status.in_flight,
            oldest_age_seconds=status.oldest_age_seconds,
            oldest_age_source=status.oldest_age_source,
            consumers=None,
        )


def sampled_capacity(
    backend: QueueBackend,
    plan: CapacityPlan,
    first: QueueSample | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Capacity, QueueSample]:
    """Capacity advice from two samples ``plan.rate_sample_seconds`` apart (net rate).

    Returns the advice and the latest sample. ``first`` (a reading already
    taken) is used only when there is no sampling. Without sampling
    (``rate_sample_seconds`` 0) the rate is unmeasured and only a given
    ``rate_per_worker`` gives a recommendation, as in ``sqs_queue_status``.
    """
    plan.check()
    notes: list[str] = []
    if plan.rate_sample_seconds <= 0:
        first = first or backend.sample()
        notes.append("no depth sampling (rate_sample_seconds is 0)")
        return plan_capacity(first.backlog, None, None, plan, notes), first
    first = backend.sample()  # fresh: the interval starts at this reading
    started = clock()
    sleep(plan.rate_sample_seconds)
    second = backend.sample()
    elapsed = max(clock() - started, 1e-9)
    rate = (first.backlog - second.backlog) * 60.0 / elapsed
    return plan_capacity(second.backlog, rate, "samples", plan, notes), second
