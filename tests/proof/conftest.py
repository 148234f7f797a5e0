"""Hypothesis profiles for the generated fault schedules, and their one-line summary.

Profiles (``HYPOTHESIS_PROFILE``, default ``proof``):

``proof``
    2,000 schedules, derandomized: every run (``make test``, CI, a laptop)
    checks the same 2,000, so a red run is a regression that the same command
    reproduces, never bad luck. No example database is written.
``fuzz``
    20,000 schedules from a fresh random seed each run (``make test-fuzz``):
    it looks for what the fixed 2,000 do not reach. Failures it finds are kept
    in hypothesis's example database (``.hypothesis/``, which hypothesis
    git-ignores itself) and replayed first by the next run.

Both print the blob that reproduces a failure (``print_blob``): put
``@reproduce_failure(VERSION, BLOB)`` on ``class SettlementSchedules`` and run
the same command. No deadline: the engine's thread pools make timings noisy.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, settings

_COMMON = {
    "deadline": None,
    "print_blob": True,
    "stateful_step_count": 25,
    # no "explain" phase: it traces every line of a failing schedule and takes minutes
    # here; the shrunk schedule and the violation's own message say what happened
    "phases": (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
    # the state machine is deliberately heavy per example (real engine objects)
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("proof", max_examples=2_000, derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", max_examples=20_000, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "proof")
settings.load_profile(PROFILE)


@dataclass
class ProofStats:
    """What the generated schedules did, summed over the session."""

    schedules: int = 0
    steps: int = 0
    messages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    duplicate_copies: int = 0
    extra_archives: int = 0
    deletes_checked: int = 0
    faults: int = 0
    crashes: int = 0
    lost: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        where = ", ".join(f"{name} {n}" for name, n in sorted(self.outcomes.items()))
        return (
            f"settlement schedules ({PROFILE}): {self.schedules} schedules, {self.steps} steps, "
            f"{self.messages} messages sent ({where}), {self.faults} faults and "
            f"{self.crashes} crashes injected, {self.deletes_checked} deletes checked, "
            f"duplicates counted: {self.duplicate_copies} extra queue copies, "
            f"{self.extra_archives} extra archive objects; lost={self.lost}; "
            f"{self.seconds:.0f} s"
        )


_STATS = ProofStats()


@pytest.fixture(scope="session")
def proof_stats() -> ProofStats:
    """The session's counters (the state machine adds to them at each teardown)."""
    return _STATS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _STATS.schedules:
        terminalreporter.write_line(_STATS.line())
