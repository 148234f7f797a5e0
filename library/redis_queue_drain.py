#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module redis_queue_drain: empty Redis lists after backing them up to S3; restore."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_queue_drain
short_description: Empty Redis queue lists after an S3 backup, or restore them from it
description:
  - The emergency drain of the backlog runbook for Redis priority lists, made safe. With
    O(state=drained), every list in O(lists) is renamed atomically to a parking key
    C(filesearch-drain:<run_id>:<list>) (jobs pushed after that land in a fresh list and stay),
    written to C(s3://<bucket>/<prefix>/<run_id>/<list>.json) (every job, its count and a sha256),
    read back from S3 and compared job by job, and only then deleted from Redis.
  - With O(state=restored), the jobs of backup O(run_id) are pushed back onto their lists at the
    consumers' (right) end, in their old order, ahead of anything pushed since. One script per list
    pushes them and sets a marker key C(filesearch-drain:restored:<run_id>:<list>) atomically, so a
    backup is never restored twice.
  - Idempotent - a list already backed up in this O(run_id) is left alone, a restored backup is not
    pushed again (C(changed=false)). A drain interrupted anywhere (the jobs still parked) is
    finished by running it again with the same O(run_id); a drain with another O(run_id) refuses
    to start while parked jobs of an unfinished one exist.
  - Why S3 and not a C(COPY) inside Redis - the backup must survive the loss of the Redis it
    protects (the bucket is the worker's archive bucket, C(S3_BUCKET)).
  - Guard it with an explicit confirmation - C(playbooks/emergency_drain.yml) with
    C(-e drain_backend=redis) refuses unless C(confirm_drain) repeats the list names.
version_added: "1.1.0"
author:
  - filesearch-ops contributors
options:
  state:
    description: V(drained) backs up and empties the lists; V(restored) pushes a backup back.
    type: str
    choices: [drained, restored]
    required: true
  run_id:
    description:
      - Names the drain - the S3 folder and the parking keys. Letters, digits, C(_ . -),
        e.g. C(20261203T170000Z). The same O(run_id) resumes or repeats a drain without harm.
    type: str
    required: true
  lists:
    description:
      - The lists to drain (default - the runbook's three priority lists).
      - For V(restored), the lists to restore; empty restores every list of the backup.
    type: list
    elements: str
    default: [high_priority_queue, normal_priority_queue, low_priority_queue]
  bucket:
    description: The S3 bucket of the backups (the worker's archive bucket).
    type: str
    required: true
  prefix:
    description: Key prefix of the backups in O(bucket).
    type: str
    default: redis-drain-archive
  park_prefix:
    description: Prefix of the parking and restore-marker keys in Redis.
    type: str
    default: "filesearch-drain:"
extends_documentation_fragment:
  - filesearch_redis
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description: Reports how many jobs would be drained or restored; writes nothing.
  diff_mode:
    support: none
    description: RV(lists) says, per list, what was done.
requirements:
  - python >= 3.11
  - redis (redis-py)
  - boto3
  - filesearch-worker (pip install files/worker)
notes:
  - Needs C(s3:PutObject), C(s3:GetObject), C(s3:ListBucket) on the bucket.
  - A backup is one JSON object per list - fine for hundreds of thousands of jobs, not for
    hundreds of millions. A restore pushes one list in one script (Redis is busy meanwhile).
"""

EXAMPLES = r"""
- name: Back up the priority lists to S3, then empty them
  redis_queue_drain:
    state: drained
    run_id: "20261203T170000Z"
    bucket: cis-filesearch-local
    url: redis://127.0.0.1:16379/0
    endpoint_url: http://127.0.0.1:4566
  register: __drain

- name: Put the jobs back
  redis_queue_drain:
    state: restored
    run_id: "20261203T170000Z"
    lists: []
    bucket: cis-filesearch-local
    url: redis://127.0.0.1:16379/0
    endpoint_url: http://127.0.0.1:4566
"""

RETURN = r"""
run_id:
  description: O(run_id).
  returned: always
  type: str
  sample: "20261203T170000Z"
bucket:
  description: O(bucket).
  returned: always
  type: str
  sample: cis-filesearch-local
jobs:
  description: Jobs drained (or restored) by this run in total; in check mode, that would be.
  returned: always
  type: int
  sample: 9400
lists:
  description: Per list - C(backup) (its S3 URL), C(jobs), C(state), C(changed) and C(sha256).
  returned: always
  type: dict
  sample: {"high_priority_queue": {"backup": "s3://cis-filesearch-local/redis-drain-archive/20261203T170000Z/high_priority_queue.json",
           "jobs": 3000, "state": "drained", "changed": true, "sha256": "9f86d0..."}}
"""

import contextlib
from typing import Any

from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule
from ansible.module_utils.filesearch_redis import (
    fail_redis,
    redis_argument_spec,
    redis_client,
    require_redis,
    safe_url,
)

with contextlib.suppress(ImportError):  # reported by require_redis()
    from redis.exceptions import RedisError

    from filesearch_worker.redis_queue import (
        RedisQueueError,
        check_run_id,
        drain_lists,
        restore_lists,
    )


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {
        "state": {"type": "str", "choices": ["drained", "restored"], "required": True},
        "run_id": {"type": "str", "required": True},
        "lists": {
            "type": "list",
            "elements": "str",
            "default": ["high_priority_queue", "normal_priority_queue", "low_priority_queue"],
        },
        "bucket": {"type": "str", "required": True},
        "prefix": {"type": "str", "default": "redis-drain-archive"},
        "park_prefix": {"type": "str", "default": "filesearch-drain:"},
    }
    spec.update(redis_argument_spec())
    return spec


def main() -> None:
    module = FilesearchAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_redis(module)
    p = module.params
    if p["state"] == "drained" and not p["lists"]:
        module.fail_json(msg="lists must name at least one list to drain")
    if len(set(p["lists"])) != len(p["lists"]):
        module.fail_json(msg=f"lists names a list twice: {p['lists']}")
    try:
        check_run_id(p["run_id"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    client = redis_client(module)
    s3 = module.client("s3")
    try:
        if p["state"] == "drained":
            report = drain_lists(
                client,
                s3,
                p["bucket"],
                p["prefix"],
                p["run_id"],
                p["lists"],
                check_mode=module.check_mode,
                source=safe_url(p["url"]),
                park_prefix=p["park_prefix"],
            )
        else:
            report = restore_lists(
                client,
                s3,
                p["bucket"],
                p["prefix"],
                p["run_id"],
                p["lists"] or None,
                check_mode=module.check_mode,
                park_prefix=p["park_prefix"],
            )
    except ValueError as exc:  # RedisQueueError is one: it names the key
        if isinstance(exc, RedisQueueError):
            fail_redis(module, exc, f"Not {p['state']}")
        module.fail_json(msg=str(exc))
    except RedisError as exc:
        fail_redis(module, exc, f"Not {p['state']}: Redis at {safe_url(p['url'])}")
    except BOTO_ERRORS as exc:
        module.fail_json_aws(exc, msg=f"Not {p['state']}: S3 bucket {p['bucket']}")
    module.exit_json(changed=report.changed, **report.to_dict())


if __name__ == "__main__":
    main()
