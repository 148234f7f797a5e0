"""`sandbox/ctl up | down | status | host-up | host-down | env | ssh | proxy ... | redis ...`.

Exit codes of ``status``: 0 every part is up, 1 some part is down, 3 nothing
of this sandbox is running (so callers can leave things as they found them).
The fault proxy is off by default: its line says ``down`` and counts against
nothing unless it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .config import HOST_USER, Config
from .faults import ConfigError, describe
from .hosts import Host, known_hosts, prepare_hosts
from .procs import SandboxError, port_owner
from .proxy import Proxy, ProxyNotRunning, read_config, stats_summary
from .redis import Redis
from .resources import run_playbook, set_redis_outputs, stack_data, write_outputs
from .services import Aws, Osmem, port_in_use

log = logging.getLogger(__name__)


@contextlib.contextmanager
def locked(cfg: Config) -> Iterator[None]:
    """One `up`/`down`/`host-*` at a time per state dir (parallel test runs call `up`)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    with (cfg.state_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


_T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"sandbox: [{time.monotonic() - _T0:5.1f}s] {msg}", flush=True)


def cmd_up(cfg: Config) -> int:
    started = time.monotonic()
    with locked(cfg):
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        aws, osmem, redis = Aws(cfg), Osmem(cfg), Redis(cfg)
        workers = [Host(cfg, name) for name in cfg.worker_names()]
        if (
            cfg.stack_file.exists()
            and aws.running()
            and osmem.running()
            and all(h.running() for h in workers)
        ):
            if redis.running():
                say(f"already up ({cfg.state_dir}); nothing to do")
                return 0
            # a stack started before Redis was part of it: add Redis, touch nothing else
            _preflight(cfg, aws, osmem, workers, redis)
            say(redis.start())
            set_redis_outputs(cfg, running=True)
            say(f"Redis added to the running stack; environment: . {cfg.env_file}")
            return 0
        _preflight(cfg, aws, osmem, workers, redis)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # on a cold machine the hosts' root (debootstrap) builds while LocalStack's
            # venv does; warm, this is a stamp check
            hosts_ready = pool.submit(prepare_hosts, cfg) if workers else None
            say(aws.start())
            say(osmem.start())
            say(redis.start())
            if hosts_ready is not None:
                hosts_ready.result()
        booting = []
        for host in workers:  # boot in parallel, then wait for each
            msg = host.launch()
            if msg:
                say(msg)
            else:
                booting.append(host)
        for host in booting:
            say(host.wait_ready())
        run_playbook(cfg)
        say("AWS resources ensured (playbooks/sandbox.yml)")
        write_outputs(cfg, stack_data(cfg, aws.kind, {h.name: h.port for h in workers}))
        say(f"up in {time.monotonic() - started:.1f}s; environment: . {cfg.env_file}")
    return 0


def _preflight(cfg: Config, aws: Aws, osmem: Osmem, workers: list[Host], redis: Redis) -> None:
    """Fail before starting anything if a port of a part that is not running is taken."""
    wanted = [
        (aws.proc, cfg.localstack_port, "SANDBOX_LOCALSTACK_PORT"),
        (osmem.proc, cfg.osmem_port, "SANDBOX_OSMEM_PORT"),
        (redis.proc, cfg.redis_port, "SANDBOX_REDIS_PORT"),
        *((h.proc, h.port, "SANDBOX_SSH_PORT_BASE") for h in workers),
    ]
    taken = [
        f"127.0.0.1:{port} ({var}) is already taken by {port_owner(port)}"
        for proc, port, var in wanted
        if proc.pid() is None and port_in_use(port)
    ]
    if taken:
        raise SandboxError(
            "\n".join(taken) + "\nstop those or choose other ports (see sandbox/README.md)"
        )


def cmd_down(cfg: Config) -> int:
    if not cfg.state_dir.exists():
        say("nothing to stop")
        return 0
    with locked(cfg):
        if Proxy(cfg).stop():
            say("proxy stopped")
        for name in known_hosts(cfg):
            host = Host(cfg, name)
            stopped = host.proc.pid() is not None
            host.remove()
            if stopped:
                say(f"host {name} stopped")
        for part, label in (
            (Redis(cfg), "redis-server"),
            (Osmem(cfg), "osmem-server"),
            (Aws(cfg), "AWS emulator"),
        ):
            if part.stop():
                say(f"{label} stopped")
        for path in (cfg.env_file, cfg.stack_file):
            path.unlink(missing_ok=True)
        shutil.rmtree(cfg.state_dir / "localstack", ignore_errors=True)
    say("down")
    return 0


