"""sandbox/ctl up -> up (no-op) -> down -> up -> down on a PRIVATE instance.

It runs in its own state dir on its own ports with one host, so the shared
sandbox that everyone else uses is never touched.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.sandbox, pytest.mark.hosts, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CTL = REPO / "sandbox" / "ctl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def pids_in_namespace(ns: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str((entry / "ns" / "pid").readlink()) == ns:
                    found.append(int(entry.name))
    return found


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    return [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(prefix)
    ]


class Private:
    """A private sandbox: its env and a runner for sandbox/ctl."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.ports = {
            "SANDBOX_LOCALSTACK_PORT": free_port(),
            "SANDBOX_OSMEM_PORT": free_port(),
            "SANDBOX_REDIS_PORT": free_port(),
            "SANDBOX_SSH_PORT_BASE": free_port(),
        }
        self.extra_port = free_port()
        self.env = {
            **os.environ,
            "SANDBOX_DIR": str(state_dir),
            "SANDBOX_HOSTS": "1",
            **{k: str(v) for k, v in self.ports.items()},
        }

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CTL), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    def pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text()) for p in sorted((self.state_dir / "run").glob("*.pid"))}

    def pid_namespaces(self) -> list[str]:
        return [p.read_text().strip() for p in (self.state_dir / "run").glob("*.pidns")]


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Private]:
    sandbox = Private(tmp_path / "sbx")
    yield sandbox
    sandbox.ctl("down")  # whatever the test left running


def assert_nothing_left(sandbox: Private, pids: dict[str, int], namespaces: list[str]) -> None:
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
    assert sandbox.pids() == {}
    assert [ns for ns in namespaces if pids_in_namespace(ns)] == []
    assert mounts_under(sandbox.state_dir) == []
    assert not Path("/sys/class/net/ve-worker1").exists()
    assert [port for port in sandbox.ports.values() if port_open(port)] == []
    assert sandbox.ctl("status").returncode == 3


def test_up_up_down_up_down(private: Private, cloudwatch: Any) -> None:
    first = private.ctl("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert private.ctl("status").returncode == 0
    pids = private.pids()
    assert set(pids) == {"aws", "osmem", "redis", "host-worker1"}
    assert (private.state_dir / "env").exists() and (private.state_dir / "stack.json").exists()

    # another sandbox on the same ports fails before starting anything, naming this one
    other = subprocess.run(
        [str(CTL), "up"],
        env={**private.env, "SANDBOX_DIR": str(private.state_dir.parent / "other")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert other.returncode != 0
    assert f"belongs to the sandbox in {private.state_dir}" in other.stderr, other.stderr
    assert not list((private.state_dir.parent / "other").glob("run/*.pid"))

    again = private.ctl("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already up" in again.stdout
    assert private.pids() == pids

    namespaces = private.pid_namespaces()
    assert len(namespaces) == 1
    down = private.ctl("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert_nothing_left(private, pids, namespaces)
    assert not (private.state_dir / "env").exists()

    third = private.ctl("up")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "already up" not in third.stdout
    assert private.ctl("status").returncode == 0
    pids = private.pids()
    namespaces = private.pid_namespaces()
    assert private.ctl("down").returncode == 0
    assert_nothing_left(private, pids, namespaces)

    # a private instance's start and stop leave the shared one's data alone
    # (LocalStack once kept it in /tmp/localstack for every instance and wiped it)
    namespace = f"Test/{uuid.uuid4().hex[:8]}"
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=[{"MetricName": "M", "Value": 1.0}])
    assert [m["MetricName"] for m in cloudwatch.list_metrics(Namespace=namespace)["Metrics"]] == [
        "M"
    ]


def test_extra_host_up_and_down(private: Private) -> None:
    up = private.ctl("host-up", "mol-probe", "--ssh-port", str(private.extra_port))
    assert up.returncode == 0, up.stdout + up.stderr
    assert f'"port": {private.extra_port}' in up.stdout
    assert port_open(private.extra_port)
    again = private.ctl("host-up", "mol-probe", "--ssh-port", str(private.extra_port))
    assert "already running" in again.stdout
    pids = private.pids()
    namespaces = private.pid_namespaces()

    down = private.ctl("host-down", "mol-probe")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not pid_alive(pids["host-mol-probe"])
    assert [ns for ns in namespaces if pids_in_namespace(ns)] == []
    assert not (private.state_dir / "hosts" / "mol-probe").exists()
    assert not port_open(private.extra_port)


def test_up_fails_clearly_when_a_port_is_taken(private: Private) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", private.ports["SANDBOX_OSMEM_PORT"]))
        squatter.listen()
        done = private.ctl("up")
    assert done.returncode != 0
    port = private.ports["SANDBOX_OSMEM_PORT"]
    message = f"127.0.0.1:{port} (SANDBOX_OSMEM_PORT) is already taken by pid {os.getpid()}"
    assert message in done.stderr, done.stderr
    assert private.pids() == {}  # checked before anything was started
