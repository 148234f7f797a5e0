#!/usr/bin/env python3
"""Worker throughput and memory on the local stack, side by side in one run.

    .venv/bin/python bench/worker_throughput.py [--latency {none,aws}] [--messages 1000]
        [--concurrency 4] [--original-messages N] [--rounds 3] [--rss-messages N]
        [--sweep 1 2 4 8 16] [--sweep-messages N] [--no-append]

Small text files (about 200 bytes each), one S3 event per message. Four ways
through the same kind of queue, each on its own freshly filled queue:

  (a) original: the original script's loop (the incident report's worker.py) -
      receive 1 message, download, decode, index ONE document, delete 1 message,
      sequentially (run on --original-messages, formerly --seed-messages; its
      rate is what counts);
  (b) bare: receive 10 + delete_message_batch on --concurrency threads, nothing
      else: the emulator's own ceiling for a consumer;
  (c) bare + the worker's calls: as (b), plus one S3 GetObject per message on a
      pool of --concurrency threads shared by the lanes (as the worker's
      download pool) and ONE bulk index request per batch: the same external
      work as the worker, like for like, without its parsing, extraction,
      heartbeat and settlement code (before 2026-12-03 (c) made no bulk request);
  (w) worker: the real ``filesearch-worker run`` process with
      WORKER_CONCURRENCY=--concurrency (batches of 10, one bulk request and one
      delete_message_batch per batch, heartbeat, JSON logs), timed from its
      "starting" line until the queue is empty.

``--sweep C ...`` then runs (c) and (w) once per round for each
WORKER_CONCURRENCY C (on --sweep-messages, default 100 per lane within
300-1,000). Then peak RSS of a worker process over --rss-messages messages,
sampled from /proc every 0.5 s (and VmHWM at the end).

``--latency aws`` (or BENCH_LATENCY=aws): the measured calls of (a), (b), (c)
and (w) go through a private latency proxy that adds same-region AWS latencies
(bench/aws_latency.py: SQS 10 ms, S3 20 ms, OpenSearch bulk 15 ms, mget 10 ms,
with jitter); setup traffic (queues, uploads, filling, depth polls) stays
direct. The run starts by measuring what one call costs direct and through the
proxy, and reports the calls per message each loop made (the proxy's counters).
Defaults per mode: none - 150 original messages, RSS over 10,000, no sweep (as
before); aws - 200 original messages, no RSS run, sweep 1 2 4 8 16 (100
messages per lane, at least 300, at most 1,000).

Prints a table and appends it, with the command and machine, to
docs/benchmarks.md (unless --no-append). Needs the local stack (make
sandbox-up); creates and deletes its own queues, bucket and indices. Bounded:
every phase has a message count and a deadline (--max-seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import aws_latency as latency
import boto3
from botocore.config import Config
from opensearchpy import OpenSearch

from filesearch_worker.events import s3_event_body

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / ".venv" / "bin" / "filesearch-worker"
BOTO = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64)

# Per latency mode; a flag given on the command line wins.
DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {
        "original_messages": 150,
        "rss_messages": 10_000,
        "sweep": [],
    },
    "aws": {
        "original_messages": 200,
        "rss_messages": 0,
        "sweep": [1, 2, 4, 8, 16],
    },
}
TARGETS = {
    # mode: ((row, baseline, factor), ...): "row >= factor x baseline"
    "none": (("worker", "original", 5.0), ("worker", "bare", 0.5)),
    "aws": (("worker", "original", 10.0), ("worker", "fetch", 0.9)),
}


def sweep_messages(concurrency: int, fixed: int | None = None) -> int:
    """Messages for one sweep phase: ``fixed``, else 100 per lane within [300, 1000].

    Enough for a few seconds at every concurrency without the slow end (one lane,
    ~25 msg/s under the latency model) taking minutes.
    """
    return fixed if fixed else min(1000, max(300, 100 * concurrency))


def load_env() -> dict[str, str]:
    stack = REPO / ".sandbox" / "stack.json"
    if not stack.exists():
        sys.exit("bench: the local stack is not up (make sandbox-up)")
    env = dict(os.environ)
    env.update(json.loads(stack.read_text())["env"])
    return env


@dataclass
class Via:
    """The clients the MEASURED calls use: direct, or through the latency proxy."""

    sqs: Any
    s3: Any
    opensearch: OpenSearch
    worker_env: dict[str, str] = field(default_factory=dict)  # endpoint overrides for (w)


def direct_via(env: dict[str, str]) -> Via:
    return Via(
        boto3.client("sqs", config=BOTO),
        boto3.client("s3", config=BOTO),
        OpenSearch(hosts=[env["OPENSEARCH_ENDPOINT"]], timeout=30, pool_maxsize=64),
    )


def proxy_via(proxy: latency.PrivateProxy) -> Via:
    return Via(
        boto3.client("sqs", endpoint_url=proxy.aws_endpoint, config=BOTO),
        boto3.client("s3", endpoint_url=proxy.aws_endpoint, config=BOTO),
        OpenSearch(hosts=[proxy.opensearch_endpoint], timeout=30, pool_maxsize=64),
        {"AWS_ENDPOINT_URL": proxy.aws_endpoint, "OPENSEARCH_ENDPOINT": proxy.opensearch_endpoint},
    )


class Stack:
    """A unique queue (+ DLQ), bucket and index for one phase; set up DIRECTLY."""

    def __init__(self, env: dict[str, str], label: str) -> None:
        self.env = env
        self.sqs = boto3.client("sqs", config=BOTO)
        self.s3 = boto3.client("s3", config=BOTO)
        self.name = f"wbench-{label}-{uuid.uuid4().hex[:6]}"
        self.dlq_url = self.sqs.create_queue(QueueName=f"{self.name}-dlq")["QueueUrl"]
        self.queue_url = self.sqs.create_queue(
            QueueName=self.name, Attributes={"VisibilityTimeout": "600"}
        )["QueueUrl"]
        self.bucket = self.name
        self.s3.create_bucket(
            Bucket=self.bucket,
            CreateBucketConfiguration={
                "LocationConstraint": env.get("AWS_REGION", "ap-northeast-1")
            },
        )
        self.index = self.name

    def worker_env(self, concurrency: int, via: Via) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if not k.startswith("AWS_ENDPOINT_URL_")}
        return {
            **env,
            **via.worker_env,
            "SQS_QUEUE_URL": self.queue_url,
            "SQS_DLQ_URL": self.dlq_url,
            "S3_BUCKET": self.bucket,
            "OPENSEARCH_INDEX": self.index,
            "WORKER_CONCURRENCY": str(concurrency),
            "WORKER_METRICS": "off",
            "SQS_WAIT_TIME_SECONDS": "1",
            "WORKER_STATS_INTERVAL_SECONDS": "10",
            "LOG_LEVEL": "warning",
        }

    def upload(self, count: int, threads: int = 8) -> list[str]:
        keys = [f"bench/file {i:05d}.txt" for i in range(count)]
        body = ("The quick brown fox jumps over the lazy dog. 日本語のテキスト。 " * 3).encode()

        def put(key: str) -> None:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, keys))
        return keys

    def fill(self, keys: list[str], count: int, threads: int = 8) -> None:
        bodies = [event(self.bucket, keys[i % len(keys)]) for i in range(count)]
        chunks = [bodies[i : i + 10] for i in range(0, len(bodies), 10)]

        def send(chunk: list[str]) -> None:
            self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)],
            )

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, chunks))

    def depth(self) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )

    def delete(self, opensearch: OpenSearch) -> None:
        for url in (self.queue_url, self.dlq_url):
            self.sqs.delete_queue(QueueUrl=url)
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})
        self.s3.delete_bucket(Bucket=self.bucket)
        opensearch.indices.delete(index=self.index, ignore=[404])


def event(bucket: str, key: str) -> str:
    """One S3 event body (``events.s3_event_body``, no size as before)."""
    return s3_event_body(bucket, key, size=None, event_time="2026-01-01T00:00:00.000Z")


def event_key(body: str) -> str:
    return unquote_plus(json.loads(body)["Records"][0]["s3"]["object"]["key"])


# -- (a) the original script's loop -----------------------------------------------


def original_loop(stack: Stack, via: Via, count: int, deadline: float) -> float:
    """One message per receive, one index call per message, sequential; msg/s."""
    done = 0
    start = time.monotonic()
    while done < count and time.monotonic() < deadline:
        msgs = via.sqs.receive_message(
            QueueUrl=stack.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1
        ).get("Messages", [])
        for msg in msgs:
            key = event_key(msg["Body"])
            data = via.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
            document = {"file_key": key, "content": data.decode("utf-8")}
            via.opensearch.index(index=stack.index, body=document, id=key)
            via.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=msg["ReceiptHandle"])
            done += 1
    return done / (time.monotonic() - start)


# -- (b) bare receive + delete; (c) plus the worker's GETs and bulk -------------------


def bare_loop(
    stack: Stack, via: Via, count: int, threads: int, deadline: float, work: bool = False
) -> float:
    """receive 10 + delete_message_batch on ``threads`` lanes; msg/s.

    ``work``: per batch also one GetObject per message (on a pool of ``threads``
    shared by the lanes, as the worker's download pool) and one bulk request.
    """
    lock = threading.Lock()
    done = [0]
    pool = ThreadPoolExecutor(threads, thread_name_prefix="get") if work else None

    def get(key: str) -> bytes:
        data: bytes = via.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
        return data

    def lane() -> None:
        while time.monotonic() < deadline:
            with lock:
                if done[0] >= count:
                    return
            msgs = via.sqs.receive_message(
                QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not msgs:
                with lock:
                    if done[0] >= count:
                        return
                continue
            if pool is not None:
                keys = [event_key(m["Body"]) for m in msgs]
                lines: list[dict[str, Any]] = []
                for key, data in zip(keys, pool.map(get, keys), strict=True):
                    lines.append({"index": {"_index": stack.index, "_id": key}})
                    lines.append({"file_key": key, "content": data.decode("utf-8")})
                via.opensearch.bulk(body=lines)
            via.sqs.delete_message_batch(
                QueueUrl=stack.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )
            with lock:
                done[0] += len(msgs)

    start = time.monotonic()
    workers = [threading.Thread(target=lane) for _ in range(threads)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return done[0] / (time.monotonic() - start)


# -- (w) the real worker -----------------------------------------------------------


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0])
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def run_worker(
    stack: Stack, via: Via, concurrency: int, count: int, deadline: float
) -> dict[str, Any]:
    """Start the worker, wait for an empty queue, stop it; rate and RSS samples."""
    env = {**stack.worker_env(concurrency, via), "LOG_LEVEL": "info"}
    log_path = Path(tempfile.mkstemp(prefix="wbench-", suffix=".log")[1])
    log = log_path.open("wb")
    proc = subprocess.Popen([str(WORKER), "run"], env=env, stdout=log, stderr=log)
    samples: list[tuple[int, int]] = []  # (messages done, RSS KiB)
    try:
        # timed from the worker's "starting" line (interpreter start-up excluded)
        while '"event": "starting"' not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start")
            time.sleep(0.05)
        start = time.monotonic()
        left = count
        next_sample = 0.0
        while left > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker phase hit its deadline with {left} messages left")
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}")
            left = stack.depth()
            now = time.monotonic()
            if now >= next_sample:
                samples.append((count - left, rss_kib(proc.pid)[0]))
                next_sample = now + 0.5
            time.sleep(0.25)  # GetQueueAttributes competes with the worker for the emulator
        seconds = time.monotonic() - start
        rss, hwm = rss_kib(proc.pid)
        samples.append((count, rss))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        log_path.unlink()
    return {"rate": count / seconds, "seconds": seconds, "samples": samples, "hwm": hwm, "rss": rss}


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # clean up the queues, bucket and index on SIGTERM


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    latency.add_argument(parser)
    parser.add_argument("--messages", type=int, default=1000, help="per round for (b), (c), (w)")
    parser.add_argument(
        "--original-messages",
        "--seed-messages",  # its former name, still accepted
        dest="original_messages",
        type=int,
        default=None,
        help="per round for (a) (default: 150; aws: 200)",
    )
    parser.add_argument(
        "--rss-messages", type=int, default=None, help="0: no RSS run (default 10000; aws 0)"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=None,
        metavar="C",
        help="(c) and (w) at these concurrencies too (default: none; aws: 1 2 4 8 16)",
    )
    parser.add_argument(
        "--sweep-messages",
        type=int,
        default=None,
        help="per sweep phase (default: 100 per lane, 300-1000)",
    )
    parser.add_argument("--files", type=int, default=1000, help="distinct S3 objects")
    parser.add_argument("--max-seconds", type=float, default=600, help="deadline per phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    mode = latency.resolve_mode(args.latency, os.environ)
    latency.apply_defaults(args, DEFAULTS[mode])
    env = load_env()
    os.environ.update(env)
    stack_info = json.loads((REPO / ".sandbox" / "stack.json").read_text())
    direct = direct_via(env)
    signal.signal(signal.SIGTERM, _interrupt)
    proxy = latency.PrivateProxy(stack_info, latency.proxy_config()) if mode == "aws" else None
    if proxy is None:
        return measure(args, mode, env, direct, direct, None)
    with proxy:
        return measure(args, mode, env, direct, proxy_via(proxy), proxy)


def measure(
    args: argparse.Namespace,
    mode: str,
    env: dict[str, str],
    direct: Via,
    via: Via,
    proxy: latency.PrivateProxy | None,
) -> int:
    opensearch = direct.opensearch  # setup and counting
    results: dict[str, Any] = {"bare": [], "fetch": [], "original": [], "worker": []}
    sweep: dict[tuple[str, int], list[float]] = {}
    counter = latency.PhaseCounter(proxy)
    calibration: list[latency.Calibration] = []
    stacks: list[Stack] = []
    started = time.monotonic()
    try:
        if proxy is not None:
            probe = Stack(env, "probe")
            stacks.append(probe)
            calibration = latency.calibrate(
                proxy,
                latency.probes(
                    (direct.sqs, direct.s3, direct.opensearch),
                    (via.sqs, via.s3, via.opensearch),
                    probe.queue_url,
                    probe.bucket,
                    probe.index,
                ),
            )
            print("\n".join(latency.calibration_table(calibration)), flush=True)
        work = Stack(env, "worker")
        stacks.append(work)
        most = max([args.messages, *(sweep_messages(c, args.sweep_messages) for c in args.sweep)])
        work_keys = work.upload(min(args.files, most))
        original = Stack(env, "original")
        stacks.append(original)
        original_keys = original.upload(min(args.files, args.original_messages))
        fetch = Stack(env, "fetch")
        stacks.append(fetch)
        fetch_keys = fetch.upload(min(args.files, most))
        bare = Stack(env, "bare")
        stacks.append(bare)
        n, c = args.messages, args.concurrency
        # the loops alternate, round after round, so load drift on a shared
        # machine hits them alike; the median of the rounds is reported
        for round_no in range(1, args.rounds + 1):
            deadline = time.monotonic() + args.max_seconds
            bare.fill(["x.txt"], n)
            results["bare"].append(counter.phase("(b)", n, bare_loop, bare, via, n, c, deadline))
            fetch.fill(fetch_keys, n)
            results["fetch"].append(
                counter.phase("(c)", n, bare_loop, fetch, via, n, c, deadline, work=True)
            )
            n_a = args.original_messages
            original.fill(original_keys, n_a)
            results["original"].append(
                counter.phase("(a)", n_a, original_loop, original, via, n_a, deadline)
            )
            work.fill(work_keys, n)
            results["worker"].append(
                counter.phase("(w)", n, run_worker, work, via, c, n, deadline)["rate"]
            )
            print(
                f"round {round_no}: "
                + ", ".join(f"{k} {v[-1]:.0f} msg/s" for k, v in results.items()),
                flush=True,
            )
            for conc in args.sweep:
                m = sweep_messages(conc, args.sweep_messages)
                deadline = time.monotonic() + args.max_seconds
                fetch.fill(fetch_keys, m)
                rate = counter.phase(
                    f"(c) x{conc}", m, bare_loop, fetch, via, m, conc, deadline, work=True
                )
                sweep.setdefault(("fetch", conc), []).append(rate)
                work.fill(work_keys, m)
                rate = counter.phase(f"(w) x{conc}", m, run_worker, work, via, conc, m, deadline)[
                    "rate"
                ]
                sweep.setdefault(("worker", conc), []).append(rate)
                print(
                    f"  sweep {conc}: (c) {sweep[('fetch', conc)][-1]:.0f}, "
                    f"(w) {sweep[('worker', conc)][-1]:.0f} msg/s",
                    flush=True,
                )
        results["worker_indexed"] = opensearch.count(index=work.index)["count"]
        # RSS over many messages
        if args.rss_messages:
            mem = Stack(env, "rss")
            stacks.append(mem)
            keys = mem.upload(min(args.files, args.rss_messages))
            mem.fill(keys, args.rss_messages)
            results["rss"] = run_worker(
                mem, via, c, args.rss_messages, time.monotonic() + args.max_seconds
            )
            print(f"RSS run: {results['rss']['hwm'] / 1024:.0f} MiB peak", flush=True)
    finally:
        for stack in stacks:
            try:
                stack.delete(opensearch)
            except Exception as exc:  # noqa: BLE001 - cleanup is best effort
                print(f"cleanup of {stack.name} failed: {exc}", file=sys.stderr)
    minutes = (time.monotonic() - started) / 60
    table = report(args, mode, results, sweep, counter, calibration, minutes)
    print()
    print(table)
    if not args.no_append:
        command = "python bench/worker_throughput.py " + " ".join(sys.argv[1:])
        title = "Worker throughput" + (", AWS latency model" if mode == "aws" else "")
        section = (
            f"\n## {title} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
            f"Command: `{command.strip()}`"
            + (f" (BENCH_LATENCY={mode})" if mode != "none" else "")
            + f"  \nMachine: {machine()}; LocalStack + osmem-server "
            f"on the same machine (shared cores); load average {os.getloadavg()[0]:.1f} "
            "at the end.\n\n" + table + "\n"
        )
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(section)
    return 0


def report(
    args: argparse.Namespace,
    mode: str,
    results: dict[str, Any],
    sweep: dict[tuple[str, int], list[float]],
    counter: latency.PhaseCounter,
    calibration: list[latency.Calibration],
    minutes: float,
) -> str:
    med = {k: statistics.median(results[k]) for k in ("bare", "fetch", "original", "worker")}
    original_rate = med["original"]
    c = args.concurrency
    rows = [
        (
            "(a) original script's loop: receive 1, index 1, delete 1, sequential",
            args.original_messages,
            "original",
        ),
        (f"(b) bare receive 10 + delete batch, {c} threads", args.messages, "bare"),
        (
            f"(c) bare receive 10 + 10 S3 GETs (pool of {c}) + 1 bulk + delete batch, {c} threads",
            args.messages,
            "fetch",
        ),
        (f"(w) filesearch-worker run, WORKER_CONCURRENCY={c}", args.messages, "worker"),
    ]
    lines = []
    if mode == "aws":
        lines += latency.model_preamble(calibration)
    lines += [
        "| loop | messages | msg/s | x original | rounds (msg/s) |",
        "| --- | ---: | ---: | ---: | --- |",
        *[
            f"| {name} | {n:,} | {med[k]:.0f} | {med[k] / original_rate:.1f} "
            f"| {', '.join(f'{r:.0f}' for r in results[k])} |"
            for name, n, k in rows
        ],
        "",
    ]
    verdicts = []
    for row, base, factor in TARGETS[mode]:
        ratio = med[row] / med[base]
        verdicts.append(
            f"{row} / {base} = **{ratio:.2f}x** (target >= {factor:g}x: "
            f"{'met' if ratio >= factor else 'NOT met'})"
        )
    lines.append(
        f"Median of {args.rounds} alternating rounds ({minutes:.1f} min in all). "
        + "; ".join(verdicts)
        + f"; worker / (c) = {med['worker'] / med['fetch']:.2f}x"
        + f"; documents indexed by (w): {results['worker_indexed']:,}."
    )
    if sweep:
        lines += [
            "",
            f"Concurrency sweep: (c) with C lanes and a pool of C, and (w) with "
            f"WORKER_CONCURRENCY=C; median of {args.rounds} rounds:",
            "",
            "| C | messages | (c) msg/s | (w) msg/s | (w) / (c) | (w) / (a) | (w) rounds |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for conc in args.sweep:
            fc = statistics.median(sweep[("fetch", conc)])
            wc = statistics.median(sweep[("worker", conc)])
            each = ", ".join(f"{r:.0f}" for r in sweep[("worker", conc)])
            lines.append(
                f"| {conc} | {sweep_messages(conc, args.sweep_messages):,} | {fc:.0f} | {wc:.0f} "
                f"| {wc / fc:.2f}x | {wc / original_rate:.1f}x | {each} |"
            )
    if counter.calls:
        lines += ["", *counter.lines()]
    if "rss" in results:
        r = results["rss"]
        samples = r["samples"]
        picks = [samples[min(len(samples) - 1, int(len(samples) * f))] for f in (0.1, 0.5, 1.0)]
        lines += [
            "",
            f"Worker RSS over {args.rss_messages:,} messages ({r['rate']:.0f} msg/s): "
            + ", ".join(f"{kib / 1024:.0f} MiB after {done:,}" for done, kib in picks)
            + f"; peak (VmHWM) **{r['hwm'] / 1024:.0f} MiB** (target: flat, < 150 MB).",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
