"""redis-server (Debian's package) on 127.0.0.1, for the Redis-list queue backend.

It runs by pid like the other parts, with everything it writes under
``$SANDBOX_DIR/redis`` (its working directory) and no persistence at all: no
RDB snapshots (``save ""``), no AOF, and ``shutdown-on-sigterm nosave``, so a
stop never writes a dump file. A missing ``redis-server`` is installed with
apt-get when running as root (as ``make model-check`` installs spin).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

from .config import Config
from .procs import Managed, SandboxError, wait_for
from .services import _require_free

REDIS_SERVER = "redis-server"


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """True when a Redis server answers PING with +PONG on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis_server() -> str:
    """The path of redis-server; installed with apt-get when missing and we are root."""
    found = shutil.which(REDIS_SERVER)
    if found:
        return found
    if os.geteuid() != 0:
        raise SandboxError(
            "redis-server is not installed; run `apt-get install -y redis-server` as root "
            "(Debian 12 ships 7.0.15), then `sandbox/ctl redis up`"
        )
    print("sandbox: installing redis-server (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SandboxError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    # the package starts a system-wide service on 6379 where systemd runs; ours is separate
    found = shutil.which(REDIS_SERVER)
    if not found:
        raise SandboxError("apt-get installed redis-server but it is not on PATH")
    return found


class Redis:
    """redis-server on ``cfg.redis_port``: no persistence, state in ``$SANDBOX_DIR/redis``."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.proc = Managed("redis", cfg.run_dir)
        self.data_dir = cfg.state_dir / "redis"

    def healthy(self) -> bool:
        return redis_ping(self.cfg.redis_port)

    def running(self) -> bool:
        return self.proc.pid() is not None and self.healthy()

    def start(self) -> str:
        if self.proc.pid() is not None:
            wait_for("redis-server", self.healthy, 30, self.proc)
            return f"redis-server already running (pid {self.proc.pid()}) on {self.cfg.redis_url}"
        binary = ensure_redis_server()
        _require_free(self.cfg.redis_port, "redis-server")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.cfg.redis_port),
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--shutdown-on-sigterm",
            "nosave",
            "--logfile",
            "",  # stdout: the sandbox's run/redis.log
        ]
        pid = self.proc.start(argv, dict(os.environ), cwd=self.data_dir)
        wait_for(f"redis-server on {self.cfg.redis_url}", self.healthy, 30, self.proc)
        return f"redis-server started (pid {pid}) on {self.cfg.redis_url}"

    def stop(self) -> bool:
        stopped = self.proc.stop(timeout=10)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return stopped
