#!/usr/bin/env python3
"""DLQ recovery of the incident's 8,158 messages on the local stack, side by side in one run.

    .venv/bin/python bench/dlq_recovery.py [--threads 4] [--messages 8158] [--sequential 1000]

Three ways through the same DLQ mix (bench/dlq_scenario.py: already indexed,
recoverable, poison), each on a freshly seeded unique queue pair:

  (a) sequential: the original recover_dlq.py approach, one message at a time:
      receive 1 -> parse -> look it up (get by id) -> send back / archive -> delete 1
      (run on the first --sequential messages; its rate is what counts);
  (b) bare: receive 10 / send_message_batch / delete_message_batch on --threads
      threads, no classification at all: the emulator's own limit;
  (c) engine: filesearch_worker.dlq (strategy redrive, and strategy reindex),
      classification, multi-get dedupe and archive included, --threads threads.

Prints a table and appends it, with the command and machine, to docs/benchmarks.md
(unless --no-append). Needs the local stack (make sandbox-up); creates and deletes
its own queues, bucket and indices.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def stack_info() -> dict[str, Any]:
    stack_file = Path(os.environ.get("SANDBOX_DIR") or REPO / ".sandbox") / "stack.json"
    if not stack_file.exists():
        sys.exit(f"no {stack_file}: start the local stack first (make sandbox-up)")
    data: dict[str, Any] = json.loads(stack_file.read_text())
    return data


class Bench:
    """Clients and per-variant resources."""

    def __init__(self, info: dict[str, Any], threads: int) -> None:
        self.info = info
        self.threads = threads
        env = info["env"]
        config = Config(
            retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=threads * 4 + 10
        )
        kwargs = {
            "endpoint_url": info["aws_endpoint"],
            "region_name": info["region"],
            "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "config": config,
        }
        self.sqs = boto3.client("sqs", **kwargs)
        self.s3 = boto3.client("s3", **kwargs)
        self.opensearch = OpenSearch(hosts=[info["opensearch_endpoint"]], timeout=60)
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
        for dlq, source, bucket, index in self.made:
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
        return Indexer.for_endpoint(self.info["opensearch_endpoint"], index)


def run_sequential(bench: Bench, limit: int) -> tuple[int, float]:
    """(a) one message at a time, as the original recover_dlq.py: redrive / archive / dedupe."""
    dlq, source, bucket, index, _ = bench.fresh("seq", limit)
    indexer = bench.indexer(index)
    done = 0
    started = time.monotonic()
    while done < limit:
        raw = bench.sqs.receive_message(
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
            bench.s3.put_object(
                Bucket=bucket,
                Key=archive_key(message.message_id, when),
                Body=json.dumps(record).encode(),
            )
        else:
            already = all(indexer.get(e.key) is not None for e in events)
            if not already:
                bench.sqs.send_message(QueueUrl=source, MessageBody=message.body)
        bench.sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message.receipt_handle)
        done += 1
    return done, time.monotonic() - started


def run_bare(bench: Bench, total: int) -> tuple[int, float]:
    """(b) receive 10 / send batch / delete batch, no classification, on bench.threads threads."""
    dlq, source, _, _, _ = bench.fresh("bare", total)
    count = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal count
        while True:
            raw = bench.sqs.receive_message(
                QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not raw:
                return
            bench.sqs.send_message_batch(
                QueueUrl=source,
                Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(raw)],
            )
            bench.sqs.delete_message_batch(
                QueueUrl=dlq,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(raw)
                ],
            )
            with lock:
                count += len(raw)

    started = time.monotonic()
    with ThreadPoolExecutor(bench.threads) as pool:
        for future in [pool.submit(worker) for _ in range(bench.threads)]:
            future.result()
    return count, time.monotonic() - started


def run_engine(bench: Bench, total: int, strategy: str) -> tuple[int, float, dict[str, int]]:
    """(c) filesearch_worker.dlq with classification, dedupe and archive."""
    dlq, source, bucket, index, _ = bench.fresh(strategy, total, objects=strategy == "reindex")
    indexer = bench.indexer(index)
    options = RecoveryOptions(strategy=strategy, threads=bench.threads, wait_time_seconds=1)
    settings = Settings(s3_bucket=bucket, concurrency=bench.threads * 2, metrics="off")
    started = time.monotonic()
    report = recover(
        settings,
        options,
        sqs=bench.sqs,
        s3=bench.s3,
        indexer=indexer,
        dlq_url=dlq,
        source_queue_url=source,
    )
    elapsed = time.monotonic() - started
    settled = sum(v for k, v in report.counts.items() if k != "released")
    if settled != total or report.remaining:
        raise SystemExit(f"engine ({strategy}) left messages: {report.to_dict()}")
    return settled, elapsed, report.counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--messages", type=int, default=scenario_lib.SEED_TOTAL)
    parser.add_argument("--sequential", type=int, default=1000, help="messages for (a)")
    parser.add_argument("--no-reindex", action="store_true", help="skip the reindex variant")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    bench = Bench(stack_info(), args.threads)
    rows: list[tuple[str, int, float]] = []
    notes: list[str] = []
    try:
        n, secs = run_sequential(bench, min(args.sequential, args.messages))
        rows.append(("(a) sequential, one message at a time (original script)", n, secs))
        n, secs = run_bare(bench, args.messages)
        rows.append((f"(b) bare batched receive/send/delete, {args.threads} threads", n, secs))
        n, secs, counts = run_engine(bench, args.messages, "redrive")
        rows.append((f"engine, strategy redrive, {args.threads} threads", n, secs))
        notes.append(f"redrive counts: {counts}")
        if not args.no_reindex:
            n, secs, counts = run_engine(bench, args.messages, "reindex")
            rows.append((f"engine, strategy reindex, {args.threads} threads", n, secs))
            notes.append(f"reindex counts: {counts}")
    finally:
        bench.cleanup()

    rate = {label: n / secs for label, n, secs in rows}
    seq = rows[0][1] / rows[0][2]
    bare = rows[1][1] / rows[1][2]
    lines = [
        "| run | messages | seconds | msg/s | vs (a) | vs (b) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, n, secs in rows:
        r = rate[label]
        lines.append(f"| {label} | {n} | {secs:.1f} | {r:.0f} | {r / seq:.1f}x | {r / bare:.2f}x |")
    table = "\n".join(lines)
    print(table)
    for note in notes:
        print(note)
    if not args.no_append:
        machine = (
            f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {bench.info['aws_emulator']} + osmem-server, "
            f"load average {os.getloadavg()[0]:.1f} at the end"
        )
        command = "`.venv/bin/python bench/dlq_recovery.py " + " ".join(sys.argv[1:]) + "`"
        section = (
            f"\n### DLQ recovery ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
            f"Command: {command.replace('py `', 'py`')}  \nMachine: {machine}\n\n"
            f"{table}\n\n"
            + "".join(f"- {note}\n" for note in notes)
            + "- targets: engine >= 10x (a) "
            "and >= 0.8x (b), classification, dedupe and archive included\n"
        )
        with (REPO / "docs" / "benchmarks.md").open("a", encoding="utf-8") as out:
            out.write(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
