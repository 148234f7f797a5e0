#!/usr/bin/env python3
"""DLQ recovery of the incident's 8,158 messages on the local stack, side by side in one run.

    .venv/bin/python bench/dlq_recovery.py [--latency {none,aws}] [--threads 4]
        [--messages 8158] [--sequential N] [--rounds 3] [--no-reindex] [--no-append]

Five ways through the same DLQ mix (bench/dlq_scenario.py: 37 % already
indexed, 49 % recoverable, 14 % poison), each on a freshly seeded unique queue
pair (deleted again right after its phase), in alternating rounds (every
other round in reverse order; the median is reported):

  (a) sequential: the original recover_dlq.py approach, one message at a time:
      receive 1 -> parse -> look it up (get by id) -> send back / archive -> delete 1
      (run on the first --sequential messages; its rate is what counts);
  (b) bare: receive 10 / send_message_batch / delete_message_batch on --threads
      threads, no classification, no dedupe, no archive: the emulator's own limit
      for moving messages;
  (c) batched, like for like: the SAME external calls as the engine on
      --threads threads - receive 10, one dedupe multi-get per batch, one archive
      PUT per poison message (on a pool of 2 x --threads, as the engine's), one
      send batch for the recoverable, one delete batch - with a minimal parse and
      nothing else, so engine / (c) measures the engine's own overhead, not the
      work it must do;
  engine: filesearch_worker.dlq.recover(...) (strategy redrive, and strategy
      reindex), classification, multi-get dedupe and archive included, --threads.

``--latency aws`` (or BENCH_LATENCY=aws): the measured calls go through a
private latency proxy that adds same-region AWS latencies (bench/aws_latency.py);
seeding and clean-up stay direct. The run starts by measuring what one call
costs direct and through the proxy, and reports the calls per message of each
way (the proxy's counters). Defaults per mode: none - the incident's 8,158
messages, 1,000 of them sequentially; aws - 4,000 (the same mix), 300
sequentially: about 15 s per batched run, so that three rounds fit.

Prints a table and appends it, with the command and machine, to docs/benchmarks.md
(unless --no-append). Needs the local stack (make sandbox-up); creates and deletes
its own queues, bucket and indices. Bounded: every phase has a message count and
a deadline (--max-seconds).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import aws_latency as latency
import boto3
from botocore.config import Config
from opensearchpy import OpenSearch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "files" / "worker" / "src"))

from filesearch_worker.config import Settings  # noqa: E402
from filesearch_worker.dlq import (  # noqa: E402
    DlqMessage,
    RecoveryOptions,
    archive_key,
    archive_record,
    recover,
)
from filesearch_worker.errors import PermanentError  # noqa: E402
from filesearch_worker.events import parse_message  # noqa: E402
from filesearch_worker.index import Indexer  # noqa: E402

_spec = importlib.util.spec_from_file_location("dlq_scenario", REPO / "bench" / "dlq_scenario.py")
assert _spec is not None and _spec.loader is not None
scenario_lib = importlib.util.module_from_spec(_spec)
sys.modules["dlq_scenario"] = scenario_lib
_spec.loader.exec_module(scenario_lib)

# Per latency mode; a flag given on the command line wins.
DEFAULTS: dict[str, dict[str, Any]] = {
    "none": {"messages": scenario_lib.SEED_TOTAL, "sequential": 1000},
    "aws": {"messages": 4000, "sequential": 300},
}
TARGETS = {
    # mode: ((row, baseline, factor), ...): "row >= factor x baseline"
    "none": (("redrive", "seq", 10.0), ("redrive", "bare", 0.8)),
    "aws": (("redrive", "seq", 20.0), ("redrive", "batched", 0.8)),
}
LABELS = {
    "seq": "(a) sequential, one message at a time (the original script)",
    "bare": "(b) bare batched receive/send/delete, no classification, {t} threads",
    "batched": "(c) batched, the engine's calls (receive 10, 1 mget, archive PUTs, "
    "send batch, delete batch), {t} threads",
    "redrive": "engine, strategy redrive, {t} threads",
    "reindex": "engine, strategy reindex, {t} threads",
}
SHORT = {
    "seq": "(a) sequential",
    "bare": "(b) bare",
    "batched": "(c) like for like",
    "redrive": "engine redrive",
    "reindex": "engine reindex",
}


def stack_info() -> dict[str, Any]:
    stack_file = Path(os.environ.get("SANDBOX_DIR") or REPO / ".sandbox") / "stack.json"
    if not stack_file.exists():
        sys.exit(f"no {stack_file}: start the local stack first (make sandbox-up)")
    data: dict[str, Any] = json.loads(stack_file.read_text())
    return data


class Bench:
    """Clients (setup: direct; measured: direct or through the proxy) and resources."""

    def __init__(
        self, info: dict[str, Any], threads: int, proxy: latency.PrivateProxy | None
    ) -> None:
        self.info = info
        self.threads = threads
        self.proxy = proxy
        env = info["env"]
        config = Config(
            retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=threads * 4 + 10
        )
        kwargs = {
            "region_name": info["region"],
            "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "config": config,
        }
        aws = info["aws_endpoint"]
        self.sqs = boto3.client("sqs", endpoint_url=aws, **kwargs)
        self.s3 = boto3.client("s3", endpoint_url=aws, **kwargs)
        self.opensearch = OpenSearch(hosts=[info["opensearch_endpoint"]], timeout=60)
        # the measured calls
        self.aws_endpoint = proxy.aws_endpoint if proxy else aws
        self.opensearch_endpoint = (
            proxy.opensearch_endpoint if proxy else info["opensearch_endpoint"]
        )
        self.msqs = boto3.client("sqs", endpoint_url=self.aws_endpoint, **kwargs)
        self.ms3 = boto3.client("s3", endpoint_url=self.aws_endpoint, **kwargs)
        self.msearch = OpenSearch(
            hosts=[self.opensearch_endpoint], timeout=60, pool_maxsize=threads * 2 + 4
        )
        self.made: list[tuple[str, str, str, str]] = []

    def fresh(
        self, label: str, total: int, objects: bool = False
    ) -> tuple[str, str, str, str, Any]:
        """A seeded DLQ + source queue, bucket and index: (dlq, source, bucket, index, scenario)."""
        name = f"dlqbench-{label}-{uuid.uuid4().hex[:8]}"
        dlq = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        source = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.info["region"]}
        )
        self.made.append((dlq, source, name, name))
        scenario = scenario_lib.build(name, total=total)
        started = time.monotonic()
        scenario_lib.seed(
            scenario,
            sqs=self.sqs,
            s3=self.s3,
            opensearch=self.opensearch,
            dlq_url=dlq,
            index=name,
            threads=8,
            objects=objects,
        )
        scenario_lib.wait_for(
            lambda: scenario_lib.depth(self.sqs, dlq) == (total, 0), 120, f"{total} seeded"
        )
        print(f"  seeded {label}: {total} messages in {time.monotonic() - started:.1f} s")
        return dlq, source, name, name, scenario

    def cleanup(self) -> None:
        """Delete what was made so far (after every phase: a full source queue left
        behind would slow the emulator down for the phases after it)."""
        made, self.made = self.made, []
        for dlq, source, bucket, index in made:
            for url in (dlq, source):
                try:
                    self.sqs.delete_queue(QueueUrl=url)
                except Exception as exc:  # noqa: BLE001 - best effort
                    print(f"cleanup: {url}: {exc}")
            try:
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                    if keys:
                        self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
                self.s3.delete_bucket(Bucket=bucket)
            except Exception as exc:  # noqa: BLE001 - best effort
                print(f"cleanup: {bucket}: {exc}")
            self.opensearch.indices.delete(index=index, ignore=[404])

    def indexer(self, index: str) -> Indexer:
        """The engine's indexer, on the measured OpenSearch endpoint."""
        return Indexer.for_endpoint(self.opensearch_endpoint, index)


