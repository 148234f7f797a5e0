"""A bad-input corpus through one real worker: every message settled with a specific reason.

The worker keeps running throughout; permanent failures land in the DLQ with
their ``error-type``; awkward-but-valid input (odd keys, empty, huge, corrupt or
binary files) is indexed, metadata-only where text cannot be had.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from worker_it_helpers import drain_dlq, queue_counts, s3_event_body, send, wait_until

pytestmark = pytest.mark.sandbox


def record_body(bucket: str, raw_key: str, **changes: Any) -> str:
    """An S3 event with a raw (already encoded) key and changed record fields."""
    record = json.loads(s3_event_body(bucket, "x"))["Records"][0]
    record["s3"]["object"]["key"] = raw_key
    record.update(changes)
    return json.dumps({"Records": [record]})


def test_bad_input_corpus(
    stack: Any, sqs: Any, s3: Any, opensearch: Any, start_worker: Any
) -> None:
    bucket = stack.bucket
    put = lambda key, body: s3.put_object(Bucket=bucket, Key=key, Body=body)  # noqa: E731
    put("my file.txt", b"spaces")
    put("a+b.txt", b"plus")
    put("100% done.txt", b"percent")
    put("日本語/資料.txt", "社内資料".encode("cp932"))
    put("empty.txt", b"")
    put("big.txt", b"x" * 10_000)
    put("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage")
    put("broken.docx", b"PK\x03\x04 not really a zip")
    put("blob.txt", bytes(range(256)) * 8)
    put("blob.bin", bytes(range(256)) * 8)
    put("sns.txt", b"via sns")
    put("eb.txt", b"via eventbridge")
    opensearch.index(index=stack.index, id="old/removed.txt", body={"file_key": "old/removed.txt"})

    # (body, expected outcome, expected reason)
    corpus: list[tuple[str, str, str]] = [
        ("this is not json", "dead_lettered", "invalid-json"),
        (" ", "dead_lettered", "empty-body"),
        ("[1, 2, 3]", "dead_lettered", "not-an-object"),
        ("{}", "dead_lettered", "missing-records"),
        ('{"Records": []}', "dead_lettered", "missing-records"),
        (json.dumps({"junk": "x" * 200_000}), "dead_lettered", "missing-records"),
        ("[" * 40_000 + "]" * 40_000, "dead_lettered", "invalid-json"),
        (
            record_body(bucket, "k.txt", eventName="ObjectRestore:Completed"),
            "dead_lettered",
            "unsupported-event",
        ),
        (
            record_body(bucket, "k.txt", eventSource="aws:dynamodb"),
            "dead_lettered",
            "unsupported-event-source",
        ),
        (record_body(bucket, ""), "dead_lettered", "malformed-record"),
        (record_body(bucket, "bad%FF%FE.txt"), "dead_lettered", "malformed-key"),
        (json.dumps({"Type": "Notification", "Message": "{oops"}), "dead_lettered", "invalid-json"),
        (s3_event_body(bucket, "never/uploaded.txt"), "dead_lettered", "object-not-found"),
        (s3_event_body(f"{bucket}-nope", "x.txt"), "dead_lettered", "bucket-not-found"),
        (
            json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket}),
            "acknowledged",
            "test-event",
        ),
        (s3_event_body(bucket, "my file.txt"), "indexed", ""),
        (record_body(bucket, "a%2Bb.txt"), "indexed", ""),
        (s3_event_body(bucket, "100% done.txt"), "indexed", ""),
        (s3_event_body(bucket, "日本語/資料.txt"), "indexed", ""),
        (s3_event_body(bucket, "empty.txt"), "indexed", "empty-file"),
        (s3_event_body(bucket, "big.txt"), "indexed", "file-too-large"),
        (s3_event_body(bucket, "broken.pdf"), "indexed", "corrupt-pdf"),
        (s3_event_body(bucket, "broken.docx"), "indexed", "corrupt-docx"),
        (s3_event_body(bucket, "blob.txt"), "indexed", "binary-content"),
        (s3_event_body(bucket, "blob.bin"), "indexed", ""),
        (
            json.dumps({"Type": "Notification", "Message": s3_event_body(bucket, "sns.txt")}),
            "indexed",
            "",
        ),
        (
            json.dumps(
                {
                    "detail-type": "Object Created",
                    "source": "aws.s3",
                    "time": "2026-01-01T00:00:00Z",
                    "detail": {"bucket": {"name": bucket}, "object": {"key": "eb.txt"}},
                }
            ),
            "indexed",
            "",
        ),
        (s3_event_body(bucket, "old/removed.txt", "ObjectRemoved:Delete"), "removed", "removed"),
    ]
    assert len(corpus) >= 20
    expected = {send(sqs, stack.queue_url, body): (o, r) for body, o, r in corpus}
    worker = start_worker(stack.env, WORKER_MAX_FILE_BYTES="4096")
    settled = worker.wait_settled(len(corpus), timeout=90)
    got = {line["message_id"]: (line["outcome"], line["reason"]) for line in settled}
    assert got == expected
    assert worker.proc.poll() is None  # still running after all of it
    wait_until(lambda: queue_counts(sqs, stack.queue_url) == (0, 0), 20, "an empty queue")
    dead = drain_dlq(sqs, stack.dlq_url)
    dead_types = sorted(m["MessageAttributes"]["error-type"]["StringValue"] for m in dead)
    assert dead_types == sorted(r for _, o, r in corpus if o == "dead_lettered")
    # keys decoded exactly; Japanese text decoded from Shift_JIS
    for key in ("my file.txt", "a+b.txt", "100% done.txt", "sns.txt", "eb.txt"):
        assert opensearch.exists(index=stack.index, id=key), key
    doc = opensearch.get(index=stack.index, id="日本語/資料.txt")["_source"]
    assert doc["content"] == "社内資料"
    big = opensearch.get(index=stack.index, id="big.txt")["_source"]
    assert big["metadata_only"] is True and big["file_size"] == 10_000
    assert not opensearch.exists(index=stack.index, id="old/removed.txt")
    assert worker.stop() == 0
