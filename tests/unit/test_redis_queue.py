"""Fast units of the Redis-queue engine and modules (no Redis needed).

What needs a Redis (the scripts, the races, bad data in keys) is tested against
the sandbox's redis-server in tests/integration/test_redis_*.py.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn
from unittest import mock

import ansible.module_utils
import boto3
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from moto import mock_aws

from filesearch_worker.backends import QueueSample, SqsBackend, sampled_capacity
from filesearch_worker.queue_status import CapacityPlan, plan_capacity
from filesearch_worker.redis_queue import (
    Layout,
    _decode_items,
    _digest,
    _encode_items,
    backup_key,
    check_run_id,
)

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))


class Failed(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg"))
        self.result = result


def _fail_json(self: Any, msg: str = "", **kwargs: Any) -> NoReturn:
    raise Failed({"msg": msg, **kwargs})


def _exit_json(self: Any, **kwargs: Any) -> NoReturn:
    raise AssertionError(f"exit_json: {kwargs}")


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"unit_{name}", ROOT / "library" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fails(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run library/<name>.py in-process with ``args``; the fail_json result."""
    with (
        patch_module_args(args),
        mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
        mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json),
        pytest.raises(Failed) as failed,
    ):
        load(name).main()
    return failed.value.result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"batch_size": 0}, "batch_size must be 1..1000, got 0"),
        ({"max_jobs": -1}, "max_jobs must be >= 0, got -1"),
        ({"default_queue": "elsewhere"}, "default_queue 'elsewhere' is not one of queues"),
        ({"stale_after_seconds": 0}, "stale_after_seconds must be > 0"),
        ({"queues": ["a", "a"]}, "queues lists a name twice"),
        ({"queues": ["processing_jobs"]}, "processing_set 'processing_jobs' is also in queues"),
        ({"job_id_pattern": "("}, "job_id_pattern is not a regular expression"),
    ],
)
def test_stuck_jobs_refuses_bad_options_before_connecting(
    args: dict[str, Any], message: str
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: options are checked first
    assert message in fails("redis_stuck_jobs", {"url": url, **args})["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"target_minutes": 0}, "target_minutes must be > 0"),
        ({"max_workers": 1, "min_workers": 2}, "max_workers must be >= 1 and >= min_workers"),
        ({"rate_sample_seconds": 301}, "rate_sample_seconds must be 0..300"),
        ({"max_stuck": -1}, "max_stuck must be >= 0"),
    ],
)
def test_queue_info_refuses_bad_options(args: dict[str, Any], message: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert message in fails("redis_queue_info", {"url": url, **args})["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"lists": []}, "lists must name at least one list to drain"),
        ({"lists": ["a", "a"]}, "lists names a list twice"),
        ({"run_id": "../etc"}, "run_id '../etc' must match"),
    ],
)
def test_drain_refuses_bad_options_before_connecting(args: dict[str, Any], message: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    base = {"state": "drained", "run_id": "r1", "bucket": "b", "url": url, "region": "us-east-1"}
    assert message in fails("redis_queue_drain", {**base, **args})["msg"]


def test_a_refused_connection_names_the_url() -> None:
    url = f"redis://127.0.0.1:{free_port()}/3"
    result = fails("redis_stuck_jobs", {"url": url, "socket_timeout": 1})
    assert result["msg"].startswith(f"Cannot connect to Redis at {url}: ")
    assert result["error_code"] == "ConnectionError"


def test_the_url_falls_back_to_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/5"
    monkeypatch.setenv("REDIS_URL", url)
    assert f"Cannot connect to Redis at {url}" in fails("redis_queue_info", {})["msg"]


def test_layout_keys() -> None:
    layout = Layout()
    layout.check()
    assert layout.heartbeat_key("j1") == "heartbeat:j1"
    assert layout.job_key("j1") == "job:j1"
    assert "high_priority_queue" in layout.queues and layout.processing_set == "processing_jobs"


# -- drain backups ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "encoding"),
    [([b"a", b"\xc3\xbc"], "utf-8"), ([b"a", b"\xff\x00"], "base64"), ([], "utf-8")],
)
def test_backup_items_round_trip(items: list[bytes], encoding: str) -> None:
    found, encoded = _encode_items(items)
    assert found == encoding
    assert _decode_items(found, encoded) == items


