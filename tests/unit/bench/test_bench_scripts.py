"""The pure parts of bench/worker_throughput.py and bench/dlq_recovery.py (no stack needed).

The like-for-like loops must classify exactly as the engine does, or their
ratios would measure different work; and the reports must say which target
is met in which latency mode.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from filesearch_worker.errors import PermanentError
from filesearch_worker.events import parse_message

REPO = Path(__file__).resolve().parents[3]


def load(name: str) -> ModuleType:
    if str(REPO / "bench") not in sys.path:
        sys.path.insert(0, str(REPO / "bench"))  # the scripts import their sibling by path
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


dlq = load("dlq_recovery")
worker = load("worker_throughput")


def test_the_like_for_like_parse_agrees_with_the_engine_on_the_incident_mix() -> None:
    scenario = dlq.scenario_lib.build("bucket", total=400)
    poison = 0
    for body in scenario.bodies():
        key = dlq.event_key(body)
        try:
            events = parse_message(body)
        except PermanentError:
            assert key is None, body
            poison += 1
        else:
            assert key is not None
            assert [e.key for e in events] == [key]
    assert poison == len(scenario.garbage)  # missing objects are redriven, not poison


def test_the_worker_bench_reads_the_key_back_from_its_own_events() -> None:
    body = worker.event("bucket", "bench/file 00001+é.txt")
    assert worker.event_key(body) == "bench/file 00001+é.txt"


def test_per_mode_defaults() -> None:
    args = argparse.Namespace(original_messages=None, rss_messages=None, sweep=None)
    args.sweep_messages = None
    worker.latency.apply_defaults(args, worker.DEFAULTS["aws"])
    assert (args.original_messages, args.rss_messages, args.sweep) == (200, 0, [1, 2, 4, 8, 16])
    loopback = argparse.Namespace(original_messages=150, rss_messages=None, sweep=None)
    loopback.sweep_messages = None
    worker.latency.apply_defaults(loopback, worker.DEFAULTS["none"])
    assert (loopback.rss_messages, loopback.sweep) == (10_000, [])
    assert [worker.sweep_messages(c) for c in (1, 2, 4, 8, 16)] == [300, 300, 400, 800, 1000]
    assert worker.sweep_messages(16, 50) == 50
    assert dlq.DEFAULTS["aws"]["sequential"] < dlq.DEFAULTS["none"]["sequential"]


def runs(seq: float, bare: float, batched: float, redrive: float) -> dict[str, list]:
    """One round per way: (messages, seconds, counts) with the given rates."""
    return {
        name: [(1000, 1000 / rate, {})]
        for name, rate in (("seq", seq), ("bare", bare), ("batched", batched), ("redrive", redrive))
    }


@pytest.mark.parametrize(
    ("mode", "rates", "expected"),
    [
        (
            "aws",
            (10, 400, 300, 230),
            ["(a) = **23.00x** (target >= 20x: met)", "(c) = **0.77x** (target >= 0.8x: NOT met)"],
        ),
        (
            "aws",
            (20, 400, 300, 290),
            ["(a) = **14.50x** (target >= 20x: NOT met)", "(c) = **0.97x** (target >= 0.8x: met)"],
        ),
        (
            "none",
            (100, 800, 700, 700),
            ["(a) = **7.00x** (target >= 10x: NOT met)", "(b) = **0.88x** (target >= 0.8x: met)"],
        ),
    ],
)
def test_the_recovery_report_names_each_target_and_whether_it_is_met(
    mode: str, rates: tuple[float, float, float, float], expected: list[str]
) -> None:
    args = argparse.Namespace(threads=4, rounds=1)
    text = dlq.report(args, mode, runs(*rates), dlq.latency.PhaseCounter(None), [], 1.0)
    for phrase in expected:
        assert f"engine (redrive) / {phrase}" in text
    assert "| (c) batched, the engine's calls" in text


def test_the_worker_report_uses_the_modes_targets() -> None:
    args = argparse.Namespace(
        concurrency=4, original_messages=200, messages=1000, rounds=1, sweep=[1, 4]
    )
    args.sweep_messages = None
    args.rss_messages = 0
    results = {"original": [10.0], "bare": [500.0], "fetch": [120.0], "worker": [110.0]}
    results["worker_indexed"] = 1000
    sweep = {("fetch", 1): [30.0], ("worker", 1): [28.0], ("fetch", 4): [120.0]}
    sweep[("worker", 4)] = [110.0]
    counter = worker.latency.PhaseCounter(None)
    text = worker.report(args, "aws", results, sweep, counter, [], 2.0)
    assert "worker / original = **11.00x** (target >= 10x: met)" in text
    assert "worker / fetch = **0.92x** (target >= 0.9x: met)" in text
    assert "| 1 | 300 | 30 | 28 | 0.93x | 2.8x | 28 |" in text
    text = worker.report(args, "none", results, {}, counter, [], 2.0)
    assert "worker / bare = **0.22x** (target >= 0.5x: NOT met)" in text
    assert "Concurrency sweep" not in text
