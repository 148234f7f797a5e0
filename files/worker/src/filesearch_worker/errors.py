"""Failure kinds that settlement keys on.

``PermanentError`` means "retrying will not help": the message goes to the DLQ
with ``error_type`` and ``reason`` as message attributes. ``TransientError``
means "try again later": the message is released with a backoff visibility and
the queue's RedrivePolicy is the backstop.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base of the worker's classified failures.

    ``error_type`` is a short, stable, machine-readable code (``invalid-json``,
    ``object-not-found``...) used in logs, metrics and DLQ attributes;
    ``reason`` is the human-readable detail.
    """

    default_type = "worker-error"

    def __init__(self, reason: str, error_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type or self.default_type

    def __str__(self) -> str:
        return f"{self.error_type}: {self.reason}"


class PermanentError(WorkerError):
    """The message can never succeed as it is (bad input, missing object...)."""

    default_type = "permanent-error"


class TransientError(WorkerError):
    """The message may succeed later (throttling, timeouts, 5xx, outages)."""

    default_type = "transient-error"
