#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module sqs_stress_test: a bounded load test of the worker fleet, and its cleanup."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sqs_stress_test
short_description: Send a bounded synthetic load through the workers and measure it, or remove it
description:
  - The runbook's monthly queue stress test in SQS terms (C(playbooks/stress_test.yml) drives it).
  - O(state=run) uploads O(count) synthetic text files under C(<prefix><run_id>/) to O(bucket),
    sends one S3 C(ObjectCreated:Put) event per file to O(queue) and waits - at most O(timeout)
    seconds - until each file's document is in the OpenSearch index (document id = S3 key) or
    its entry is in the retry store (C(retry-index/YYYY-MM-DD/<key>.json)). It returns the
    processing rate, the error rate (every file not indexed counts as an error) and a table.
  - O(state=cleanup) removes everything a run created - the files, their documents, their
    retry-store entries and their messages left in the DLQ (and, with O(scan_queue=true), in the
    queue). Other messages met during the scan are made visible again at once. Run it always,
    also after a failed run (the playbook does, in an C(always) section).
  - Needs the C(filesearch_worker) package (its OpenSearch client), so it runs on the control
    node's project venv.
version_added: "1.0.0"
author:
  - filesearch-ops contributors
options:
  state:
    description: C(run) the load, or C(cleanup) what a run with the same O(run_id) created.
    type: str
    choices: [run, cleanup]
    default: run
  run_id:
    description:
      - Identifies one test; every object key, document id and message of the test contains
        C(<prefix><run_id>/). Letters, digits, C(.), C(_) and C(-) only.
    type: str
    required: true
  queue:
    description:
      - Name, URL or ARN of the queue the workers consume.
      - Required with O(state=run) and with O(scan_queue=true).
    type: str
  dlq:
    description:
      - Name, URL or ARN of its dead-letter queue, scanned for the test's messages on cleanup.
    type: str
  bucket:
    description: Bucket of the uploads and of the workers' retry store (their C(S3_BUCKET)).
    type: str
    required: true
  prefix:
    description: Key prefix of the test files (ends with C(/)).
    type: str
    default: stress-test/
  count:
    description: Number of files and events (1-10000).
    type: int
    default: 100
  size_bytes:
    description: Size of each synthetic text file in bytes (16-1048576).
    type: int
    default: 2048
  timeout:
    description: Seconds to wait for the files after the last event is sent (1-3600).
    type: int
    default: 300
  opensearch_endpoint:
    description: URL of the OpenSearch domain the workers index into.
    type: str
    required: true
  opensearch_index:
    description: The workers' C(OPENSEARCH_INDEX).
    type: str
    required: true
  opensearch_auth:
    description:
      - C(auto) is C(sigv4) for an Amazon OpenSearch Service domain (hostname C(*.es.amazonaws.com),
        C(*.es.amazonaws.com.cn) or C(*.aos.<region>.on.aws)) and C(none) otherwise; or C(sigv4),
        C(none).
      - C(sigv4) signs with the task's AWS credentials (O(access_key)/O(secret_key)/O(session_token)
        or O(profile), else boto3's credential chain) for O(region).
    type: str
    choices: [auto, sigv4, none]
    default: auto
  scan_queue:
    description:
      - On cleanup, also scan O(queue) for the test's messages (after a run that timed out with
        messages still unprocessed). Scanning receives messages the workers would otherwise get;
        the others are made visible again at once.
    type: bool
    default: false
  scan_batches:
    description: Receive calls (10 messages each) per scanned queue on cleanup, at most.
    type: int
    default: 50
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: partial
    description: Nothing is uploaded, sent, received, released or deleted in check mode.
    details:
      - O(state=run) returns the plan (C(changed=true)) and touches nothing.
      - O(state=cleanup) only reads - it lists the run's objects and retry-store entries and looks
        its documents up in the index, and returns their counts in RV(would_remove).
      - It does not look into O(queue) or O(dlq) - SQS can only show a message by receiving it,
        which would raise its C(ApproximateReceiveCount) and hide it from the workers - so the
        run's messages left there are not counted, and C(changed) is true only when objects,
        retry-store entries or documents are left.
  diff_mode:
    support: none
    description: No diff.