Run = tuple[int, float, dict[str, int]]  # messages, seconds, outcome counts


def run_sequential(bench: Bench, limit: int, deadline: float) -> Run:
    """(a) one message at a time, as the original recover_dlq.py: redrive / archive / dedupe."""
    dlq, source, bucket, index, _ = bench.fresh("seq", limit)
    indexer = bench.indexer(index)
    counts = {"deduplicated": 0, "redriven": 0, "archived": 0}
    done = 0
    started = time.monotonic()
    while done < limit and time.monotonic() < deadline:
        raw = bench.msqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=1, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not raw:
            break
        message = DlqMessage(raw[0])
        try:
            events = parse_message(message.body)
        except PermanentError as exc:
            when = datetime.now(UTC)
            record = archive_record(message, str(exc), dlq, when)
            bench.ms3.put_object(
                Bucket=bucket,
                Key=archive_key(message.message_id, when),
                Body=json.dumps(record).encode(),
            )
            counts["archived"] += 1
        else:
            already = all(indexer.get(e.key) is not None for e in events)
            if already:
                counts["deduplicated"] += 1
            else:
                bench.msqs.send_message(QueueUrl=source, MessageBody=message.body)
                counts["redriven"] += 1
        bench.msqs.delete_message(QueueUrl=dlq, ReceiptHandle=message.receipt_handle)
        done += 1
    return done, time.monotonic() - started, counts


