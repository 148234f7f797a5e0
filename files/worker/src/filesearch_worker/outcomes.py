"""The one outcome vocabulary: what processing found and how a message left its queue.

The worker, DLQ recovery, metrics and logs all speak these values (snake_case,
so they can also be Ansible return keys). The processor gives every message
one *verdict* (``INDEXED`` … ``TRANSIENT``); settlement turns it into what
happened to the message (``verdict.action``):

=============== ============ ==================================================
verdict          action       durable where, before the delete
=============== ============ ==================================================
indexed          delete       OpenSearch
removed          delete       OpenSearch (the document is gone)
acknowledged     delete       nothing to keep (``s3:TestEvent``)
retry_stored     delete       ``s3://BUCKET/retry-index/``
permanent        dead_letter  the DLQ (worker) or ``s3://BUCKET/dlq-archive/``
                              (recovery), confirmed before the delete
transient        release      stays in its queue (backoff visibility)
=============== ============ ==================================================

Settled-only outcomes: ``DEAD_LETTERED`` (worker, DLQ send confirmed),
``RELEASED`` (left in its queue), and recovery's ``DEDUPLICATED`` (already
indexed), ``REDRIVEN`` (send to the source queue confirmed), ``REINDEXED``
(processed in place: indexed, removed or acknowledged) and ``ARCHIVED``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Action = Literal["delete", "dead_letter", "release"]


class Outcome(StrEnum):
    """One message's outcome; ``str(Outcome.RETRY_STORED) == "retry_stored"``."""

    # verdicts of the processor
    INDEXED = "indexed"
    REMOVED = "removed"
    ACKNOWLEDGED = "acknowledged"
    RETRY_STORED = "retry_stored"
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    # how a message left (or stayed in) its queue
    DEAD_LETTERED = "dead_lettered"
    RELEASED = "released"
    DEDUPLICATED = "deduplicated"
    REDRIVEN = "redriven"
    REINDEXED = "reindexed"
    ARCHIVED = "archived"

    @property
    def action(self) -> Action:
        """What settlement must do with a message of this verdict."""
        if self is Outcome.PERMANENT:
            return "dead_letter"
        if self in (Outcome.TRANSIENT, Outcome.RELEASED):
            return "release"
        return "delete"

    @property
    def rank(self) -> int:
        """Severity when one message carries several records: the worse verdict wins."""
        return _RANK.get(self, 0)

    @property
    def in_place(self) -> Outcome:
        """The recovery report's name for a verdict reached by reprocessing a DLQ message."""
        if self in (Outcome.INDEXED, Outcome.REMOVED, Outcome.ACKNOWLEDGED):
            return Outcome.REINDEXED
        return self


_RANK: dict[Outcome, int] = {
    Outcome.ACKNOWLEDGED: 0,
    Outcome.INDEXED: 1,
    Outcome.REMOVED: 1,
    Outcome.RETRY_STORED: 2,
    Outcome.PERMANENT: 3,
    Outcome.TRANSIENT: 4,
}

#: What the recovery report counts, in its order.
RECOVERY_OUTCOMES: tuple[Outcome, ...] = (
    Outcome.DEDUPLICATED,
    Outcome.REDRIVEN,
    Outcome.REINDEXED,
    Outcome.RETRY_STORED,
    Outcome.ARCHIVED,
    Outcome.RELEASED,
)