requirements:
  - python >= 3.11
  - boto3
  - filesearch-worker (pip install files/worker)
notes:
  - Bounded in count (O(count) <= 10000) and time (O(timeout) <= 3600 s plus the upload).
  - The rate is measured from the first event sent to the last document seen indexed; the
    index is polled once a second, so short runs carry up to a second of error.
  - Needs C(s3:PutObject), C(s3:ListBucket), C(s3:DeleteObject), C(sqs:SendMessage),
    C(sqs:ReceiveMessage), C(sqs:DeleteMessage), C(sqs:ChangeMessageVisibility) and read and
    delete access to the index.
"""

EXAMPLES = r"""
- name: Send 500 files through the fleet
  sqs_stress_test:
    run_id: "{{ _stress_run_id }}"
    queue: cis-filesearch-index-queue
    bucket: cis-filesearch-uploads
    opensearch_endpoint: https://search-files.ap-northeast-1.es.amazonaws.com
    opensearch_index: file-index
    count: 500
    timeout: 600
  register: __stress

- name: Remove what the run created
  sqs_stress_test:
    state: cleanup
    run_id: "{{ _stress_run_id }}"
    dlq: cis-filesearch-dlq
    bucket: cis-filesearch-uploads
    opensearch_endpoint: https://search-files.ap-northeast-1.es.amazonaws.com
    opensearch_index: file-index
"""

RETURN = r"""
run_id:
  description: The run id.
  returned: always
  type: str
  sample: 20261123T201500Z-3f2a
sent:
  description: Events accepted by SQS.
  returned: state=run
  type: int
  sample: 50
send_failed:
  description:
    - Events SQS refused or whose send call failed (counted as errors).
    - When SQS accepts none, the module fails instead of waiting.
  returned: state=run
  type: int
  sample: 0
indexed:
  description: Files whose document was found in the index.
  returned: state=run
  type: int
  sample: 50
