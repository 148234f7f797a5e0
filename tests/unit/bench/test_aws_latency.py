"""bench/aws_latency.py: the latency model, its proxy config and the counters' arithmetic.

The config is checked with the proxy's own validator (sandbox/sandboxctl/faults.py),
so what the benchmarks install is what `sandbox/ctl proxy check` accepts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sandbox"))
from sandboxctl import faults

REPO = Path(__file__).resolve().parents[3]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aws_latency", REPO / "bench" / "aws_latency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


lat = load()


# --- the mode ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (None, {}, "none"),
        (None, {"BENCH_LATENCY": "aws"}, "aws"),
        (None, {"BENCH_LATENCY": " AWS "}, "aws"),
        (None, {"BENCH_LATENCY": ""}, "none"),
        ("none", {"BENCH_LATENCY": "aws"}, "none"),  # the flag wins
        ("aws", {}, "aws"),
    ],
)
def test_the_flag_wins_over_the_environment(
    flag: str | None, env: dict[str, str], expected: str
) -> None:
    assert lat.resolve_mode(flag, env) == expected


def test_an_unknown_mode_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(SystemExit, match=r"'slow'.*none, aws"):
        lat.resolve_mode(None, {"BENCH_LATENCY": "slow"})


def test_the_flag_parses_and_defaults_to_unset() -> None:
    parser = argparse.ArgumentParser()
    lat.add_argument(parser)
    assert parser.parse_args([]).latency is None
    assert parser.parse_args(["--latency", "aws"]).latency == "aws"
    with pytest.raises(SystemExit):
        parser.parse_args(["--latency", "slow"])


def test_defaults_fill_only_what_the_command_line_left_open() -> None:
    args = argparse.Namespace(sequential=None, rounds=5, sweep=None)
    defaults = {"sequential": 300, "rounds": 3, "sweep": [1, 2]}
    lat.apply_defaults(args, defaults)
    assert (args.sequential, args.rounds, args.sweep) == (300, 5, [1, 2])
    args.sweep.append(4)
    assert defaults["sweep"] == [1, 2]  # a copy: the table is not changed by a run


# --- the model and the proxy's config ----------------------------------------------------
def test_the_model_has_the_documented_figures() -> None:
    assert lat.modelled_ms("sqs", "ReceiveMessage") == 10
    assert lat.modelled_ms("sqs", "DeleteMessageBatch") == 10
    assert lat.modelled_ms("s3", "GetObject") == 20
    assert lat.modelled_ms("s3", "PutObject") == 20
    assert lat.modelled_ms("opensearch", "bulk") == 15
    assert lat.modelled_ms("opensearch", "index") == 15
    assert lat.modelled_ms("opensearch", "mget") == 10
    assert lat.modelled_ms("opensearch", "indices.exists") == 10  # the service's default
    assert lat.modelled_ms("nothing", "else") == 0


def test_the_config_is_valid_for_the_proxy_and_centres_the_jitter_on_the_mean() -> None:
    config = faults.load_config_text(json.dumps(lat.proxy_config()))
    assert config.seed == lat.SEED
    for delay in lat.AWS_MODEL:
        action = delay.action or "SomeOtherAction"
        got = config.faults(delay.service, action)
        assert got.latency_ms >= 0
        # the proxy adds latency_ms + uniform[0, jitter_ms]: its mean is the model's
        assert got.latency_ms + got.jitter_ms / 2 == pytest.approx(
            lat.modelled_ms(delay.service, action)
        )
        assert (got.errors, got.reset_before, got.reset_after, got.stall) == ((), 0, 0, None)


def test_the_model_table_names_every_entry_and_its_source() -> None:
    lines = lat.model_table()
    assert len(lines) == 2 + len(lat.AWS_MODEL)
    assert any("s3 GetObject | 20 ms | +-3 ms" in line for line in lines)


# --- counters ------------------------------------------------------------------------------
STATS_BEFORE = {
    "services": {
        "sqs": {"actions": {"ReceiveMessage": {"requests": 5, "latency_ms": 50.0}}},
        "s3": {"actions": {"GetObject": {"requests": 2, "latency_ms": 40.0}}},
    }
}
STATS_AFTER = {
    "services": {
        "sqs": {
            "actions": {
                "ReceiveMessage": {"requests": 15, "latency_ms": 150.0},
                "DeleteMessageBatch": {"requests": 10, "latency_ms": 100.0},
            }
        },
        "s3": {"actions": {"GetObject": {"requests": 2, "latency_ms": 40.0}}},
        "opensearch": {"actions": {"bulk": {"requests": 10, "latency_ms": 150.0}}},
    }
}


def test_counts_are_diffed_per_action_and_idle_actions_left_out() -> None:
    before = lat.request_counts(STATS_BEFORE)
    after = lat.request_counts(STATS_AFTER)
    assert lat.diff(after, before) == {
        ("sqs", "ReceiveMessage"): 10,
        ("sqs", "DeleteMessageBatch"): 10,
        ("opensearch", "bulk"): 10,
    }
    assert lat.added_ms(STATS_AFTER)[("opensearch", "bulk")] == 150.0
    assert lat.request_counts({}) == {} and lat.request_counts(None) == {}


def test_calls_per_message_busiest_first() -> None:
    counts = {("s3", "GetObject"): 100, ("sqs", "ReceiveMessage"): 12, ("opensearch", "bulk"): 10}
    assert lat.per_message(counts, 100) == "GetObject 1.00, ReceiveMessage 0.12, bulk 0.10"
    assert lat.per_message(counts, 0) == "-"
    assert lat.per_message({}, 10) == "-"


def test_a_calibration_splits_the_added_time_into_model_and_proxy() -> None:
    row = lat.Calibration("SQS", "sqs", "GetQueueAttributes", 60, 2.5, 18.0, 10.0)
    assert row.added_ms == pytest.approx(15.5)
    assert row.proxy_ms == pytest.approx(5.5)
    table = lat.calibration_table([row])
    assert table[-1] == "| SQS | 60 | 2.5 ms | 18.0 ms | 15.5 ms | 10.0 ms | 5.5 ms |"
    preamble = lat.model_preamble([row])
    assert preamble[0].startswith("Latency model (bench/aws_latency.py)")
    assert preamble[2:-1] == table and preamble[-1] == ""


def test_a_phase_counter_without_a_proxy_only_runs() -> None:
    counter = lat.PhaseCounter(None)
    assert counter.phase("(a)", 10, lambda x, y=0: x + y, 1, y=2) == 3
    assert counter.calls == {}
    assert counter.lines() == []


class FakeProxy:
    """Stats that grow by 10 receives per reading (the counter reads twice per phase)."""

    def __init__(self) -> None:
        self.readings = 0

    def settled_stats(self) -> dict[str, object]:
        self.readings += 1
        n = 10 * self.readings
        return {"services": {"sqs": {"actions": {"ReceiveMessage": {"requests": n}}}}}


def test_a_phase_is_counted_the_first_time_only() -> None:
    proxy = FakeProxy()
    counter = lat.PhaseCounter(proxy)
    assert counter.phase("(b)", 100, lambda: "done") == "done"
    assert counter.phase("(b)", 100, lambda: "again") == "again"
    assert proxy.readings == 2
    assert counter.calls == {"(b)": ({("sqs", "ReceiveMessage"): 10}, 100)}
    assert counter.lines()[-1] == "- (b): ReceiveMessage 0.10"
