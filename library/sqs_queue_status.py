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
  region:
    description: AWS region. Defaults to E(AWS_REGION) / E(AWS_DEFAULT_REGION) or the profile's.
    type: str
    aliases: [aws_region]
  endpoint_url:
    description:
      - URL of the AWS endpoint (an emulator such as LocalStack).
      - When unset, boto3 honours E(AWS_ENDPOINT_URL) and E(AWS_ENDPOINT_URL_SQS).
    type: str
    aliases: [aws_endpoint_url]
  profile:
    description:
      - Named AWS profile.
      - Mutually exclusive with O(access_key), O(secret_key) and O(session_token).
    type: str
    aliases: [aws_profile]
  access_key:
    description: AWS access key id. Defaults to boto3's credential chain.
    type: str
    aliases: [aws_access_key_id, aws_access_key]
  secret_key:
    description: AWS secret access key. Defaults to boto3's credential chain.
    type: str
    aliases: [aws_secret_access_key, aws_secret_key]
  session_token:
    description: AWS session token for temporary credentials.
    type: str
    aliases: [aws_session_token]
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
"""

import contextlib
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.filesearch_aws import (
    AWS_MUTUALLY_EXCLUSIVE,
    AWS_REQUIRED_TOGETHER,
    BOTO_ERRORS,
    aws_argument_spec,
    aws_client,
    fail_aws,
    require_boto3,
    require_filesearch_worker,
)

with contextlib.suppress(ImportError):  # reported by require_filesearch_worker()
    from filesearch_worker.queue_status import Thresholds, queue_status


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {
        "queue": {"type": "str", "required": True},
        "dlq": {"type": "str"},
        "max_visible": {"type": "int"},
        "max_in_flight": {"type": "int"},
        "max_dlq": {"type": "int"},
        "max_oldest_age_seconds": {"type": "int"},
        "fail_on_unhealthy": {"type": "bool", "default": False},
        "cloudwatch_age": {"type": "bool", "default": True},
    }
    spec.update(aws_argument_spec())
    return spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=AWS_MUTUALLY_EXCLUSIVE,
        required_together=AWS_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    require_boto3(module)
    require_filesearch_worker(module)
    p = module.params
    for option in ("max_visible", "max_in_flight", "max_dlq", "max_oldest_age_seconds"):
        if p[option] is not None and p[option] < 0:
            module.fail_json(msg=f"{option} must be >= 0, got {p[option]}")
    sqs = aws_client(module, "sqs")
    cloudwatch = aws_client(module, "cloudwatch") if p["cloudwatch_age"] else None
    limits = Thresholds(
        max_visible=p["max_visible"],
        max_in_flight=p["max_in_flight"],
        max_dlq=p["max_dlq"],
        max_oldest_age_seconds=p["max_oldest_age_seconds"],
    )
    try:
        report = queue_status(sqs, p["queue"], p["dlq"], limits, cloudwatch)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except BOTO_ERRORS as exc:
        fail_aws(module, exc, f"Cannot read queue {p['queue']}")
    for warning in report.warnings:
        module.warn(warning)
    result = report.to_dict()
    if p["fail_on_unhealthy"] and not report.healthy:
        module.fail_json(msg="Unhealthy: " + "; ".join(report.problems), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
