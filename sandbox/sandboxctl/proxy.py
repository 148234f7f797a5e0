"""The fault-and-latency proxy: mitmproxy (mitmdump) in reverse mode with our addon.

Off by default: nothing goes through it unless a client is pointed at it
(``. $SANDBOX_DIR/proxy.env``). Two listen ports on 127.0.0.1, one process:

    AWS side         127.0.0.1:4576 (SANDBOX_PROXY_AWS_PORT)        -> LocalStack
    OpenSearch side  127.0.0.1:9210 (SANDBOX_PROXY_OPENSEARCH_PORT) -> osmem-server

mitmproxy needs Python >= 3.12, so it runs in its own venv, built once per
machine like LocalStack's (pins: sandbox/proxy/requirements.txt). What it does
to requests is decided by ``sandboxctl.faults`` from the live config file; see
docs/sandbox.md, "Fault and latency proxy".
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from . import faults
from .config import REPO, Config
from .procs import Managed, SandboxError, port_owner, wait_for
from .services import cached_venv, find_python313, http_json, port_in_use

ADDON = REPO / "sandbox" / "proxy" / "addon.py"
REQUIREMENTS = REPO / "sandbox" / "proxy" / "requirements.txt"
ACK_TIMEOUT_S = 10.0


def proxy_pins() -> list[str]:
    lines = REQUIREMENTS.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def read_config(source: str) -> tuple[str, faults.FaultConfig]:
    """The text of a config file (``-``: standard input) and its validated form."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise faults.ConfigError(f"cannot read {source}: {exc}") from None
    name = "standard input" if source == "-" else source
    try:
        return text, faults.load_config_text(text)
    except faults.ConfigError as exc:
        raise faults.ConfigError(f"{name}: {exc}") from None


