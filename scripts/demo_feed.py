#!/usr/bin/env python3
"""`make demo`'s middle part: upload sample files, send their S3 events, find them.

Makes a few small files (txt, md, csv, html; Japanese and space-containing
names), uploads them to the sandbox bucket, sends the S3 event notification of
each to the index queue the deployed workers consume, waits until OpenSearch
has every one of them, then shows a full-text query and what it found.

Reads the sandbox's endpoints from ``$SANDBOX_DIR/stack.json`` (default
``.sandbox/stack.json``); talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from opensearchpy import OpenSearch

from filesearch_worker.events import s3_event_body

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]

SAMPLES: dict[str, str] = {
    "議事録 2026-11-23.txt": "定例会議の議事録。インデックスの再構築と"
    "デッドレターキューの回復について。",
    "release notes.md": "# Release notes\n\nThe worker now settles every message: "
    "indexed, retried or dead-lettered.",
    "在庫 一覧.csv": "品番,名称,数量\nA-100,ボルト,1200\nB-200,ナット,800\n",
    "index page.html": "<html><body><h1>File search</h1>"
    "<p>Quarterly report 報告書 archive</p></body></html>",
    "報告書.txt": "四半期報告書: SQS キューの滞留はゼロ、DLQ は空です。",
}


def _stack() -> dict[str, Any]:
    state = Path(os.environ.get("SANDBOX_DIR", REPO / ".sandbox"))
    path = state / "stack.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: start the local stack first (make sandbox-up)")
    return dict(json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    """Upload, send, wait, query; exit non-zero if a file is not indexed in time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for indexing")
    parser.add_argument("--query", default="報告書", help="full-text query to show")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("opensearch").setLevel(logging.WARNING)

    stack = _stack()
    env = stack["env"]
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=stack["region"],
    )
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    s3 = session.client("s3", endpoint_url=stack["aws_endpoint"], config=config)
    sqs = session.client("sqs", endpoint_url=stack["aws_endpoint"], config=config)
    search = OpenSearch(hosts=[stack["opensearch_endpoint"]], timeout=10)
    index = stack["opensearch_index"]

    run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    keys = []
    for name, text in SAMPLES.items():
        key = f"demo/{run}/{name}"
        body = text.encode()
        s3.put_object(Bucket=stack["bucket"], Key=key, Body=body)
        sqs.send_message(
            QueueUrl=stack["queue_url"],
            MessageBody=s3_event_body(stack["bucket"], key, size=len(body), region=stack["region"]),
        )
        keys.append(key)
        log.info("  uploaded s3://%s/%s and sent its event", stack["bucket"], key)

    log.info("Waiting for the workers to index %d files ...", len(keys))
    deadline = time.monotonic() + args.timeout
    missing = list(keys)
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        if search.indices.exists(index=index):
            docs = search.mget(index=index, body={"ids": missing})["docs"]
            missing = [d["_id"] for d in docs if not d.get("found")]
    if missing:
        log.error("Not indexed after %.0f s: %s", args.timeout, missing)
        return 1
    log.info("All %d files indexed.", len(keys))

    search.indices.refresh(index=index)
    query = {"query": {"multi_match": {"query": args.query, "fields": ["*"]}}, "size": 10}
    hits = search.search(index=index, body=query)["hits"]["hits"]
    log.info('OpenSearch query "%s" on index %s:', args.query, index)
    for hit in hits:
        log.info("  %s", hit["_id"])
    if not any(h["_id"] in keys for h in hits):
        log.warning("  (none of this run's files matched; the query engine may not tokenise it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
