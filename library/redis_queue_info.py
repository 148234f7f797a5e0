#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module redis_queue_info: Redis-list queues, the processing set, stuck jobs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_queue_info
short_description: Report Redis-list queues, the jobs in processing and the stuck ones
description:
  - The backlog runbook's manual detection for Redis-list queues - C(LLEN) of every queue,
    the size of the processing set, and the jobs in it whose heartbeat key is missing or older
    than O(stale_after_seconds) (the runbook's stuck jobs), each with the queue it came from.
  - Capacity advice like M(sqs_queue_status) gives for SQS - drain ETA and the recommended
    worker count after the runbook's rule C(ceil(backlog / (rate_per_worker * target_minutes))),
    from two readings O(rate_sample_seconds) apart (net rate; arrivals subtract).
  - Thresholds give RV(healthy) and RV(problems); O(fail_on_unhealthy=true) fails the task.
  - An information module - it never writes and always returns C(changed=false).
  - A key of the wrong type (a hash where a queue list should be), a malformed job id or a
    heartbeat that is no timestamp fails the task with a message naming the key.
  - The logic is C(filesearch_worker.redis_queue) and C(filesearch_worker.backends).
version_added: "1.1.0"
author:
  - filesearch-ops contributors
options:
  max_listed:
    description: At most this many stuck jobs are listed in RV(stuck_jobs) (all are counted).
    type: int
    default: 100
  max_depth:
    description: Unhealthy when the queues hold more jobs than this in total.
    type: int
  max_stuck:
    description: Unhealthy when more jobs than this are stuck.
    type: int
  max_oldest_age_seconds:
    description: Unhealthy when the oldest waiting job is older than this (needs C(enqueued_at)).
    type: int
  fail_on_unhealthy:
    description: Fail the task (with the full result) when there is any problem.
    type: bool
    default: false
  capacity:
    description: Return RV(capacity) (null with V(false)).
    type: bool
    default: true
  rate_sample_seconds:
    description:
      - Read the backlog (all queues + the processing set) twice this many seconds apart to
        measure the net rate; the module waits that long. V(0) measures nothing.
    type: float
    default: 0
  rate_per_worker:
    description:
      - Jobs per minute one worker finishes.
      - When omitted, the measured rate divided by O(current_workers).
    type: float
  current_workers:
    description: Worker processes consuming the queues now.
    type: int
  target_minutes:
    description: Minutes the backlog should take to drain.
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
  - filesearch_redis
  - filesearch_redis.layout
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
requirements:
  - python >= 3.11
  - redis (redis-py)
  - filesearch-worker (pip install files/worker)
notes:
  - Reads with C(TYPE), C(LLEN), C(LINDEX), C(SCARD), C(SSCAN), C(MGET), C(HGET), C(TIME) and
    C(CLIENT LIST); ages are measured on the Redis server's clock.
  - A job's queue is the O(queue_field) field of its hash C(<job_prefix><id>); see
    docs/backlog-operations.md for the data model.
"""

EXAMPLES = r"""
- name: The runbook's LLEN checks and the stuck jobs
  redis_queue_info:
    url: redis://127.0.0.1:16379/0
  register: __redis

- name: Capacity advice for 4 workers, two readings 30 s apart
  redis_queue_info:
    url: "{{ redis_url }}"
    queues: [high_priority_queue, normal_priority_queue, low_priority_queue]
    current_workers: 4
    rate_sample_seconds: 30
    max_stuck: 0
    fail_on_unhealthy: true
  register: __redis_capacity

- name: Show the backlog
  ansible.builtin.debug:
    msg: >-
      {{ __redis.depth }} queued, {{ __redis.processing.size }} in processing,
      {{ __redis.processing.stuck }} stuck
"""

RETURN = r"""
queues:
  description: One entry per queue list, in the order of O(queues).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The list's key.
      type: str
      sample: high_priority_queue
    exists:
      description: Whether the key exists (an empty list does not).
      type: bool
      sample: true
    depth:
      description: LLEN.
      type: int
      sample: 1200
    oldest_job:
      description: The job at the consumer (right) end, the next to be taken; null when empty.
      type: str
      sample: "7f9c2d"
    oldest_age_seconds:
      description: Age of that job from the C(enqueued_at) of its hash; null when unknown.
      type: int
      sample: 340
depth:
  description: Jobs waiting in all the queues.
  returned: always
  type: int
  sample: 9400
processing:
  description: The processing set.
  returned: always
  type: dict
  contains:
    key:
      description: O(processing_set).
      type: str
      sample: processing_jobs
    size:
      description: SCARD.
      type: int
      sample: 600
    live:
      description: Jobs with a heartbeat within O(stale_after_seconds).
      type: int
      sample: 100
    stuck:
      description: Jobs whose heartbeat is missing or older (routable or not).
      type: int
      sample: 500
    unroutable:
      description: Stuck jobs with no queue to go back to (see RV(stuck_jobs)).
      type: int
      sample: 0
stuck_jobs:
  description: Up to O(max_listed) stuck jobs.
  returned: always
  type: list
  elements: dict
  sample:
    - {"id": "job-17", "queue": "high_priority_queue", "reason": "stale",
       "heartbeat_age_seconds": 912.4, "queue_source": "job_hash"}
sample:
  description: The backend-neutral reading (the same keys the SQS backend gives).
  returned: always
  type: dict
  sample: {"name": "redis", "depth": 9400, "in_flight": 600, "backlog": 10000,
           "oldest_age_seconds": null, "oldest_age_source": null, "consumers": 3}
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
  sample: ["processing_jobs: 500 stuck jobs (over max_stuck 0)"]
capacity:
  description:
    - Capacity advice (the keys of M(sqs_queue_status)'s RV(capacity)); null with O(capacity=false).
    - RV(capacity.backlog) is queued + in processing; C(rate_source) is C(samples) or null.
  returned: always
  type: dict
  sample: {"backlog": 10000, "rate_per_minute": 480.0, "rate_source": "samples",
           "drain_eta_minutes": 20.83, "rate_per_worker": 120.0,
           "rate_per_worker_source": "measured",
           "current_workers": 4, "recommended_workers": 9, "target_minutes": 10.0,
           "min_workers": 2, "max_workers": 20, "notes": []}
"""

import contextlib
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.filesearch_capacity import capacity_argument_spec, capacity_plan
from ansible.module_utils.filesearch_redis import (
    fail_redis,
    layout_argument_spec,
    layout_from_params,
    redis_argument_spec,
    redis_client,
    require_redis,
    safe_url,
)

with contextlib.suppress(ImportError):  # reported by require_redis()
    from redis.exceptions import RedisError

    from filesearch_worker.backends import sampled_capacity
    from filesearch_worker.redis_queue import (
        RedisListBackend,
        RedisQueueError,
        scan_processing,
    )


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {
        "max_listed": {"type": "int", "default": 100},
        "max_depth": {"type": "int"},
        "max_stuck": {"type": "int"},
        "max_oldest_age_seconds": {"type": "int"},
        "fail_on_unhealthy": {"type": "bool", "default": False},
    }
    spec.update(capacity_argument_spec())
    spec.update(redis_argument_spec())
    spec.update(layout_argument_spec())
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_redis(module)
    p = module.params
    for option in ("max_listed", "max_depth", "max_stuck", "max_oldest_age_seconds"):
        if p[option] is not None and p[option] < 0:
            module.fail_json(msg=f"{option} must be >= 0, got {p[option]}")
    plan = capacity_plan(module)
    layout = layout_from_params(module)
    client = redis_client(module)
    backend = RedisListBackend(client, layout)
    try:
        lists = backend.lists()
        scan = scan_processing(client, layout)
        sample = backend.sample()
        capacity = None
        if plan is not None:
            advice, sample = sampled_capacity(backend, plan, first=sample)
            capacity = advice.to_dict()
    except (RedisQueueError, RedisError) as exc:
        fail_redis(module, exc, f"Cannot read the queues at {safe_url(p['url'])}")
    stuck = scan.stuck + scan.unroutable
    depth = sum(s.depth for s in lists)
    problems: list[str] = []
    if p["max_depth"] is not None and depth > p["max_depth"]:
        problems.append(f"queues: {depth} jobs waiting (over max_depth {p['max_depth']})")
    if p["max_stuck"] is not None and len(stuck) > p["max_stuck"]:
        problems.append(
            f"{layout.processing_set}: {len(stuck)} stuck jobs (over max_stuck {p['max_stuck']})"
        )
    limit = p["max_oldest_age_seconds"]
    for s in lists:
        if limit is not None and s.oldest_age_seconds is not None and s.oldest_age_seconds > limit:
            problems.append(
                f"{s.name}: oldest job {s.oldest_age_seconds} s old "
                f"(over max_oldest_age_seconds {limit})"
            )
    listed = []
    for job in stuck[: p["max_listed"]]:
        entry = job.to_dict()
        if job.id in scan.unroutable_reasons:
            entry["why"] = scan.unroutable_reasons[job.id]
        listed.append(entry)
    result: dict[str, Any] = {
        "queues": [s.to_dict() for s in lists],
        "depth": depth,
        "processing": {
            "key": layout.processing_set,
            "size": scan.size,
            "live": scan.live,
            "stuck": len(stuck),
            "unroutable": len(scan.unroutable),
        },
        "stuck_jobs": listed,
        "sample": sample.to_dict(),
        "healthy": not problems,
        "problems": problems,
        "capacity": capacity,
    }
    if p["fail_on_unhealthy"] and problems:
        module.fail_json(msg="Unhealthy: " + "; ".join(problems), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
