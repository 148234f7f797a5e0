#!/usr/bin/env python3
"""Archive every message of an SQS queue to S3, then (separately) purge the queue.

Used by playbooks/purge_queue.yml, which runs it on the control node in two
phases with an independent check of the archive in between:

``archive``
    Receives every message (all attributes) with a visibility timeout long
    enough for the whole operation, writes each one once to
    ``s3://BUCKET/PREFIX/YYYY-MM-DD/<message-id>.json`` and keeps it in flight
    (it is never deleted one by one). Receiving continues until the queue shows
    no visible message, so messages sent while the archive runs are archived
    too. Prints a JSON summary with the archived message ids.
``purge``
    Refuses when the queue holds more than the archived messages (new visible
    or delayed ones, or messages in flight with other consumers: stop the
    workers first), else calls PurgeQueue (which removes the in-flight messages
    as well) and prints the queue counts seen just before.

Endpoints for emulators come from boto3's own ``AWS_ENDPOINT_URL``; retries use
botocore's ``standard`` mode.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
_COUNT_ATTRIBUTES = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


class PurgeError(Exception):
    """A failure that stops the operation before anything is lost."""


def _counts(sqs: Any, queue_url: str) -> dict[str, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=_COUNT_ATTRIBUTES)[
        "Attributes"
    ]
    return {
        "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
    }


def _queue_url(session: boto3.session.Session, queue: str) -> str:
    """The queue's URL from a URL, name or ARN (the worker's ``resolve_queue_url``)."""
    try:
        from filesearch_worker.queue_status import resolve_queue_url
    except ImportError as exc:
        raise PurgeError(
            "the worker package is not installed on the control node "
            "(pip install -e files/worker, as `make venv` does); nothing was done"
        ) from exc
    try:
        return resolve_queue_url(session.client("sqs", config=_CONFIG), queue)
    except ValueError as exc:
        raise PurgeError(f"{exc}; nothing was done") from exc


def _record(queue_url: str, message: dict[str, Any], archived_at: str) -> dict[str, Any]:
    return {
        "message_id": message["MessageId"],
        "queue_url": queue_url,
        "body": message.get("Body", ""),
        "md5_of_body": message.get("MD5OfBody"),
        "attributes": message.get("Attributes", {}),
        "message_attributes": message.get("MessageAttributes", {}),
        "reason": "purge",
        "archived_at": archived_at,
    }


def archive(args: argparse.Namespace, session: boto3.session.Session) -> dict[str, Any]:
    """Receive and archive every message; return the summary."""
    sqs = session.client("sqs", config=_CONFIG)
    s3 = session.client("s3", config=_CONFIG)
    prefix = f"{args.prefix.strip('/')}/{args.date}/"
    archived: list[str] = []
    seen: set[str] = set()
    before = _counts(sqs, args.queue_url)
    pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="archive")
    try:
        after = _archive_rounds(args, sqs, s3, pool, prefix, archived, seen)
    finally:
        pool.shutdown(wait=True)
    return {
        "phase": "archive",
        "queue_url": args.queue_url,
        "bucket": args.bucket,
        "prefix": prefix,
        "counts_before": before,
        "counts_after": after,
        "archived": len(archived),
        "message_ids": archived,
    }


def _archive_rounds(
    args: argparse.Namespace,
    sqs: Any,
    s3: Any,
    pool: ThreadPoolExecutor,
    prefix: str,
    archived: list[str],
    seen: set[str],
) -> dict[str, int]:
    """Receive until the queue shows nothing visible; archive each new message once."""
    rounds = 0
    while True:
        rounds += 1
        empty_receives = 0
        while empty_receives < args.empty_receives:
            response = sqs.receive_message(
                QueueUrl=args.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=args.visibility_timeout,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                empty_receives += 1
                continue
            empty_receives = 0
            now = datetime.now(UTC).isoformat()
            fresh = []
            for message in messages:
                message_id = message["MessageId"]
                if message_id in seen:
                    continue  # received again: already archived
                if len(seen) >= args.max_messages:
                    raise PurgeError(
                        f"more than {args.max_messages} messages on the queue; raise "
                        "purge_queue_max_messages to archive them all (nothing was purged)"
                    )
                seen.add(message_id)
                fresh.append(message)

            def put(message: dict[str, Any], stamp: str = now) -> str:
                s3.put_object(
                    Bucket=args.bucket,
                    Key=f"{prefix}{message['MessageId']}.json",
                    Body=json.dumps(_record(args.queue_url, message, stamp), ensure_ascii=False),
                    ContentType="application/json",
                    Metadata={"queue-url": args.queue_url, "archived-at": stamp},
                )
                return str(message["MessageId"])

            # the writes of one batch in parallel; any failure propagates (nothing purged)
            archived.extend(pool.map(put, fresh))
        after = _counts(sqs, args.queue_url)
        if after["visible"] == 0 and after["delayed"] == 0:
            return after
        if rounds >= args.max_rounds:
            raise PurgeError(
                f"messages keep arriving ({after['visible']} visible, {after['delayed']} delayed "
                f"after {rounds} rounds); stop the producers first (nothing was purged)"
            )


def purge(args: argparse.Namespace, session: boto3.session.Session) -> dict[str, Any]:
    """PurgeQueue; return the counts seen just before."""
    sqs = session.client("sqs", config=_CONFIG)
    before = _counts(sqs, args.queue_url)
    unarchived = before["visible"] + before["delayed"] + max(0, before["in_flight"] - args.expected)
    if unarchived > 0:
        raise PurgeError(
            f"the queue holds messages that were not archived ({before['visible']} visible, "
            f"{before['delayed']} delayed, {before['in_flight']} in flight for "
            f"{args.expected} archived): stop the producers and the workers, then run again "
            "(nothing was purged)"
        )
    sqs.purge_queue(QueueUrl=args.queue_url)
    return {"phase": "purge", "queue_url": args.queue_url, "counts_before": before}


def main(argv: list[str] | None = None) -> int:
    """Entry point: print one JSON object; exit 0 on success, 1 on a clear error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["archive", "purge"])
    parser.add_argument("--queue-name", required=True, help="queue name (or its URL or ARN)")
    parser.add_argument("--region", required=True)
    parser.add_argument("--bucket", default="")
    parser.add_argument("--prefix", default="purge-archive")
    parser.add_argument("--date", default=datetime.now(UTC).strftime("%Y-%m-%d"))
    parser.add_argument("--visibility-timeout", type=int, default=900)
    parser.add_argument("--max-messages", type=int, default=100_000)
    parser.add_argument("--empty-receives", type=int, default=2)
    parser.add_argument("--max-rounds", type=int, default=5)
    parser.add_argument(
        "--expected", type=int, default=0, help="purge: messages archived and held in flight"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.phase == "archive" and not args.bucket:
        parser.error("--bucket is required for the archive phase")
    session = boto3.session.Session(region_name=args.region)
    try:
        args.queue_url = _queue_url(session, args.queue_name)
        result = archive(args, session) if args.phase == "archive" else purge(args, session)
    except PurgeError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(
            json.dumps(
                {
                    "failed": True,
                    "msg": f"{error.get('Code', 'ClientError')}: {error.get('Message', exc)}",
                    "error_code": error.get("Code"),
                }
            )
        )
        return 1
    except BotoCoreError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