def _lanes(bench: Bench, lane: Any) -> float:
    """Run ``lane`` on bench.threads threads; the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(bench.threads) as pool:
        for future in [pool.submit(lane) for _ in range(bench.threads)]:
            future.result()
    return time.monotonic() - started


def run_bare(bench: Bench, total: int, deadline: float) -> Run:
    """(b) receive 10 / send batch / delete batch, no classification, on bench.threads threads."""
    dlq, source, _, _, _ = bench.fresh("bare", total)
    count = 0
    lock = threading.Lock()

    def lane() -> None:
        nonlocal count
        while time.monotonic() < deadline:
            raw = bench.msqs.receive_message(
                QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not raw:
                return
            bench.msqs.send_message_batch(
                QueueUrl=source,
                Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(raw)],
            )
            bench.msqs.delete_message_batch(
                QueueUrl=dlq,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(raw)
                ],
            )
            with lock:
                count += len(raw)

    seconds = _lanes(bench, lane)
    return count, seconds, {"moved": count}


def event_key(body: str) -> str | None:
    """The S3 key of a plain S3 notification, or None: the minimal parse of loop (c)."""
    try:
        return unquote_plus(json.loads(body)["Records"][0]["s3"]["object"]["key"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def run_batched(bench: Bench, total: int, deadline: float) -> Run:
    """(c) the engine's external calls per batch, without the engine: like for like."""
    dlq, source, bucket, index, _ = bench.fresh("batched", total)
    counts = {"deduplicated": 0, "redriven": 0, "archived": 0}
    lock = threading.Lock()
    io = ThreadPoolExecutor(max(2, bench.threads * 2), thread_name_prefix="archive")

    def archive(message: dict[str, Any]) -> None:
        body = json.dumps({"body": message["Body"], "reason": "unparseable"}).encode()
        key = f"dlq-archive/bench/{message['MessageId']}.json"
        bench.ms3.put_object(Bucket=bucket, Key=key, Body=body)

    def lane() -> None:
        while time.monotonic() < deadline:
            raw = bench.msqs.receive_message(
                QueueUrl=dlq,
                MaxNumberOfMessages=10,
                VisibilityTimeout=300,
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not raw:
                return
            keys = {m["MessageId"]: event_key(m["Body"]) for m in raw}
            wanted = list(dict.fromkeys(k for k in keys.values() if k is not None))
            found: set[str] = set()
            if wanted:
                docs = bench.msearch.mget(index=index, body={"ids": wanted}, _source=False)
                found = {str(d["_id"]) for d in docs.get("docs", []) if d.get("found")}
            poison = [m for m in raw if keys[m["MessageId"]] is None]
            send = [m for m in raw if (k := keys[m["MessageId"]]) is not None and k not in found]
            list(io.map(archive, poison))
            if send:
                attribute = {"DataType": "Number", "StringValue": "1"}  # as the engine's
                bench.msqs.send_message_batch(
                    QueueUrl=source,
                    Entries=[
                        {
                            "Id": str(i),
                            "MessageBody": m["Body"],
                            "MessageAttributes": {"dlq-recoveries": attribute},
                        }
                        for i, m in enumerate(send)
                    ],
                )
            bench.msqs.delete_message_batch(
                QueueUrl=dlq,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(raw)
                ],
            )
            with lock:
                counts["archived"] += len(poison)
                counts["redriven"] += len(send)
                counts["deduplicated"] += len(raw) - len(poison) - len(send)

    try:
        seconds = _lanes(bench, lane)
    finally:
        io.shutdown(wait=True)
    return sum(counts.values()), seconds, counts


