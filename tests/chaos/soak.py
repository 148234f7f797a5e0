#!/usr/bin/env python3
"""Seeded chaos soak on the local stack: faults, latency and SIGKILLs, then prove nothing is lost.

    .venv/bin/python tests/chaos/soak.py [--seconds 600] [--messages 3000] [--seed N]
        [--host chaos1] [--ssh-port 2250] [--proxy private|shared|off] [--keep]
        [--workdir DIR] [--drain-timeout 900] [--mutant NAME]

``make chaos`` runs it with CHAOS_SECONDS, CHAOS_MESSAGES, CHAOS_SEED (read
here too; flags win; the seed is random when not given and always printed).
It needs a running sandbox (the make targets bring one up with
sandbox/with-sandbox) and uses only its own resources:

1. its own queue (RedrivePolicy maxReceiveCount 3 to its own DLQ), bucket and
   index, unique per run; its own fault proxy (``sandbox/ctl proxy up`` with
   its own SANDBOX_DIR and free ports, in front of the shared emulators, so
   the shared proxy's users never see its faults); its own test host
   (``sandbox/ctl host-up``), to which playbooks/deploy.yml deploys the real
   worker as the systemd unit ``phased-worker`` (Restart=on-failure), pointed
   at the proxy;
2. for ``--seconds`` it feeds ``--messages`` S3-event messages (files it
   uploads straight to the emulator, plus poison: events for missing objects,
   unparseable bodies, corrupt files) while a seeded schedule
   (tests/chaos/chaos_plan.py) changes the proxy's faults every few seconds,
   takes OpenSearch and S3 away and back, and SIGKILLs the worker (checking
   that systemd restarts it each time);
3. it turns the faults off and drains: waits until the queue is empty with
   nothing in flight, snapshots the DLQ and the retry store, runs
   ``filesearch-worker replay-retries`` and ``recover-dlq --strategy reindex``
   on the host (in the unit's sandbox, with the unit's environment), and
   repeats until the DLQ and the retry store are empty (at most 4 rounds);
4. it accounts for every message sent (tests/chaos/chaos_ledger.py) and prints
   ONE summary line ``sent=N indexed=… retry=… dlq=… archived=… lost=0
   stuck=0 duplicates=…``, then the paths taken, the DLQ reasons, the kills and
   the proxy's counters. Exit 1 on any lost or stuck message, accounting
   problem or kill systemd did not recover from, with the seed and the command
   that reproduces the run; 2 when the run could not be carried out; 130 when
   interrupted.

Every wait polls a condition against a deadline. Traffic goes to 127.0.0.1
only. Everything it started is stopped by pid (the host with ``sandbox/ctl
host-down``, the proxy with ``sandbox/ctl proxy down``), also on failure,
Ctrl-C and SIGTERM; its queues, bucket, index and workdir are removed unless
``--keep`` (the workdir, with ledger.json and journal.log, is kept when the
run fails). ``--mutant`` deploys a deliberately broken worker (MUTANTS) to
check that the accounting catches the loss.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import boto3  # noqa: E402 - after the path set-up
from botocore.config import Config as BotoConfig  # noqa: E402
from chaos_ledger import Copy, Evidence, Ledger, Sent, account, parse_journal  # noqa: E402
from chaos_plan import (  # noqa: E402
    Message,
    Schedule,
    Timeouts,
    fault_schedule,
    message_mix,
    mix_counts,
)
from opensearchpy import OpenSearch  # noqa: E402

from filesearch_worker.events import s3_event_body  # noqa: E402

sys.path.insert(0, str(REPO / "sandbox"))
from sandboxctl import faults as proxy_faults  # noqa: E402 - the proxy's own validator

CTL = REPO / "sandbox" / "ctl"
VENV_BIN = REPO / ".venv" / "bin"
SERVICE = "phased-worker"
BASE_DIR = "/home/ec2-user/file-processor"
ENV_FILE = f"/etc/{SERVICE}.env"
WORKER_USER = "filesearch"
# The worker's settings in the soak (role variables); short timeouts so a drain is minutes.
VISIBILITY_TIMEOUT = 30
OPENSEARCH_TIMEOUT = 5
BACKOFF_BASE, BACKOFF_MAX = 5, 60
AWS_READ_TIMEOUT = 60  # aws.client_config: max(60, SQS_WAIT_TIME_SECONDS + 20)
RESERVED_PORTS = {2201, 2202, *range(2300, 2400)}
#: Deliberately broken workers, to check that the accounting catches a loss: name ->
#: (file under files/worker/src/filesearch_worker, text, replacement). Applied to the
#: run's frozen copy of the worker only; never to the tree.
MUTANTS = {
    # the incident report's "Fix 1": delete whether or not the DLQ send was confirmed
    "delete-unconfirmed": (
        "sqs_batch.py",
        "        deletable.extend(sent.ok)\n        leave.extend(sent.failed_items)\n",
        "        deletable.extend(send)  # MUTANT: unconfirmed DLQ sends deleted too\n",
    ),
}
EXIT_FAILED, EXIT_ERROR = 1, 2

_T0 = time.monotonic()


def say(msg: str) -> None:
    """One progress line, with the time since the start."""
    print(f"chaos [{time.monotonic() - _T0:7.1f}s] {msg}", flush=True)


class SoakError(Exception):
    """The soak could not be carried out (not a finding about the worker)."""


class Interrupted(BaseException):
    """SIGTERM, treated like Ctrl-C: clean up and stop."""


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 2.0) -> Any:
    """Poll ``condition`` until truthy; SoakError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise SoakError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(every)