def test_the_digest_sees_order_and_boundaries() -> None:
    assert _digest([b"ab", b"c"]) != _digest([b"a", b"bc"])
    assert _digest([b"a", b"b"]) != _digest([b"b", b"a"])


@pytest.mark.parametrize("run_id", ["", "../x", "a b", "x" * 65])
def test_bad_run_ids_are_refused(run_id: str) -> None:
    with pytest.raises(ValueError, match="run_id"):
        check_run_id(run_id)


def test_backup_key() -> None:
    assert backup_key("/redis-drain-archive/", "r1", "q") == "redis-drain-archive/r1/q.json"


# -- the backend seam ---------------------------------------------------------------------


class Scripted:
    """A QueueBackend that returns the given samples in turn."""

    name = "scripted"

    def __init__(self, *samples: QueueSample) -> None:
        self.samples = list(samples)

    def sample(self) -> QueueSample:
        return self.samples.pop(0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_two_samples_give_the_net_rate_and_the_runbook_advice() -> None:
    backend = Scripted(
        QueueSample("q", depth=9000, in_flight=1000),
        QueueSample("q", depth=8400, in_flight=1000),  # 600 fewer in 60 s
    )
    clock = Clock()
    plan = CapacityPlan(rate_sample_seconds=60, current_workers=4, target_minutes=10)
    advice, last = sampled_capacity(backend, plan, sleep=clock.sleep, clock=clock)
    assert (advice.rate_per_minute, advice.rate_source) == (600.0, "samples")
    assert advice.backlog == last.backlog == 9400
    assert advice.drain_eta_minutes == round(9400 / 600, 2)
    assert advice.rate_per_worker == 150.0
    assert advice.recommended_workers == 7  # ceil(9400 / (150 * 10))


def test_without_sampling_only_a_given_rate_gives_advice() -> None:
    first = QueueSample("q", depth=8158, in_flight=0)
    plan = CapacityPlan(rate_per_worker=50)
    advice, _ = sampled_capacity(Scripted(), plan, first=first)
    assert advice.rate_per_minute is None and advice.drain_eta_minutes is None
    assert advice.recommended_workers == 17  # the runbook's numbers
    assert "no depth sampling (rate_sample_seconds is 0)" in advice.notes


def test_plan_capacity_matches_the_sqs_rule() -> None:
    plan = CapacityPlan(current_workers=2, target_minutes=1)
    advice = plan_capacity(6, 8.0, "samples", plan, [])
    assert (advice.drain_eta_minutes, advice.rate_per_worker, advice.recommended_workers) == (
        0.75,
        4.0,
        2,
    )


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_the_sqs_backend_reads_depth_and_in_flight(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="seam")["QueueUrl"]
    for n in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)
    sample = SqsBackend(sqs, url).sample()
    assert (sample.name, sample.depth, sample.in_flight, sample.backlog) == ("seam", 3, 2, 5)
    assert sample.consumers is None and sample.oldest_age_seconds is None


@pytest.mark.parametrize("name", ["redis_queue_info", "redis_stuck_jobs", "redis_queue_drain"])
def test_without_the_engine_the_modules_name_it(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # a host with redis-py but not the worker package: the argument spec (whose
    # defaults come from the engine) still builds, and the task names what is missing
    monkeypatch.setitem(sys.modules, "filesearch_worker.redis_queue", None)
    monkeypatch.delitem(sys.modules, "ansible.module_utils.filesearch_redis", raising=False)
    result = fails(
        name,
        {"bucket": "b", "state": "drained", "lists": ["q"], "run_id": "r1"}
        if name == "redis_queue_drain"
        else {},
    )
    assert "filesearch-worker (pip install files/worker)" in result["msg"]
