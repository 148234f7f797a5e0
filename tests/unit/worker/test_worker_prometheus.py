"""Prometheus exporter: names, the outcome counter, the histogram, scrape-time gauges, HTTP."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from filesearch_worker.config import Settings
from filesearch_worker.metrics import METRIC_NAMES, TeeMetrics
from filesearch_worker.prometheus import CAMEL_TO_PROM, PrometheusMetrics, snake

RULES = Path(__file__).resolve().parents[3] / "files/prometheus/filesearch-worker.rules.yml"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class Recording:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def incr(self, name: str, value: float = 1.0, *, outcome: str = "") -> None:
        self.calls.append(("incr", name, value, outcome))

    def observe(self, name: str, value: float) -> None:
        self.calls.append(("observe", name, value))

    def start(self) -> None:
        self.calls.append(("start",))

    def close(self) -> None:
        self.calls.append(("close",))


def test_names() -> None:
    assert snake("DLQSendFailed") == "dlq_send_failed"
    assert snake("MessageDeleteFailed") == "message_delete_failed"
    assert set(CAMEL_TO_PROM) == set(METRIC_NAMES) - {"ProcessingSeconds"}
    assert all(
        n.startswith("filesearch_worker_") and n.endswith("_total") for n in CAMEL_TO_PROM.values()
    )


def test_counters_histogram_and_gauges() -> None:
    state = {"breaker": "closed", "in_flight": 3}
    m = PrometheusMetrics(
        0, in_flight=lambda: state["in_flight"], breaker_state=lambda: state["breaker"]
    )
    m.incr("MessagesSucceeded", outcome="indexed")
    m.incr("MessagesSucceeded", outcome="retry_stored")
    m.incr("IndexRetryStored", 2)
    m.incr("MessagesFailed", outcome="dead_lettered")
    m.incr("MessagesFailed")  # DLQ send failed: released below, not dead-lettered
    m.incr("MessagesReleased", outcome="released")
    m.incr("NoSuchMetric")  # ignored, no error
    m.observe("ProcessingSeconds", 0.2)
    m.observe("ProcessingSeconds", 7.0)
    got = samples(m.exposition())
    assert got[("filesearch_worker_messages_succeeded_total", ())] == 2
    assert got[("filesearch_worker_messages_failed_total", ())] == 2
    assert got[("filesearch_worker_index_retry_stored_total", ())] == 2
    assert got[("filesearch_worker_critical_error_total", ())] == 0
    settled = {
        dict(labels)["outcome"]: v
        for (name, labels), v in got.items()
        if name == "filesearch_worker_messages_total"
    }
    assert settled == {"indexed": 1, "retry_stored": 1, "dead_lettered": 1, "released": 1}
    assert got[("filesearch_worker_processing_seconds_count", ())] == 2
    assert got[("filesearch_worker_processing_seconds_sum", ())] == pytest.approx(7.2)
    assert got[("filesearch_worker_processing_seconds_bucket", (("le", "0.25"),))] == 1
    assert got[("filesearch_worker_processing_seconds_bucket", (("le", "10.0"),))] == 2
    assert got[("filesearch_worker_in_flight_messages", ())] == 3
    assert got[("filesearch_worker_circuit_open", ())] == 0
    state.update(breaker="open", in_flight=0)
    got = samples(m.exposition())  # gauges are read at scrape time
    assert got[("filesearch_worker_circuit_open", ())] == 1
    assert got[("filesearch_worker_circuit_state", (("state", "open"),))] == 1
    assert got[("filesearch_worker_circuit_state", (("state", "closed"),))] == 0
    assert got[("filesearch_worker_in_flight_messages", ())] == 0


def test_serves_over_http_on_loopback() -> None:
    m = PrometheusMetrics(0)  # port 0: any free port, read back after start
    m.start()
    try:
        assert m.port > 0
        m.incr("CriticalError")
        with urllib.request.urlopen(f"http://127.0.0.1:{m.port}/metrics", timeout=5) as r:
            body = r.read().decode()
        assert samples(body)[("filesearch_worker_critical_error_total", ())] == 1
    finally:
        m.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{m.port}/metrics", timeout=2)


def test_tee_feeds_every_backend_once() -> None:
    a, b = Recording(), Recording()
    tee = TeeMetrics(a, b)
    tee.start()
    tee.incr("MessagesSucceeded", outcome="indexed")
    tee.observe("ProcessingSeconds", 1.5)
    tee.close()
    expected = [
        ("start",),
        ("incr", "MessagesSucceeded", 1.0, "indexed"),
        ("observe", "ProcessingSeconds", 1.5),
        ("close",),
    ]
    assert a.calls == expected and b.calls == expected


def test_settings() -> None:
    assert Settings.from_env({}).prometheus_port == 0  # unset = off
    s = Settings.from_env({"WORKER_PROMETHEUS_PORT": "9108", "WORKER_PROMETHEUS_ADDR": "127.0.0.2"})
    assert (s.prometheus_port, s.prometheus_addr) == (9108, "127.0.0.2")
    assert Settings.from_env({"WORKER_PROMETHEUS_PORT": "9108"}).prometheus_addr == "127.0.0.1"
    with pytest.raises(ValueError, match="WORKER_PROMETHEUS_PORT"):
        Settings.from_env({"WORKER_PROMETHEUS_PORT": "70000"})


def test_rules_use_exported_names() -> None:
    """Every filesearch_worker_* name in the rules file is one this exporter serves."""
    m = PrometheusMetrics(0, in_flight=lambda: 0, breaker_state=lambda: "closed")
    m.incr("MessagesSucceeded", outcome="indexed")
    exported = {name for name, _ in samples(m.exposition())}
    rules = yaml.safe_load(RULES.read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    used = set(re.findall(r"\bfilesearch_worker_[a-z_]+", exprs))
    assert used, "the rules file names no worker metric"
    assert used <= exported, used - exported