def run(
    argv: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    check: bool = True,
    what: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run a command in its own process group; on timeout or interrupt, kill that group."""
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise SoakError(f"{what or argv[0]} did not finish in {timeout:.0f}s") from None
    except BaseException:
        _kill_group(proc)
        raise
    done = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    if check and done.returncode != 0:
        tail = "\n".join((out + err).strip().splitlines()[-25:])
        raise SoakError(f"{what or ' '.join(argv[:3])} exited {done.returncode}:\n{tail}")
    return done


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the process group we started (by its leader's pid) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


# --- settings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """One run's parameters (flags, else CHAOS_* variables, else defaults)."""

    seconds: float
    messages: int
    seed: int
    host: str
    ssh_port: int
    keep: bool
    workdir: Path | None
    drain_timeout: float
    proxy: str = "private"
    mutant: str = ""

    @property
    def reproduce(self) -> str:
        """The command that runs this seed again."""
        if self.proxy != "private" or self.mutant:
            extra = f" --mutant {self.mutant}" if self.mutant else ""
            return (
                f".venv/bin/python tests/chaos/soak.py --proxy {self.proxy} --seed {self.seed} "
                f"--seconds {self.seconds:g} --messages {self.messages}{extra}"
            )
        return (
            f"make chaos CHAOS_SEED={self.seed} CHAOS_SECONDS={self.seconds:g} "
            f"CHAOS_MESSAGES={self.messages}"
        )


def parse_options(argv: list[str] | None = None) -> Options:
    env = os.environ
    parser = argparse.ArgumentParser(
        description="Seeded chaos soak on the local stack (see the module docstring)."
    )
    parser.add_argument("--seconds", type=float, default=float(env.get("CHAOS_SECONDS") or 600))
    parser.add_argument("--messages", type=int, default=int(env.get("CHAOS_MESSAGES") or 3000))
    parser.add_argument(
        "--seed", type=int, default=int(env["CHAOS_SEED"]) if env.get("CHAOS_SEED") else None
    )
    parser.add_argument("--host", default=env.get("CHAOS_HOST") or "chaos1")
    parser.add_argument("--ssh-port", type=int, default=int(env.get("CHAOS_SSH_PORT") or 2250))
    parser.add_argument("--keep", action="store_true", help="keep queues, bucket, index, workdir")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument(
        "--drain-timeout", type=float, default=900, help="deadline of each drain wait (s)"
    )
    parser.add_argument(
        "--proxy",
        choices=("private", "shared", "off"),
        default=env.get("CHAOS_PROXY") or "private",
        help="private: the run's own proxy instance (default); shared: the sandbox's "
        "(4576/9210); off: a baseline without faults (SIGKILLs only)",
    )
    parser.add_argument(
        "--mutant",
        choices=sorted(MUTANTS),
        default="",
        help="deploy a deliberately broken worker (checks that the accounting catches it)",
    )
    args = parser.parse_args(argv)
    if args.ssh_port in RESERVED_PORTS:
        parser.error(f"--ssh-port {args.ssh_port} belongs to worker1/2 or molecule (2300-2399)")
    if args.seconds < 30 or args.messages < 20:
        parser.error("at least --seconds 30 and --messages 20")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    return Options(
        seconds=args.seconds,
        messages=args.messages,
        seed=seed,
        host=args.host,
        ssh_port=args.ssh_port,
        keep=args.keep,
        workdir=args.workdir,
        drain_timeout=args.drain_timeout,
        proxy=args.proxy,
        mutant=args.mutant,
    )


@dataclass(frozen=True)
class Stack:
    """The running sandbox, from ``$SANDBOX_DIR/stack.json``."""

    state_dir: Path
    aws_endpoint: str
    region: str
    opensearch_url: str
    access_key: str
    secret_key: str
    ssh_key: Path

    @classmethod
    def load(cls) -> Stack:
        state = Path(os.environ.get("SANDBOX_DIR") or REPO / ".sandbox")
        path = state / "stack.json"
        if not path.exists():
            raise SoakError(f"{path} missing: the sandbox is not up (make chaos brings it up)")
        data = json.loads(path.read_text())
        for url in (data["aws_endpoint"], data["opensearch_endpoint"]):
            if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
                raise SoakError(f"the soak only talks to 127.0.0.1, the sandbox says {url}")
        return cls(
            state_dir=Path(data["state_dir"]),
            aws_endpoint=data["aws_endpoint"],
            region=data["region"],
            opensearch_url=data["opensearch_endpoint"],
            access_key=data["env"]["AWS_ACCESS_KEY_ID"],
            secret_key=data["env"]["AWS_SECRET_ACCESS_KEY"],
            ssh_key=Path(data["ssh_key"]),
        )

    def client(self, service: str) -> Any:
        """A boto3 client straight at the emulator (never through the proxy)."""
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=BotoConfig(
                retries={"mode": "standard", "max_attempts": 8},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=16,
            ),
        )


# --- the proxy ---------------------------------------------------------------------------