def run_engine(bench: Bench, total: int, strategy: str, deadline: float) -> Run:
    """The engine: filesearch_worker.dlq.recover with classification, dedupe and archive."""
    dlq, source, bucket, index, _ = bench.fresh(strategy, total, objects=strategy == "reindex")
    indexer = bench.indexer(index)
    options = RecoveryOptions(strategy=strategy, threads=bench.threads, wait_time_seconds=1)
    settings = Settings(s3_bucket=bucket, concurrency=bench.threads * 2, metrics="off")
    stop = threading.Event()
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), stop.set)
    timer.start()
    started = time.monotonic()
    try:
        report = recover(
            settings,
            options,
            sqs=bench.msqs,
            s3=bench.ms3,
            indexer=indexer,
            dlq_url=dlq,
            source_queue_url=source,
            stop=stop,
        )
    finally:
        timer.cancel()
    elapsed = time.monotonic() - started
    settled = sum(v for k, v in report.counts.items() if k != "released")
    if settled != total or report.remaining:
        raise SystemExit(f"engine ({strategy}) left messages: {report.to_dict()}")
    return settled, elapsed, {str(k): v for k, v in report.counts.items() if v}


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # clean up the queues, buckets and indices on SIGTERM


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    latency.add_argument(parser)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--messages", type=int, default=None, help="per batched run (default 8158; aws 4000)"
    )
    parser.add_argument(
        "--sequential", type=int, default=None, help="messages for (a) (default 1000; aws 300)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--max-seconds", type=float, default=600, help="deadline per phase")
    parser.add_argument("--no-reindex", action="store_true", help="skip the reindex variant")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    mode = latency.resolve_mode(args.latency, os.environ)
    latency.apply_defaults(args, DEFAULTS[mode])
    info = stack_info()
    signal.signal(signal.SIGTERM, _interrupt)
    if mode == "none":
        return measure(args, mode, Bench(info, args.threads, None))
    with latency.PrivateProxy(info, latency.proxy_config()) as proxy:
        return measure(args, mode, Bench(info, args.threads, proxy))


