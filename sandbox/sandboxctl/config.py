"""Settings of one sandbox instance, read once from the environment.

Every path the sandbox writes lies under ``state_dir`` (``$SANDBOX_DIR``,
default ``<repo>/.sandbox``), except two caches that are built once per
machine and shared by every instance: LocalStack's venv and the debootstrap
root of the test hosts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

QUEUE_NAME = "cis-filesearch-index-queue"
DLQ_NAME = "cis-filesearch-dlq"
BUCKET_NAME = "cis-filesearch-local"
INDEX_NAME = "filesearch"
REGION = "ap-northeast-1"
# Dummy credentials: the emulators accept anything; these never reach AWS.
ACCESS_KEY = "test"
SECRET_KEY = "sandbox-dummy-secret"  # noqa: S105 (dummy, sandbox only; not "test": Ansible masks no_log values in all output)
HOST_USER = "ec2-user"


def _int(environ: dict[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"sandbox: {name}={raw!r} is not an integer") from None


@dataclass(frozen=True)
class Config:
    """Where one sandbox keeps its state, and on which ports it listens."""

    state_dir: Path
    localstack_port: int
    osmem_port: int
    ssh_port_base: int
    host_count: int
    cache_dir: Path
    rootfs_cache: Path
    debian_mirror: str
    # the fault-and-latency proxy (`sandbox/ctl proxy up`): its AWS and OpenSearch sides
    proxy_aws_port: int = 4576
    proxy_opensearch_port: int = 9210
    # redis-server for the Redis-list queue backend (`sandbox/ctl redis up`)
    redis_port: int = 16379

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if environ is None else environ)
        xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        state = Path(env.get("SANDBOX_DIR") or REPO / ".sandbox")
        return cls(
            state_dir=state.resolve(),
            localstack_port=_int(env, "SANDBOX_LOCALSTACK_PORT", 4566),
            osmem_port=_int(env, "SANDBOX_OSMEM_PORT", 9200),
            ssh_port_base=_int(env, "SANDBOX_SSH_PORT_BASE", 2201),
            host_count=_int(env, "SANDBOX_HOSTS", 2),
            cache_dir=Path(env.get("SANDBOX_CACHE_DIR") or Path(xdg) / "filesearch-ops"),
            rootfs_cache=Path(
                env.get("SANDBOX_ROOTFS_CACHE") or "/var/cache/filesearch-ops/bookworm-root"
            ),
            debian_mirror=env.get("SANDBOX_DEBIAN_MIRROR") or "http://deb.debian.org/debian",
            proxy_aws_port=_int(env, "SANDBOX_PROXY_AWS_PORT", 4576),
            proxy_opensearch_port=_int(env, "SANDBOX_PROXY_OPENSEARCH_PORT", 9210),
            redis_port=_int(env, "SANDBOX_REDIS_PORT", 16379),
        )

    # --- derived paths -------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Pid files and logs."""
        return self.state_dir / "run"

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    @property
    def ssh_key(self) -> Path:
        return self.state_dir / "ssh" / "id_ed25519"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def proxy_dir(self) -> Path:
        """The proxy's live config (default), its stats and mitmproxy's confdir."""
        return self.state_dir / "proxy"

    @property
    def proxy_env_file(self) -> Path:
        return self.state_dir / "proxy.env"

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.localstack_port}"

    @property
    def opensearch_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.osmem_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def worker_names(self) -> list[str]:
        return [f"worker{i}" for i in range(1, self.host_count + 1)]

    def worker_port(self, name: str) -> int:
        return self.ssh_port_base + self.worker_names().index(name)