class Proxy:
    """The fault proxy (``sandbox/ctl proxy``), configured live.

    ``private`` (the default): the run's own instance, in front of the shared
    emulators: its own ``SANDBOX_DIR`` under the workdir and free ports, as the
    proxy's own tests do, so the run never changes the faults of the shared
    proxy's users and two soaks can run side by side (``make chaos`` while
    ``make test`` runs the short one). ``shared``: the sandbox's proxy on
    127.0.0.1:4576/9210, started if it is not running (and then stopped at the
    end), otherwise used and left running with no faults. ``off``: no proxy.
    """

    def __init__(self, stack: Stack, workdir: Path, mode: str = "private") -> None:
        self.stack = stack
        self.workdir = workdir
        self.mode = mode
        self.started = False
        self.env: dict[str, str] = {}
        self.changes = 0
        self.baseline: dict[str, Any] = {}
        self.state_dir = workdir / "proxy-sandbox" if mode == "private" else stack.state_dir
        self.ctl_env = dict(os.environ)
        if mode == "private":
            self.ctl_env.update(
                SANDBOX_DIR=str(self.state_dir),
                SANDBOX_LOCALSTACK_PORT=str(urllib.parse.urlsplit(stack.aws_endpoint).port),
                SANDBOX_OSMEM_PORT=str(urllib.parse.urlsplit(stack.opensearch_url).port),
                SANDBOX_PROXY_AWS_PORT=str(free_port()),
                SANDBOX_PROXY_OPENSEARCH_PORT=str(free_port()),
            )
        else:
            self.ctl_env["SANDBOX_DIR"] = str(stack.state_dir)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "proxy.env"

    @property
    def stats_file(self) -> Path:
        return self.state_dir / "proxy" / "stats.json"

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        done = run(
            [str(CTL), *args],
            timeout=timeout,
            env=self.ctl_env,
            check=check,
            what=f"sandbox/ctl {' '.join(args[:2])}",
        )
        return done.stdout + done.stderr

    def _read_env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in self.env_file.read_text().splitlines():
            line = line.strip().removeprefix("export ")
            if "=" in line and not line.startswith("#"):
                name, value = line.split("=", 1)
                out[name] = value.strip().strip("'\"")
        return out

    def _running(self) -> bool:
        done = run([str(CTL), "proxy", "status"], timeout=60, env=self.ctl_env, check=False)
        return done.returncode == 0

    def up(self) -> None:
        if not self.enabled:
            say("proxy: none (--proxy off): the worker talks to the emulators directly")
            self.env = {
                "AWS_ENDPOINT_URL": self.stack.aws_endpoint,
                "OPENSEARCH_ENDPOINT": self.stack.opensearch_url,
            }
            return
        if self.mode == "shared" and self._running():
            say(f"proxy: the shared one runs ({self.env_file}); used, and left running")
            self.ctl("proxy", "up")  # rewrites proxy.env only
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.started = True
            self.ctl("proxy", "up", timeout=600)
        self.env = self._read_env()
        for name in ("AWS_ENDPOINT_URL", "OPENSEARCH_ENDPOINT", "SANDBOX_PROXY_CONFIG"):
            if not self.env.get(name):
                raise SoakError(f"{self.env_file} has no {name}")
        for url in (self.env["AWS_ENDPOINT_URL"], self.env["OPENSEARCH_ENDPOINT"]):
            if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
                raise SoakError(f"the proxy listens on {url}, not on 127.0.0.1")
        self.set({}, "calm")
        self.baseline = self.stats()
        say(
            f"proxy ({self.mode}{', started' if self.started else ''}): AWS "
            f"{self.env['AWS_ENDPOINT_URL']} -> {self.stack.aws_endpoint}, OpenSearch "
            f"{self.env['OPENSEARCH_ENDPOINT']} -> {self.stack.opensearch_url}"
        )

    def set(self, services: dict[str, Any], label: str, seed: int = 0) -> None:
        """Install a config (validated by ``sandbox/ctl proxy set``, which waits for the load)."""
        self.changes += 1
        if not self.enabled:
            return
        path = self.workdir / "proxy" / f"{self.changes:04d}.json"
        path.parent.mkdir(exist_ok=True)
        config = {"seed": seed, "name": label[:100] or "calm", "services": services}
        path.write_text(json.dumps(config, indent=1))
        self.ctl("proxy", "set", str(path))

    def stats(self) -> dict[str, Any]:
        if not self.enabled:
            return {}
        try:
            data = json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def counters(self) -> dict[str, Any]:
        """The proxy's counters during this run (minus the first reading): totals, per service."""
        now, before = self.stats(), self.baseline
        out: dict[str, Any] = {"all": _diff(now.get("totals", {}), before.get("totals", {}))}
        services_before = before.get("services", {})
        for service, counters in (now.get("services") or {}).items():
            counters = {k: v for k, v in counters.items() if k != "actions"}
            previous = {k: v for k, v in services_before.get(service, {}).items() if k != "actions"}
            out[service] = _diff(counters, previous)
        return out

    def down(self) -> None:
        if self.started:
            self.ctl("proxy", "down", timeout=120, check=False)
            say(f"proxy: stopped (sandbox/ctl proxy down, {self.state_dir})")
        elif self.enabled and self.env:
            with contextlib.suppress(SoakError):
                self.set({}, "calm")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _diff(now: Any, before: Any) -> Any:
    if isinstance(now, dict):
        before = before if isinstance(before, dict) else {}
        out = {k: _diff(v, before.get(k)) for k, v in now.items()}
        return {k: v for k, v in out.items() if v not in ({}, 0)}
    if isinstance(now, int | float) and not isinstance(now, bool):
        return now - (before if isinstance(before, int | float) else 0)
    return now


def _counter_line(counters: dict[str, Any]) -> str:
    """``requests 1200, errors {SlowDown: 3}, reset_before 12, ...`` from proxy counters."""
    parts = []
    for name, value in counters.items():
        if name == "errors" and isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in sorted(value.items()))
            parts.append(f"errors ({inner})")
        elif name == "latency_ms" and isinstance(value, int | float):
            parts.append(f"added latency {value / 1000:.0f}s")
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts) or "nothing"


# --- the test host -----------------------------------------------------------------------


