"""``filesearch-worker run`` with WORKER_PROMETHEUS_PORT: /metrics scraped on 127.0.0.1."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from worker_it_helpers import queue_counts, s3_event_body, send_many, wait_until

pytestmark = pytest.mark.sandbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_endpoint_counts_what_the_worker_settled(
    stack: Any, sqs: Any, s3: Any, start_worker: Any
) -> None:
    keys = [f"prom/{i}.txt" for i in range(5)] + ["explode/prom.txt"]
    for key in keys:
        s3.put_object(Bucket=stack.bucket, Key=key, Body=b"some text")
    port = free_port()
    worker = start_worker(
        stack.env, WORKER_PROMETHEUS_PORT=str(port), WORKER_TEST_RAISE_ON_KEY="explode/"
    )
    (event,) = worker.events("prometheus")
    assert (event["addr"], event["port"]) == ("127.0.0.1", port)  # loopback by default
    before = scrape(port)
    assert before[("filesearch_worker_processing_seconds_count", ())] == 0
    assert before[("filesearch_worker_circuit_open", ())] == 0

    send_many(sqs, stack.queue_url, [s3_event_body(stack.bucket, k) for k in keys])
    worker.wait_settled(len(keys))
    wait_until(lambda: queue_counts(sqs, stack.queue_url) == (0, 0), 20, "an empty queue")
    wait_until(
        lambda: scrape(port)[("filesearch_worker_processing_seconds_count", ())] == len(keys),
        20,
        "the histogram to count every message",
    )
    got = scrape(port)
    assert got[("filesearch_worker_messages_total", (("outcome", "indexed"),))] == 5
    assert got[("filesearch_worker_messages_total", (("outcome", "dead_lettered"),))] == 1
    assert got[("filesearch_worker_messages_succeeded_total", ())] == 5
    assert got[("filesearch_worker_messages_failed_total", ())] == 1
    assert got[("filesearch_worker_critical_error_total", ())] == 1
    assert got[("filesearch_worker_message_delete_failed_total", ())] == 0
    assert got[("filesearch_worker_in_flight_messages", ())] == 0
    assert got[("filesearch_worker_circuit_state", (("state", "closed"),))] == 1
    assert worker.stop() == 0
    with pytest.raises(OSError):  # the endpoint goes away with the process
        scrape(port)