retry_stored:
  description: Files not indexed but stored in the retry store (the worker's indexing failed).
  returned: state=run
  type: int
  sample: 0
unaccounted:
  description:
    - Files neither indexed nor in the retry store when the wait ended.
    - In the DLQ, still queued, or lost.
  returned: state=run
  type: int
  sample: 0
errors:
  description: O(count) minus RV(indexed).
  returned: state=run
  type: int
  sample: 0
error_rate_percent:
  description: RV(errors) / O(count) x 100.
  returned: state=run
  type: float
  sample: 0.0
timed_out:
  description: True when the wait ended at O(timeout) with files unprocessed.
  returned: state=run
  type: bool
  sample: false
upload_seconds:
  description: Time taken by the uploads.
  returned: state=run
  type: float
  sample: 1.9
processing_seconds:
  description: From the first event sent to the last file seen processed.
  returned: state=run
  type: float
  sample: 12.4
rate_per_second:
  description: RV(indexed) / RV(processing_seconds) (null when nothing was indexed).
  returned: state=run
  type: float
  sample: 4.03
failed_keys:
  description: Up to 20 keys that were not indexed.
  returned: state=run
  type: list
  elements: str
  sample: []
table:
  description: The figures as an aligned text table, one line per element.
  returned: state=run
  type: list
  elements: str
  sample: ["files sent            50", "indexed               50"]
removed:
  description: What cleanup removed (all zero in check mode).
  returned: state=cleanup
  type: dict
  sample:
    {"objects": 50, "retry_entries": 0, "documents": 50, "dlq_messages": 0, "queue_messages": 0}
would_remove:
  description:
    - What cleanup would remove, from reads only; queued messages are not counted (see check mode).
  returned: state=cleanup in check mode
  type: dict
  sample: {"objects": 50, "retry_entries": 0, "documents": 50}
"""

import contextlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule

with contextlib.suppress(ImportError):  # reported by module.require_filesearch_worker()
    from filesearch_worker.config import resolve_opensearch_auth
    from filesearch_worker.errors import TransientError
    from filesearch_worker.events import s3_event_body
    from filesearch_worker.index import Indexer
    from filesearch_worker.queue_status import resolve_queue_url
    from filesearch_worker.sqs_batch import SqsBatch

RETRY_PREFIX = "retry-index/"
MAX_COUNT = 10_000
MAX_TIMEOUT = 3600
POLL_SECONDS = 1.0
MGET_CHUNK = 500
_RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_WORDS = [
    "invoice", "contract", "drawing", "minutes", "budget", "schedule", "report", "survey",
    "estimate", "specification", "memo", "proposal", "quotation", "ledger", "inventory",
]  # fmt: skip


def argument_spec() -> dict[str, Any]:
    """The module's own options (AnsibleAWSModule adds the common AWS ones)."""
    return {
        "state": {"type": "str", "choices": ["run", "cleanup"], "default": "run"},
        "run_id": {"type": "str", "required": True},
        "queue": {"type": "str"},
        "dlq": {"type": "str"},
        "bucket": {"type": "str", "required": True},
        "prefix": {"type": "str", "default": "stress-test/"},
        "count": {"type": "int", "default": 100},
        "size_bytes": {"type": "int", "default": 2048},
        "timeout": {"type": "int", "default": 300},
        "opensearch_endpoint": {"type": "str", "required": True},
        "opensearch_index": {"type": "str", "required": True},
        "opensearch_auth": {
            "type": "str",
            "choices": ["auto", "sigv4", "none"],
            "default": "auto",
        },
        "scan_queue": {"type": "bool", "default": False},
        "scan_batches": {"type": "int", "default": 50},
    }


# --- the load ------------------------------------------------------------------------
def run_prefix(prefix: str, run_id: str) -> str:
    """``<prefix><run_id>/``: every key of one run starts with it."""
    return f"{prefix}{run_id}/"


def run_keys(prefix: str, run_id: str, count: int) -> list[str]:
    """The S3 keys of one run, in order."""
    base = run_prefix(prefix, run_id)
    return [f"{base}file-{i:05d}.txt" for i in range(count)]


def synthetic_text(key: str, size: int) -> bytes:
    """Deterministic text of ``size`` bytes that names its key (searchable, extractable)."""
    head = f"stress test file {key}\n"
    words: list[str] = []
    total = len(head)
    i = sum(key.encode())
    while total < size:
        word = _WORDS[i % len(_WORDS)]
        words.append(word)
        total += len(word) + 1
        i += 7
    return (head + " ".join(words))[:size].encode("ascii")


def upload(s3: Any, bucket: str, keys: list[str], size: int) -> None:
    """Upload the test files (8 at a time)."""

    def put(key: str) -> None:
        s3.put_object(
            Bucket=bucket, Key=key, Body=synthetic_text(key, size), ContentType="text/plain"
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, keys))


def send_events(
    sqs: Any, url: str, bucket: str, keys: list[str], size: int, region: str
) -> list[tuple[str, str]]:
    """Send one event per key (the engine's batch layer, 10 a call); return the refused keys.

    Each refused key comes with SQS's reason (or the error of a call that failed).
    """
    sent = SqsBatch(sqs, url).send(
        keys, lambda key: {"MessageBody": s3_event_body(bucket, key, size=size, region=region)}
    )
    return sent.failed


def retry_day_prefixes(since: datetime, until: datetime) -> list[str]:
    """``retry-index/YYYY-MM-DD/`` for each UTC day of the run."""
    days = []
    day = since.date()
    while day <= until.date():
        days.append(f"{RETRY_PREFIX}{day.isoformat()}/")
        day += timedelta(days=1)
    return days


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every object key under ``prefix``."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(str(o["Key"]) for o in page.get("Contents", []))
    return keys


