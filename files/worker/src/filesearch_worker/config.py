"""Settings: every environment variable the worker reads, in one place.

``Settings.from_env()`` validates each value and raises ``ValueError`` naming
the variable when one is wrong. docs/worker.md documents every variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

SQS_MAX_VISIBILITY = 43_200  # 12 h, SQS's cap on a message's total visibility
SQS_MAX_WAIT = 20
OPENSEARCH_AUTH_MODES = ("auto", "sigv4", "basic", "none")
#: Hostname suffixes of Amazon OpenSearch Service domain endpoints (public and VPC,
#: the aws and aws-cn partitions): ``search-<domain>-<id>.<region>.es.amazonaws.com``.
AWS_OPENSEARCH_SUFFIXES = (".es.amazonaws.com", ".es.amazonaws.com.cn")
#: Their dual-stack form: ``search-<domain>-<id>.aos.<region>.on.aws``.
_AWS_OPENSEARCH_DUALSTACK = re.compile(r"\.aos\.[a-z0-9-]+\.on\.aws$")
METRICS_MODES = ("cloudwatch", "off")
WORKER_MODES = ("full", "metadata-only")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


def _int(name: str, raw: str, low: int | None = None, high: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def _float(name: str, raw: str, low: float | None = None, high: float | None = None) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value != value:  # NaN
        raise ValueError(f"{name} must be a number, got {raw!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _url(name: str, raw: str) -> str:
    value = raw.strip()
    if value:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{name} must be an http(s) URL, got {raw!r}")
    return value


def endpoint_hostname(endpoint: str) -> str:
    """The lower-case hostname of an endpoint URL (or bare ``host[:port]``); "" if none."""
    value = endpoint.strip()
    if "://" not in value:
        value = "//" + value
    try:
        host = urlparse(value).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".")


def is_aws_opensearch_endpoint(endpoint: str) -> bool:
    """True when the endpoint's hostname is an Amazon OpenSearch Service domain's.

    Only the hostname counts (never the path or a look-alike such as
    ``es.amazonaws.com.example``); OpenSearch Serverless (``*.aoss.amazonaws.com``)
    signs as another service and is not matched.
    """
    host = endpoint_hostname(endpoint)
    return host.endswith(AWS_OPENSEARCH_SUFFIXES) or bool(_AWS_OPENSEARCH_DUALSTACK.search(host))


def resolve_opensearch_auth(auth: str, endpoint: str, *, username: str = "") -> str:
    """The OpenSearch authentication to use; the one ``auto`` rule of every caller.

    An explicit ``sigv4``, ``basic`` or ``none`` is kept. ``auto`` is ``sigv4``
    for an Amazon OpenSearch Service domain (:func:`is_aws_opensearch_endpoint`),
    else ``basic`` when a user name is given, else ``none``.
    """
    mode = auth.strip().lower()
    if mode != "auto":
        return mode
    if is_aws_opensearch_endpoint(endpoint):
        return "sigv4"
    return "basic" if username else "none"


@dataclass(frozen=True)
class Settings:
    """The worker's configuration (immutable)."""

    queue_url: str = ""
    dlq_url: str = ""
    visibility_timeout: int = 600
    wait_time_seconds: int = 20
    s3_bucket: str = ""
    opensearch_endpoint: str = ""
    opensearch_index: str = "filesearch"
    opensearch_auth: str = "auto"
    opensearch_username: str = ""
    opensearch_password: str = ""
    opensearch_timeout: float = 10.0
    skip_opensearch: bool = False
    region: str = "ap-northeast-1"
    concurrency: int = 4
    pollers: int = 0  # 0 = auto: as many receive loops as worker threads
    cloudwatch_namespace: str = "CISFileSearch/Worker"
    metrics: str = "cloudwatch"
    metrics_interval_seconds: float = 60.0
    prometheus_port: int = 0  # 0 = no /metrics endpoint
    prometheus_addr: str = "127.0.0.1"
    instance: int = 1  # systemd template instance number (phased-worker@N sets it)
    max_file_bytes: int = 100 * 1024 * 1024
    max_text_chars: int = 1_000_000
    shutdown_grace_seconds: float = 60.0
    heartbeat_interval_seconds: float = 0.0  # 0 = visibility_timeout / 3
    stats_interval_seconds: float = 60.0
    backoff_base_seconds: int = 30
    backoff_max_seconds: int = 900
    cb_failure_threshold: int = 3
    cb_cooldown_seconds: float = 30.0
    aws_max_attempts: int = 5
    mode: str = "full"
    log_level: str = "INFO"
    test_extract_delay: float = 0.0
    test_raise_on_key: str = ""

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between visibility extensions; always below the visibility timeout."""
        if self.heartbeat_interval_seconds > 0:
            return min(self.heartbeat_interval_seconds, self.visibility_timeout / 2)
        return max(0.5, self.visibility_timeout / 3)

    @property
    def prometheus_listen_port(self) -> int:
        """Port of this process's /metrics: WORKER_PROMETHEUS_PORT + instance - 1 (0 = off).

        Template instances share one environment file; each gets its own port.
        """
        return self.prometheus_port + self.instance - 1 if self.prometheus_port else 0

    @property
    def poller_count(self) -> int:
        """Receive loops running at once (each handles one batch of up to 10 at a time)."""
        return self.pollers or self.concurrency

    def require(self, *names: str, purpose: str = "this command") -> None:
        """Raise ValueError naming each missing variable among ``names`` (field names)."""
        missing = [_ENV_NAMES[n] for n in names if not getattr(self, n)]
        if missing:
            raise ValueError(f"{', '.join(missing)} must be set for {purpose}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build and validate settings from ``environ`` (default ``os.environ``)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field_name, (var, parse) in _PARSERS.items():
            raw = env.get(var)
            if raw is None or (raw.strip() == "" and field_name not in _EMPTY_OK):
                continue
            values[field_name] = parse(var, raw)
        if "region" not in values and env.get("AWS_DEFAULT_REGION", "").strip():
            values["region"] = env["AWS_DEFAULT_REGION"].strip()
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.prometheus_listen_port > 65535:
            raise ValueError(
                f"WORKER_PROMETHEUS_PORT {self.prometheus_port} + WORKER_INSTANCE "
                f"{self.instance} - 1 is above 65535; choose a lower base port"
            )
        if self.backoff_base_seconds > self.backoff_max_seconds:
            raise ValueError(
                "WORKER_BACKOFF_BASE_SECONDS must not exceed WORKER_BACKOFF_MAX_SECONDS "
                f"({self.backoff_base_seconds} > {self.backoff_max_seconds})"
            )
        if self.opensearch_auth == "basic" and not self.opensearch_username:
            raise ValueError("OPENSEARCH_USERNAME must be set when OPENSEARCH_AUTH=basic")
        if (
            self.heartbeat_interval_seconds
            and self.heartbeat_interval_seconds >= self.visibility_timeout
        ):
            raise ValueError(
                "WORKER_HEARTBEAT_SECONDS must be below SQS_VISIBILITY_TIMEOUT "
                f"({self.heartbeat_interval_seconds} >= {self.visibility_timeout})"
            )

    def effective_auth(self) -> str:
        """``OPENSEARCH_AUTH`` with ``auto`` resolved (:func:`resolve_opensearch_auth`)."""
        return resolve_opensearch_auth(
            self.opensearch_auth, self.opensearch_endpoint, username=self.opensearch_username
        )

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked (for logs)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["opensearch_password"]:
            out["opensearch_password"] = "***"  # noqa: S105 - masking, not a password
        return out


def _str(_name: str, raw: str) -> str:
    return raw.strip()


def _p(fn: Callable[..., T], *args: Any) -> Callable[[str, str], T]:
    return lambda name, raw: fn(name, raw, *args)


# field name -> (environment variable, parser)
_PARSERS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "queue_url": ("SQS_QUEUE_URL", _url),
    "dlq_url": ("SQS_DLQ_URL", _url),
    "visibility_timeout": ("SQS_VISIBILITY_TIMEOUT", _p(_int, 1, SQS_MAX_VISIBILITY)),
    "wait_time_seconds": ("SQS_WAIT_TIME_SECONDS", _p(_int, 0, SQS_MAX_WAIT)),
    "s3_bucket": ("S3_BUCKET", _str),
    "opensearch_endpoint": ("OPENSEARCH_ENDPOINT", _url),
    "opensearch_index": ("OPENSEARCH_INDEX", _str),
    "opensearch_auth": ("OPENSEARCH_AUTH", _p(_choice, OPENSEARCH_AUTH_MODES)),
    "opensearch_username": ("OPENSEARCH_USERNAME", _str),
    "opensearch_password": ("OPENSEARCH_PASSWORD", lambda _n, raw: raw),
    "opensearch_timeout": ("OPENSEARCH_TIMEOUT", _p(_float, 0.1, 300)),
    "skip_opensearch": ("SKIP_OPENSEARCH", _bool),
    "region": ("AWS_REGION", _str),
    "concurrency": ("WORKER_CONCURRENCY", _p(_int, 1, 64)),
    "pollers": ("WORKER_POLLERS", _p(_int, 0, 64)),
    "cloudwatch_namespace": ("CLOUDWATCH_NAMESPACE", _str),
    "metrics": ("WORKER_METRICS", _p(_choice, METRICS_MODES)),
    "metrics_interval_seconds": ("WORKER_METRICS_INTERVAL_SECONDS", _p(_float, 0.1, 3600)),
    "prometheus_port": ("WORKER_PROMETHEUS_PORT", _p(_int, 0, 65535)),
    "prometheus_addr": ("WORKER_PROMETHEUS_ADDR", _str),
    "instance": ("WORKER_INSTANCE", _p(_int, 1, 1000)),
    "max_file_bytes": ("WORKER_MAX_FILE_BYTES", _p(_int, 0)),
    "max_text_chars": ("WORKER_MAX_TEXT_CHARS", _p(_int, 0)),
    "shutdown_grace_seconds": ("WORKER_SHUTDOWN_GRACE_SECONDS", _p(_float, 0, 3600)),
    "heartbeat_interval_seconds": ("WORKER_HEARTBEAT_SECONDS", _p(_float, 0, SQS_MAX_VISIBILITY)),
    "stats_interval_seconds": ("WORKER_STATS_INTERVAL_SECONDS", _p(_float, 0.1, 86400)),
    "backoff_base_seconds": ("WORKER_BACKOFF_BASE_SECONDS", _p(_int, 0, SQS_MAX_VISIBILITY)),
    "backoff_max_seconds": ("WORKER_BACKOFF_MAX_SECONDS", _p(_int, 0, SQS_MAX_VISIBILITY)),
    "cb_failure_threshold": ("CB_FAILURE_THRESHOLD", _p(_int, 1, 1000)),
    "cb_cooldown_seconds": ("CB_COOLDOWN_SECONDS", _p(_float, 0, 86400)),
    "aws_max_attempts": ("WORKER_AWS_MAX_ATTEMPTS", _p(_int, 1, 20)),
    "mode": ("WORKER_MODE", _p(_choice, WORKER_MODES)),
    "log_level": ("LOG_LEVEL", _p(_choice, ("debug", "info", "warning", "error"))),
    "test_extract_delay": ("WORKER_TEST_EXTRACT_DELAY", _p(_float, 0, 3600)),
    "test_raise_on_key": ("WORKER_TEST_RAISE_ON_KEY", _str),
}
_ENV_NAMES = {field_name: var for field_name, (var, _) in _PARSERS.items()}
_EMPTY_OK = {"skip_opensearch"}