class Proxy:
    """mitmdump with sandbox/proxy/addon.py, tracked by ``run/proxy.pid``."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.proc = Managed("proxy", cfg.run_dir)
        self.config_record = cfg.run_dir / "proxy.config"  # the running proxy's live config
        self.default_config = cfg.proxy_dir / "faults.json"
        self.stats_file = cfg.proxy_dir / "stats.json"

    # --- state ---------------------------------------------------------------
    @property
    def ports(self) -> list[tuple[str, int, str, str]]:
        """(side, listen port, its variable, upstream endpoint) for both sides."""
        return [
            ("aws", self.cfg.proxy_aws_port, "SANDBOX_PROXY_AWS_PORT", self.cfg.aws_endpoint),
            (
                "opensearch",
                self.cfg.proxy_opensearch_port,
                "SANDBOX_PROXY_OPENSEARCH_PORT",
                self.cfg.opensearch_endpoint,
            ),
        ]

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.cfg.proxy_aws_port}"

    @property
    def opensearch_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.cfg.proxy_opensearch_port}"

    def live_config(self) -> Path:
        """The config file the running proxy watches (the default one when it is down)."""
        if self.proc.pid() is not None:
            try:
                return Path(self.config_record.read_text().strip())
            except OSError:
                pass
        return self.default_config

    def stats(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def listening(self) -> bool:
        return all(port_in_use(port) for _, port, _, _ in self.ports)

    def healthy(self) -> bool:
        return self.proc.pid() is not None and self.listening()

    def where(self) -> str:
        return ", ".join(
            f"{side} 127.0.0.1:{port} -> {upstream.removeprefix('http://')}"
            for side, port, _, upstream in self.ports
        )

    # --- start / stop ----------------------------------------------------------
    def start(self, config: Path | None) -> str:
        """Start the proxy if it is not running (idempotent); return what was done."""
        pid = self.proc.pid()
        if pid is not None:
            live = self.live_config()
            if config is not None and config.resolve() != live:
                raise SandboxError(
                    f"the proxy already runs (pid {pid}) with the live config {live}; install "
                    f"{config} with `sandbox/ctl proxy set {config}`, or `sandbox/ctl proxy down` "
                    "first"
                )
            wait_for("proxy", self.listening, 30, self.proc)
            self.write_env(live)
            return f"proxy already running (pid {pid}): {self.where()}"
        taken = [
            f"127.0.0.1:{port} ({var}) is already taken by {port_owner(port)}"
            for _, port, var, _ in self.ports
            if port_in_use(port)
        ]
        if taken:
            raise SandboxError(
                "proxy: "
                + "\n".join(taken)
                + "\nstop those or choose other ports (see docs/sandbox.md)"
            )
        self.cfg.proxy_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            live = config.resolve()
            read_config(str(live))  # refuse to start on an invalid one
        else:
            live = self.default_config
            faults.atomic_write(live, faults.NO_FAULTS_TEXT)  # starts as pure pass-through
        python = find_python313()
        if python is None:
            raise SandboxError(
                "proxy: mitmproxy needs Python >= 3.12; none found on PATH or in ~/.pyenv/versions"
            )
        venv = cached_venv(self.cfg, python, "mitmproxy", proxy_pins())
        sides = ",".join(f"{port}={side}" for side, port, _, _ in self.ports)
        argv = [str(venv / "bin" / "mitmdump"), "--listen-host", "127.0.0.1"]
        for _, port, _, upstream in self.ports:
            argv += ["--mode", f"reverse:{upstream}@127.0.0.1:{port}"]
        argv += ["-s", str(ADDON)]
        for option, value in (
            ("confdir", str(self.cfg.proxy_dir / "mitmproxy")),  # its CA files: not in ~
            ("connection_strategy", "lazy"),  # no upstream connection before a request
            ("flow_detail", "0"),  # no line per request in the log
            ("faults_config", str(live)),
            ("faults_stats", str(self.stats_file)),
            ("faults_sides", sides),
        ):
            argv += ["--set", f"{option}={value}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
        env["PYTHONUNBUFFERED"] = "1"  # its log (refused configs) is read while it runs
        self.stats_file.unlink(missing_ok=True)
        pid = self.proc.start(argv, env, cwd=self.cfg.proxy_dir)
        self.config_record.write_text(f"{live}\n")

        def ready() -> bool:  # both ports listen and the addon wrote its first stats
            stats = self.stats()
            return self.listening() and stats is not None and stats.get("pid") == pid

        wait_for(f"proxy ({self.where()})", ready, 60, self.proc)
        self.write_env(live)
        notes = [
            f"; nothing answers on {upstream} yet"
            for side, _, _, upstream in self.ports
            if not _upstream_answers(side, upstream)
        ]
        return f"proxy started (pid {pid}): {self.where()}{''.join(notes)}"

    def write_env(self, live: Path) -> None:
        lines = [
            "# written by sandbox/ctl proxy up; load it after the sandbox's own:",
            f"#   . {self.cfg.env_file} && . {self.cfg.proxy_env_file}",
            f"export AWS_ENDPOINT_URL={self.aws_endpoint}",
            f"export OPENSEARCH_ENDPOINT={self.opensearch_endpoint}",
            f"export SANDBOX_PROXY_CONFIG={shlex.quote(str(live))}",
        ]
        faults.atomic_write(self.cfg.proxy_env_file, "\n".join(lines) + "\n")

    def stop(self) -> bool:
        stopped = self.proc.stop(timeout=10)
        self.cfg.proxy_env_file.unlink(missing_ok=True)
        self.config_record.unlink(missing_ok=True)
        return stopped

    # --- configs ---------------------------------------------------------------
    def install(self, text: str) -> str:
        """Replace the live config atomically; wait until the addon has loaded it."""
        pid = self.proc.pid()
        if pid is None:
            raise ProxyNotRunning(
                "the proxy is not running; start it with `sandbox/ctl proxy up [--config PATH]`"
            )
        live = self.live_config()
        faults.atomic_write(live, text)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while time.monotonic() < deadline:
            info = (self.stats() or {}).get("config") or {}
            if info.get("sha256") == digest:
                return f"installed in {live}; the proxy (pid {pid}) uses it"
            error = info.get("last_error") or {}
            if error.get("sha256") == digest:
                raise faults.ConfigError(f"the proxy refused it: {error.get('message')}")
            time.sleep(0.1)
        raise SandboxError(
            f"installed in {live}, but the proxy (pid {pid}) did not report loading it within "
            f"{ACK_TIMEOUT_S:.0f}s; see {self.proc.log_file}"
        )


class ProxyNotRunning(SandboxError):
    """`proxy set` needs a running proxy."""


def _upstream_answers(side: str, upstream: str) -> bool:
    if side == "opensearch":
        return http_json(upstream + "/") is not None
    return port_in_use(int(upstream.rsplit(":", 1)[1]))


def stats_summary(stats: dict[str, Any] | None) -> list[str]:
    """A few lines for `sandbox/ctl proxy status`."""
    if not stats:
        return ["stats: none yet"]
    config = stats.get("config", {})
    totals = stats.get("totals", {})
    errors = ", ".join(f"{code} {n}" for code, n in sorted(totals.get("errors", {}).items()))
    lines = [
        f"config: {config.get('path')} (name {config.get('name')}, seed {config.get('seed')}, "
        f"loaded {config.get('loaded_at')}, {config.get('loads')} loads, "
        f"{config.get('refused')} refused)",
        f"stats: {totals.get('requests', 0)} requests, errors: {errors or 'none'}, "
        f"resets before/after: {totals.get('reset_before', 0)}/{totals.get('reset_after', 0)}, "
        f"stalls: {totals.get('stalls', 0)}, added latency: "
        f"{totals.get('latency_ms', 0.0) / 1000.0:.1f} s (updated {stats.get('updated_at')})",
    ]
    error = config.get("last_error")
    if error:
        lines.append(f"last refused config ({error.get('at')}): {error.get('message')}")
    return lines