def retry_stored(s3: Any, bucket: str, base: str, days: list[str]) -> set[str]:
    """The test keys that have a retry-store entry."""
    found: set[str] = set()
    for day in days:
        for obj in list_keys(s3, bucket, f"{day}{base}"):
            found.add(obj[len(day) :].removesuffix(".json"))
    return found


def indexed_ids(indexer: Any, ids: list[str]) -> set[str]:
    """The ids among ``ids`` that have a document (multi-get in chunks)."""
    found: set[str] = set()
    for start in range(0, len(ids), MGET_CHUNK):
        found |= indexer.existing_ids(ids[start : start + MGET_CHUNK])
    return found


def wait_processed(
    indexer: Any,
    s3: Any,
    bucket: str,
    base: str,
    keys: list[str],
    started: datetime,
    deadline: float,
) -> tuple[set[str], set[str], float | None]:
    """Poll until every key is indexed or retry-stored, or until ``deadline``.

    Returns the indexed keys, the retry-stored keys and the monotonic time the
    last new document was seen (None when none was).
    """
    indexed: set[str] = set()
    stored: set[str] = set()
    last_seen: float | None = None
    while True:
        pending = [k for k in keys if k not in indexed]
        new = indexed_ids(indexer, pending) if pending else set()
        if new:
            indexed |= new
            last_seen = time.monotonic()
        stored = (
            retry_stored(s3, bucket, base, retry_day_prefixes(started, datetime.now(UTC))) - indexed
        )
        if len(indexed) + len(stored) >= len(keys) or time.monotonic() >= deadline:
            return indexed, stored, last_seen
        time.sleep(POLL_SECONDS)


def table(result: dict[str, Any], count: int, size: int) -> list[str]:
    """The figures as aligned lines."""
    rate = result["rate_per_second"]
    rows = [
        ("files sent", f"{result['sent']} of {count} ({size} bytes each)"),
        ("upload", f"{result['upload_seconds']:.1f} s"),
        ("indexed", str(result["indexed"])),
        ("retry store", str(result["retry_stored"])),
        ("unaccounted", str(result["unaccounted"])),
        ("processing time", f"{result['processing_seconds']:.1f} s"),
        ("rate", f"{rate:.2f} files/s" if rate is not None else "-"),
        ("error rate", f"{result['error_rate_percent']:.2f} %"),
        ("timed out", "yes" if result["timed_out"] else "no"),
    ]
    width = max(len(name) for name, _ in rows)
    return [f"{name.ljust(width)}  {value}" for name, value in rows]


def make_indexer(module: FilesearchAWSModule, region: str) -> Any:
    """The workers' OpenSearch client, for one index; SigV4 with the task's credentials."""
    p = module.params
    auth = resolve_opensearch_auth(p["opensearch_auth"], p["opensearch_endpoint"])
    return Indexer.for_endpoint(
        p["opensearch_endpoint"],
        p["opensearch_index"],
        auth=auth,
        region=region,
        timeout=30.0,
        failure_threshold=1000,
        cooldown=0.0,
        credentials=module.signing_credentials() if auth == "sigv4" else None,
    )


def region_of(module: FilesearchAWSModule, client: Any) -> str:
    """The task's region (option, environment or profile), as the client resolved it."""
    return str(module.params["region"] or client.meta.region_name or "us-east-1")


