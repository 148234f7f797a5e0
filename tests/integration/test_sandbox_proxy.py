"""The fault-and-latency proxy (`sandbox/ctl proxy ...`) with the real clients through it.

The proxy under test is a PRIVATE instance: its own state dir and free ports,
in front of the shared LocalStack and osmem-server, so faults set here never
reach anyone else's traffic (others may run the shared proxy on 4576/9210).
Every proxy started here is stopped by `sandbox/ctl proxy down` (by pid), and
its process is checked to be gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from opensearchpy import OpenSearch, TransportError

if TYPE_CHECKING:
    from conftest import Sandbox, Stack

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[2]
CTL = REPO / "sandbox" / "ctl"
NO_FAULTS = {"seed": 0, "services": {}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_until(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f}s: {what}", pytrace=False)
        time.sleep(0.1)


@dataclass
class ProxyUnderTest:
    """One private proxy: its env for sandbox/ctl, endpoints and files."""

    sandbox: Sandbox
    state_dir: Path
    env: dict[str, str]

    def ctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CTL), *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    @property
    def exports(self) -> dict[str, str]:
        text = (self.state_dir / "proxy.env").read_text()
        lines = [line.removeprefix("export ") for line in text.splitlines()]
        return dict(line.split("=", 1) for line in lines if not line.startswith("#"))

    @property
    def pid(self) -> int:
        return int((self.state_dir / "run" / "proxy.pid").read_text())

    def stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.state_dir / "proxy" / "stats.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def counters(self, service: str, action: str) -> dict[str, Any]:
        services = self.stats().get("services", {})
        counters: dict[str, Any] = services.get(service, {}).get("actions", {}).get(action, {})
        return counters

    def set(self, config: object) -> None:
        done = self.ctl("proxy", "set", "-", stdin=json.dumps(config))
        assert done.returncode == 0, done.stderr

    def client(self, service: str, **config: Any) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.exports["AWS_ENDPOINT_URL"],
            region_name=self.sandbox.region,
            aws_access_key_id=self.sandbox.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.sandbox.env["AWS_SECRET_ACCESS_KEY"],
            config=BotoConfig(retries={"total_max_attempts": 1}, **config),
        )

    def opensearch(self) -> OpenSearch:
        return OpenSearch(hosts=[self.exports["OPENSEARCH_ENDPOINT"]], max_retries=0, timeout=30)


def private_env(sandbox: Sandbox, state_dir: Path, **ports: int) -> dict[str, str]:
    return {
        **os.environ,
        "SANDBOX_DIR": str(state_dir),
        # upstreams: the shared stack the `sandbox` fixture brought up
        "SANDBOX_LOCALSTACK_PORT": str(urlsplit(sandbox.aws_endpoint).port),
        "SANDBOX_OSMEM_PORT": str(urlsplit(sandbox.opensearch_url).port),
        "SANDBOX_PROXY_AWS_PORT": str(ports.get("aws", free_port())),
        "SANDBOX_PROXY_OPENSEARCH_PORT": str(ports.get("opensearch", free_port())),
    }


@contextlib.contextmanager
def running_proxy(sandbox: Sandbox, state_dir: Path) -> Iterator[ProxyUnderTest]:
    proxy = ProxyUnderTest(sandbox, state_dir, private_env(sandbox, state_dir))
    done = proxy.ctl("proxy", "up")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    pid = proxy.pid
    try:
        yield proxy
    finally:
        stopped = proxy.ctl("proxy", "down")
        assert stopped.returncode == 0, stopped.stderr
        wait_until(f"proxy pid {pid} gone", lambda: not alive(pid))


@pytest.fixture(scope="module")
def proxy(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyUnderTest]:
    with running_proxy(sandbox, tmp_path_factory.mktemp("proxy")) as started:
        yield started


@pytest.fixture(autouse=True)
def _no_faults_afterwards(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "proxy" in request.fixturenames:
        request.getfixturevalue("proxy").set(NO_FAULTS)


# --- the interface ---------------------------------------------------------------------
def test_up_writes_the_environment_and_status_shows_it(proxy: ProxyUnderTest) -> None:
    exports = proxy.exports
    aws_port = proxy.env["SANDBOX_PROXY_AWS_PORT"]
    os_port = proxy.env["SANDBOX_PROXY_OPENSEARCH_PORT"]
    assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{aws_port}"
    assert exports["OPENSEARCH_ENDPOINT"] == f"http://127.0.0.1:{os_port}"
    assert exports["SANDBOX_PROXY_CONFIG"] == str(proxy.state_dir / "proxy" / "faults.json")
    assert json.loads(Path(exports["SANDBOX_PROXY_CONFIG"]).read_text())["services"] == {}
    status = proxy.ctl("proxy", "status")
    assert status.returncode == 0
    assert status.stdout.split()[:2] == ["proxy", "up"]
    pid = proxy.pid
    again = proxy.ctl("proxy", "up")
    assert again.returncode == 0
    assert "already running" in again.stdout
    assert proxy.pid == pid


# --- pass-through ----------------------------------------------------------------------
def test_every_service_passes_through_unchanged(proxy: ProxyUnderTest, stack: Stack) -> None:
    sqs, s3, cloudwatch = (proxy.client(s) for s in ("sqs", "s3", "cloudwatch"))
    sqs.send_message(QueueUrl=stack.queue_url, MessageBody="through the proxy")
    msgs = sqs.receive_message(QueueUrl=stack.queue_url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in msgs] == ["through the proxy"]
    sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=msgs[0]["ReceiptHandle"])
    s3.put_object(Bucket=stack.bucket, Key="k.txt", Body=b"payload")
    assert s3.get_object(Bucket=stack.bucket, Key="k.txt")["Body"].read() == b"payload"
    cloudwatch.put_metric_data(
        Namespace=f"ProxyTest/{stack.name}", MetricData=[{"MetricName": "m", "Value": 1.0}]
    )
    search = proxy.opensearch()
    search.index(index=stack.index, id="a", body={"text": "hello"}, refresh=True)
    search.bulk(body=[{"index": {"_index": stack.index, "_id": "b"}}, {"text": "bye"}])
    assert search.get(index=stack.index, id="a")["_source"] == {"text": "hello"}

    expected = [
        ("sqs", "SendMessage"),
        ("sqs", "ReceiveMessage"),
        ("sqs", "DeleteMessage"),
        ("s3", "PutObject"),
        ("s3", "GetObject"),
        ("cloudwatch", "PutMetricData"),
        ("opensearch", "index"),
        ("opensearch", "bulk"),
        ("opensearch", "get"),
    ]
    wait_until(
        "the stats count each call",
        lambda: all(proxy.counters(s, a).get("requests", 0) >= 1 for s, a in expected),
    )
    totals = proxy.stats()["totals"]
    assert totals["errors"] == {} and totals["reset_before"] == totals["reset_after"] == 0


# --- injected errors -------------------------------------------------------------------
def _always(status: int, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"rate": 1, "status": status}
    if code:
        error["code"] = code
    return {"errors": [error]}


def test_injected_errors_reach_the_clients_as_the_services_own(
    proxy: ProxyUnderTest, stack: Stack
) -> None:
    proxy.set(
        {
            "services": {
                "sqs": {
                    "actions": {
                        "GetQueueAttributes": _always(503, "ServiceUnavailable"),
                        "ListQueues": _always(400, "RequestThrottled"),
                    }
                },
                "s3": {"actions": {"GetObject": _always(503)}},
                "cloudwatch": {"actions": {"PutMetricData": _always(400, "Throttling")}},
                "opensearch": {"actions": {"bulk": _always(429)}},
            }
        }
    )
    sqs, s3, cloudwatch = (proxy.client(s) for s in ("sqs", "s3", "cloudwatch"))
    calls: list[tuple[Callable[[], Any], int, str]] = [
        (lambda: sqs.get_queue_attributes(QueueUrl=stack.queue_url), 503, "ServiceUnavailable"),
        (lambda: sqs.list_queues(), 400, "RequestThrottled"),
        (lambda: s3.get_object(Bucket=stack.bucket, Key="any"), 503, "SlowDown"),
        (
            lambda: cloudwatch.put_metric_data(
                Namespace="ProxyTest", MetricData=[{"MetricName": "m", "Value": 1.0}]
            ),
            400,
            "Throttling",
        ),
    ]
    for call, status, code in calls:
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == code
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    with pytest.raises(TransportError) as refused:
        proxy.opensearch().bulk(body=[{"index": {"_index": stack.index, "_id": "x"}}, {"a": 1}])
    assert refused.value.status_code == 429
    assert refused.value.error == "rejected_execution_exception"
    # actions without a rule pass
    assert sqs.get_queue_url(QueueName=stack.name)["QueueUrl"] == stack.queue_url
    wait_until(
        "the stats count the injected errors",
        lambda: (
            proxy.counters("s3", "GetObject").get("errors") == {"SlowDown": 1}
            and proxy.counters("opensearch", "bulk").get("errors")
            == {"rejected_execution_exception": 1}
        ),
    )


# --- resets and stalls -----------------------------------------------------------------
def _visible(stack: Stack, sandbox_sqs: Any) -> int:
    attrs = sandbox_sqs.get_queue_attributes(
        QueueUrl=stack.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_reset_after_delivers_the_message_but_loses_the_answer(
    proxy: ProxyUnderTest, stack: Stack, sqs: Any
) -> None:
    proxy.set({"services": {"sqs": {"actions": {"SendMessage": {"reset_after": 1}}}}})
    with pytest.raises(ConnectionClosedError):
        proxy.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody="sent anyway")
    msgs = sqs.receive_message(QueueUrl=stack.queue_url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in msgs] == ["sent anyway"]
    wait_until(
        "the stats count the reset",
        lambda: proxy.counters("sqs", "SendMessage").get("reset_after") == 1,
    )


def test_reset_before_never_reaches_the_service(
    proxy: ProxyUnderTest, stack: Stack, sqs: Any
) -> None:
    proxy.set({"services": {"sqs": {"actions": {"SendMessage": {"reset_before": 1}}}}})
    with pytest.raises(ConnectionClosedError):
        proxy.client("sqs").send_message(QueueUrl=stack.queue_url, MessageBody="never sent")
    assert _visible(stack, sqs) == 0
    assert sqs.receive_message(QueueUrl=stack.queue_url).get("Messages", []) == []


def test_a_stall_outlasts_the_clients_timeout(proxy: ProxyUnderTest) -> None:
    proxy.set(
        {"services": {"sqs": {"actions": {"ListQueues": {"stall": {"rate": 1, "seconds": 3}}}}}}
    )
    client = proxy.client("sqs", read_timeout=1, connect_timeout=5)
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        client.list_queues()
    assert time.monotonic() - started >= 1.0
    wait_until(
        "the stats count the stall", lambda: proxy.counters("sqs", "ListQueues").get("stalls") == 1
    )


# --- latency ---------------------------------------------------------------------------
def test_latency_is_added_to_each_call_of_the_configured_action(
    proxy: ProxyUnderTest, stack: Stack
) -> None:
    # ListQueueTags: an action no other test here calls, so its counters are this test's
    proxy.set(
        {"services": {"sqs": {"actions": {"ListQueueTags": {"latency_ms": 300, "jitter_ms": 50}}}}}
    )
    sqs = proxy.client("sqs")
    sqs.get_queue_url(QueueName=stack.name)  # another action: not delayed
    for _ in range(3):
        started = time.monotonic()
        sqs.list_queue_tags(QueueUrl=stack.queue_url)
        assert time.monotonic() - started >= 0.300
    wait_until(
        "the stats count the three calls",
        lambda: proxy.counters("sqs", "ListQueueTags").get("requests") == 3,
    )
    assert 900 <= proxy.counters("sqs", "ListQueueTags")["latency_ms"] <= 3 * 350
    assert proxy.counters("sqs", "GetQueueUrl")["latency_ms"] == 0


# --- configs that cannot be used ------------------------------------------------------
BAD = {"services": {"sqs": {"errors": [{"rate": 0.1, "status": 200}]}}}
BAD_MESSAGE = "services.sqs.errors[0].status: 200 is not an HTTP error status"


def test_an_invalid_config_is_refused_with_its_problem(
    proxy: ProxyUnderTest, tmp_path: Path
) -> None:
    live = Path(proxy.exports["SANDBOX_PROXY_CONFIG"])
    proxy.set({"services": {"sqs": {"actions": {"ListQueues": _always(503)}}}})
    before = live.read_text()
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(BAD))
    for args, stdin in ((("check", str(bad_file)), None), (("set", "-"), json.dumps(BAD))):
        done = proxy.ctl("proxy", *args, stdin=stdin)
        assert done.returncode == 2
        assert BAD_MESSAGE in done.stderr
    assert live.read_text() == before
    with pytest.raises(ClientError):  # the installed config still applies
        proxy.client("sqs").list_queues()


def test_an_invalid_file_written_directly_is_refused_and_logged(proxy: ProxyUnderTest) -> None:
    live = Path(proxy.exports["SANDBOX_PROXY_CONFIG"])
    proxy.set({"services": {"sqs": {"actions": {"ListQueues": _always(503)}}}})
    refused = proxy.stats()["config"]["refused"]
    tmp = live.with_name(".bad.tmp")
    tmp.write_text(json.dumps(BAD))
    tmp.replace(live)  # how a writer replaces it: atomically
    wait_until(
        "the proxy reports the refusal",
        lambda: proxy.stats()["config"]["refused"] == refused + 1,
    )
    assert BAD_MESSAGE in proxy.stats()["config"]["last_error"]["message"]
    log = (proxy.state_dir / "run" / "proxy.log").read_text()
    assert "refused, the previous one stays" in log
    with pytest.raises(ClientError):
        proxy.client("sqs").list_queues()


# --- lifecycle -------------------------------------------------------------------------
def test_up_fails_clearly_when_a_port_is_taken(sandbox: Sandbox, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proxy = ProxyUnderTest(sandbox, tmp_path, private_env(sandbox, tmp_path, aws=port))
        done = proxy.ctl("proxy", "up")
    assert done.returncode == 2
    assert f"127.0.0.1:{port} (SANDBOX_PROXY_AWS_PORT) is already taken" in done.stderr
    assert not (tmp_path / "run" / "proxy.pid").exists()


def test_status_shows_the_proxy_and_down_stops_it(sandbox: Sandbox, tmp_path: Path) -> None:
    """`sandbox/ctl status` and `down` of a private state dir that runs only a proxy."""
    env = private_env(sandbox, tmp_path)
    assert env["SANDBOX_DIR"] == str(tmp_path)  # `down` must never reach the shared one
    proxy = ProxyUnderTest(sandbox, tmp_path, env)
    status = proxy.ctl("status")
    assert status.returncode == 3  # nothing runs; a proxy that is off fails nothing
    assert any(line.split()[:2] == ["proxy", "down"] for line in status.stdout.splitlines())
    with running_proxy(sandbox, tmp_path) as running:
        pid = running.pid
        status = running.ctl("status")
        assert any(line.split()[:2] == ["proxy", "up"] for line in status.stdout.splitlines())
        assert status.returncode == 1  # the proxy runs, the rest of this private sandbox not
        down = running.ctl("down")
        assert down.returncode == 0, down.stderr
        assert "proxy stopped" in down.stdout
        wait_until(f"proxy pid {pid} gone", lambda: not alive(pid))
        assert not (tmp_path / "proxy.env").exists()
