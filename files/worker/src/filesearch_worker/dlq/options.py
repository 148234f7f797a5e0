"""How a recovery runs (options, validated once) and what it did (the report)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from filesearch_worker.outcomes import RECOVERY_OUTCOMES, Outcome

Strategy = Literal["redrive", "reindex", "native", "archive-only"]
STRATEGIES: tuple[str, ...] = ("redrive", "reindex", "native", "archive-only")


class RecoveryError(Exception):
    """Recovery cannot go on (configuration, unsupported endpoint, dependency down).

    ``report`` holds what was done before the error (every message accounted for).
    """

    def __init__(self, message: str, report: RecoveryReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class RecoveryConfigError(RecoveryError):
    """The options or the configuration cannot work (a usage error, not a failed run).

    Raised before anything is touched (bad options, a missing setting, a queue
    that does not exist, an endpoint without move tasks) or when a dependency
    refuses the request itself; the CLI exits 2 for it, 1 for other errors.
    """


@dataclass
class RecoveryOptions:
    """How a recovery runs (CLI flags and module options map onto these).

    :func:`filesearch_worker.dlq.recover` validates them; nothing else does.
    """

    strategy: str = "reindex"
    batch_size: int = 10
    max_batches: int | None = None
    max_messages: int | None = None
    messages_per_second: float | None = None
    max_attempts: int = 3
    dry_run: bool = False
    threads: int = 4
    visibility_timeout: int = 300
    wait_time_seconds: int = 1
    sample_size: int = 5
    dedupe: bool = True

    def validate(self) -> None:
        """Raise ``RecoveryError`` naming the first option out of range."""
        if self.strategy not in STRATEGIES:
            raise RecoveryConfigError(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        checks: list[tuple[str, float | None, float, float | None]] = [
            ("batch_size", self.batch_size, 1, None),
            ("max_batches", self.max_batches, 1, None),
            ("max_messages", self.max_messages, 1, None),
            ("max_attempts", self.max_attempts, 1, None),
            ("threads", self.threads, 1, None),
            ("visibility_timeout", self.visibility_timeout, 1, 43200),
            ("wait_time_seconds", self.wait_time_seconds, 0, 20),
            ("sample_size", self.sample_size, 0, None),
        ]
        for name, value, low, high in checks:
            if value is not None and value < low:
                raise RecoveryConfigError(f"{name} must be >= {low}, got {value}")
            if value is not None and high is not None and value > high:
                raise RecoveryConfigError(f"{name} must be <= {high}, got {value}")
        if self.messages_per_second is not None and self.messages_per_second <= 0:
            raise RecoveryConfigError(
                f"messages_per_second must be > 0, got {self.messages_per_second}"
            )


@dataclass
class RecoveryReport:
    """Counts per outcome, elapsed time and sample reasons of one recovery run."""

    strategy: str
    dry_run: bool
    dlq_url: str = ""
    source_queue_url: str | None = None
    archive: str | None = None
    examined: int = 0
    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(RECOVERY_OUTCOMES, 0))
    delete_failed: int = 0
    duplicates: int = 0
    batches: int = 0
    elapsed_seconds: float = 0.0
    remaining: int | None = None
    samples: dict[Outcome, list[str]] = field(default_factory=dict)
    native: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)
    sample_size: int = 5
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def acted(self) -> int:
        """Messages settled out of the DLQ (or that would be, in a dry run)."""
        return sum(n for outcome, n in self.counts.items() if outcome is not Outcome.RELEASED)

    @property
    def changed(self) -> bool:
        """Something was (or, in a dry run, would be) changed."""
        if self.native is not None:
            return bool(self.native.get("started") or self.native.get("would_start"))
        return self.acted > 0

    def add(self, outcome: Outcome, message_id: str, reason: str = "") -> None:
        """Count one message's outcome (and keep a sample of its reason)."""
        with self._lock:
            self.counts[outcome] += 1
            if reason:
                samples = self.samples.setdefault(outcome, [])
                if len(samples) < self.sample_size:
                    samples.append(f"{message_id}: {reason}")

    def add_examined(self, n: int) -> None:
        """One more batch of ``n`` messages received."""
        with self._lock:
            self.examined += n
            self.batches += 1

    def add_duplicates(self, n: int) -> None:
        """Deliveries of messages already handled in this run."""
        with self._lock:
            self.duplicates += n

    def add_delete_failed(self, n: int, error: str) -> None:
        """Deletes that failed (the messages reappear; a rerun settles them)."""
        with self._lock:
            self.delete_failed += n
        self.add_error(
            f"delete failed for {n} message(s) (they reappear; a rerun settles them): {error}"
        )

    def add_error(self, error: str) -> None:
        """Keep the first 20 errors."""
        with self._lock:
            if len(self.errors) < 20:
                self.errors.append(error)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON types (the module's result, ``--json``)."""
        return {
            "strategy": self.strategy,
            "dry_run": self.dry_run,
            "dlq_url": self.dlq_url,
            "source_queue_url": self.source_queue_url,
            "archive": self.archive,
            "examined": self.examined,
            "counts": {str(k): v for k, v in self.counts.items()},
            "delete_failed": self.delete_failed,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "messages_per_second": round(self.examined / self.elapsed_seconds, 1)
            if self.elapsed_seconds > 0
            else 0.0,
            "remaining": self.remaining,
            "samples": {str(k): list(v) for k, v in self.samples.items()},
            "native": self.native,
            "errors": list(self.errors),
        }

    def summary(self) -> str:
        """One line for people."""
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        mode = " (dry run)" if self.dry_run else ""
        return (
            f"recover-dlq{mode}: strategy {self.strategy}, {self.examined} examined"
            f"{': ' + counts if counts else ''}; {self.delete_failed} delete failures; "
            f"{self.elapsed_seconds:.1f} s"
        )
