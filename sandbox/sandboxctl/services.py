"""The AWS emulator (LocalStack, or moto_server as a fallback) and osmem-server."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .config import REPO, Config
from .procs import Managed, SandboxError, port_owner, wait_for

log = logging.getLogger(__name__)

LOCALSTACK_PINS = [
    "localstack-core[runtime]==2026.3.0",
    "cbor2<5.7",
    "cryptography<44",
    "pyopenssl<24.3",
    "service_identity",
]
LOCALSTACK_SERVICES = ("sqs", "s3", "cloudwatch")
VENV_BIN = REPO / ".venv" / "bin"


def http_json(url: str, timeout: float = 2.0) -> object | None:
    """GET ``url`` and decode JSON; None on any connection or HTTP error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (http to 127.0.0.1)
            data: object = json.loads(resp.read() or b"null")
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return data


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _require_free(port: int, what: str) -> None:
    if port_in_use(port):
        raise SandboxError(
            f"{what}: 127.0.0.1:{port} is already taken by {port_owner(port)}; stop it or "
            "choose another port (see sandbox/README.md)"
        )


# --- Python >= 3.13 for LocalStack ------------------------------------------
def _python_version(exe: str) -> tuple[tuple[int, int], str] | None:
    try:
        out = subprocess.run(
            [
                exe,
                "-c",
                "import sys; print(sys.version_info[0], sys.version_info[1], sys.executable)",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split(maxsplit=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])), out[2].strip()


def find_python313() -> str | None:
    """A Python >= 3.13 from PATH or ~/.pyenv/versions (its real path), or None."""
    candidates = [f"python3.{minor}" for minor in range(20, 12, -1)]
    found = [shutil.which(c) for c in candidates]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv.is_dir():
        found += [str(p / "bin" / "python3") for p in sorted(pyenv.iterdir(), reverse=True)]
    for exe in filter(None, found):
        info = _python_version(exe)
        if info and info[0] >= (3, 13):
            return info[1]
    return None


def cached_venv(cfg: Config, python: str, name: str, pins: list[str]) -> Path:
    """A venv with ``pins``, built once per machine in the cache dir (locked, stamped).

    Its directory ``<name>-<hash>`` hashes the pins and the Python version, so a pin
    change builds a new one; an unstamped directory is never trusted.
    """
    version = _python_version(python)
    key = json.dumps([pins, version[0] if version else python])
    venv = cfg.cache_dir / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    stamp = venv / ".complete"
    if stamp.exists():
        return venv
    cfg.cache_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.cache_dir / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():  # another `up` built it while we waited
            return venv
        print(f"sandbox: building the {name} venv once in {venv}", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *pins], check=True)
        stamp.write_text(json.dumps(pins) + "\n")
    return venv


def localstack_venv(cfg: Config, python: str) -> Path:
    """LocalStack's own venv, built once per machine in the cache dir (locked, stamped)."""
    return cached_venv(cfg, python, "localstack", LOCALSTACK_PINS)