def cmd_status(cfg: Config) -> int:
    aws, osmem, redis = Aws(cfg), Osmem(cfg), Redis(cfg)
    rows: list[tuple[str, bool, bool, str]] = [
        (f"aws ({aws.kind})", aws.proc.pid() is not None, aws.healthy(), cfg.aws_endpoint),
        (
            "opensearch (osmem-server)",
            osmem.proc.pid() is not None,
            osmem.healthy(),
            cfg.opensearch_endpoint,
        ),
        ("redis (redis-server)", redis.proc.pid() is not None, redis.healthy(), cfg.redis_url),
    ]
    expected = set(cfg.worker_names())
    for name in known_hosts(cfg):
        host = Host(cfg, name)
        has_pid = host.proc.pid() is not None
        role = "" if name in expected else " (extra)"
        rows.append(
            (f"host {name}{role}", has_pid, has_pid and host.ssh_ok(), f"ssh 127.0.0.1:{host.port}")
        )
    proxy = Proxy(cfg)
    proxy_pid = proxy.proc.pid() is not None
    rows.append(("proxy", proxy_pid, proxy_pid and proxy.listening(), proxy.where()))
    any_pid = False
    all_up = True
    for label, has_pid, ok, where in rows:
        any_pid |= has_pid
        state = "up" if ok else ("unhealthy" if has_pid else "down")
        optional = label.endswith("(extra)") or (label == "proxy" and not has_pid)
        if not ok and not optional:
            all_up = False
        print(f"{label:34} {state:10} {where}")
    written = cfg.stack_file.exists()
    state = "written" if written else "missing"
    print(f"{'resources (stack.json)':34} {state:10} {cfg.stack_file}")
    all_up &= written
    if all_up:
        return 0
    return 1 if any_pid else 3


def cmd_host_up(cfg: Config, name: str, port: int | None) -> int:
    with locked(cfg):
        host = Host(cfg, name, port)
        say(host.start())
        print(
            json.dumps(
                {
                    "name": name,
                    "address": "127.0.0.1",
                    "port": host.port,
                    "user": HOST_USER,
                    "ssh_key": str(cfg.ssh_key),
                }
            )
        )
    return 0


def cmd_host_down(cfg: Config, name: str) -> int:
    with locked(cfg):
        host = Host(cfg, name)
        was = host.proc.pid() is not None
        host.remove()
        say(f"host {name} {'stopped and removed' if was else 'was not running; removed'}")
    return 0


def cmd_ssh(cfg: Config, name: str, command: list[str], timeout: float) -> int:
    """Run ``command`` on test host ``name`` as ec2-user; its output and exit code."""
    host = Host(cfg, name)
    if host.proc.pid() is None:
        raise SandboxError(f"host {name} is not running; run `sandbox/ctl up`")
    done = host.ssh(*(command or ["true"]), timeout=timeout)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


def cmd_proxy(cfg: Config, args: argparse.Namespace) -> int:
    """`proxy up [--config PATH] | down | status | set PATH|- | check PATH`."""
    proxy = Proxy(cfg)
    if args.proxy_command == "check":
        _, config = read_config(args.path)
        print(f"sandbox: {args.path}: valid\n{describe(config)}")
        return 0
    if args.proxy_command == "set":
        text, config = read_config(args.source)
        try:
            say(proxy.install(text))
        except ProxyNotRunning as exc:
            print(f"sandbox: ERROR: {exc}", file=sys.stderr)
            return 1
        print(describe(config))
        return 0
    if args.proxy_command == "status":
        has_pid = proxy.proc.pid() is not None
        ok = has_pid and proxy.listening()
        state = "up" if ok else ("unhealthy" if has_pid else "down")
        print(f"{'proxy':34} {state:10} {proxy.where()}")
        if has_pid:
            for line in stats_summary(proxy.stats()):
                print(f"  {line}")
            print(f"  environment: . {cfg.proxy_env_file}")
        return 0 if ok else (1 if has_pid else 3)
    with locked(cfg):
        if args.proxy_command == "up":
            say(proxy.start(args.config))
            say(f"environment: . {cfg.env_file} && . {cfg.proxy_env_file}")
        else:
            say("proxy stopped" if proxy.stop() else "proxy was not running")
    return 0


