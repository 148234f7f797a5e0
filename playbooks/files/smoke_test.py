#!/usr/bin/env python3
"""Controller-side steps of playbooks/smoke_test.yml that no Ansible module covers.

Sub-commands (each prints one JSON object; exit 0 on success, 1 with ``msg``):

``send``
    Sends one S3 ``ObjectCreated:Put`` notification per key to the queue, as S3
    itself sends them (key URL-encoded), and returns the message ids.
``wait-indexed``
    Polls OpenSearch until a document with id = S3 key exists for every key
    (the worker's own client and auth: ``filesearch_worker.index``), then
    checks each document names its key.
``check-logs``
    Reads the workers' journal lines (stdin): every line must parse as JSON, and
    each sent message id must have a ``settled`` event whose outcome deleted it
    (``indexed``, no ``delete_failed``).
``wait-metrics``
    Polls CloudWatch until ``MessagesSucceeded`` in the worker's namespace sums
    to at least N since a start time (list_metrics + get_metric_statistics).
``delete-docs``
    Deletes the test documents from the index (404 counts as deleted).

Endpoints for emulators come from boto3's own ``AWS_ENDPOINT_URL``; retries use
botocore's ``standard`` mode.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
# the smoke test needs the documents indexed: a retry-stored message is deleted but not indexed
DELETED_OUTCOMES = ("indexed",)


_NO_WORKER = (
    "the worker package is not installed on the control node "
    "(pip install -e files/worker, as `make venv` does)"
)


class SmokeError(Exception):
    """A check that did not pass, with what was seen."""


def send(args: argparse.Namespace) -> dict[str, Any]:
    """One S3 event per key (``events.s3_event_body``); returns key -> message id."""
    try:
        from filesearch_worker.events import s3_event_body
    except ImportError as exc:
        raise SmokeError(_NO_WORKER) from exc
    sqs = boto3.session.Session(region_name=args.region).client("sqs", config=_CONFIG)
    sent: dict[str, str] = {}
    for key in args.keys:
        body = s3_event_body(
            args.bucket, key, size=args.size, region=args.region, configuration_id="smoke-test"
        )
        sent[key] = sqs.send_message(QueueUrl=args.queue_url, MessageBody=body)["MessageId"]
    return {"sent": len(sent), "message_ids": sent}


def _indexer(args: argparse.Namespace) -> Any:
    try:
        from filesearch_worker.config import resolve_opensearch_auth
        from filesearch_worker.index import Indexer
    except ImportError as exc:
        raise SmokeError(_NO_WORKER) from exc
    auth = resolve_opensearch_auth(args.auth, args.endpoint)
    return Indexer.for_endpoint(args.endpoint, args.index, auth=auth, region=args.region)


def wait_indexed(args: argparse.Namespace) -> dict[str, Any]:
    """Wait until every key's document exists; check each names its key."""
    indexer = _indexer(args)
    wanted = list(args.keys)
    deadline = time.monotonic() + args.timeout
    found: set[str] = set()
    last_error = ""
    while True:
        try:
            found = indexer.existing_ids(wanted)
            last_error = ""
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last_error = f"{type(exc).__name__}: {exc}"
        if len(found) == len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(args.interval)
    missing = [k for k in wanted if k not in found]
    if missing:
        raise SmokeError(
            f"{len(missing)} of {len(wanted)} documents not indexed after {args.timeout:.0f}s "
            f"in {args.index}: {missing}" + (f" (last error: {last_error})" if last_error else "")
        )
    wrong = [key for key in wanted if key not in _strings(indexer.get(key) or {})]
    if wrong:
        raise SmokeError(f"documents found but not naming their S3 key: {wrong}")
    return {"indexed": len(wanted), "index": args.index}