def run(module: FilesearchAWSModule) -> dict[str, Any]:
    p = module.params
    count, size, timeout = p["count"], p["size_bytes"], p["timeout"]
    base = run_prefix(p["prefix"], p["run_id"])
    keys = run_keys(p["prefix"], p["run_id"], count)
    if module.check_mode:
        return {"changed": True, "run_id": p["run_id"], "msg": f"would send {count} files"}
    s3 = module.client("s3")
    sqs = module.client("sqs")
    region = region_of(module, s3)
    indexer = make_indexer(module, region)
    url = resolve_queue_url(sqs, p["queue"])
    t0 = time.monotonic()
    upload(s3, p["bucket"], keys, size)
    upload_seconds = time.monotonic() - t0
    started_at = datetime.now(UTC)
    send_start = time.monotonic()
    failed = send_events(sqs, url, p["bucket"], keys, size, region)
    refused = len(failed)
    if refused == count:
        # nothing to wait for: fail now, as an AWS error does (the playbook cleans up)
        module.fail_json(
            msg=f"Stress test {p['run_id']}: SQS accepted none of the {count} events "
            f"({failed[0][1]})",
            run_id=p["run_id"],
            sent=0,
            send_failed=refused,
        )
    deadline = time.monotonic() + timeout
    indexed, stored, last_seen = wait_processed(
        indexer, s3, p["bucket"], base, keys, started_at, deadline
    )
    processing = (last_seen or time.monotonic()) - send_start
    errors = count - len(indexed)
    result: dict[str, Any] = {
        "changed": True,
        "run_id": p["run_id"],
        "sent": count - refused,
        "send_failed": refused,
        "indexed": len(indexed),
        "retry_stored": len(stored),
        "unaccounted": count - len(indexed) - len(stored),
        "errors": errors,
        "error_rate_percent": round(100.0 * errors / count, 2),
        "timed_out": len(indexed) + len(stored) < count,
        "upload_seconds": round(upload_seconds, 2),
        "processing_seconds": round(processing, 2),
        "rate_per_second": round(len(indexed) / processing, 2)
        if indexed and processing > 0
        else None,
        "failed_keys": [k for k in keys if k not in indexed][:20],
    }
    result["table"] = table(result, count, size)
    return result


# --- cleanup ---------------------------------------------------------------------------
def _receipt(message: dict[str, Any]) -> str:
    return str(message["ReceiptHandle"])


def scan_queue(
    sqs: Any, url: str, marker: str, batches: int, problems: list[str] | None = None
) -> int:
    """Delete the messages whose body contains ``marker``; release the others at once.

    Returns how many deletes SQS confirmed; what failed is appended to ``problems``
    (a message not deleted comes back after 30 s, for the next cleanup).
    """
    batch = SqsBatch(sqs, url)
    removed = 0
    for _ in range(batches):
        response = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        ours = [m for m in messages if marker in m.get("Body", "")]
        others = [m for m in messages if marker not in m.get("Body", "")]
        failed: list[tuple[dict[str, Any], str]] = []
        if others:
            failed += batch.change_visibility(others, _receipt, 0).failed
        if ours:
            deleted = batch.delete(ours, _receipt)
            removed += len(deleted.ok)
            failed += deleted.failed
        if problems is not None:
            problems.extend(f"{m.get('MessageId', '?')}: {reason}" for m, reason in failed)
    return removed


def delete_objects(s3: Any, bucket: str, keys: list[str]) -> int:
    """Delete ``keys`` (1000 per call); return how many."""
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
        )
    return len(keys)


def delete_documents(indexer: Any, ids: list[str]) -> int:
    """Delete the documents among ``ids`` that exist; return how many."""
    present = sorted(indexed_ids(indexer, ids))
    return sum(1 for doc_id in present if indexer.delete(doc_id))


