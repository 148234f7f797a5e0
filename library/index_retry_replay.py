#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module index_retry_replay: re-index the worker's S3 retry store."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: index_retry_replay
short_description: Re-index documents from the worker's S3 retry store
description:
  - The Ansible face of C(filesearch-worker replay-retries), on the same engine
    (C(filesearch_worker.retry_store.RetryStore.replay)).
  - Documents the worker could not index were stored as
    C(s3://BUCKET/retry-index/YYYY-MM-DD/<key>.json). Each is indexed again (tombstones delete
    the document instead) and its retry object is deleted only after that succeeded, so the task
    is idempotent and safe to interrupt.
  - C(changed) is true when anything was indexed or deleted from the index (in check mode, when
    there is anything to replay). The task fails when an entry could not be replayed; the entries
    that failed stay in the store.
version_added: "1.0.0"
author:
  - filesearch-ops contributors
options:
  bucket:
    description: S3 bucket of the retry store (the worker's E(S3_BUCKET)).
    type: str
    required: true
  date:
    description: Replay only the entries of this day (C(YYYY-MM-DD)); all days when unset.
    type: str
  limit:
    description: Replay at most this many entries (oldest day first).
    type: int
  chunk_size:
    description: Entries per bulk request.
    type: int
    default: 50
  opensearch_endpoint:
    description: OpenSearch URL.
    type: str
    required: true
  opensearch_index:
    description: Index holding the documents (id = S3 key).
    type: str
    default: file-index
  opensearch_auth:
    description:
      - C(auto) is C(sigv4) for an Amazon OpenSearch Service domain (hostname C(*.es.amazonaws.com),
        C(*.es.amazonaws.com.cn) or C(*.aos.<region>.on.aws)), C(basic) when O(opensearch_username)
        is given, C(none) otherwise.
      - C(sigv4) signs with the task's AWS credentials (O(access_key)/O(secret_key)/O(session_token)
        or O(profile), else boto3's credential chain) for O(region).
    type: str
    choices: [auto, sigv4, basic, none]
    default: auto
  opensearch_username:
    description: User for O(opensearch_auth=basic).
    type: str
  opensearch_password:
    description: Password for O(opensearch_auth=basic).
    type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description: Lists and counts the entries that would be replayed; writes nothing.
  diff_mode:
    support: none
    description: Counts are the report; there is no before/after document.
requirements:
  - python >= 3.11
  - boto3
  - opensearch-py
  - filesearch-worker (pip install files/worker)
notes:
  - Needs C(s3:ListBucket), C(s3:GetObject) and C(s3:DeleteObject) on the bucket and write access
    to the index. OpenSearch must answer at the start, else nothing is replayed and the task fails.
"""

EXAMPLES = r"""
- name: Replay yesterday's retry store once OpenSearch is healthy again
  index_retry_replay:
    bucket: cis-filesearch-files
    date: "{{ '%Y-%m-%d' | strftime(ansible_date_time.epoch | int - 86400) }}"
    opensearch_endpoint: https://search-cis.ap-northeast-1.es.amazonaws.com
    region: ap-northeast-1

- name: How much is waiting (check mode)
  index_retry_replay:
    bucket: cis-filesearch-files
    opensearch_endpoint: http://127.0.0.1:9200
    endpoint_url: http://127.0.0.1:4566
  check_mode: true
  register: __pending
"""

RETURN = r"""
found:
  description: Retry entries selected (date and limit applied).
  returned: always
  type: int
  sample: 12
indexed:
  description: Documents indexed (their entries deleted).
  returned: always
  type: int
  sample: 11
deleted_from_index:
  description: Tombstones replayed (documents deleted from the index).
  returned: always
  type: int
  sample: 1
not_replayed:
  description:
    - Entries whose document could not be indexed (left in the store).
    - The engine's C(failed) count, renamed because C(failed) is Ansible's task status.
  returned: always
  type: int
  sample: 0
unreadable:
  description: Entries that could not be read or parsed (left in the store).
  returned: always
  type: int
  sample: 0
dry_run:
  description: True in check mode.
  returned: always
  type: bool
  sample: false
errors:
  description: Up to 20 errors, one per failed entry.
  returned: always
  type: list
  elements: str
  sample: []
"""

import contextlib
from typing import Any

from ansible.module_utils.filesearch import BOTO_ERRORS, FilesearchAWSModule

with contextlib.suppress(ImportError):  # reported by module.require_filesearch_worker()
    from filesearch_worker.config import resolve_opensearch_auth
    from filesearch_worker.errors import TransientError
    from filesearch_worker.index import Indexer
    from filesearch_worker.retry_store import RetryStore, validate_date


def argument_spec() -> dict[str, Any]:
    """The module's own options (AnsibleAWSModule adds the common AWS ones)."""
    return {
        "bucket": {"type": "str", "required": True},
        "date": {"type": "str"},
        "limit": {"type": "int"},
        "chunk_size": {"type": "int", "default": 50},
        "opensearch_endpoint": {"type": "str", "required": True},
        "opensearch_index": {"type": "str", "default": "file-index"},
        "opensearch_auth": {
            "type": "str",
            "choices": ["auto", "sigv4", "basic", "none"],
            "default": "auto",
        },
        "opensearch_username": {"type": "str"},
        "opensearch_password": {"type": "str", "no_log": True},
    }


def main() -> None:
    module = FilesearchAWSModule(
        argument_spec=argument_spec(),
        required_together=[["opensearch_username", "opensearch_password"]],
        supports_check_mode=True,
    )
    module.require_filesearch_worker()
    p = module.params
    try:
        if p["date"]:
            validate_date(p["date"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    for option in ("limit", "chunk_size"):
        if p[option] is not None and p[option] < 1:
            module.fail_json(msg=f"{option} must be >= 1, got {p[option]}")

    s3 = module.client("s3")
    region = p["region"] or getattr(s3.meta, "region_name", None) or "us-east-1"
    auth = resolve_opensearch_auth(
        p["opensearch_auth"], p["opensearch_endpoint"], username=p["opensearch_username"] or ""
    )
    indexer = Indexer.for_endpoint(
        p["opensearch_endpoint"],
        p["opensearch_index"],
        auth=auth,
        region=region,
        username=p["opensearch_username"] or "",
        password=p["opensearch_password"] or "",
        credentials=module.signing_credentials() if auth == "sigv4" else None,
    )
    store = RetryStore(s3, p["bucket"])
    try:
        report = store.replay(
            indexer,
            date=p["date"],
            limit=p["limit"],
            dry_run=module.check_mode,
            chunk_size=p["chunk_size"],
        )
    except TransientError as exc:
        module.fail_json(msg=f"Replay not started: {exc}", error_code=exc.error_type)
    except BOTO_ERRORS as exc:
        module.fail_json_aws(exc, msg=f"Cannot read the retry store in s3://{p['bucket']}")
    result = report.as_dict()
    result["not_replayed"] = result.pop("failed")  # "failed" is Ansible's task status
    if module.check_mode:
        changed = report.found > 0
    else:
        changed = report.indexed + report.deleted_from_index > 0
    if not report.ok:
        module.fail_json(
            msg=f"{report.failed + report.unreadable} of {report.found} retry entries not replayed",
            changed=changed,
            **result,
        )
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
