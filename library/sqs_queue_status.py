#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module sqs_queue_status: queue and DLQ counters judged against thresholds."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sqs_queue_status
short_description: Report an SQS queue and its dead-letter queue, and judge their health
description:
  - Reads an SQS queue (by name, URL or ARN) and its dead-letter queue (given with O(dlq),
    or found from the queue's RedrivePolicy) - messages visible, in flight and delayed,
    visibility timeout, redrive policy and, where CloudWatch has it, the age of the oldest
    message (C(ApproximateAgeOfOldestMessage)).
  - Thresholds give RV(healthy) and a list of RV(problems); O(fail_on_unhealthy=true) turns
    problems into a task failure (deploy pre- and post-checks).
  - An information module, it never changes anything and always returns C(changed=false).
  - The logic lives in the C(filesearch_worker) package (C(filesearch_worker.queue_status)),
    so the module runs where that package is installed (the control node's project venv).
version_added: "1.0.0"
author:
  - filesearch-ops contributors
options:
  queue:
    description: Name, URL or ARN of the queue.
    type: str
    required: true
  dlq:
    description:
      - Name, URL or ARN of the dead-letter queue.
      - When omitted, the DLQ named by the queue's RedrivePolicy is read (if it has one).
    type: str
  max_visible:
    description: The queue is unhealthy with more visible messages than this.
    type: int
  max_in_flight:
    description: The queue is unhealthy with more messages in flight than this (stuck messages).
    type: int
  max_dlq:
    description:
      - The queue is unhealthy with more visible messages in its DLQ than this,
        or when it has no DLQ at all.
    type: int
  max_oldest_age_seconds:
    description:
      - The queue is unhealthy when its oldest message is older than this many seconds.
      - Checked only where CloudWatch reports C(ApproximateAgeOfOldestMessage).
    type: int
  fail_on_unhealthy:
    description: Fail the task (with the full result) when there is any problem.
    type: bool
    default: false
  cloudwatch_age:
    description: Ask CloudWatch for C(ApproximateAgeOfOldestMessage).
    type: bool
    default: true
  capacity:
    description:
      - Return RV(capacity) - processing rate, drain ETA and the recommended worker count
        after the backlog runbook's rule C(ceil(backlog / (rate_per_worker * target_minutes))),
        clamped to O(min_workers)..O(max_workers).
      - The rate is the mean of CloudWatch C(NumberOfMessagesDeleted) per minute over
        O(rate_window_minutes); without CloudWatch points, two depth samples
        O(rate_sample_seconds) apart when that is set (net rate - arrivals subtract).
      - Values that cannot be measured are null, never estimated.
    type: bool
    default: true
  rate_window_minutes:
    description:
      - Minutes of C(NumberOfMessagesDeleted) to average (1-minute periods).
      - V(0) does not ask CloudWatch.
    type: int
    default: 15
  rate_sample_seconds:
    description:
      - When CloudWatch has no rate, read the queue depth twice this many seconds apart
        (the module waits that long). V(0), the default, keeps the module fast.
    type: float
    default: 0
  rate_per_worker:
    description:
      - Messages per minute one worker process settles. When omitted, the measured rate
        divided by O(current_workers) is used (both must be known).
    type: float
  current_workers:
    description: Worker processes consuming the queue now (hosts x instances per host).
    type: int
  target_minutes:
    description: Minutes the backlog should take to drain (the runbook's target processing time).
    type: float
    default: 10
  min_workers:
    description: Lower bound of RV(capacity.recommended_workers).
    type: int
    default: 2
  max_workers:
    description: Upper bound of RV(capacity.recommended_workers).
    type: int
    default: 20
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
  - filesearch-worker (pip install files/worker)
notes:
  - Counters are SQS's approximate numbers.
  - Needs C(sqs:GetQueueUrl), C(sqs:GetQueueAttributes) and, for the message age,
    C(cloudwatch:GetMetricStatistics). Without the latter the age is null and a warning is given.
  - CloudWatch publishes the C(AWS/SQS) metrics a few minutes late and only for active queues;
    a rate over a window in which workers were stopped understates what they can do, so give
    O(rate_per_worker) from a benchmark or stress test when you know it.
"""

EXAMPLES = r"""
- name: Check the index queue before a deploy
  sqs_queue_status:
    queue: cis-filesearch-index-queue
    max_in_flight: 5
    max_dlq: 100
    fail_on_unhealthy: true
    region: ap-northeast-1

- name: Read a queue and a given DLQ on LocalStack
  sqs_queue_status:
    queue: http://127.0.0.1:4566/000000000000/cis-filesearch-index-queue
    dlq: cis-filesearch-dlq
    endpoint_url: http://127.0.0.1:4566
  register: __status

- name: Capacity advice for 4 workers, drain within 30 minutes
  sqs_queue_status:
    queue: cis-filesearch-index-queue
    current_workers: 4
    target_minutes: 30
    min_workers: 2
    max_workers: 8
    rate_sample_seconds: 30
  register: __capacity

- name: Show the advice
  ansible.builtin.debug:
    msg: >-
      {{ __capacity.capacity.backlog }} messages, {{ __capacity.capacity.rate_per_minute }}/min,
      ETA {{ __capacity.capacity.drain_eta_minutes }} min,
      recommended {{ __capacity.capacity.recommended_workers }} workers

- name: Show the DLQ depth
  ansible.builtin.debug:
    msg: "{{ __status.dlq.visible }} messages in {{ __status.dlq.name }}"
"""

RETURN = r"""
queue:
  description: The queue's counters and settings.
  returned: always
  type: dict
  contains:
    url:
      description: Queue URL.
      type: str
      sample: http://127.0.0.1:4566/000000000000/cis-filesearch-index-queue
    name:
      description: Queue name.
      type: str
      sample: cis-filesearch-index-queue
    arn:
      description: Queue ARN.
      type: str
      sample: arn:aws:sqs:us-east-1:000000000000:cis-filesearch-index-queue
    visible:
      description: ApproximateNumberOfMessages.
      type: int
      sample: 0
    in_flight:
      description: ApproximateNumberOfMessagesNotVisible.
      type: int
      sample: 5
    delayed:
      description: ApproximateNumberOfMessagesDelayed.
      type: int
      sample: 0
    visibility_timeout:
      description: VisibilityTimeout in seconds.
      type: int
      sample: 600
    message_retention_seconds:
      description: MessageRetentionPeriod in seconds.
      type: int
      sample: 345600
    fifo:
      description: Whether it is a FIFO queue.
      type: bool
      sample: false
    redrive_policy:
      description: The parsed RedrivePolicy, null without one.
      type: dict
      sample:
        deadLetterTargetArn: arn:aws:sqs:us-east-1:000000000000:cis-filesearch-dlq
        maxReceiveCount: 3
    oldest_age_seconds:
      description:
        - Age of the oldest message (CloudWatch ApproximateAgeOfOldestMessage).
        - Null when unknown.
      type: int
      sample: 42
    oldest_age_source:
      description: Where RV(queue.oldest_age_seconds) came from (C(cloudwatch)), null when unknown.
      type: str
      sample: cloudwatch
dlq:
  description: The dead-letter queue, with the same keys as RV(queue); null when the queue has none.
  returned: always
  type: dict
  sample: {"name": "cis-filesearch-dlq", "visible": 8158, "in_flight": 0}
healthy:
  description: True when no threshold is exceeded.
  returned: always
  type: bool
  sample: false
problems:
  description: One sentence per exceeded threshold.
  returned: always
  type: list
  elements: str
  sample: ["cis-filesearch-dlq: 8158 messages in the DLQ (over max_dlq 100)"]
capacity:
  description: Capacity advice for RV(queue); null with O(capacity=false).
  returned: always
  type: dict
  contains:
    backlog:
      description: Messages still to process (visible + in flight + delayed).
      type: int
      sample: 8158
    rate_per_minute:
      description: Messages settled per minute; null when it could not be measured.
      type: float
      sample: 120.5
    rate_source:
      description:
        - C(cloudwatch) (NumberOfMessagesDeleted) or C(samples) (two depth readings).
        - Null when unmeasured.
      type: str
      sample: cloudwatch
    drain_eta_minutes:
      description:
        - Backlog / rate; 0 for an empty queue.
        - Null when the rate is unknown or not positive.
      type: float
      sample: 67.7
    rate_per_worker:
      description: Messages per minute per worker used for the advice; null when unknown.
      type: float
      sample: 30.12
    rate_per_worker_source:
      description:
        - C(given) (O(rate_per_worker)) or C(measured) (rate / O(current_workers)).
        - Null when unknown.
      type: str
      sample: measured
    current_workers:
      description: O(current_workers) as given (null when not given).
      type: int
      sample: 4
    recommended_workers:
      description:
        - ceil(backlog / (rate_per_worker * target_minutes)),
          clamped to O(min_workers)..O(max_workers).
        - Null when the rate per worker is unknown.
      type: int
      sample: 20
    target_minutes:
      description: O(target_minutes).
      type: float
      sample: 10.0
    min_workers:
      description: O(min_workers).
      type: int
      sample: 2
    max_workers:
      description: O(max_workers).
      type: int
      sample: 20
    notes:
      description: Why a value is null (no CloudWatch points, no sampling, queue not draining, ...).
      type: list
      elements: str
      sample: ["no depth sampling (rate_sample_seconds is 0)"]
"""

import contextlib
from typing import Any

from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule
from ansible.module_utils.filesearch_capacity import capacity_argument_spec, capacity_plan

with contextlib.suppress(ImportError):  # reported by module.require_filesearch_worker()
    from filesearch_worker.queue_status import (
        Thresholds,
        capacity_advice,
        queue_status,
    )


def argument_spec() -> dict[str, Any]:
    """The module's own options (AnsibleAWSModule adds the common AWS ones)."""
    return {
        "queue": {"type": "str", "required": True},
        "dlq": {"type": "str"},
        "max_visible": {"type": "int"},
        "max_in_flight": {"type": "int"},
        "max_dlq": {"type": "int"},
        "max_oldest_age_seconds": {"type": "int"},
        "fail_on_unhealthy": {"type": "bool", "default": False},
        "cloudwatch_age": {"type": "bool", "default": True},
        "rate_window_minutes": {"type": "int", "default": 15},
        **capacity_argument_spec(),
    }


def main() -> None:
    module = FilesearchAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.require_filesearch_worker()
    p = module.params
    for option in ("max_visible", "max_in_flight", "max_dlq", "max_oldest_age_seconds"):
        if p[option] is not None and p[option] < 0:
            module.fail_json(msg=f"{option} must be >= 0, got {p[option]}")
    plan = capacity_plan(module, p["rate_window_minutes"])
    sqs = module.client("sqs")
    wants_rate = plan is not None and plan.rate_window_minutes > 0
    cloudwatch = module.client("cloudwatch") if p["cloudwatch_age"] or wants_rate else None
    limits = Thresholds(
        max_visible=p["max_visible"],
        max_in_flight=p["max_in_flight"],
        max_dlq=p["max_dlq"],
        max_oldest_age_seconds=p["max_oldest_age_seconds"],
    )
    try:
        report = queue_status(
            sqs, p["queue"], p["dlq"], limits, cloudwatch if p["cloudwatch_age"] else None
        )
        if plan is not None:
            report.capacity = capacity_advice(sqs, report.queue, plan, cloudwatch, report.warnings)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except BOTO_ERRORS as exc:
        module.fail_json_aws(exc, msg=f"Cannot read queue {p['queue']}")
    for warning in report.warnings:
        module.warn(warning)
    result = report.to_dict()
    if p["fail_on_unhealthy"] and not report.healthy:
        module.fail_json(msg="Unhealthy: " + "; ".join(report.problems), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