class Host:
    """The run's own nspawn host and the worker unit on it."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.started = False

    def up(self) -> None:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                raise SoakError(
                    f"127.0.0.1:{self.port} is taken (another soak? `sandbox/ctl host-down "
                    f"{self.name}`); pick another with --ssh-port / CHAOS_SSH_PORT"
                )
        self.started = True
        run(
            [str(CTL), "host-up", self.name, "--ssh-port", str(self.port)],
            timeout=600,
            what="sandbox/ctl host-up",
        )
        say(f"host {self.name}: up on 127.0.0.1:{self.port}")

    def ssh(self, command: list[str], timeout: float = 120, check: bool = True) -> str:
        """``command`` on the host as ec2-user; its stdout (with ``check=False``: + stderr)."""
        done = run(
            [str(CTL), "ssh", "--timeout", str(timeout), self.name, "--", *command],
            timeout=timeout + 30,
            check=check,
            what=f"on {self.name}: {' '.join(command)[:80]}",
        )
        return done.stdout if check else done.stdout + done.stderr

    def unit(self) -> dict[str, str]:
        props = ("MainPID", "ActiveState", "SubState", "NRestarts", "InvocationID")
        out = self.ssh(
            ["systemctl", "show", SERVICE, *(f"--property={p}" for p in props)], timeout=30
        )
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def worker_cli(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """``filesearch-worker ARGS`` in the unit's sandbox, with the unit's environment."""
        argv = [
            "sudo", "systemd-run", "--quiet", "--wait", "--pipe", "--collect",
            f"--property=User={WORKER_USER}", f"--property=Group={WORKER_USER}",
            f"--property=EnvironmentFile={ENV_FILE}", "--property=ProtectSystem=strict",
            "--property=ProtectHome=tmpfs", f"--property=BindReadOnlyPaths={BASE_DIR}",
            "--property=PrivateTmp=yes", "--property=NoNewPrivileges=yes",
            f"{BASE_DIR}/current/venv/bin/filesearch-worker", *args,
        ]  # fmt: skip
        return run(
            [str(CTL), "ssh", "--timeout", str(timeout), self.name, "--", *argv],
            timeout=timeout + 30,
            check=False,
            what=f"filesearch-worker {args[0]}",
        )

    def down(self) -> None:
        if self.started:
            run([str(CTL), "host-down", self.name], timeout=120, check=False, what="host-down")
            say(f"host {self.name}: stopped and removed (sandbox/ctl host-down)")


# --- the files and messages --------------------------------------------------------------


def tiny_pdf(text: str) -> bytes:
    """A valid one-page PDF showing ``text`` (ASCII)."""
    content = f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def file_bytes(seed: int, m: Message) -> bytes:
    """The file uploaded for ``m`` (deterministic per seed and message)."""
    rng = random.Random(f"{seed}:file:{m.n}")
    marker = f"chaos-{seed}-{m.n}"
    if m.kind == "docx":
        import docx  # python-docx, in the worker's [all] extra

        document = docx.Document()
        document.add_paragraph(f"{marker} 報告書 chaos soak")
        buf = io.BytesIO()
        document.save(buf)
        return buf.getvalue()
    if m.kind == "pdf":
        return tiny_pdf(f"{marker} chaos soak")
    if m.kind == "corrupt":
        head = b"%PDF-1.4\n" if m.variant == "pdf" else b"PK\x03\x04"
        return head + rng.randbytes(m.size)
    words = ("検索", "報告", "queue", "worker", "索引", "chaos", "議事録", "S3", "遅延", "障害")
    line = f"{marker} " + " ".join(rng.choice(words) for _ in range(12)) + "\n"
    text = (line * (m.size // max(1, len(line.encode())) + 1))[: max(1, m.size // 3)]
    if m.variant == "html":
        text = f"<html><body><p>{text}</p></body></html>"
    elif m.variant == "json":
        text = json.dumps({"marker": marker, "text": text}, ensure_ascii=False)
    elif m.variant == "csv":
        text = f"marker,text\n{marker},{text.replace(',', ' ')}"
    return text.encode()


def message_body(seed: int, m: Message, bucket: str, region: str) -> str:
    """The SQS body for ``m``; every body of a run is unique."""
    if m.kind != "unparseable":
        return s3_event_body(bucket, m.key, size=m.size, region=region)
    token = f"chaos-{seed}-{m.n}"
    if m.variant == "truncated-json":
        return s3_event_body(bucket, m.key, region=region)[:-7] + f" {token}"
    if m.variant == "plain-text":
        return f"this is not an S3 event ({token})"
    if m.variant == "json-array":
        return json.dumps(["Records", token])
    if m.variant == "no-records":
        return json.dumps({"Message": "hello", "token": token})
    if m.variant == "restore-event":
        return s3_event_body(
            bucket, f"{m.key}.{token}", region=region, event_name="ObjectRestore:Completed"
        )
    # eventSource other than aws:s3
    body = json.loads(s3_event_body(bucket, f"{m.key}.{token}", region=region))
    body["Records"][0]["eventSource"] = "aws:dynamodb"
    return json.dumps(body)


class Feeder:
    """Uploads the files and sends the messages, chunk by chunk, in its own thread."""

    def __init__(self, soak: Soak, messages: list[Message]) -> None:
        self.soak = soak
        self.pending = list(messages)
        self.sent: list[Sent] = []
        self.chunks: queue.Queue[int | None] = queue.Queue()
        self.errors: list[str] = []
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="upload")
        self._log = (soak.workdir / "sent.jsonl").open("a", encoding="utf-8")
        self.thread = threading.Thread(target=self._loop, name="feeder", daemon=True)

    def _loop(self) -> None:
        while True:
            count = self.chunks.get()
            if count is None or self.soak.abort.is_set():
                return
            batch, self.pending = self.pending[:count], self.pending[count:]
            try:
                self.feed(batch)
            except Exception as exc:  # noqa: BLE001 - reported, and the soak fails on it
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.soak.abort.set()
                return

    def _upload(self, m: Message) -> None:
        self.soak.s3.put_object(
            Bucket=self.soak.bucket, Key=m.key, Body=file_bytes(self.soak.opts.seed, m)
        )

    def feed(self, batch: list[Message]) -> None:
        list(self._pool.map(self._upload, [m for m in batch if m.uploads]))
        for i in range(0, len(batch), 10):
            group = batch[i : i + 10]
            bodies = {
                str(m.n): message_body(self.soak.opts.seed, m, self.soak.bucket, self.soak.region)
                for m in group
            }
            entries = [{"Id": k, "MessageBody": v} for k, v in bodies.items()]
            result = self.soak.sqs.send_message_batch(QueueUrl=self.soak.queue_url, Entries=entries)
            if result.get("Failed"):
                raise SoakError(f"SendMessageBatch to the emulator failed: {result['Failed']}")
            by_n = {m.n: m for m in group}
            for ok in result.get("Successful", []):
                sent = Sent(by_n[int(ok["Id"])], ok["MessageId"], bodies[ok["Id"]])
                self.sent.append(sent)
                record = {"n": sent.message.n, "id": sent.message_id, "key": sent.message.key}
                self._log.write(json.dumps({**record, "kind": sent.message.kind}) + "\n")
        self._log.flush()

    def close(self) -> None:
        self.chunks.put(None)
        self.thread.join(timeout=120)
        self._pool.shutdown(wait=True)
        self._log.close()


class Killer:
    """SIGKILLs the worker on request and checks that systemd restarts it."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.requests: queue.Queue[float | None] = queue.Queue()
        self.kills: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._loop, name="killer", daemon=True)

    def _loop(self) -> None:
        while True:
            at = self.requests.get()
            if at is None or self.soak.abort.is_set():
                return
            try:
                self.kills.append(self.kill(at))
            except Exception as exc:  # noqa: BLE001 - recorded; the soak fails on it
                self.kills.append({"at": at, "restarted": False, "error": str(exc)})

    def kill(self, at: float) -> dict[str, Any]:
        host = self.soak.host
        before = host.unit()
        # In an nspawn host systemd cannot list the unit's cgroup (cgroup v1 inside), so
        # `systemctl kill` reports EIO for the "auxiliary processes" after killing the main
        # one; whether the kill took is judged by the restart below, not by its exit code.
        said = host.ssh(
            ["sudo", "systemctl", "kill", "--signal=SIGKILL", SERVICE], timeout=30, check=False
        )
        killed = time.monotonic()

        def back() -> dict[str, str] | None:
            now = host.unit()
            restarted = (
                int(now.get("NRestarts", "0")) > int(before.get("NRestarts", "0"))
                and now.get("ActiveState") == "active"
                and now.get("SubState") == "running"
                and now.get("MainPID") not in ("0", before.get("MainPID"))
            )
            return now if restarted else None

        try:
            now = wait_for(back, 90, f"{SERVICE} to be restarted by systemd after SIGKILL", every=1)
        except SoakError as exc:
            raise SoakError(f"{exc}; systemctl kill said: {said.strip()[-300:]}") from None
        seconds = time.monotonic() - killed
        say(
            f"SIGKILL at {at:.0f}s: pid {before.get('MainPID')} -> {now['MainPID']}, "
            f"restarted by systemd in {seconds:.1f}s (NRestarts {now['NRestarts']})"
        )
        return {"at": at, "restarted": True, "seconds": round(seconds, 1), "pid": now["MainPID"]}

    def close(self) -> None:
        self.requests.put(None)
        self.thread.join(timeout=150)


