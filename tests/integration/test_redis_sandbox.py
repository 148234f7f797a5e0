"""`sandbox/ctl redis up | status | down` on a PRIVATE instance (own state dir, own port).

The shared sandbox's redis-server is never touched.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import redis
from redis_it_helpers import free_port

pytestmark = [pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
CTL = REPO / "sandbox" / "ctl"


def ctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CTL), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_redis_alone_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "sbx"
    port = free_port()
    env = {**os.environ, "SANDBOX_DIR": str(state), "SANDBOX_REDIS_PORT": str(port)}
    # a stack.json and env as `up` writes them: `redis up` adds REDIS_URL, `down` removes it
    state.mkdir()
    (state / "stack.json").write_text(json.dumps({"env": {"AWS_REGION": "x"}}))
    (state / "env").write_text("export AWS_REGION=x\n")
    try:
        assert ctl(env, "redis", "status").returncode == 3
        up = ctl(env, "redis", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "redis-server started (pid" in up.stdout
        assert ctl(env, "redis", "status").returncode == 0
        pid = int((state / "run" / "redis.pid").read_text())
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        assert client.ping() is True
        config = client.config_get("*")
        assert config["dir"] == str(state / "redis")  # its files stay in the state dir
        assert config["save"] == "" and config["appendonly"] == "no"  # no persistence
        assert config["bind"] == "127.0.0.1"
        client.close()
        stack = json.loads((state / "stack.json").read_text())
        assert stack["redis"] == {"url": url, "host": "127.0.0.1", "port": port}
        assert stack["env"]["REDIS_URL"] == url
        assert f"export REDIS_URL={url}" in (state / "env").read_text()

        again = ctl(env, "redis", "up")
        assert "already running" in again.stdout
        assert int((state / "run" / "redis.pid").read_text()) == pid
    finally:
        down = ctl(env, "redis", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "redis-server stopped" in down.stdout
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert not port_open(port)
    assert ctl(env, "redis", "status").returncode == 3
    assert not (state / "redis").exists()
    assert "REDIS_URL" not in json.loads((state / "stack.json").read_text())["env"]
    assert not list(state.rglob("dump.rdb")) and not (REPO / "dump.rdb").exists()


def test_redis_up_fails_clearly_when_its_port_is_taken(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SANDBOX_DIR": str(tmp_path / "sbx"), "SANDBOX_REDIS_PORT": str(port)}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = ctl(env, "redis", "up")
    assert done.returncode == 2
    assert f"redis-server: 127.0.0.1:{port} is already taken by pid {os.getpid()}" in done.stderr
    assert not (tmp_path / "sbx" / "run" / "redis.pid").exists()


def test_down_stops_redis_and_status_shows_it(tmp_path: Path) -> None:
    """`sandbox/ctl down` stops Redis with the rest (here the only part running)."""
    state = tmp_path / "sbx"
    port = free_port()
    env = {**os.environ, "SANDBOX_DIR": str(state), "SANDBOX_REDIS_PORT": str(port)}
    up = ctl(env, "redis", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        status = ctl(env, "status")
        assert status.returncode == 1  # Redis up, the rest of this private sandbox down
        line = next(row for row in status.stdout.splitlines() if row.startswith("redis"))
        assert line.split()[:3] == ["redis", "(redis-server)", "up"]
        assert f"redis://127.0.0.1:{port}/0" in line
    finally:
        down = ctl(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "redis-server stopped" in down.stdout
    assert not port_open(port)
    assert ctl(env, "status").returncode == 3
