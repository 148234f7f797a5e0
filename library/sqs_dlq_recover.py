#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module sqs_dlq_recover: empty a dead-letter queue without losing a message."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sqs_dlq_recover
short_description: Recover the messages of an SQS dead-letter queue, idempotently
description:
  - The incident report's C(recover_dlq.py) as a task, on the same engine as
    C(filesearch-worker recover-dlq) (C(filesearch_worker.dlq)).
  - Each message is classified. B(Already indexed) (OpenSearch multi-get by document
    id = S3 key) is deleted. B(Recoverable) is handled by O(strategy).
  - B(Unparseable), C(s3:TestEvent), failed O(max_attempts) recoveries, or failing permanently
    while reindexed is archived to C(s3://BUCKET/dlq-archive/YYYY-MM-DD/<message-id>.json)
    (body, attributes, reason) and then deleted.
  - A message is only ever deleted after a confirmed write somewhere else (index, retry store,
    source queue or archive). What cannot be settled now stays in the DLQ, is made visible
    again when the run ends, and is counted as C(released).
  - Check mode is the dry run - it classifies and counts what it would do. It is not free of
    effects - it receives the messages to classify them, so SQS counts a receive for each (their
    C(ApproximateReceiveCount) goes up by one), and it keeps the messages it received hidden from
    other consumers while the run lasts, then makes them visible again (visibility 0) when it ends.
    It writes, sends, archives and deletes nothing. See RV(dry_run).
  - An empty DLQ gives C(changed=false), so a second run after a complete one changes nothing.
version_added: "1.0.0"
author:
  - filesearch-ops contributors
options:
  dlq:
    description: Name, URL or ARN of the dead-letter queue.
    type: str
    required: true
  queue:
    description:
      - Name, URL or ARN of the source queue.
      - O(strategy=redrive) sends messages back to it; by default the one queue whose RedrivePolicy
        targets the DLQ (an error when there are several or none).
      - O(strategy=native) moves messages to it; by default SQS moves them to their original source.
    type: str
  strategy:
    description:
      - C(reindex) processes recoverable messages in place with the worker's code (download,
        extract, index; the retry store when OpenSearch refuses), then deletes them.
      - C(redrive) sends them back to the source queue with their attributes and a recovery counter
        (message attribute C(dlq-recoveries)), then deletes them.
      - C(archive-only) archives everything not already indexed.
      - C(native) starts an SQS message move task (StartMessageMoveTask); when a task is
        already running it reports that task's progress instead of starting another.
        No classification, archive or deduplication. Endpoints without message move tasks
        (moto) give a clear error.
    type: str
    choices: [reindex, redrive, archive-only, native]
    default: reindex
  bucket:
    description:
      - S3 bucket of the archive (C(dlq-archive/)) and of the worker's retry store
        (C(retry-index/)).
      - Required unless O(strategy=native).
    type: str
  opensearch_endpoint:
    description:
      - OpenSearch URL used for deduplication and by O(strategy=reindex).
      - Required while O(dedupe=true) (unless O(strategy=native)).
    type: str
  opensearch_index:
    description: Index holding the documents (id = S3 key).
    type: str
    default: file-index
  opensearch_auth:
    description:
      - C(auto) is C(sigv4) for an Amazon OpenSearch Service domain's hostname
        (C(*.es.amazonaws.com), C(*.aos.<region>.on.aws)), C(basic) when a user name is
        given, and C(none) otherwise.
      - C(sigv4) signs with the task's AWS credentials (O(access_key)/O(secret_key)/O(session_token)
        or O(profile), else boto3's credential chain) for O(region).
    type: str
    choices: [auto, sigv4, basic, none]
    default: auto
  opensearch_username:
    description: User for O(opensearch_auth=basic).
    type: str
  opensearch_password:
    description: Password for O(opensearch_auth=basic).
    type: str
  dedupe:
    description: Look messages up in OpenSearch and delete those already indexed.
    type: bool
    default: true
  batch_size:
    description: Messages per batch (received ten at a time, classified with one multi-get).
    type: int
    default: 10
  max_batches:
    description: Stop after this many batches (all threads together).
    type: int
  max_messages:
    description: Stop after this many messages.
    type: int
  messages_per_second:
    description:
      - Rate limit over all threads; unlimited when unset.
      - For O(strategy=native), the move task's C(MaxNumberOfMessagesPerSecond)
        (AWS caps it at 500).
    type: float
  max_attempts:
    description: A message that has been recovered this many times (C(dlq-recoveries)) is archived.
    type: int
    default: 3
  threads:
    description: Batches handled at once.
    type: int
    default: 4
  visibility_timeout:
    description: Seconds a message stays hidden while it is being recovered (and during a dry run).
    type: int
    default: 300
  wait_time_seconds:
    description: Long-poll wait of each receive; a receive that returns nothing ends a thread.
    type: int
    default: 1
  sample_size:
    description: Sample reasons kept per outcome.
    type: int
    default: 5
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: partial
    description: The dry run; classifies and counts what would be done.
    details:
      - A dry run still receives the DLQ's messages to classify them, so SQS counts a receive for
        each - their C(ApproximateReceiveCount) goes up by one (it counts towards a
        C(maxReceiveCount) of the DLQ's own RedrivePolicy, if it has one).
      - The messages it received stay hidden from other consumers only while the run lasts
        (O(visibility_timeout) at most) and are made visible again (visibility 0) when it ends.
      - It writes, sends, archives and deletes nothing (no index, retry store, source queue or
        archive write).
      - With O(strategy=native) a dry run receives nothing; it reads the queue and its move tasks
        and reports whether it would start one.
  diff_mode:
    support: none
    description: Counts per outcome are the report; there is no before/after document.
requirements:
  - python >= 3.11
  - boto3
  - opensearch-py
  - filesearch-worker (pip install files/worker)
notes:
  - Runs where C(filesearch_worker) is installed (the control node's project venv, or a
    worker host).
  - Needs C(sqs:ReceiveMessage), C(sqs:DeleteMessage), C(sqs:ChangeMessageVisibility),
    C(sqs:GetQueueAttributes), C(sqs:SendMessage) (redrive), C(sqs:ListDeadLetterSourceQueues),
    C(sqs:StartMessageMoveTask) and C(sqs:ListMessageMoveTasks) (native), C(s3:PutObject) and
    C(s3:GetObject) on the buckets, and read/write on the OpenSearch index.
seealso:
  - name: filesearch-worker recover-dlq
    description: The same engine on the command line (C(--batch-size N --max-batches N --dry-run)).
    link: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html
"""

EXAMPLES = r"""
- name: Recover the DLQ in place (the incident report's recover_dlq.py)
  sqs_dlq_recover:
    dlq: cis-filesearch-dlq
    bucket: cis-filesearch-files
    opensearch_endpoint: https://search-cis.ap-northeast-1.es.amazonaws.com
    region: ap-northeast-1
  register: __recovery

- name: Try one small batch first, as the incident report's runbook says
  sqs_dlq_recover:
    dlq: cis-filesearch-dlq
    bucket: cis-filesearch-files
    opensearch_endpoint: http://127.0.0.1:9200
    endpoint_url: http://127.0.0.1:4566
    batch_size: 10
    max_batches: 1

- name: Dry run
  sqs_dlq_recover:
    dlq: cis-filesearch-dlq
    bucket: cis-filesearch-files
    opensearch_endpoint: http://127.0.0.1:9200
  check_mode: true

- name: Send everything back to the index queue with SQS's own move task, 100 msg/s
  sqs_dlq_recover:
    dlq: cis-filesearch-dlq
    queue: cis-filesearch-index-queue
    strategy: native
    messages_per_second: 100
"""

RETURN = r"""
strategy:
  description: The strategy used.
  returned: always
  type: str
  sample: reindex
dry_run:
  description:
    - True in check mode (the dry run).
    - A dry run receives the messages it classifies, so their C(ApproximateReceiveCount) goes up by
      one; it keeps them hidden only while the run lasts and makes them visible again (visibility 0)
      when it ends. It writes, sends, archives and deletes nothing.
    - With O(strategy=native) a dry run receives nothing (it reads the queue and its move tasks).
  returned: always
  type: bool
  sample: false
dlq_url:
  description: URL of the DLQ.
  returned: always
  type: str
  sample: http://127.0.0.1:4566/000000000000/cis-filesearch-dlq
source_queue_url:
  description: Where O(strategy=redrive) sent messages; null otherwise.
  returned: always
  type: str
  sample: http://127.0.0.1:4566/000000000000/cis-filesearch-index-queue
archive:
  description: Archive location; null for O(strategy=native).
  returned: always
  type: str
  sample: s3://cis-filesearch-files/dlq-archive/
examined:
  description: Messages received and classified.
  returned: always
  type: int
  sample: 8158
counts:
  description: Messages per outcome (what would be done, in check mode).
  returned: always
  type: dict
  contains:
    deduplicated:
      description: Already indexed; deleted.
      type: int
      sample: 3000
    redriven:
      description: Sent back to the source queue, then deleted.
      type: int
      sample: 0
    reindexed:
      description: Indexed in place, then deleted.
      type: int
      sample: 4000
    retry_stored:
      description: Processed, stored in the retry store (OpenSearch refused), then deleted.
      type: int
      sample: 0
    archived:
      description: Written to the archive, then deleted.
      type: int
      sample: 1158
    released:
      description: Not settled now (transient failure); visible again in the DLQ.
      type: int
      sample: 0
delete_failed:
  description:
    - Deletes that failed after the write elsewhere.
    - The message reappears; a rerun settles it.
  returned: always
  type: int
  sample: 0
duplicates:
  description:
    - Messages received again during the run (SQS delivers at least once), left alone;
      in a dry run, messages seen once already. Settled by the next run.
  returned: always
  type: int
  sample: 0
batches:
  description: Batches handled.
  returned: always
  type: int
  sample: 816
elapsed_seconds:
  description: Wall time of the run.
  returned: always
  type: float
  sample: 14.2
messages_per_second:
  description: Messages examined per second.
  returned: always
  type: float
  sample: 574.5
remaining:
  description: ApproximateNumberOfMessages of the DLQ after the run.
  returned: always
  type: int
  sample: 0
samples:
  description: Up to O(sample_size) reasons per outcome, each after its message id.
  returned: always
  type: dict
  sample: {"archived": ["0f3c...: invalid-json: message body is not JSON: Expecting value"]}
native:
  description: The move task started or found running (O(strategy=native)); null otherwise.
  returned: always
  type: dict
  sample:
    started: false
    running: true
    task_handle: eyJ0...
    messages_moved: 1200
    messages_to_move: 8158
errors:
  description: Up to 20 errors met on the way (sends, archive writes, deletes).
  returned: always
  type: list
  elements: str
  sample: []
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "recover-dlq: strategy reindex, 8158 examined: deduplicated 3000, ..."
"""

import contextlib
from typing import Any

from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule

with contextlib.suppress(ImportError):  # reported by module.require_filesearch_worker()
    from filesearch_worker.config import Settings
    from filesearch_worker.dlq import RecoveryError, RecoveryOptions, recover
    from filesearch_worker.index import Indexer


def argument_spec() -> dict[str, Any]:
    """The module's own options (AnsibleAWSModule adds the common AWS ones)."""
    return {
        "dlq": {"type": "str", "required": True},
        "queue": {"type": "str"},
        "strategy": {
            "type": "str",
            "choices": ["reindex", "redrive", "archive-only", "native"],
            "default": "reindex",
        },
        "bucket": {"type": "str"},
        "opensearch_endpoint": {"type": "str"},
        "opensearch_index": {"type": "str", "default": "file-index"},
        "opensearch_auth": {
            "type": "str",
            "choices": ["auto", "sigv4", "basic", "none"],
            "default": "auto",
        },
        "opensearch_username": {"type": "str"},
        "opensearch_password": {"type": "str", "no_log": True},
        "dedupe": {"type": "bool", "default": True},
        "batch_size": {"type": "int", "default": 10},
        "max_batches": {"type": "int"},
        "max_messages": {"type": "int"},
        "messages_per_second": {"type": "float"},
        "max_attempts": {"type": "int", "default": 3},
        "threads": {"type": "int", "default": 4},
        "visibility_timeout": {"type": "int", "default": 300},
        "wait_time_seconds": {"type": "int", "default": 1},
        "sample_size": {"type": "int", "default": 5},
    }


def main() -> None:
    module = FilesearchAWSModule(
        argument_spec=argument_spec(),
        required_together=[["opensearch_username", "opensearch_password"]],
        required_if=[
            ("strategy", "reindex", ["bucket"]),
            ("strategy", "redrive", ["bucket"]),
            ("strategy", "archive-only", ["bucket"]),
        ],
        supports_check_mode=True,
    )
    module.require_filesearch_worker()
    p = module.params
    options = RecoveryOptions(
        strategy=p["strategy"],
        batch_size=p["batch_size"],
        max_batches=p["max_batches"],
        max_messages=p["max_messages"],
        messages_per_second=p["messages_per_second"],
        max_attempts=p["max_attempts"],
        dry_run=module.check_mode,
        threads=p["threads"],
        visibility_timeout=p["visibility_timeout"],
        wait_time_seconds=p["wait_time_seconds"],
        sample_size=p["sample_size"],
        dedupe=p["dedupe"],
    )
    # recover() validates the options and what each strategy needs; errors come back
    # as RecoveryError with the report of what was done before them.
    sqs = module.client("sqs")
    s3 = module.client("s3")
    settings = Settings(
        s3_bucket=p["bucket"] or "",
        opensearch_endpoint=p["opensearch_endpoint"] or "",
        opensearch_index=p["opensearch_index"],
        opensearch_auth=p["opensearch_auth"],
        opensearch_username=p["opensearch_username"] or "",
        opensearch_password=p["opensearch_password"] or "",
        region=p["region"] or getattr(sqs.meta, "region_name", None) or "us-east-1",
        concurrency=min(64, p["threads"] * 2),  # the processor's download/extract pool
        metrics="off",
    )
    indexer = None
    if settings.opensearch_endpoint and p["strategy"] != "native":
        # built here, not by recover(): SigV4 must sign with the task's credentials
        indexer = Indexer.from_settings(
            settings,
            credentials=module.signing_credentials()
            if settings.effective_auth() == "sigv4"
            else None,
        )
    try:
        report = recover(
            settings,
            options,
            sqs=sqs,
            s3=s3,
            indexer=indexer,
            dlq_url=p["dlq"],
            source_queue_url=p["queue"],
        )
    except RecoveryError as exc:
        partial = exc.report.to_dict() if exc.report else {}
        changed = bool(exc.report and exc.report.changed and not module.check_mode)
        if isinstance(exc.__cause__, BOTO_ERRORS):  # keep the AWS error code
            module.fail_json_aws(
                exc.__cause__, msg="DLQ recovery failed", changed=changed, **partial
            )
        module.fail_json(msg=f"DLQ recovery failed: {exc}", changed=changed, **partial)
    except BOTO_ERRORS as exc:
        module.fail_json_aws(exc, msg="DLQ recovery failed")
    result = report.to_dict()
    if report.counts["released"]:
        module.warn(f"{report.counts['released']} message(s) could not be settled now; rerun later")
    if report.delete_failed:
        module.warn(f"{report.delete_failed} delete(s) failed; a rerun settles those messages")
    module.exit_json(changed=report.changed, msg=report.summary(), **result)


if __name__ == "__main__":
    main()
