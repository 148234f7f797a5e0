#!/usr/bin/env python3
"""Run every benchmark in sequence (``make bench``), each bounded, and say which failed.

    .venv/bin/python bench/run_all.py [--list] [--only NAME ...] [--skip NAME ...]
        [--latency {none,aws}] [--timeout-scale 1.0] [--no-append] [--no-sandbox-up]

Each benchmark runs as its own subprocess with its default arguments (plus
``--no-append`` when given) and appends its own table to docs/benchmarks.md.
One at a time, because they share the machine's cores and the local stack:
side-by-side ratios inside one benchmark are only meaningful when nothing else
runs. A benchmark that exceeds its time limit is stopped - its process group
by its pid (SIGTERM, then SIGKILL after a grace period) - and counted as
failed; the next one still runs. Benchmarks whose script is missing are
reported as skipped. The exit code is 0 only when every benchmark that ran
passed.

``--latency aws`` (or ``BENCH_LATENCY=aws``, e.g. ``make bench BENCH_LATENCY=aws``)
runs the benchmarks that have an AWS latency model (bench/aws_latency.py) with
``--latency aws`` and their own time limits, and reports the others as
skipped; the default, ``none``, runs everything on loopback as before. The
mode is also passed to every benchmark as ``BENCH_LATENCY``.

The local stack is started first with ``sandbox/ctl up`` (idempotent; a no-op
when it is up) unless ``--no-sandbox-up``. ``--list`` prints what would run,
with the commands and limits, and runs nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aws_latency  # bench/ is no package: its sibling module is found by path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
KILL_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Benchmark:
    """One bench script and how long it may take (seconds, at --timeout-scale 1).

    ``aws_timeout`` set: the script takes ``--latency aws`` and may take that long
    with it; None: it has no latency model and is skipped in mode aws.
    """

    name: str
    script: str
    timeout: float
    what: str
    aws_timeout: float | None = None

    @property
    def path(self) -> Path:
        return BENCH / self.script

    def limit(self, mode: str) -> float:
        """Its time limit in latency ``mode`` (seconds, at --timeout-scale 1)."""
        return self.aws_timeout if mode == "aws" and self.aws_timeout else self.timeout

    def runs_in(self, mode: str) -> bool:
        return mode == "none" or self.aws_timeout is not None


# In the order they run. Limits are about twice the longest run measured on the
# shared 2-core build machine (docs/benchmarks.md); aws: with --latency aws.
BENCHMARKS = (
    Benchmark(
        "worker_throughput",
        "worker_throughput.py",
        45 * 60,
        "worker vs the original loop vs bare SQS; RSS over 10,000 messages "
        "(aws: concurrency sweep 1-16, no RSS run)",
        aws_timeout=30 * 60,
    ),
    Benchmark(
        "dlq_recovery",
        "dlq_recovery.py",
        30 * 60,
        "the incident's 8,158-message DLQ: sequential vs bare vs like-for-like vs engine",
        aws_timeout=30 * 60,
    ),
    Benchmark(
        "deploy_times",
        "deploy_times.py",
        30 * 60,
        "first deploy, no-change repeat and rollback on the two hosts",
    ),
    Benchmark(
        "ops_playbooks",
        "ops_playbooks.py",
        20 * 60,
        "alarms.yml apply/repeat/absent; purge_queue.yml vs a bare loop",
    ),
)


@dataclass
class Result:
    """What happened to one benchmark."""

    name: str
    status: str  # passed, failed, timeout, skipped
    seconds: float = 0.0
    detail: str = ""


def command(bench: Benchmark, no_append: bool, mode: str = "none") -> list[str]:
    """The subprocess command: this interpreter, the script, its default arguments."""
    return [
        sys.executable,
        str(bench.path),
        *(["--latency", mode] if mode != "none" and bench.runs_in(mode) else []),
        *(["--no-append"] if no_append else []),
    ]


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the benchmark's process group (by its pid), SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        return


def run_one(bench: Benchmark, no_append: bool, scale: float, mode: str = "none") -> Result:
    """Run one benchmark in its own session (so a timeout stops its children too)."""
    if not bench.path.is_file():
        return Result(bench.name, "skipped", detail=f"bench/{bench.script} not present")
    if not bench.runs_in(mode):
        return Result(bench.name, "skipped", detail=f"no latency model for mode {mode}")
    limit = bench.limit(mode) * scale
    cmd = command(bench, no_append, mode)
    print(f"\n=== {bench.name}: {' '.join(cmd)} (limit {limit:.0f} s)", flush=True)
    started = time.monotonic()
    env = {**os.environ, aws_latency.ENV_VAR: mode}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        code = proc.wait(limit)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        return Result(
            bench.name, "timeout", time.monotonic() - started, f"stopped after {limit:.0f} s"
        )
    except KeyboardInterrupt:
        stop_group(proc)
        raise
    seconds = time.monotonic() - started
    if code != 0:
        return Result(bench.name, "failed", seconds, f"exit code {code}")
    return Result(bench.name, "passed", seconds)


def select(only: list[str], skip: list[str]) -> list[Benchmark]:
    """The benchmarks to run; unknown names are an error naming the known ones."""
    known = {b.name for b in BENCHMARKS}
    unknown = sorted(n for n in {*only, *skip} if n not in known)
    if unknown:
        raise SystemExit(
            f"run_all: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return [b for b in BENCHMARKS if (not only or b.name in only) and b.name not in skip]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the bench/ scripts one after the other, each bounded in time.",
    )
    parser.add_argument("--list", action="store_true", help="print what would run; run nothing")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="run only these")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="do not run these")
    aws_latency.add_argument(parser)
    parser.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        help="multiply every time limit (e.g. 2 on a busier machine)",
    )
    parser.add_argument(
        "--no-append", action="store_true", help="pass --no-append: leave docs/benchmarks.md alone"
    )
    parser.add_argument(
        "--no-sandbox-up", action="store_true", help="do not run sandbox/ctl up first"
    )
    args = parser.parse_args(argv)
    if args.timeout_scale <= 0:
        parser.error(f"--timeout-scale must be > 0, got {args.timeout_scale}")
    mode = aws_latency.resolve_mode(args.latency, os.environ)
    chosen = select(args.only, args.skip)
    if args.list:
        print(f"latency mode: {mode}")
        for bench in chosen:
            present = "" if bench.path.is_file() else "  [not present: skipped]"
            if not bench.runs_in(mode):
                present += f"  [no latency model for mode {mode}: skipped]"
            print(f"{bench.name}: {' '.join(command(bench, args.no_append, mode))}")
            limit = bench.limit(mode) * args.timeout_scale
            print(f"    limit {limit:.0f} s; {bench.what}{present}")
        return 0
    if not args.no_sandbox_up:
        up = subprocess.run([str(REPO / "sandbox" / "ctl"), "up"], cwd=REPO, check=False)
        if up.returncode != 0:
            print("run_all: sandbox/ctl up failed; no benchmark was run", file=sys.stderr)
            return 1
    results = [run_one(bench, args.no_append, args.timeout_scale, mode) for bench in chosen]
    print("\n| benchmark | result | seconds | detail |\n| --- | --- | ---: | --- |")
    for r in results:
        print(f"| {r.name} | {r.status} | {r.seconds:.0f} | {r.detail} |")
    bad = [r.name for r in results if r.status in ("failed", "timeout")]
    if bad:
        print(f"run_all: FAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