def measure(args: argparse.Namespace, mode: str, bench: Bench) -> int:
    runs: dict[str, list[Run]] = {}
    counter = latency.PhaseCounter(bench.proxy)
    calibration: list[latency.Calibration] = []
    sequential = min(args.sequential, args.messages)
    started = time.monotonic()
    try:
        if bench.proxy is not None:
            dlq, _, bucket, index, _ = bench.fresh("probe", 10)
            calibration = latency.calibrate(
                bench.proxy,
                latency.probes(
                    (bench.sqs, bench.s3, bench.opensearch),
                    (bench.msqs, bench.ms3, bench.msearch),
                    dlq,
                    bucket,
                    index,
                ),
            )
            print("\n".join(latency.calibration_table(calibration)), flush=True)
            bench.cleanup()
        for round_no in range(1, args.rounds + 1):
            phases: list[tuple[str, int, Any, tuple[Any, ...]]] = [
                ("seq", sequential, run_sequential, (sequential,)),
                ("bare", args.messages, run_bare, (args.messages,)),
                ("batched", args.messages, run_batched, (args.messages,)),
                ("redrive", args.messages, run_engine, (args.messages, "redrive")),
            ]
            if not args.no_reindex:
                phases.append(("reindex", args.messages, run_engine, (args.messages, "reindex")))
            # every other round in reverse order, so no way always runs first or last
            for name, n, run, run_args in phases if round_no % 2 else phases[::-1]:
                deadline = time.monotonic() + args.max_seconds
                try:
                    result = counter.phase(SHORT[name], n, run, bench, *run_args, deadline)
                finally:
                    bench.cleanup()
                runs.setdefault(name, []).append(result)
            print(
                f"round {round_no}: "
                + ", ".join(f"{k} {v[-1][0] / v[-1][1]:.0f} msg/s" for k, v in runs.items()),
                flush=True,
            )
    finally:
        bench.cleanup()
    minutes = (time.monotonic() - started) / 60
    table = report(args, mode, runs, counter, calibration, minutes)
    print(table)
    if not args.no_append:
        machine = (
            f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {bench.info['aws_emulator']} + osmem-server, "
            f"load average {os.getloadavg()[0]:.1f} at the end"
        )
        command = "`.venv/bin/python bench/dlq_recovery.py " + " ".join(sys.argv[1:]) + "`"
        title = "DLQ recovery" + (", AWS latency model" if mode == "aws" else "")
        section = (
            f"\n### {title} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
            f"Command: {command.replace('py `', 'py`')}"
            + (f" (BENCH_LATENCY={mode})" if mode != "none" else "")
            + f"  \nMachine: {machine}\n\n{table}\n"
        )
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(section)
    return 0


def report(
    args: argparse.Namespace,
    mode: str,
    runs: dict[str, list[Run]],
    counter: latency.PhaseCounter,
    calibration: list[latency.Calibration],
    minutes: float,
) -> str:
    rate = {k: statistics.median(n / s for n, s, _ in v) for k, v in runs.items()}
    lines = []
    if mode == "aws":
        lines += latency.model_preamble(calibration)
    lines += [
        "| run | messages | seconds | msg/s | vs (a) | vs (b) | vs (c) | rounds (msg/s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, results in runs.items():
        r = rate[name]
        n = results[0][0]
        secs = statistics.median(s for _, s, _ in results)
        each = ", ".join(f"{m / s:.0f}" for m, s, _ in results)
        lines.append(
            f"| {LABELS[name].format(t=args.threads)} | {n} | {secs:.1f} | {r:.0f} "
            f"| {r / rate['seq']:.1f}x | {r / rate['bare']:.2f}x | {r / rate['batched']:.2f}x "
            f"| {each} |"
        )
    verdicts = []
    for row, base, factor in TARGETS[mode]:
        ratio = rate[row] / rate[base]
        verdicts.append(
            f"engine (redrive) / {LABELS[base].split(' ')[0]} = **{ratio:.2f}x** "
            f"(target >= {factor:g}x: {'met' if ratio >= factor else 'NOT met'})"
        )
    lines += [
        "",
        f"- median of {args.rounds} alternating rounds ({minutes:.1f} min in all); "
        + "; ".join(verdicts),
    ]
    for name, results in runs.items():
        lines.append(f"- {name} counts (round 1): {results[0][2]}")
    if counter.calls:
        lines += ["", *counter.lines()]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
