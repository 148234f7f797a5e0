#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module redis_stuck_jobs: the runbook's stuck-job recovery, atomic and idempotent."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: redis_stuck_jobs
short_description: Put jobs whose heartbeat is gone or stale back on their Redis queue
description:
  - The backlog runbook's "Clear Stuck Jobs" for Redis-list queues. A job in the processing set
    whose heartbeat key C(<heartbeat_prefix><id>) is missing or older than O(stale_after_seconds)
    is removed from the set and pushed back onto the list named by its hash
    (C(<job_prefix><id>), field O(queue_field)), or onto O(default_queue).
  - Each batch of jobs is one Lua script that re-checks every job inside Redis before moving it -
    a job a worker finished (no longer in the set) or re-heartbeated since the scan is left alone,
    so the worker wins. The id leaves the set and enters its list in the same atomic step - never in
    neither place, never in both (a job already on its list is only removed from the set).
  - Unlike the runbook's two scripts, nothing is lost between them (the runbook's second script
    requeues the live jobs still in the set, and every job onto C(email_processing_queue)).
  - Check mode lists what would move and writes nothing. C(changed) only when a job moved; a second
    run moves nothing.
  - Bad data stops the run before any job is moved, with a message naming the key - a member of
    the processing set that is no valid job id (O(job_id_pattern)), a key of the wrong type (a hash
    where a queue list is expected), a heartbeat that is no unix timestamp.
version_added: "1.1.0"
author:
  - filesearch-ops contributors
options:
  push:
    description:
      - How a job goes back - V(lpush) (the runbook's, the producers' end - behind the waiting jobs)
        or V(rpush) (the consumers' end - next to be taken).
    type: str
    choices: [lpush, rpush]
    default: lpush
  batch_size:
    description:
      - Jobs per Lua script (each script is atomic and blocks Redis while it runs).
      - The check that a job is not already on its list is linear in the list's length (about
        16 ms per job on a list of 1,000,000 ids); on lists that long use 10 or less.
    type: int
    default: 100
  max_jobs:
    description: Move at most this many stuck jobs in this run (the rest stay for the next run).
    type: int
extends_documentation_fragment:
  - filesearch_redis
  - filesearch_redis.layout
attributes:
  check_mode:
    support: full
    description: Scans and lists what would move (RV(moved)); writes nothing.
  diff_mode:
    support: none
    description: RV(moved) lists every job moved, per queue.
requirements:
  - python >= 3.11
  - redis (redis-py)
  - filesearch-worker (pip install files/worker)
notes:
  - Workers must add a job to the processing set and write its first heartbeat atomically;
    a job in the set without a heartbeat is stuck, as in the runbook.
  - A moved job may still be running on a worker that stopped heartbeating; it is then done twice
    (at least once, never lost). Keep O(stale_after_seconds) well above the heartbeat interval.
  - The scripts use the keys they are given (KEYS), but a job's keys and its queue must be on one
    node - a single Redis or Sentinel set-up, not Redis Cluster without hash tags.
"""

EXAMPLES = r"""
- name: See which jobs are stuck (no heartbeat for 10 minutes)
  redis_stuck_jobs:
    url: redis://127.0.0.1:16379/0
  check_mode: true
  register: __stuck

- name: Put them back on their queues
  redis_stuck_jobs:
    url: redis://127.0.0.1:16379/0
    stale_after_seconds: 600
    default_queue: email_processing_queue   # for jobs whose hash names no queue
  register: __requeued

- name: Report
  ansible.builtin.debug:
    msg: "{{ __requeued.counts.moved }} jobs requeued: {{ __requeued.counts.moved_per_queue }}"
"""

RETURN = r"""
moved:
  description: Ids moved back (in check mode, that would move), per queue.
  returned: always
  type: dict
  sample: {"high_priority_queue": ["job-17", "job-18"], "low_priority_queue": ["job-3"]}
already_queued:
  description: Ids that were in the set and already on their list - only removed from the set.
  returned: always
  type: dict
  sample: {}
skipped_finished:
  description: Stuck at the scan, finished by a worker before the move (left alone).
  returned: always
  type: list
  elements: str
  sample: []
skipped_alive:
  description: Stuck at the scan, re-heartbeated before the move (left alone).
  returned: always
  type: list
  elements: str
  sample: ["job-44"]
unroutable:
  description:
    - Stuck jobs with no queue to go back to (no O(queue_field), or one not in O(queues), and no
      O(default_queue)); left in the processing set, with C(why).
  returned: always
  type: list
  elements: dict
  sample:
    - id: job-9
      reason: missing
      why: "job:job-9 has no 'queue' field and no default_queue is set"
counts:
  description: Numbers of the run.
  returned: always
  type: dict
  sample: {"processing": 600, "live": 100, "stuck": 500, "moved": 500,
           "moved_per_queue": {"high_priority_queue": 250, "low_priority_queue": 250},
           "already_queued": 0, "skipped_finished": 0, "skipped_alive": 0, "unroutable": 0}
"""

import contextlib
from typing import Any

from ansible.module_utils.basic import AnsibleModule
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

    from filesearch_worker.redis_queue import RedisQueueError, recover_stuck


def argument_spec() -> dict[str, Any]:
    spec: dict[str, Any] = {
        "push": {"type": "str", "choices": ["lpush", "rpush"], "default": "lpush"},
        "batch_size": {"type": "int", "default": 100},
        "max_jobs": {"type": "int"},
    }
    spec.update(redis_argument_spec())
    spec.update(layout_argument_spec())
    return spec


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_redis(module)
    p = module.params
    if not 1 <= p["batch_size"] <= 1000:
        module.fail_json(msg=f"batch_size must be 1..1000, got {p['batch_size']}")
    if p["max_jobs"] is not None and p["max_jobs"] < 0:
        module.fail_json(msg=f"max_jobs must be >= 0, got {p['max_jobs']}")
    layout = layout_from_params(module)
    client = redis_client(module)
    try:
        result = recover_stuck(
            client,
            layout,
            check_mode=module.check_mode,
            push=p["push"],
            batch_size=p["batch_size"],
            max_jobs=p["max_jobs"],
        )
    except (RedisQueueError, RedisError) as exc:
        fail_redis(module, exc, f"Stuck jobs at {safe_url(p['url'])} not recovered")
    if result.error:
        module.fail_json(
            msg=f"Stuck-job recovery stopped: {result.error} (that batch moved nothing; "
            f"{result.counts()['moved']} jobs moved before it, listed in moved)",
            changed=result.changed,
            **result.to_dict(),
        )
    module.exit_json(changed=result.changed, **result.to_dict())


if __name__ == "__main__":
    main()
