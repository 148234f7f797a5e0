"""Helpers of the Redis-queue integration tests: the sandbox's redis-server, real module runs.

The sandbox's Redis is shared: every test keeps to keys under its own prefix
(``t-<test>-<random>:``) and deletes them afterwards. The modules run as real
``ansible-playbook`` processes (a one-task playbook per call, the JSON callback).
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from playbook_process import ansible_playbook

REPO = Path(__file__).resolve().parents[2]


def sandbox_redis_url(state_dir: Path) -> str:
    """The Redis URL `sandbox/ctl up` wrote into stack.json; fails the test when there is none."""
    data = json.loads((state_dir / "stack.json").read_text())
    if "redis" not in data:
        pytest.fail(
            f"{state_dir / 'stack.json'} has no redis entry: `sandbox/ctl up` (or "
            "`sandbox/ctl redis up`) should have started redis-server",
            pytrace=False,
        )
    url: str = data["redis"]["url"]
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Keys:
    """A test's own key names: the runbook's names under a unique prefix."""

    url: str
    prefix: str
    client: redis.Redis

    def __call__(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def processing(self) -> str:
        return self("processing_jobs")

    def heartbeat(self, job_id: str) -> str:
        return self(f"heartbeat:{job_id}")

    def job(self, job_id: str) -> str:
        return self(f"job:{job_id}")

    def layout_args(self, queues: list[str]) -> dict[str, Any]:
        """The modules' layout options for these keys."""
        return {
            "url": self.url,
            "queues": [self(q) for q in queues],
            "processing_set": self.processing,
            "heartbeat_prefix": self("heartbeat:"),
            "job_prefix": self("job:"),
        }

    def cleanup(self) -> None:
        for key in self.client.scan_iter(match=f"{self.prefix}*", count=1000):
            self.client.delete(key)


def make_keys(url: str, label: str) -> Iterator[Keys]:
    client = redis.Redis.from_url(url)
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:24]
    keys = Keys(url=url, prefix=f"t-{slug}-{uuid.uuid4().hex[:8]}:", client=client)
    try:
        yield keys
    finally:
        keys.cleanup()
        client.close()


@dataclass
class ModuleRun:
    """One module call in a real ansible-playbook process."""

    rc: int
    result: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))


def run_module(
    tmp_path: Path,
    module: str,
    args: dict[str, Any],
    *,
    check: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> ModuleRun:
    """``module`` with ``args`` on localhost, in a one-task playbook; its task result."""
    playbook = tmp_path / f"run-{module}-{uuid.uuid4().hex[:6]}.yml"
    task = {"name": "Run the module", module: args}
    play = [
        {
            "name": f"Run {module}",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [task],
        }
    ]
    playbook.write_text(json.dumps(play, indent=1))  # JSON is YAML
    done = ansible_playbook(playbook, env, check=check, json_output=True, timeout=timeout)
    try:
        output = json.loads(done.stdout)
        result: dict[str, Any] = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        pytest.fail(
            f"ansible-playbook gave no task result (rc {done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
            pytrace=False,
        )
    return ModuleRun(done.returncode, result, done.stdout, done.stderr)