# --- the AWS emulator ---------------------------------------------------------
class Aws:
    """LocalStack on ``cfg.localstack_port``, or moto_server when no Python >= 3.13."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.proc = Managed("aws", cfg.run_dir)
        self.kind_file = cfg.run_dir / "aws.kind"

    @property
    def kind(self) -> str:
        with contextlib.suppress(OSError):
            return self.kind_file.read_text().strip()
        return "localstack"

    def healthy(self) -> bool:
        if self.kind == "moto":
            return http_json(f"{self.cfg.aws_endpoint}/moto-api/data.json") is not None
        health = http_json(f"{self.cfg.aws_endpoint}/_localstack/health")
        if not isinstance(health, dict):
            return False
        services = health.get("services", {})
        return all(services.get(s) in ("available", "running") for s in LOCALSTACK_SERVICES)

    def running(self) -> bool:
        return self.proc.pid() is not None and self.healthy()

    def start(self) -> str:
        """Start the emulator if it is not running; return what was done."""
        if self.proc.pid() is not None:
            wait_for("AWS emulator", self.healthy, 120, self.proc)
            return f"{self.kind} already running (pid {self.proc.pid()})"
        _require_free(self.cfg.localstack_port, "AWS emulator")
        python = find_python313()
        state = self.cfg.state_dir / "localstack"
        state.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
        if python:
            venv = localstack_venv(self.cfg, python)
            env.update(
                HOME=str(state / "home"),
                FILESYSTEM_ROOT=str(state / "fs"),
                SERVICES=",".join(LOCALSTACK_SERVICES),
                GATEWAY_LISTEN=f"127.0.0.1:{self.cfg.localstack_port}",
                LOCALSTACK_HOST=f"127.0.0.1:{self.cfg.localstack_port}",
                # queue URLs http://127.0.0.1:<port>/queue/<region>/<account>/<name>: resolvable
                # without DNS (the default *.localhost.localstack.cloud names need it)
                SQS_ENDPOINT_STRATEGY="path",
                DNS_ADDRESS="0",  # no DNS server, never touch the host's resolv.conf
                # /.dockerenv exists here: LocalStack would think it runs in a container
                # and keep its data in /tmp/localstack, shared by (and wiped by the start
                # and stop of) every instance on the machine. Host mode + own TMPDIR keep
                # each instance's data under its state dir.
                OVERRIDE_IN_DOCKER="0",
                TMPDIR=str(state / "tmp"),
                SKIP_SSL_CERT_DOWNLOAD="1",
                DISABLE_EVENTS="1",
                # LocalStack emulates AWS/SQS CloudWatch metrics by sending itself a
                # PutMetricData for every SQS call: under load that was most of its CPU
                # (py-spy, docs/sandbox.md) and capped every SQS-bound test and benchmark.
                # SANDBOX_SQS_METRICS=1 turns them back on (the alarms then have data).
                SQS_DISABLE_CLOUDWATCH_METRICS=(
                    "0" if os.environ.get("SANDBOX_SQS_METRICS") == "1" else "1"
                ),
                LOCALSTACK_TELEMETRY_DISABLED="1",
            )
            (state / "home").mkdir(exist_ok=True)
            (state / "tmp").mkdir(exist_ok=True)
            argv = [str(venv / "bin" / "python"), "-m", "localstack.runtime.main"]
            kind = "localstack"
        else:
            print(
                "sandbox: WARNING: no Python >= 3.13 found (PATH, ~/.pyenv/versions); falling "
                "back to moto_server, which suits small queues only (~90 msg/s at 1,000 "
                "messages, no StartMessageMoveTask)",
                file=sys.stderr,
                flush=True,
            )
            argv = [
                str(VENV_BIN / "moto_server"),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.cfg.localstack_port),
            ]
            kind = "moto"
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        self.kind_file.write_text(kind + "\n")
        pid = self.proc.start(argv, env, cwd=state)
        wait_for(f"{kind} on {self.cfg.aws_endpoint}", self.healthy, 180, self.proc)
        return f"{kind} started (pid {pid}) on {self.cfg.aws_endpoint}"

    def stop(self) -> bool:
        return self.proc.stop(timeout=20)


# --- OpenSearch (osmem-server) -----------------------------------------------------
def osmem_binary() -> str:
    out = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SandboxError(
            f"osmem-server is not installed in .venv (run `make venv`):\n{out.stderr}"
        )
    return out.stdout.strip()


class Osmem:
    """osmem-server, the in-memory OpenSearch API, on ``cfg.osmem_port``."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.proc = Managed("osmem", cfg.run_dir)

    def healthy(self) -> bool:
        info = http_json(self.cfg.opensearch_endpoint + "/")
        return isinstance(info, dict) and "version" in info

    def running(self) -> bool:
        return self.proc.pid() is not None and self.healthy()

    def start(self) -> str:
        if self.proc.pid() is not None:
            wait_for("osmem-server", self.healthy, 60, self.proc)
            return f"osmem-server already running (pid {self.proc.pid()})"
        _require_free(self.cfg.osmem_port, "osmem-server")
        argv = [osmem_binary(), "-addr", f"127.0.0.1:{self.cfg.osmem_port}", "-no-stdin-watch"]
        pid = self.proc.start(argv, dict(os.environ), cwd=self.cfg.state_dir)
        wait_for(f"osmem-server on {self.cfg.opensearch_endpoint}", self.healthy, 60, self.proc)
        return f"osmem-server started (pid {pid}) on {self.cfg.opensearch_endpoint}"

    def stop(self) -> bool:
        return self.proc.stop(timeout=10)