def cleanup(module: FilesearchAWSModule) -> dict[str, Any]:
    p = module.params
    base = run_prefix(p["prefix"], p["run_id"])
    s3 = module.client("s3")
    objects = list_keys(s3, p["bucket"], base)
    days = [
        str(d["Prefix"])
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=p["bucket"], Prefix=RETRY_PREFIX, Delimiter="/"
        )
        for d in page.get("CommonPrefixes", [])
    ]
    entries = [k for day in days for k in list_keys(s3, p["bucket"], f"{day}{base}")]
    indexer = make_indexer(module, region_of(module, s3))
    ids = objects or run_keys(p["prefix"], p["run_id"], p["count"])
    present = sorted(indexed_ids(indexer, ids))
    pending = bool(objects or entries or present)
    removed = {"objects": 0, "retry_entries": 0, "documents": 0}
    removed["dlq_messages"] = 0
    removed["queue_messages"] = 0
    if module.check_mode:
        # reads only: the queues are not scanned (a receive raises ApproximateReceiveCount)
        return {
            "changed": pending,
            "run_id": p["run_id"],
            "removed": removed,
            "would_remove": {
                "objects": len(objects),
                "retry_entries": len(entries),
                "documents": len(present),
            },
            "msg": f"would remove {len(objects)} objects, {len(entries)} retry entries and "
            f"{len(present)} documents; queued messages are not looked at in check mode",
        }
    sqs = module.client("sqs") if p["dlq"] or p["scan_queue"] else None
    problems: list[str] = []
    if sqs is not None and p["scan_queue"]:
        removed["queue_messages"] = scan_queue(
            sqs, resolve_queue_url(sqs, p["queue"]), base, p["scan_batches"], problems
        )
    if sqs is not None and p["dlq"]:
        removed["dlq_messages"] = scan_queue(
            sqs, resolve_queue_url(sqs, p["dlq"]), base, p["scan_batches"], problems
        )
    if problems:
        module.warn(
            f"{len(problems)} message(s) not deleted or released (they come back after 30 s; "
            f"run the cleanup again): {'; '.join(problems[:5])}"
        )
    removed["objects"] = delete_objects(s3, p["bucket"], objects)
    removed["retry_entries"] = delete_objects(s3, p["bucket"], entries)
    removed["documents"] = delete_documents(indexer, present)
    return {"changed": any(removed.values()), "run_id": p["run_id"], "removed": removed}


def main() -> None:
    module = FilesearchAWSModule(
        argument_spec=argument_spec(),
        required_if=[("state", "run", ["queue"]), ("scan_queue", True, ["queue"])],
        supports_check_mode=True,
    )
    module.require_filesearch_worker()
    p = module.params
    if not _RUN_ID.match(p["run_id"]):
        module.fail_json(
            msg=f"run_id must be 1-64 letters, digits, '.', '_' or '-'; got {p['run_id']!r}"
        )
    if not p["prefix"] or not p["prefix"].endswith("/") or p["prefix"].startswith(RETRY_PREFIX):
        module.fail_json(
            msg=f"prefix must end with '/' and lie outside {RETRY_PREFIX}; got {p['prefix']!r}"
        )
    if not 1 <= p["count"] <= MAX_COUNT:
        module.fail_json(msg=f"count must be 1-{MAX_COUNT} (a bounded test); got {p['count']}")
    if not 16 <= p["size_bytes"] <= 1_048_576:
        module.fail_json(msg=f"size_bytes must be 16-1048576; got {p['size_bytes']}")
    if not 1 <= p["timeout"] <= MAX_TIMEOUT:
        module.fail_json(msg=f"timeout must be 1-{MAX_TIMEOUT} seconds; got {p['timeout']}")
    if not 1 <= p["scan_batches"] <= 1000:
        module.fail_json(msg=f"scan_batches must be 1-1000; got {p['scan_batches']}")
    try:
        result = run(module) if p["state"] == "run" else cleanup(module)
    except BOTO_ERRORS as exc:
        module.fail_json_aws(exc, msg=f"Stress test {p['run_id']} ({p['state']}) failed")
    except TransientError as exc:
        module.fail_json(msg=f"Stress test {p['run_id']} ({p['state']}): OpenSearch: {exc}")
    except ValueError as exc:  # a queue ARN that names no SQS queue
        module.fail_json(msg=f"Stress test {p['run_id']} ({p['state']}): {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
