"""Dependency checks behind ``filesearch-worker health``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filesearch_worker import aws
from filesearch_worker.index import Indexer

if TYPE_CHECKING:
    from filesearch_worker.config import Settings

log = logging.getLogger(__name__)

_FAST = {"max_attempts": 2, "connect_timeout": 3, "read_timeout": 5}


@dataclass(frozen=True)
class Check:
    """One dependency's result."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """``ok NAME: detail`` or ``FAIL NAME: detail``."""
        return f"{'ok' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _err(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def check_all(settings: Settings) -> list[Check]:
    """Check SQS (queue and DLQ), S3 and OpenSearch; one Check each."""
    results: list[Check] = []
    sqs = aws.sqs_client(settings, **_FAST)
    for name, url in (("sqs", settings.queue_url), ("sqs-dlq", settings.dlq_url)):
        if not url:
            if name == "sqs":
                results.append(Check(name, False, "SQS_QUEUE_URL is not set"))
            continue
        try:
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            results.append(
                Check(
                    name,
                    True,
                    f"{url} visible={attrs.get('ApproximateNumberOfMessages')} "
                    f"in_flight={attrs.get('ApproximateNumberOfMessagesNotVisible')}",
                )
            )
        except Exception as exc:  # noqa: BLE001 - reported as a failed dependency
            results.append(Check(name, False, f"{url}: {_err(exc)}"))
    if not settings.s3_bucket:
        results.append(Check("s3", False, "S3_BUCKET is not set"))
    else:
        try:
            aws.s3_client(settings, **_FAST).head_bucket(Bucket=settings.s3_bucket)
            results.append(Check("s3", True, f"bucket {settings.s3_bucket}"))
        except Exception as exc:  # noqa: BLE001 - any failure is a failed check, reported
            results.append(Check("s3", False, f"bucket {settings.s3_bucket}: {_err(exc)}"))
    if settings.skip_opensearch:
        results.append(Check("opensearch", True, "skipped (SKIP_OPENSEARCH=true)"))
    elif not settings.opensearch_endpoint:
        results.append(Check("opensearch", False, "OPENSEARCH_ENDPOINT is not set"))
    else:
        try:
            info = Indexer.from_settings(settings).info()
            version = info.get("version", {}).get("number", "?")
            results.append(
                Check("opensearch", True, f"{settings.opensearch_endpoint} version {version}")
            )
        except Exception as exc:  # noqa: BLE001 - any failure is a failed check, reported
            results.append(
                Check("opensearch", False, f"{settings.opensearch_endpoint}: {_err(exc)}")
            )
    return results