def _strings(value: Any) -> set[str]:
    """Every string value inside a JSON document."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _parse(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    parsed: list[dict[str, Any]] = []
    bad: list[str] = []
    for line in lines:
        text = line.strip()
        if not text:
            continue
        try:
            value = json.loads(text)
        except ValueError:
            bad.append(text[:200])
            continue
        if isinstance(value, dict):
            parsed.append(value)
        else:
            bad.append(text[:200])
    return parsed, bad


def check_logs(args: argparse.Namespace) -> dict[str, Any]:
    """Every journal line is JSON; every sent message was settled and deleted."""
    events, bad = _parse(sys.stdin)
    if bad:
        raise SmokeError(f"{len(bad)} journal line(s) are not JSON objects, e.g. {bad[:3]}")
    settled: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("event") == "settled" and event.get("message_id"):
            settled[str(event["message_id"])] = event
    problems = []
    for message_id in args.message_ids:
        event = settled.get(message_id)
        if event is None:
            problems.append(f"{message_id}: no 'settled' event")
        elif event.get("outcome") not in DELETED_OUTCOMES or event.get("delete_failed"):
            problems.append(
                f"{message_id}: outcome {event.get('outcome')!r}"
                f"{' (delete failed)' if event.get('delete_failed') else ''}"
                f" reason {event.get('reason')!r}"
            )
    if problems:
        raise SmokeError("messages not settled as deleted: " + "; ".join(problems))
    return {
        "lines": len(events),
        "settled": {m: settled[m].get("outcome") for m in args.message_ids},
    }


def wait_metrics(args: argparse.Namespace) -> dict[str, Any]:
    """Wait until MessagesSucceeded sums to at least ``--minimum`` since ``--since``."""
    cloudwatch = boto3.session.Session(region_name=args.region).client("cloudwatch", config=_CONFIG)
    since = datetime.fromisoformat(args.since.replace("Z", "+00:00")) - timedelta(minutes=1)
    deadline = time.monotonic() + args.timeout
    total = 0.0
    names: list[str] = []
    while True:
        listed = cloudwatch.list_metrics(Namespace=args.namespace, MetricName=args.metric)
        dimension_sets = [m.get("Dimensions", []) for m in listed.get("Metrics", [])]
        names = sorted({m["MetricName"] for m in listed.get("Metrics", [])})
        total = 0.0
        for dimensions in dimension_sets:
            stats = cloudwatch.get_metric_statistics(
                Namespace=args.namespace,
                MetricName=args.metric,
                Dimensions=dimensions,
                StartTime=since,
                EndTime=datetime.now(UTC) + timedelta(minutes=1),
                Period=60,
                Statistics=["Sum"],
            )
            total += sum(p.get("Sum", 0.0) for p in stats.get("Datapoints", []))
        if total >= args.minimum or time.monotonic() > deadline:
            break
        time.sleep(args.interval)
    if total < args.minimum:
        raise SmokeError(
            f"{args.namespace}/{args.metric} sums to {total:g} since {args.since}, expected at "
            f"least {args.minimum} after {args.timeout:.0f}s (metrics found: {names or 'none'})"
        )
    return {"namespace": args.namespace, "metric": args.metric, "sum": total}


def delete_docs(args: argparse.Namespace) -> dict[str, Any]:
    """Delete the test documents; returns how many were removed."""
    indexer = _indexer(args)
    present = indexer.existing_ids(args.keys)
    for key in present:
        indexer.delete(key)
    left = indexer.existing_ids(args.keys)
    if left:
        raise SmokeError(f"test documents still in {args.index}: {sorted(left)}")
    return {"deleted": len(present)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("send")
    p.add_argument("--queue-url", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--size", type=int, default=0)
    p.add_argument("keys", nargs="+")

    for name in ("wait-indexed", "delete-docs"):
        p = sub.add_parser(name)
        p.add_argument("--endpoint", required=True)
        p.add_argument("--index", required=True)
        p.add_argument("--auth", default="auto", choices=["auto", "sigv4", "none"])
        p.add_argument("--timeout", type=float, default=120)
        p.add_argument("--interval", type=float, default=1.0)
        p.add_argument("keys", nargs="+")

    p = sub.add_parser("check-logs")
    p.add_argument("message_ids", nargs="+")

    p = sub.add_parser("wait-metrics")
    p.add_argument("--namespace", required=True)
    p.add_argument("--metric", default="MessagesSucceeded")
    p.add_argument("--since", required=True, help="ISO 8601 UTC start of the test")
    p.add_argument("--minimum", type=float, required=True)
    p.add_argument("--timeout", type=float, default=180)
    p.add_argument("--interval", type=float, default=5.0)
    return parser


COMMANDS = {
    "send": send,
    "wait-indexed": wait_indexed,
    "check-logs": check_logs,
    "wait-metrics": wait_metrics,
    "delete-docs": delete_docs,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: print one JSON object; exit 0 on success, 1 with ``msg``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        result = COMMANDS[args.command](args)
    except SmokeError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}, ensure_ascii=False))
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(json.dumps({"failed": True, "msg": f"AWS: {exc}"}, ensure_ascii=False))
        return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