def cmd_redis(cfg: Config, action: str) -> int:
    """`redis up | down | status`: Redis alone, next to a stack that is already running."""
    redis = Redis(cfg)
    if action == "status":
        has_pid = redis.proc.pid() is not None
        ok = has_pid and redis.healthy()
        state = "up" if ok else ("unhealthy" if has_pid else "down")
        print(f"{'redis (redis-server)':34} {state:10} {cfg.redis_url}")
        return 0 if ok else (1 if has_pid else 3)
    with locked(cfg):
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        if action == "up":
            say(redis.start())
            if set_redis_outputs(cfg, running=True):
                say(f"REDIS_URL added to {cfg.env_file} and {cfg.stack_file}")
        else:
            say("redis-server stopped" if redis.stop() else "redis-server was not running")
            set_redis_outputs(cfg, running=False)
    return 0


def cmd_env(cfg: Config) -> int:
    if not cfg.env_file.exists():
        print(f"sandbox: not up ({cfg.env_file} missing); run `sandbox/ctl up`", file=sys.stderr)
        return 1
    sys.stdout.write(cfg.env_file.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox/ctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start every part (idempotent) and ensure the AWS resources")
    sub.add_parser("down", help="stop every part; leaves no process, mount or veth")
    sub.add_parser("status", help="show each part; non-zero if any is down")
    sub.add_parser("env", help="print the export lines of a running sandbox")
    hu = sub.add_parser("host-up", help="start one extra test host (molecule)")
    hu.add_argument("name")
    hu.add_argument("--ssh-port", type=int, required=True)
    hd = sub.add_parser("host-down", help="stop and remove one extra test host")
    hd.add_argument("name")
    sh = sub.add_parser(
        "ssh", help="run a command on a test host as ec2-user (sudo for root): ssh worker1 -- CMD"
    )
    sh.add_argument("name")
    sh.add_argument("remote", nargs=argparse.REMAINDER, help="the command (after --)")
    sh.add_argument("--timeout", type=float, default=120)
    px = sub.add_parser(
        "proxy", help="the fault-and-latency proxy (off by default; docs/sandbox.md)"
    ).add_subparsers(dest="proxy_command", required=True)
    pu = px.add_parser("up", help="start it (idempotent); writes $SANDBOX_DIR/proxy.env")
    pu.add_argument(
        "--config",
        type=Path,
        help="the live config file to watch (default $SANDBOX_DIR/proxy/faults.json, "
        "reset to no faults)",
    )
    px.add_parser("down", help="stop it (by pid)")
    px.add_parser("status", help="state, live config and counters (exit 0 up, 1, 3 down)")
    ps = px.add_parser("set", help="validate and install a new config (- reads stdin)")
    ps.add_argument("source", metavar="PATH_OR_-")
    pc = px.add_parser("check", help="only validate a config (exit 2 with the problem)")
    pc.add_argument("path")
    rd = sub.add_parser(
        "redis", help="redis-server alone (127.0.0.1:$SANDBOX_REDIS_PORT, default 16379)"
    )
    rd.add_argument("redis_command", choices=["up", "down", "status"])
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="sandbox: %(message)s")
    logging.getLogger("sandboxctl").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    cfg = Config.from_env()
    try:
        if args.command == "up":
            return cmd_up(cfg)
        if args.command == "down":
            return cmd_down(cfg)
        if args.command == "status":
            return cmd_status(cfg)
        if args.command == "env":
            return cmd_env(cfg)
        if args.command == "ssh":
            remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
            return cmd_ssh(cfg, args.name, remote, args.timeout)
        if args.command == "host-up":
            return cmd_host_up(cfg, args.name, args.ssh_port)
        if args.command == "proxy":
            return cmd_proxy(cfg, args)
        if args.command == "redis":
            return cmd_redis(cfg, args.redis_command)
        return cmd_host_down(cfg, args.name)
    except SandboxError as exc:
        print(f"sandbox: ERROR: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"sandbox: invalid proxy config: {exc}", file=sys.stderr)
        return 2
