"""boto3 session and client factory.

Every client uses botocore's ``standard`` retry mode. Emulator endpoints come
from boto3's own ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``
variables; this module never invents endpoint settings of its own.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from filesearch_worker.config import Settings

_local = threading.local()


def session(settings: Settings) -> boto3.session.Session:
    """A boto3 session for ``settings.region`` (one per thread: sessions are not thread-safe)."""
    cached: boto3.session.Session | None = getattr(_local, "session", None)
    if cached is None or cached.region_name != settings.region:
        cached = boto3.session.Session(region_name=settings.region)
        _local.session = cached
    return cached


def client_config(
    settings: Settings,
    *,
    max_attempts: int | None = None,
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
) -> Config:
    """botocore Config: standard retries, a connection pool sized for the concurrency."""
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts or settings.aws_max_attempts},
        max_pool_connections=max(10, settings.concurrency * 4),
        connect_timeout=connect_timeout or 10,
        # long polling waits up to 20 s; leave room above it
        read_timeout=read_timeout or max(60, settings.wait_time_seconds + 20),
    )


def client(service_name: str, settings: Settings, **config: Any) -> Any:
    """A boto3 client for ``service_name`` (clients are thread-safe once made)."""
    return session(settings).client(service_name, config=client_config(settings, **config))  # type: ignore[call-overload]


def sqs_client(settings: Settings, **config: Any) -> SQSClient:
    """Typed SQS client."""
    result: SQSClient = client("sqs", settings, **config)
    return result


def s3_client(settings: Settings, **config: Any) -> S3Client:
    """Typed S3 client."""
    result: S3Client = client("s3", settings, **config)
    return result


def cloudwatch_client(settings: Settings, **config: Any) -> CloudWatchClient:
    """Typed CloudWatch client."""
    result: CloudWatchClient = client("cloudwatch", settings, **config)
    return result
