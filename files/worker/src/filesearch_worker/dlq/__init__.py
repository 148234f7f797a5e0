"""Dead-letter queue recovery: the engine behind ``recover-dlq`` and ``sqs_dlq_recover``.

Each DLQ message is classified and settled through the worker's one
settlement path (:func:`filesearch_worker.sqs_batch.settle`):

* **deduplicated**: every object its S3 events name is already in the index
  (one multi-get per batch, document id = S3 key) and every removed object is
  gone; the message is deleted.
* **archived**: unparseable, nothing to index (``s3:TestEvent``), failed
  ``max_attempts`` recoveries, failed permanently while being reindexed, or the
  strategy is ``archive-only``: written to
  ``s3://BUCKET/dlq-archive/YYYY-MM-DD/<message-id>.json`` (body, attributes,
  reason), then deleted.
* **redriven** (strategy ``redrive``): sent back to the source queue with its
  attributes and a recovery counter (``dlq-recoveries``), then deleted.
* **reindexed** / **retry_stored** (strategy ``reindex``): processed in place
  by the worker's own processor; deleted once its document is indexed or
  stored in the retry store.
* **released**: could not be settled now (transient failure); kept invisible
  for the rest of the run (so it is not tried twice) and made visible again
  when the run ends, still in the DLQ.

A message is only ever deleted after a confirmed write somewhere else (index,
retry store, source queue, archive). ``dry_run`` classifies and counts what
would be done, writes nothing, and makes every message it looked at visible
again at the end. Strategy ``native`` hands the move to SQS
(StartMessageMoveTask) and reports on a task already running instead of
starting a second one.

Modules: ``options`` (options, report, errors), ``engine`` (classification and
settlement), ``native`` (the move task), ``archive`` (the archive format). The
command line is in :mod:`filesearch_worker.cli`.
"""

from filesearch_worker.dlq.archive import ARCHIVE_PREFIX, archive_key, archive_record
from filesearch_worker.dlq.engine import (
    DlqMessage,
    DlqRecovery,
    RateLimiter,
    recover,
    redrive_entry,
)
from filesearch_worker.dlq.options import (
    STRATEGIES,
    RecoveryConfigError,
    RecoveryError,
    RecoveryOptions,
    RecoveryReport,
    Strategy,
)
from filesearch_worker.settle import RECOVERIES_ATTRIBUTE

__all__ = [
    "ARCHIVE_PREFIX",
    "RECOVERIES_ATTRIBUTE",
    "STRATEGIES",
    "DlqMessage",
    "DlqRecovery",
    "RateLimiter",
    "RecoveryConfigError",
    "RecoveryError",
    "RecoveryOptions",
    "RecoveryReport",
    "Strategy",
    "archive_key",
    "archive_record",
    "recover",
    "redrive_entry",
]
