#!/usr/bin/env python3
"""Worker throughput and memory on the local stack, side by side in one run.

    .venv/bin/python bench/worker_throughput.py [--messages 1000] [--concurrency 4]
        [--original-messages 150] [--rounds 3] [--rss-messages 10000] [--no-append]

Small text files (about 200 bytes each), one S3 event per message. Three ways
through the same kind of queue, each on its own freshly filled queue:

  (a) original: the original script's loop (the incident report's worker.py) -
      receive 1 message, download, decode, index ONE document, delete 1 message,
      sequentially (run on --original-messages, formerly --seed-messages; its
      rate is what counts);
  (b) bare: receive 10 + delete_message_batch on --concurrency threads, nothing
      else: the emulator's own ceiling for a consumer;
  (c) bare + GET: as (b), plus the one S3 GetObject per message that any
      worker indexing file contents must make: the emulator's ceiling for them;
  (w) worker: the real ``filesearch-worker run`` process with
      WORKER_CONCURRENCY=--concurrency (batches of 10, one bulk request and one
      delete_message_batch per batch, heartbeat, JSON logs), timed from its
      "starting" line until the queue is empty.

Then peak RSS of a worker process over --rss-messages messages, sampled from
/proc every 0.5 s (and VmHWM at the end). Prints a table and appends it, with
the command and machine, to docs/benchmarks.md (unless --no-append). Needs the
local stack (make sandbox-up); creates and deletes its own queues, bucket and
indices. Bounded: every phase has a deadline.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.config import Config
from opensearchpy import OpenSearch

from filesearch_worker.events import s3_event_body

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / ".venv" / "bin" / "filesearch-worker"
BOTO = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)


def load_env() -> dict[str, str]:
    stack = REPO / ".sandbox" / "stack.json"
    if not stack.exists():
        sys.exit("bench: the local stack is not up (make sandbox-up)")
    env = dict(os.environ)
    env.update(json.loads(stack.read_text())["env"])
    return env


class Stack:
    """A unique queue (+ DLQ), bucket and index for one phase."""

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

    def worker_env(self, concurrency: int) -> dict[str, str]:
        return {
            **self.env,
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


# -- (a) the original script's loop -----------------------------------------------


def original_loop(stack: Stack, opensearch: OpenSearch, count: int, deadline: float) -> float:
    """One message per receive, one index call per message, sequential; msg/s."""
    done = 0
    start = time.monotonic()
    while done < count and time.monotonic() < deadline:
        msgs = stack.sqs.receive_message(
            QueueUrl=stack.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1
        ).get("Messages", [])
        for msg in msgs:
            record = json.loads(msg["Body"])["Records"][0]
            key = unquote_plus(record["s3"]["object"]["key"])
            data = stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
            document = {"file_key": key, "content": data.decode("utf-8")}
            opensearch.index(index=stack.index, body=document, id=key)
            stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=msg["ReceiptHandle"])
            done += 1
    return done / (time.monotonic() - start)


# -- (b) bare receive + delete -----------------------------------------------------


def bare_loop(
    stack: Stack, count: int, threads: int, deadline: float, download: bool = False
) -> float:
    """receive 10 (+ one S3 GET each) + delete_message_batch on ``threads`` threads; msg/s."""
    lock = threading.Lock()
    done = [0]

    def lane() -> None:
        while time.monotonic() < deadline:
            with lock:
                if done[0] >= count:
                    return
            msgs = stack.sqs.receive_message(
                QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not msgs:
                with lock:
                    if done[0] >= count:
                        return
                continue
            if download:
                for m in msgs:
                    key = unquote_plus(json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"])
                    stack.s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read()
            stack.sqs.delete_message_batch(
                QueueUrl=stack.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )
            with lock:
                done[0] += len(msgs)

    start = time.monotonic()
    workers = [threading.Thread(target=lane) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
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
    stack: Stack, concurrency: int, count: int, deadline: float, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Start the worker, wait for an empty queue, stop it; rate and RSS samples."""
    env = {**stack.worker_env(concurrency), **(extra or {}), "LOG_LEVEL": "info"}
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
    parser.add_argument("--messages", type=int, default=1000, help="per round for (b), (c), (w)")
    parser.add_argument(
        "--original-messages",
        "--seed-messages",  # its former name, still accepted
        dest="original_messages",
        type=int,
        default=150,
        help="per round for (a)",
    )
    parser.add_argument("--rss-messages", type=int, default=10_000, help="0 to skip the RSS run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--files", type=int, default=1000, help="distinct S3 objects")
    parser.add_argument("--max-seconds", type=float, default=600, help="deadline per phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    env = load_env()
    os.environ.update(env)
    opensearch = OpenSearch(hosts=[env["OPENSEARCH_ENDPOINT"]], timeout=30)
    results: dict[str, Any] = {"bare": [], "fetch": [], "original": [], "worker": []}
    stacks: list[Stack] = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        work = Stack(env, "worker")
        stacks.append(work)
        work_keys = work.upload(min(args.files, args.messages))
        original = Stack(env, "original")
        stacks.append(original)
        original_keys = original.upload(min(args.files, args.original_messages))
        fetch = Stack(env, "fetch")
        stacks.append(fetch)
        fetch_keys = fetch.upload(min(args.files, args.messages))
        bare = Stack(env, "bare")
        stacks.append(bare)
        # the loops alternate, round after round, so load drift on a shared
        # machine hits them alike; the median of the rounds is reported
        for round_no in range(1, args.rounds + 1):
            deadline = time.monotonic() + args.max_seconds
            bare.fill(["x.txt"], args.messages)
            results["bare"].append(bare_loop(bare, args.messages, args.concurrency, deadline))
            fetch.fill(fetch_keys, args.messages)
            results["fetch"].append(
                bare_loop(fetch, args.messages, args.concurrency, deadline, download=True)
            )
            original.fill(original_keys, args.original_messages)
            results["original"].append(
                original_loop(original, opensearch, args.original_messages, deadline)
            )
            work.fill(work_keys, args.messages)
            results["worker"].append(
                run_worker(work, args.concurrency, args.messages, deadline)["rate"]
            )
            print(
                f"round {round_no}: "
                + ", ".join(f"{k} {v[-1]:.0f} msg/s" for k, v in results.items()),
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
                mem, args.concurrency, args.rss_messages, time.monotonic() + args.max_seconds
            )
            print(f"RSS run: {results['rss']['hwm'] / 1024:.0f} MiB peak", flush=True)
    finally:
        for stack in stacks:
            try:
                stack.delete(opensearch)
            except Exception as exc:  # noqa: BLE001 - cleanup is best effort
                print(f"cleanup of {stack.name} failed: {exc}", file=sys.stderr)

    med = {k: statistics.median(results[k]) for k in ("bare", "fetch", "original", "worker")}
    original_rate = med["original"]
    rows = [
        (
            "(a) original script's loop: receive 1, index 1, delete 1, sequential",
            args.original_messages,
            original_rate,
        ),
        (
            f"(b) bare receive 10 + delete batch, {args.concurrency} threads",
            args.messages,
            med["bare"],
        ),
        (
            f"(c) bare receive 10 + 10 S3 GETs + delete batch, {args.concurrency} threads",
            args.messages,
            med["fetch"],
        ),
        (
            f"(w) filesearch-worker run, WORKER_CONCURRENCY={args.concurrency}",
            args.messages,
            med["worker"],
        ),
    ]
    lines = [
        "| loop | messages | msg/s | x original |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {name} | {n:,} | {rate:.0f} | {rate / original_rate:.1f} |"
            for name, n, rate in rows
        ],
        "",
        f"Median of {args.rounds} alternating rounds. "
        f"worker / original = **{med['worker'] / original_rate:.1f}x** (target >= 5x); "
        f"worker / bare = **{med['worker'] / med['bare']:.2f}x** (target >= 0.5x); "
        f"worker / (bare + S3 GET) = **{med['worker'] / med['fetch']:.2f}x**; "
        f"documents indexed by (w): {results['worker_indexed']:,}.",
    ]
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
    table = "\n".join(lines)
    print()
    print(table)
    if not args.no_append:
        command = "python bench/worker_throughput.py " + " ".join(sys.argv[1:])
        section = (
            f"\n## Worker throughput ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
            f"Command: `{command.strip()}`  \nMachine: {machine()}; LocalStack + osmem-server "
            "on the same machine (shared cores).\n\n" + table + "\n"
        )
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
