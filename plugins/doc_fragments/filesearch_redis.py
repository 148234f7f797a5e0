"""Documentation fragments of the Redis-queue modules (``library/redis_*.py``).

``filesearch_redis``: the connection options; ``filesearch_redis.layout``: where
the queues, the processing set and the per-job keys are. They document
``module_utils/filesearch_redis.redis_argument_spec()`` and
``layout_argument_spec()`` (tests/unit/modules/test_docs.py checks the two agree).
"""

from __future__ import annotations


class ModuleDocFragment:
    """The ``filesearch_redis`` fragments."""

    DOCUMENTATION = r"""
options:
  url:
    description:
      - Redis URL, C(redis://[:password@]host:port/db) (C(rediss://) for TLS).
      - Defaults to E(REDIS_URL), then C(redis://127.0.0.1:6379/0). The sandbox's is
        C(redis://127.0.0.1:16379/0).
    type: str
    default: redis://127.0.0.1:6379/0
    aliases: [redis_url]
  password:
    description: Redis password (AUTH), when not in O(url). Defaults to E(REDIS_PASSWORD).
    type: str
  socket_timeout:
    description: Seconds to wait for the connection and for each reply.
    type: float
    default: 10
"""

    LAYOUT = r"""
options:
  queues:
    description:
      - The Redis lists that are queues (job ids; producers C(LPUSH), consumers pop from the right).
      - A stuck job only ever goes back to one of these.
    type: list
    elements: str
    default: [email_processing_queue, analysis_queue, notification_queue, high_priority_queue,
              normal_priority_queue, low_priority_queue]
  processing_set:
    description: The set of ids of the jobs being worked on (the runbook's C(processing_jobs)).
    type: str
    default: processing_jobs
  heartbeat_prefix:
    description: C(<prefix><id>) holds the unix time of the job's last heartbeat.
    type: str
    default: "heartbeat:"
  job_prefix:
    description: C(<prefix><id>) is the job's hash; its O(queue_field) names the list it came from.
    type: str
    default: "job:"
  queue_field:
    description: The field of the job hash that names the job's queue.
    type: str
    default: queue
  default_queue:
    description:
      - Where a stuck job goes when its hash names no queue (one of O(queues)).
      - Unset, such a job is reported as unroutable and left in the processing set.
    type: str
  stale_after_seconds:
    description: A heartbeat older than this many seconds (Redis's clock) makes the job stuck.
    type: float
    default: 600.0
  job_id_pattern:
    description:
      - Regular expression a job id in the processing set must match in full.
      - A member that does not fails the task naming it, before anything is moved.
    type: str
    default: "[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}"
"""