# --- the soak ----------------------------------------------------------------------------


@dataclass
class Drain:
    """What the drain did: replays, recoveries, rounds."""

    rounds: int = 0
    replays: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class Soak:
    """One run: set-up, faults, drain, accounting, clean-up."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.abort = threading.Event()
        self.stack = Stack.load()
        self.region = self.stack.region
        self.run_id = f"chaos-{opts.seed}-{uuid.uuid4().hex[:6]}"
        self.bucket = self.index = self.run_id
        if opts.workdir:
            opts.workdir.mkdir(parents=True, exist_ok=True)
            self.workdir = opts.workdir
        else:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.run_id}-"))
        self.sqs = self.stack.client("sqs")
        self.s3 = self.stack.client("s3")
        self.opensearch = OpenSearch(hosts=[self.stack.opensearch_url], timeout=30)
        self.proxy = Proxy(self.stack, self.workdir, mode=opts.proxy)
        self.host = Host(opts.host, opts.ssh_port)
        self.queue_url = self.dlq_url = ""
        self.messages = message_mix(opts.seed, opts.messages)
        self.schedule: Schedule = fault_schedule(
            opts.seed,
            opts.seconds,
            opts.messages,
            Timeouts(aws_read=AWS_READ_TIMEOUT, opensearch=OPENSEARCH_TIMEOUT),
        )
        self.feeder = Feeder(self, self.messages)
        self.killer = Killer(self)
        self.retry_seen: set[str] = set()
        self.dlq_seen: list[Copy] = []
        self.drained: Drain | None = None

    # -- set-up -----------------------------------------------------------------------

    def make_resources(self) -> None:
        dlq = self.sqs.create_queue(QueueName=f"{self.run_id}-dlq")["QueueUrl"]
        self.dlq_url = dlq
        arn = self.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": "3"}
        self.queue_url = self.sqs.create_queue(
            QueueName=self.run_id,
            Attributes={
                "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        self.s3.create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": self.region}
        )
        say(
            f"resources: queue {self.run_id} (maxReceiveCount 3 -> {self.run_id}-dlq), "
            f"bucket and index {self.run_id}"
        )

    def remove_resources(self) -> None:
        for url in (self.queue_url, self.dlq_url):
            if url:
                with contextlib.suppress(Exception):
                    self.sqs.delete_queue(QueueUrl=url)
        with contextlib.suppress(Exception):
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                for i in range(0, len(keys), 1000):
                    self.s3.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": keys[i : i + 1000], "Quiet": True}
                    )
            self.s3.delete_bucket(Bucket=self.bucket)
        with contextlib.suppress(Exception):
            self.opensearch.indices.delete(index=self.index, ignore=[404])
        say("resources removed (queues, bucket, index)")

    def deploy(self) -> None:
        """playbooks/deploy.yml onto the run's host, worker pointed at the proxy."""
        source = self.workdir / "worker"
        if not source.exists():  # a frozen copy: the shared tree may change meanwhile
            shutil.copytree(
                REPO / "files" / "worker",
                source,
                ignore=shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__"),
            )
            if self.opts.mutant:
                mutate(source, self.opts.mutant)
        inventory = {
            "all": {
                "children": {
                    "workers": {
                        "hosts": {
                            self.host.name: {
                                "ansible_host": "127.0.0.1",
                                "ansible_port": self.host.port,
                            }
                        },
                        "vars": {
                            "ansible_user": "ec2-user",
                            "ansible_ssh_private_key_file": str(self.stack.ssh_key),
                            "ansible_python_interpreter": "/usr/bin/python3",
                        },
                    }
                }
            }
        }
        worker_vars = {
            "sqs_worker_source_dir": str(source),
            "sqs_worker_queue_url": self.queue_url,
            "sqs_worker_dlq_url": self.dlq_url,
            "sqs_worker_s3_bucket": self.bucket,
            "sqs_worker_opensearch_endpoint": self.proxy.env["OPENSEARCH_ENDPOINT"],
            "sqs_worker_opensearch_index": self.index,
            "sqs_worker_aws_region": self.region,
            "sqs_worker_aws_endpoint_url": self.proxy.env["AWS_ENDPOINT_URL"],
            "sqs_worker_secret_env": {
                "AWS_ACCESS_KEY_ID": self.stack.access_key,
                "AWS_SECRET_ACCESS_KEY": self.stack.secret_key,
            },
            "sqs_worker_concurrency": 4,
            "sqs_worker_visibility_timeout": VISIBILITY_TIMEOUT,
            "sqs_worker_wait_time_seconds": 5,
            "sqs_worker_opensearch_timeout": OPENSEARCH_TIMEOUT,
            "sqs_worker_backoff_base_seconds": BACKOFF_BASE,
            "sqs_worker_backoff_max_seconds": BACKOFF_MAX,
            "sqs_worker_cb_cooldown_seconds": 10,
            "sqs_worker_stats_interval_seconds": 5,
            "sqs_worker_verify_timeout": 120,
            # botocore gives up after 3 attempts instead of 5: transient failures reach the
            # worker's own settlement (release, backoff, the RedrivePolicy) more often
            "sqs_worker_extra_env": {
                "WORKER_METRICS_INTERVAL_SECONDS": "10",
                "WORKER_AWS_MAX_ATTEMPTS": "3",
            },
            # the playbook's own queue checks go straight to the emulator
            "deploy_aws_endpoint_url": self.stack.aws_endpoint,
            "deploy_aws_region": self.region,
            "deploy_aws_access_key": self.stack.access_key,
            "deploy_aws_secret_key": self.stack.secret_key,
        }
        (self.workdir / "inventory.json").write_text(json.dumps(inventory, indent=1))
        vars_file = self.workdir / "deploy-vars.json"
        vars_file.write_text(json.dumps(worker_vars, indent=1))
        vars_file.chmod(0o600)
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        started = time.monotonic()
        done = run(
            [
                str(VENV_BIN / "ansible-playbook"),
                "-i",
                str(self.workdir / "inventory.json"),
                "-e",
                f"@{vars_file}",
                str(REPO / "playbooks" / "deploy.yml"),
            ],
            timeout=1500,
            env=env,
            check=False,
            what="ansible-playbook playbooks/deploy.yml",
        )
        (self.workdir / "deploy.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = "\n".join(done.stdout.strip().splitlines()[-30:])
            raise SoakError(f"deploy.yml failed (rc {done.returncode}):\n{tail}")
        unit = self.host.unit()
        if unit.get("ActiveState") != "active":
            raise SoakError(f"{SERVICE} is not active after the deploy: {unit}")
        restart = self.host.ssh(["systemctl", "show", SERVICE, "-p", "Restart"], timeout=30)
        say(
            f"deployed with playbooks/deploy.yml in {time.monotonic() - started:.0f}s: {SERVICE} "
            f"{unit.get('ActiveState')}, pid {unit.get('MainPID')}, {restart.strip()}"
        )

    # -- the fault window -------------------------------------------------------------

    def queue_counts(self, url: str) -> dict[str, int]:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return {
            "visible": int(attrs["ApproximateNumberOfMessages"]),
            "in_flight": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
            "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"]),
        }

    def faults(self) -> None:
        """Run the schedule for ``seconds``: feed, change faults, kill."""
        self.feeder.thread.start()
        self.killer.thread.start()
        start = time.monotonic()
        next_status = 30.0
        for step in self.schedule.steps:
            while True:  # wait for the step's time, reporting now and then
                now = time.monotonic() - start
                if self.abort.is_set():
                    raise SoakError(f"aborted: {'; '.join(self.feeder.errors) or 'see above'}")
                if now >= next_status:
                    self.status(now)
                    next_status += 30
                wait = min(step.at, next_status) - now
                if wait <= 0 and now >= step.at:
                    break
                self.abort.wait(max(0.0, wait))
            if step.kind == "feed":
                self.feeder.chunks.put(step.count)
            elif step.kind == "kill":
                self.killer.requests.put(step.at)
            else:
                self.proxy.set(step.config["services"], step.label, step.config["seed"])
        remaining = start + self.opts.seconds - time.monotonic()
        if remaining > 0:
            self.abort.wait(remaining)
        self.proxy.set({}, "calm")
        say(f"faults off after {time.monotonic() - start:.0f}s ({self.proxy.changes} configs)")
        self.feeder.close()
        self.killer.close()
        if self.feeder.errors:
            raise SoakError(f"feeding failed: {self.feeder.errors[0]}")
        if len(self.feeder.sent) != len(self.messages):
            raise SoakError(f"only {len(self.feeder.sent)} of {len(self.messages)} sent in time")

    def status(self, at: float) -> None:
        q = self.queue_counts(self.queue_url)
        d = self.queue_counts(self.dlq_url)
        say(
            f"t={at:.0f}s sent {len(self.feeder.sent)}/{len(self.messages)}; queue "
            f"{q['visible']} visible {q['in_flight']} in flight; DLQ {d['visible']}; "
            f"kills {len(self.killer.kills)}"
        )

    # -- the drain --------------------------------------------------------------------

    def wait_drained(self, what: str, timeout: float) -> bool:
        """Until the queue is empty and nothing is in flight (two readings in a row).

        False after ``timeout``: the accounting then reports what is stuck.
        """
        seen_zero = [0]
        last: dict[str, int] = {}

        def empty() -> bool:
            last.update(self.queue_counts(self.queue_url))
            seen_zero[0] = seen_zero[0] + 1 if not any(last.values()) else 0
            return seen_zero[0] >= 2

        started = time.monotonic()
        try:
            wait_for(empty, timeout, f"the queue to drain ({what})", every=3)
        except SoakError:
            say(f"NOT drained after {timeout:.0f}s ({what}): {last}")
            return False
        say(f"queue empty, nothing in flight ({what}, {time.monotonic() - started:.0f}s)")
        return True

    def retry_keys(self) -> set[str]:
        """Document keys in the retry store now."""
        keys: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="retry-index/"
        ):
            for obj in page.get("Contents", []):
                name = obj["Key"].split("/", 2)[2]
                if name.startswith("_long-keys/"):
                    body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                    keys.add(str(json.loads(body).get("file_key")))
                else:
                    keys.add(name.removesuffix(".json"))
        return keys

    def peek_dlq(self) -> list[Copy]:
        """Every message in the DLQ, with its attributes; made visible again afterwards."""
        out: dict[str, Copy] = {}
        handles: list[str] = []
        empty = 0
        deadline = time.monotonic() + 300
        try:
            while empty < 2 and time.monotonic() < deadline:
                got = self.sqs.receive_message(
                    QueueUrl=self.dlq_url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=120,
                    WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                empty = 0 if got else empty + 1
                for raw in got:
                    handles.append(raw["ReceiptHandle"])
                    out[raw["MessageId"]] = Copy(
                        where="dlq",
                        copy_id=raw["MessageId"],
                        body=raw.get("Body", ""),
                        message_attributes=raw.get("MessageAttributes", {}),
                        attributes=raw.get("Attributes", {}),
                    )
        finally:
            for i in range(0, len(handles), 10):
                entries = [
                    {"Id": str(j), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for j, h in enumerate(handles[i : i + 10])
                ]
                self.sqs.change_message_visibility_batch(QueueUrl=self.dlq_url, Entries=entries)
        return list(out.values())

    def drain(self) -> Drain:
        """Faults are off: drain, replay the retry store, recover the DLQ; repeat till empty."""
        drain = Drain()
        started = time.monotonic()
        # a queue that does not drain in time is reported by the accounting (stuck), and
        # the later waits are short: the whole drain stays bounded
        budget = self.opts.drain_timeout
        if not self.wait_drained("after the faults", budget):
            budget = 60
        for drain.rounds in range(1, 5):
            keys = self.retry_keys()
            self.retry_seen |= keys
            copies = self.peek_dlq()
            self.dlq_seen.extend(copies)
            say(f"drain round {drain.rounds}: retry store {len(keys)} documents, DLQ {len(copies)}")
            if not keys and not copies:
                break
            if keys:
                done = self.host.worker_cli("replay-retries", "--progress", "never")
                report = _last_json(done.stdout)
                drain.replays.append({"rc": done.returncode, **report})
                say(f"replay-retries: exit {done.returncode} {json.dumps(report)[:300]}")
                if done.returncode:
                    say(f"replay-retries said: {_errors(done)}")
            if copies:
                done = self.host.worker_cli("recover-dlq", "--strategy", "reindex", "--json")
                report = _last_json(done.stdout)
                drain.recoveries.append({"rc": done.returncode, **report})
                counts = report.get("counts", {})
                say(
                    f"recover-dlq --strategy reindex: exit {done.returncode}, examined "
                    f"{report.get('examined')}: {counts}, duplicates {report.get('duplicates')}"
                )
                if done.returncode:
                    say(f"recover-dlq said: {_errors(done)}")
            if not self.wait_drained(f"drain round {drain.rounds}", budget):
                budget = 60
        else:
            say("drain: still something in the retry store or the DLQ after 4 rounds")
        drain.seconds = time.monotonic() - started
        self.drained = drain
        return drain

    # -- the evidence -----------------------------------------------------------------

    def indexed_keys(self) -> set[str]:
        keys = [s.message.key for s in self.feeder.sent]
        found: set[str] = set()
        for i in range(0, len(keys), 200):
            chunk = keys[i : i + 200]
            docs = self.opensearch.mget(index=self.index, body={"ids": chunk})["docs"]
            found |= {d["_id"] for d in docs if d.get("found")}
        return found

    def archived(self) -> list[Copy]:
        out: list[Copy] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix="dlq-archive/"
        ):
            for obj in page.get("Contents", []):
                record = json.loads(
                    self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                )
                out.append(
                    Copy(
                        where="archive",
                        copy_id=str(record.get("message_id")),
                        body=str(record.get("body", "")),
                        message_attributes=record.get("message_attributes") or {},
                        attributes=record.get("attributes") or {},
                        reason=str(record.get("reason", "")),
                    )
                )
        return out

    def evidence(self) -> tuple[Evidence, str]:
        journal = self.host.ssh(
            ["sudo", "journalctl", "-u", SERVICE, "-o", "cat", "--no-pager"], timeout=300
        )
        (self.workdir / "journal.log").write_text(journal)
        q = self.queue_counts(self.queue_url)
        ev = Evidence(
            indexed=self.indexed_keys(),
            retry_seen=set(self.retry_seen),
            retry_left=self.retry_keys(),
            dlq_seen=list(self.dlq_seen),
            dlq_left=self.peek_dlq(),
            archived=self.archived(),
            settled=parse_journal(journal),
            queue_left=sum(q.values()),
        )
        return ev, journal

    def save(self, ledger: Ledger) -> None:
        """The ledger and the kills, into the workdir."""
        path = self.workdir / "ledger.json"
        path.write_text(json.dumps(_ledger_json(self, ledger), ensure_ascii=False, indent=1))
        (self.workdir / "kills.json").write_text(json.dumps(self.killer.kills, indent=1))

    # -- report -----------------------------------------------------------------------

    def report(self, ledger: Ledger, drain: Drain, journal: str) -> None:
        sent = self.feeder.sent
        kills = self.killer.kills
        restarted = [k for k in kills if k.get("restarted")]
        restart_s = [k["seconds"] for k in restarted]
        counters = self.proxy.counters()
        print(ledger.summary(len(sent)), flush=True)
        recovered: dict[str, int] = {}
        for report in drain.recoveries:
            for outcome, n in report.get("counts", {}).items():
                recovered[outcome] = recovered.get(outcome, 0) + int(n)
            recovered["duplicates"] = recovered.get("duplicates", 0) + int(
                report.get("duplicates") or 0
            )
        replayed = sum(int(r.get("indexed") or 0) for r in drain.replays)
        say(f"paths: {json.dumps(ledger.paths)}")
        say(f"recover-dlq (all rounds): {json.dumps(recovered)}; replay-retries indexed {replayed}")
        say(
            "DLQ copies by reason (error-type; redrive: moved by the RedrivePolicy): "
            + json.dumps(ledger.reasons)
        )
        say(f"duplicates: {ledger.total_duplicates} = {json.dumps(ledger.duplicates)}")
        say(
            f"kills: {len(kills)} SIGKILL, {len(restarted)} restarted by systemd"
            + (f" (median {statistics.median(restart_s):.1f}s)" if restart_s else "")
        )
        outages = ", ".join(str(o) for o in self.schedule.outages)
        applied = "" if self.proxy.enabled else " (not applied: --proxy off)"
        say(f"away: {outages}{applied}; proxy configs: {self.proxy.changes}")
        for service, found in counters.items():
            say(f"proxy {service}: {_counter_line(found)}")
        if not counters:
            say("proxy: none (--proxy off), no faults injected")
        say(
            f"drain: {drain.rounds} round(s) in {drain.seconds:.0f}s; "
            f"replays {len(drain.replays)}, recoveries {len(drain.recoveries)}"
        )
        if "Suppressed" in journal:
            say("note: journald suppressed some worker lines (duplicates may be undercounted)")
        by_n = {s.message.n: s for s in sent}
        bad = [n for n, st in ledger.state.items() if st in ("lost", "stuck")]
        for n in bad[:10]:
            s = by_n[n]
            events = [
                {k: e.get(k) for k in ("ts", "outcome", "reason", "receive_count", "delete_failed")}
                for e in ledger.trace.get(n, [])
            ]
            copies = [(c.where, c.copy_id, c.error_type) for c in ledger.copies.get(n, [])]
            say(
                f"{ledger.state[n].upper()}: message {s.message_id} key {s.message.key!r} "
                f"({s.message.kind}); journal: {events or 'no settled event'}; copies: {copies}"
            )
        for problem in ledger.problems[:20]:
            say(f"PROBLEM: {problem}")
        for kill in kills:
            if not kill.get("restarted"):
                say(f"PROBLEM: SIGKILL at {kill['at']:.0f}s: not restarted: {kill.get('error')}")


def _ledger_json(soak: Soak, ledger: Ledger) -> dict[str, Any]:
    """Per message: its final state, copies and settled events (for a post-mortem)."""
    messages = []
    for sent in soak.feeder.sent:
        n = sent.message.n
        messages.append(
            {
                "n": n,
                "message_id": sent.message_id,
                "key": sent.message.key,
                "kind": sent.message.kind,
                "state": ledger.state.get(n),
                "copies": [[c.where, c.copy_id, c.error_type] for c in ledger.copies.get(n, [])],
                "settled": ledger.trace.get(n, []),
            }
        )
    return {
        "seed": soak.opts.seed,
        "summary": ledger.summary(len(soak.feeder.sent)),
        "problems": ledger.problems,
        "drain": soak.drained.__dict__ if soak.drained else None,
        "messages": messages,
    }


def mutate(source: Path, mutant: str) -> None:
    """Break the worker copy at ``source`` the way ``mutant`` says (MUTANTS)."""
    name, text, replacement = MUTANTS[mutant]
    path = source / "src" / "filesearch_worker" / name
    code = path.read_text()
    if code.count(text) != 1:
        raise SoakError(f"mutant {mutant} no longer applies: {name} changed")
    path.write_text(code.replace(text, replacement))
    say(f"MUTANT {mutant}: the deployed worker is broken on purpose ({name})")


def validate_schedule(schedule: Schedule) -> None:
    """Every proxy config of the schedule, checked by the proxy's own validator up front."""
    for step in schedule.of("proxy"):
        try:
            proxy_faults.parse_config(step.config)
        except proxy_faults.ConfigError as exc:
            raise SoakError(f"the schedule's config at {step.at}s is invalid: {exc}") from None


def _errors(done: subprocess.CompletedProcess[str]) -> str:
    """What a failed worker CLI run said: its report's errors, its error log lines."""
    said = list(_last_json(done.stdout).get("errors") or [])
    for line in done.stderr.splitlines() + done.stdout.splitlines():
        if '"level": "ERROR"' in line or line.startswith(("recover-dlq:", "replay-retries:")):
            doc = _last_json(line)
            said.append(str(doc.get("msg", line)) if doc else line)
    return " | ".join(dict.fromkeys(said))[:1500] or (done.stdout + done.stderr)[-800:]


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    return doc
    return {}


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    say(
        f"seed={opts.seed} seconds={opts.seconds:g} messages={opts.messages} "
        f"host={opts.host}:{opts.ssh_port}; reproduce: {opts.reproduce}"
    )
    soak: Soak | None = None
    rc = EXIT_ERROR
    with sigterm_as_interrupt():
        try:
            soak = Soak(opts)
            say(f"workdir {soak.workdir}")
            mix = mix_counts(soak.messages)
            say(
                "mix: "
                + " ".join(f"{k}={v}" for k, v in mix.items())
                + " (text/docx/pdf/corrupt: expected indexed; missing/unparseable: archived)"
            )
            say(f"schedule: {soak.schedule.describe()}")
            (soak.workdir / "schedule.json").write_text(
                json.dumps([s.__dict__ for s in soak.schedule.steps], indent=1)
            )
            validate_schedule(soak.schedule)
            soak.proxy.up()
            soak.make_resources()
            soak.host.up()
            soak.deploy()
            soak.faults()
            drain = soak.drain()
            evidence, journal = soak.evidence()
            ledger = account(soak.feeder.sent, evidence)
            soak.report(ledger, drain, journal)
            soak.save(ledger)
            not_restarted = [k for k in soak.killer.kills if not k.get("restarted")]
            failed = ledger.failed or bool(not_restarted)
            rc = EXIT_FAILED if failed else 0
            verdict = "FAILED" if failed else "passed"
            say(f"{verdict}: seed={opts.seed}; reproduce: {opts.reproduce}")
        except SoakError as exc:
            say(f"ERROR: {exc}")
            say(f"could not complete: seed={opts.seed}; reproduce: {opts.reproduce}")
        except (KeyboardInterrupt, Interrupted):
            say(f"interrupted: seed={opts.seed}; reproduce: {opts.reproduce}")
            rc = 130
        finally:
            if soak is not None:
                soak.abort.set()
                for stop in (soak.feeder.close, soak.killer.close):
                    with contextlib.suppress(Exception):
                        stop()
                soak.host.down()
                soak.proxy.down()
                if opts.keep:
                    say(f"kept: queue {soak.queue_url}, bucket/index {soak.bucket}, {soak.workdir}")
                else:
                    soak.remove_resources()
                    if rc not in (0, 130) and not opts.workdir:
                        say(f"kept for a post-mortem: {soak.workdir} (ledger.json, journal.log)")
                    elif not opts.workdir:
                        shutil.rmtree(soak.workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
