#!/usr/bin/env python3
"""The DLQ recovery engine at an older commit vs the working tree, side by side in one run.

    .venv/bin/python bench/dlq_engine_ab.py [--base 29b6470^] [--messages 8158]
        [--rounds 5] [--no-append]

Answers "did a change to the engine slow recovery down?" with the noise of a
shared machine taken out: on freshly seeded DLQs of the incident's mix
(bench/dlq_scenario.py; each deleted right after its run), strategy redrive
with 4 threads, in alternating rounds (order reversed every other round),
three ways:

  base:  ``filesearch_worker`` as it was at ``--base`` (``git archive`` of
         files/worker/src into a temporary directory);
  head:  ``filesearch_worker`` of this checkout;
  bare:  bench/dlq_recovery.py's loop (b): receive 10 / send batch / delete batch.

Each engine runs in its own interpreter (two versions of one package cannot
share a process) and times only ``recover(...)``; seeding is done here,
directly. Loopback only (no latency model). Prints a table and appends it to
docs/benchmarks.md unless --no-append. The default base is the last commit
before the engine's settlement refactor (29b6470, 1b7c96c: one settlement path
for worker and recovery).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"

# Runs in a child interpreter with the engine under test first on sys.path.
CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import boto3
from botocore.config import Config
import filesearch_worker
from filesearch_worker.config import Settings
from filesearch_worker.dlq import RecoveryOptions, recover
from filesearch_worker.index import Indexer
dlq, source, bucket, index = sys.argv[2:6]
info = json.loads(open(sys.argv[6]).read())
env = info["env"]
kw = dict(endpoint_url=info["aws_endpoint"], region_name=info["region"],
          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
          config=Config(retries={"mode": "standard", "max_attempts": 5},
                        max_pool_connections=26))
sqs, s3 = boto3.client("sqs", **kw), boto3.client("s3", **kw)
indexer = Indexer.for_endpoint(info["opensearch_endpoint"], index)
options = RecoveryOptions(strategy="redrive", threads=4, wait_time_seconds=1)
settings = Settings(s3_bucket=bucket, concurrency=8, metrics="off")
t0 = time.monotonic()
report = recover(settings, options, sqs=sqs, s3=s3, indexer=indexer, dlq_url=dlq,
                 source_queue_url=source)
seconds = time.monotonic() - t0
settled = sum(v for k, v in report.counts.items() if k != "released")
print(json.dumps({"settled": settled, "seconds": seconds, "remaining": report.remaining,
                  "package": filesearch_worker.__file__}))
"""


def load_dlq_recovery() -> ModuleType:
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location(
        "dlq_recovery", REPO / "bench" / "dlq_recovery.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def git(*args: str) -> str:
    """``git -C REPO ARGS...``'s output, stripped."""
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def export(rev: str, into: Path) -> Path:
    """files/worker/src at ``rev`` under ``into``; the directory to put on sys.path."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "files/worker/src"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "files" / "worker" / "src"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="29b6470^", help="the older commit (default 29b6470^)")
    parser.add_argument("--messages", type=int, default=8158)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=300, help="deadline per phase")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    base_rev = git("rev-parse", "--short", args.base)
    head_rev = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "files/worker/src")
    head_label = f"{head_rev} (this checkout{', with uncommitted changes' if dirty else ''})"
    dr = load_dlq_recovery()
    bench = dr.Bench(dr.stack_info(), 4, None)
    stack_file = Path(os.environ.get("SANDBOX_DIR") or REPO / ".sandbox") / "stack.json"
    rates: dict[str, list[float]] = {"base": [], "head": [], "bare": []}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dlq-ab-") as tmp:
        src = {"base": export(args.base, Path(tmp)), "head": REPO / "files" / "worker" / "src"}
        try:
            for round_no in range(1, args.rounds + 1):
                order = ["base", "head", "bare"]
                for way in order if round_no % 2 else order[::-1]:
                    deadline = time.monotonic() + args.max_seconds
                    if way == "bare":
                        n, seconds, _ = dr.run_bare(bench, args.messages, deadline)
                        bench.cleanup()
                    else:
                        dlq, source, bucket, index, _ = bench.fresh(way, args.messages)
                        resources = [dlq, source, bucket, index, str(stack_file)]
                        done = subprocess.run(
                            [str(PYTHON), "-c", CHILD, str(src[way]), *resources],
                            capture_output=True,
                            text=True,
                            timeout=args.max_seconds,
                            check=True,
                        )
                        result = json.loads(done.stdout.strip().splitlines()[-1])
                        if result["settled"] != args.messages or result["remaining"]:
                            raise SystemExit(f"{way} engine left messages: {result}")
                        if not result["package"].startswith(str(src[way])):
                            raise SystemExit(f"{way} ran the wrong package: {result['package']}")
                        n, seconds = result["settled"], result["seconds"]
                        bench.cleanup()  # a full source queue left behind slows the next run
                    rates[way].append(n / seconds)
                print(
                    f"round {round_no}: "
                    + ", ".join(f"{k} {v[-1]:.0f} msg/s" for k, v in rates.items()),
                    flush=True,
                )
        finally:
            bench.cleanup()
    med = {k: statistics.median(v) for k, v in rates.items()}
    labels = {
        "base": f"engine at {base_rev} ({args.base}), strategy redrive, 4 threads",
        "head": f"engine at {head_label}, strategy redrive, 4 threads",
        "bare": "(b) bare batched receive/send/delete, 4 threads",
    }
    lines = [
        "| run | messages | msg/s | vs (b) | rounds (msg/s) |",
        "| --- | ---: | ---: | ---: | --- |",
        *[
            f"| {labels[k]} | {args.messages} | {med[k]:.0f} | {med[k] / med['bare']:.2f}x "
            f"| {', '.join(f'{r:.0f}' for r in rates[k])} |"
            for k in ("base", "head", "bare")
        ],
        "",
        f"- median of {args.rounds} alternating rounds "
        f"({(time.monotonic() - started) / 60:.1f} min in all); "
        f"engine at {head_rev} / engine at {base_rev} = **{med['head'] / med['base']:.2f}x**; "
        f"per round: "
        + ", ".join(f"{h / b:.2f}" for h, b in zip(rates["head"], rates["base"], strict=True)),
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        machine = (
            f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, localstack + osmem-server, "
            f"load average {os.getloadavg()[0]:.1f} at the end"
        )
        command = "`.venv/bin/python bench/dlq_engine_ab.py " + " ".join(sys.argv[1:]) + "`"
        section = (
            f"\n### DLQ recovery engine, {base_rev} vs {head_rev} "
            f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
            f"Command: {command.replace('py `', 'py`')}  \nMachine: {machine}\n\n{table}\n"
        )
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
