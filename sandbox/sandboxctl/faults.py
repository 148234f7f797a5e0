"""The fault-and-latency proxy's logic: config, request classification, decisions, stats.

Pure standard library, no mitmproxy: ``sandbox/ctl proxy check|set`` (the
project's Python) and the mitmproxy addon ``sandbox/proxy/addon.py`` (the
proxy's own Python >= 3.12 venv) both import it, and unit tests run it without
a proxy. The config format is documented in docs/sandbox.md ("Fault and latency
proxy"); :func:`parse_config` is its one validator.

One request goes through :meth:`Engine.plan`: the live config file is stat-ed
(and re-read when it changed), the request is classified (service, action,
wire protocol), five random numbers are drawn from the config's seeded
``random.Random`` (always five, so a schedule depends only on the order of
requests), and a :class:`Plan` says what the addon does with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

SERVICES = ("sqs", "s3", "cloudwatch", "opensearch")
AWS_SERVICES = ("sqs", "s3", "cloudwatch")

MAX_LATENCY_MS = 600_000.0  # 10 min: anything longer is a stall
MIN_STALL_S = 1.0
MAX_STALL_S = 3600.0

# --- the actions each service knows (config keys under "actions") -------------------
SQS_ACTIONS = frozenset(
    {
        "AddPermission",
        "CancelMessageMoveTask",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
        "CreateQueue",
        "DeleteMessage",
        "DeleteMessageBatch",
        "DeleteQueue",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ListDeadLetterSourceQueues",
        "ListMessageMoveTasks",
        "ListQueueTags",
        "ListQueues",
        "PurgeQueue",
        "ReceiveMessage",
        "RemovePermission",
        "SendMessage",
        "SendMessageBatch",
        "SetQueueAttributes",
        "StartMessageMoveTask",
        "TagQueue",
        "UntagQueue",
    }
)
CLOUDWATCH_ACTIONS = frozenset(
    {
        "DeleteAlarms",
        "DeleteAnomalyDetector",
        "DeleteDashboards",
        "DeleteInsightRules",
        "DeleteMetricStream",
        "DescribeAlarmHistory",
        "DescribeAlarms",
        "DescribeAlarmsForMetric",
        "DescribeAnomalyDetectors",
        "DescribeInsightRules",
        "DisableAlarmActions",
        "DisableInsightRules",
        "EnableAlarmActions",
        "EnableInsightRules",
        "GetDashboard",
        "GetInsightRuleReport",
        "GetMetricData",
        "GetMetricStatistics",
        "GetMetricStream",
        "GetMetricWidgetImage",
        "ListDashboards",
        "ListManagedInsightRules",
        "ListMetricStreams",
        "ListMetrics",
        "ListTagsForResource",
        "PutAnomalyDetector",
        "PutCompositeAlarm",
        "PutDashboard",
        "PutInsightRule",
        "PutManagedInsightRules",
        "PutMetricAlarm",
        "PutMetricData",
        "PutMetricStream",
        "SetAlarmState",
        "StartMetricStreams",
        "StopMetricStreams",
        "TagResource",
        "UntagResource",
    }
)

# S3, path-style (boto3 uses path style for an IP endpoint such as 127.0.0.1:4576).
# Bucket subresource (query key) -> the operation name's noun, per method prefix.
_S3_BUCKET_SUBRESOURCES = {
    "acl": "BucketAcl",
    "cors": "BucketCors",
    "encryption": "BucketEncryption",
    "lifecycle": "BucketLifecycleConfiguration",
    "logging": "BucketLogging",
    "notification": "BucketNotificationConfiguration",
    "ownershipControls": "BucketOwnershipControls",
    "policy": "BucketPolicy",
    "policyStatus": "BucketPolicyStatus",
    "publicAccessBlock": "PublicAccessBlock",
    "replication": "BucketReplication",
    "requestPayment": "BucketRequestPayment",
    "tagging": "BucketTagging",
    "versioning": "BucketVersioning",
    "website": "BucketWebsite",
    "accelerate": "BucketAccelerateConfiguration",
    "object-lock": "ObjectLockConfiguration",
}
_S3_OBJECT_SUBRESOURCES = {
    "tagging": "ObjectTagging",
    "acl": "ObjectAcl",
    "retention": "ObjectRetention",
    "legal-hold": "ObjectLegalHold",
}


def _s3_action_names() -> frozenset[str]:
    names = {
        "ListBuckets",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "ListMultipartUploads",
        "GetBucketLocation",
        "HeadBucket",
        "CreateBucket",
        "DeleteBucket",
        "DeleteObjects",
        "GetObject",
        "GetObjectAttributes",
        "HeadObject",
        "PutObject",
        "CopyObject",
        "UploadPart",
        "UploadPartCopy",
        "ListParts",
        "DeleteObject",
        "AbortMultipartUpload",
        "CreateMultipartUpload",
        "CompleteMultipartUpload",
        "RestoreObject",
        "Other",
    }
    for noun in _S3_BUCKET_SUBRESOURCES.values():
        names.update({f"Get{noun}", f"Put{noun}", f"Delete{noun}"})
    names.add("DeleteBucketLifecycle")
    for noun in _S3_OBJECT_SUBRESOURCES.values():
        names.update({f"Get{noun}", f"Put{noun}"})
    names.add("DeleteObjectTagging")
    return frozenset(names)


S3_ACTIONS = _s3_action_names()

# OpenSearch actions are named like opensearch-py's client methods.
OPENSEARCH_ACTIONS = frozenset(
    {
        "info",
        "ping",
        "bulk",
        "mget",
        "msearch",
        "search",
        "count",
        "scroll",
        "clear_scroll",
        "index",
        "create",
        "get",
        "get_source",
        "exists",
        "delete",
        "update",
        "delete_by_query",
        "update_by_query",
        "indices.create",
        "indices.exists",
        "indices.delete",
        "indices.get",
        "indices.refresh",
        "indices.get_mapping",
        "indices.put_mapping",
        "indices.get_settings",
        "indices.put_settings",
        "cluster.health",
        "cat",
        "other",
    }
)

ACTIONS: dict[str, frozenset[str]] = {
    "sqs": SQS_ACTIONS,
    "s3": S3_ACTIONS,
    "cloudwatch": CLOUDWATCH_ACTIONS,
    "opensearch": OPENSEARCH_ACTIONS,
}

# An injected error's code when the config gives none (status -> code).
DEFAULT_CODES: dict[str, dict[int, str]] = {
    "sqs": {500: "InternalFailure", 503: "ServiceUnavailable"},
    "s3": {500: "InternalError", 503: "SlowDown"},
    "cloudwatch": {500: "InternalServiceError", 503: "ServiceUnavailable"},
    "opensearch": {429: "rejected_execution_exception", 503: "unavailable_shards_exception"},
}
_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "RequestThrottled": "Request is throttled.",
    "Throttling": "Rate exceeded",
    "rejected_execution_exception": "rejected execution of coordinating operation",
}


# --- config ------------------------------------------------------------------------
class ConfigError(ValueError):
    """A fault config that cannot be used; the message names the key and the problem."""


@dataclass(frozen=True)
class ErrorRule:
    rate: float
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Stall:
    rate: float
    seconds: float


@dataclass(frozen=True)
class Faults:
    """What may happen to one request of a service (or of one of its actions)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    errors: tuple[ErrorRule, ...] = ()
    reset_before: float = 0.0
    reset_after: float = 0.0
    stall: Stall | None = None


NO_FAULTS = Faults()


@dataclass(frozen=True)
class ServiceFaults:
    base: Faults
    actions: Mapping[str, Faults] = field(default_factory=dict)

    def for_action(self, action: str) -> Faults:
        return self.actions.get(action, self.base)


@dataclass(frozen=True)
class FaultConfig:
    seed: int = 0
    services: Mapping[str, ServiceFaults] = field(default_factory=dict)
    name: str | None = None

    def faults(self, service: str, action: str) -> Faults:
        svc = self.services.get(service)
        return NO_FAULTS if svc is None else svc.for_action(action)


NO_FAULTS_TEXT = '{"seed": 0, "services": {}}\n'

_TOP_KEYS = ("seed", "name", "services")
_FAULT_KEYS = ("latency_ms", "jitter_ms", "errors", "reset_before", "reset_after", "stall")
_ERROR_KEYS = ("rate", "status", "code", "message")
_STALL_KEYS = ("rate", "seconds")


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a JSON object, not {_kind(value)}")
    return value


def _kind(value: object) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


def _known_keys(obj: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: must be a number, not {_kind(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number, not {value}")
    return float(value)


def _rate(value: object, where: str) -> float:
    rate = _number(value, where)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{where}: rate {value} is outside [0, 1]")
    return rate


def _milliseconds(value: object, where: str) -> float:
    ms = _number(value, where)
    if ms < 0:
        raise ConfigError(f"{where}: must not be negative ({value})")
    if ms > MAX_LATENCY_MS:
        raise ConfigError(
            f"{where}: {value} ms is more than {MAX_LATENCY_MS:.0f} ms (use a stall instead)"
        )
    return ms


def _error_rule(raw: object, service: str, where: str) -> ErrorRule:
    obj = _object(raw, where)
    _known_keys(obj, _ERROR_KEYS, where)
    for key in ("rate", "status"):
        if key not in obj:
            raise ConfigError(f"{where}: {key!r} is required")
    rate = _rate(obj["rate"], f"{where}.rate")
    status = obj["status"]
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ConfigError(
            f"{where}.status: {status!r} is not an HTTP error status (an integer 400-599)"
        )
    code = obj.get("code", DEFAULT_CODES[service].get(status))
    if code is None:
        defaults = ", ".join(f"{s}: {c}" for s, c in DEFAULT_CODES[service].items())
        raise ConfigError(
            f"{where}.code: required for status {status} ({service} has defaults for {defaults})"
        )
    if not isinstance(code, str) or not code or any(c in code for c in ";#:\r\n<>&\"'"):
        raise ConfigError(f"{where}.code: {code!r} must be a non-empty plain word")
    message = obj.get("message", _MESSAGES.get(code, f"{code} (injected by the sandbox proxy)"))
    if not isinstance(message, str):
        raise ConfigError(f"{where}.message: must be a string, not {_kind(message)}")
    return ErrorRule(rate=rate, status=status, code=code, message=message)


def _faults(obj: Mapping[str, Any], service: str, where: str) -> Faults:
    kwargs: dict[str, Any] = {}
    for key in ("latency_ms", "jitter_ms"):
        if key in obj:
            kwargs[key] = _milliseconds(obj[key], f"{where}.{key}")
    for key in ("reset_before", "reset_after"):
        if key in obj:
            kwargs[key] = _rate(obj[key], f"{where}.{key}")
    if "errors" in obj:
        raw = obj["errors"]
        if not isinstance(raw, list):
            raise ConfigError(f"{where}.errors: must be a list, not {_kind(raw)}")
        errors = tuple(
            _error_rule(item, service, f"{where}.errors[{i}]") for i, item in enumerate(raw)
        )
        total = sum(e.rate for e in errors)
        if total > 1.0 + 1e-9:
            raise ConfigError(f"{where}.errors: the rates add up to {total:g}, more than 1")
        kwargs["errors"] = errors
    if "stall" in obj:
        raw_stall = obj["stall"]
        if raw_stall is not None:
            st = _object(raw_stall, f"{where}.stall")
            _known_keys(st, _STALL_KEYS, f"{where}.stall")
            for key in _STALL_KEYS:
                if key not in st:
                    raise ConfigError(f"{where}.stall: {key!r} is required")
            seconds = _number(st["seconds"], f"{where}.stall.seconds")
            if seconds < MIN_STALL_S:
                raise ConfigError(
                    f"{where}.stall.seconds: {st['seconds']} is shorter than {MIN_STALL_S:.0f} s "
                    "(a stall must outlast the client's timeout; use latency_ms for delays)"
                )
            if seconds > MAX_STALL_S:
                raise ConfigError(
                    f"{where}.stall.seconds: {st['seconds']} is longer than {MAX_STALL_S:.0f} s"
                )
            kwargs["stall"] = Stall(rate=_rate(st["rate"], f"{where}.stall.rate"), seconds=seconds)
        else:
            kwargs["stall"] = None
    return Faults(**kwargs)


def parse_config(data: object) -> FaultConfig:
    """Validate a decoded config; raise :class:`ConfigError` naming the first problem."""
    top = _object(data, "config")
    _known_keys(top, _TOP_KEYS, "config")
    seed = top.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed: must be an integer, not {_kind(seed)}")
    name = top.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"name: must be a string, not {_kind(name)}")
    services_raw = _object(top.get("services", {}), "services")
    services: dict[str, ServiceFaults] = {}
    for service, raw in services_raw.items():
        if service not in SERVICES:
            raise ConfigError(
                f"services: unknown service {service!r} (known: {', '.join(SERVICES)})"
            )
        where = f"services.{service}"
        obj = _object(raw, where)
        _known_keys(obj, (*_FAULT_KEYS, "actions"), where)
        base_raw = {k: v for k, v in obj.items() if k != "actions"}
        base = _faults(base_raw, service, where)
        actions: dict[str, Faults] = {}
        for action, override in _object(obj.get("actions", {}), f"{where}.actions").items():
            awhere = f"{where}.actions.{action}"
            if action not in ACTIONS[service]:
                raise ConfigError(
                    f"{where}.actions: unknown {service} action {action!r} "
                    f"(known: {', '.join(sorted(ACTIONS[service]))})"
                )
            over = _object(override, awhere)
            _known_keys(over, _FAULT_KEYS, awhere)
            # the keys an action gives replace the service's; the others are inherited
            actions[action] = _faults({**base_raw, **over}, service, awhere)
        services[service] = ServiceFaults(base=base, actions=actions)
    return FaultConfig(seed=seed, services=services, name=name)


def load_config_text(text: str) -> FaultConfig:
    """Decode and validate a config given as JSON text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_config(data)


def describe(config: FaultConfig) -> str:
    """One line per configured service, for `sandbox/ctl proxy check|set`."""
    if not config.services:
        return "no faults (pure pass-through)"
    lines = []
    for service, svc in config.services.items():
        parts = []
        b = svc.base
        if b.latency_ms or b.jitter_ms:
            parts.append(f"latency {b.latency_ms:g}+U(0,{b.jitter_ms:g}) ms")
        parts += [f"{e.rate:g} {e.status} {e.code}" for e in b.errors]
        if b.reset_before:
            parts.append(f"reset_before {b.reset_before:g}")
        if b.reset_after:
            parts.append(f"reset_after {b.reset_after:g}")
        if b.stall and b.stall.rate:
            parts.append(f"stall {b.stall.rate:g} x {b.stall.seconds:g} s")
        if svc.actions:
            parts.append(f"overrides for {', '.join(sorted(svc.actions))}")
        lines.append(f"{service}: {'; '.join(parts) or 'pass-through'}")
    return "\n".join(lines)


# --- classification ----------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """What a request is: ``protocol`` is the wire format an error reply must use."""

    service: str
    action: str
    protocol: str  # json | cbor | query | rest-xml | opensearch


_SQS_TARGET = "AmazonSQS."
_CW_TARGET = "GraniteServiceVersion20100801."
_CW_RPC_PREFIX = "/service/GraniteServiceVersion20100801/operation/"
_SQS_VERSION = "2012-11-05"
_CW_VERSION = "2010-08-01"


def _form(headers: Mapping[str, str], query: str, body: bytes) -> dict[str, list[str]]:
    """Query-protocol parameters: the URL's query plus a form-encoded body."""
    params = parse_qs(query, keep_blank_values=True) if query else {}
    ctype = headers.get("content-type", "")
    if body and ctype.startswith("application/x-www-form-urlencoded"):
        for key, values in parse_qs(
            body.decode("utf-8", "replace"), keep_blank_values=True
        ).items():
            params.setdefault(key, []).extend(values)
    return params


def classify_aws(
    method: str, target: str, headers: Mapping[str, str], body: bytes = b""
) -> Route | None:
    """Service, action and protocol of a request to LocalStack; None for its own endpoints.

    ``target`` is the request target (path and query); ``headers`` is looked up with
    lower-case names (mitmproxy's headers are case-insensitive).
    """
    split = urlsplit(target)
    path = split.path or "/"
    amz_target = headers.get("x-amz-target", "")
    if amz_target.startswith(_SQS_TARGET):
        return Route("sqs", amz_target[len(_SQS_TARGET) :], "json")
    if amz_target.startswith(_CW_TARGET):
        return Route("cloudwatch", amz_target[len(_CW_TARGET) :], "json")
    if path.startswith(_CW_RPC_PREFIX):
        return Route("cloudwatch", path[len(_CW_RPC_PREFIX) :].strip("/"), "cbor")
    if path.startswith(("/_localstack/", "/_aws/")):
        return None
    host = headers.get("host", "")
    ctype = headers.get("content-type", "")
    if method in ("POST", "GET") and (
        "Action=" in split.query or ctype.startswith("application/x-www-form-urlencoded")
    ):
        params = _form(headers, split.query, body)
        action = (params.get("Action") or [""])[0]
        if action:
            version = (params.get("Version") or [""])[0]
            if version == _CW_VERSION or host.startswith("monitoring."):
                return Route("cloudwatch", action, "query")
            if (
                version == _SQS_VERSION
                or host.startswith("sqs.")
                or path.startswith("/queue/")
                or action in SQS_ACTIONS
            ):
                return Route("sqs", action, "query")
            if action in CLOUDWATCH_ACTIONS:
                return Route("cloudwatch", action, "query")
    if path.startswith("/queue/") or host.startswith("sqs."):
        return Route("sqs", "Other", "query")
    return Route("s3", s3_action(method, path, split.query, headers), "rest-xml")


def s3_action(method: str, path: str, query: str, headers: Mapping[str, str]) -> str:
    """The S3 operation of a path-style request (``/bucket`` or ``/bucket/key``)."""
    params = parse_qs(query, keep_blank_values=True) if query else {}
    parts = path.lstrip("/").split("/", 1)
    bucket = parts[0]
    key = parts[1] if len(parts) > 1 else ""
    prefix = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method)
    if not bucket:
        return "ListBuckets" if method == "GET" else "Other"
    if not key:
        for sub, noun in _S3_BUCKET_SUBRESOURCES.items():
            if sub in params and prefix:
                if method == "DELETE" and sub == "lifecycle":
                    return "DeleteBucketLifecycle"
                return prefix + noun
        if method == "GET":
            for sub, name in (
                ("location", "GetBucketLocation"),
                ("uploads", "ListMultipartUploads"),
                ("versions", "ListObjectVersions"),
            ):
                if sub in params:
                    return name
            return "ListObjectsV2" if params.get("list-type") == ["2"] else "ListObjects"
        if method == "POST":
            return "DeleteObjects" if "delete" in params else "Other"
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(
            method, "Other"
        )
    copy = "x-amz-copy-source" in headers
    if method == "PUT" and "partNumber" in params:
        return "UploadPartCopy" if copy else "UploadPart"
    if method == "DELETE" and "uploadId" in params:
        return "AbortMultipartUpload"
    for sub, noun in _S3_OBJECT_SUBRESOURCES.items():
        if sub in params and prefix and (method != "DELETE" or sub == "tagging"):
            return prefix + noun
    if method == "GET":
        if "uploadId" in params:
            return "ListParts"
        return "GetObjectAttributes" if "attributes" in params else "GetObject"
    if method == "POST":
        for sub, name in (
            ("uploads", "CreateMultipartUpload"),
            ("uploadId", "CompleteMultipartUpload"),
            ("restore", "RestoreObject"),
        ):
            if sub in params:
                return name
        return "Other"
    if method == "PUT":
        return "CopyObject" if copy else "PutObject"
    return {"HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "Other")


_OS_ENDPOINTS = {  # first path segment starting with "_" -> action (any method)
    "_bulk": "bulk",
    "_mget": "mget",
    "_msearch": "msearch",
    "_count": "count",
    "_delete_by_query": "delete_by_query",
    "_update_by_query": "update_by_query",
    "_refresh": "indices.refresh",
    "_settings": "indices.get_settings",
    "_mapping": "indices.get_mapping",
    "_cat": "cat",
}


def classify_opensearch(method: str, target: str) -> Route:
    """The opensearch-py method a request corresponds to (``other`` when unknown)."""
    path = urlsplit(target).path
    segs = [s for s in path.split("/") if s]
    return Route("opensearch", _opensearch_action(method, segs), "opensearch")


def _opensearch_action(method: str, segs: list[str]) -> str:
    if not segs:
        return {"GET": "info", "HEAD": "ping"}.get(method, "other")
    first = segs[0]
    if first == "_search":
        if len(segs) > 1 and segs[1] == "scroll":
            return "clear_scroll" if method == "DELETE" else "scroll"
        return "search"
    if first == "_cluster":
        return "cluster.health" if segs[1:2] == ["health"] else "other"
    if first.startswith("_"):
        return _OS_ENDPOINTS.get(first, "other")
    # /{index}[/...]
    if len(segs) == 1:
        return {
            "PUT": "indices.create",
            "HEAD": "indices.exists",
            "DELETE": "indices.delete",
            "GET": "indices.get",
        }.get(method, "other")
    endpoint = segs[1]
    if endpoint == "_doc":
        if len(segs) == 2:
            return "index" if method in ("POST", "PUT") else "other"
        return {
            "GET": "get",
            "HEAD": "exists",
            "DELETE": "delete",
            "PUT": "index",
            "POST": "index",
        }.get(method, "other")
    if endpoint in ("_mapping", "_settings"):
        verb = "put" if method in ("PUT", "POST") else "get"
        return f"indices.{verb}{endpoint}"
    return {
        "_search": "search",
        "_create": "create",
        "_update": "update",
        "_source": "get_source",
    }.get(endpoint, _OS_ENDPOINTS.get(endpoint, "other"))


# --- error replies ------------------------------------------------------------------
def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    n = len(raw)
    if n < 24:
        head = bytes([0x60 | n])
    elif n < 0x100:
        head = bytes([0x78, n])
    elif n < 0x10000:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x7A]) + n.to_bytes(4, "big")
    return head + raw


def cbor_map(items: Mapping[str, str]) -> bytes:
    """A CBOR map of text to text (all rpc-v2-cbor error bodies need)."""
    if len(items) >= 24:
        raise ValueError("cbor_map: at most 23 items")
    out = bytearray([0xA0 | len(items)])
    for key, value in items.items():
        out += _cbor_text(key) + _cbor_text(value)
    return bytes(out)


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SHAPE_NAMESPACE = {"sqs": "com.amazonaws.sqs", "cloudwatch": "com.amazonaws.cloudwatch"}


def error_reply(route: Route, rule: ErrorRule, method: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an injected error, as the real service words it.

    The clients then classify it as that service's error: boto3 (ClientError with
    ``rule.code``; its retry modes see throttling/transient codes and 5xx as the real
    ones) and opensearch-py (TransportError with ``status_code`` and ``error``).
    """
    request_id = str(uuid.uuid4())
    fault = "Sender" if rule.status < 500 else "Receiver"
    status = rule.status
    if route.protocol == "opensearch":
        body = {
            "error": {
                "root_cause": [{"type": rule.code, "reason": rule.message}],
                "type": rule.code,
                "reason": rule.message,
            },
            "status": status,
        }
        return (
            status,
            {"content-type": "application/json; charset=UTF-8"},
            json.dumps(body).encode(),
        )
    if route.protocol == "rest-xml":
        headers = {"x-amz-request-id": request_id, "x-amz-id-2": request_id}
        if method == "HEAD":  # S3 answers HEAD errors without a body
            return status, headers, b""
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{_xml_escape(rule.code)}</Code>"
            f"<Message>{_xml_escape(rule.message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        )
        return status, {**headers, "content-type": "application/xml"}, xml.encode()
    shape = f"{_SHAPE_NAMESPACE.get(route.service, 'com.amazonaws')}#{rule.code}"
    base = {"x-amzn-requestid": request_id, "x-amzn-query-error": f"{rule.code};{fault}"}
    if route.protocol == "json":
        return (
            status,
            {**base, "content-type": "application/x-amz-json-1.0"},
            json.dumps({"__type": shape, "message": rule.message}).encode(),
        )
    if route.protocol == "cbor":
        return (
            status,
            {**base, "content-type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"},
            cbor_map({"__type": shape, "message": rule.message}),
        )
    xmlns = {
        "sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
        "cloudwatch": "http://monitoring.amazonaws.com/doc/2010-08-01/",
    }.get(route.service, "")
    xml = (
        f'<ErrorResponse xmlns="{xmlns}"><Error><Type>{fault}</Type>'
        f"<Code>{_xml_escape(rule.code)}</Code><Message>{_xml_escape(rule.message)}</Message>"
        f"<Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, {"x-amzn-requestid": request_id, "content-type": "text/xml"}, xml.encode()


# --- decisions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What the addon does with one request (in this order of precedence)."""

    route: Route | None
    stall_s: float = 0.0  # hold this long, then close without forwarding
    latency_s: float = 0.0  # sleep before anything else
    reset_before: bool = False  # close the connection; never forwarded
    error: ErrorRule | None = None  # answer this instead of forwarding
    reset_after: bool = False  # forward, then close instead of answering

    @property
    def passes(self) -> bool:
        return not (self.stall_s or self.latency_s or self.reset_before or self.error)


def decide(faults: Faults, rng: random.Random, route: Route) -> Plan:
    """Draw the fate of one request: always five numbers, whatever the outcome."""
    u_jitter, u_stall, u_before, u_error, u_after = (rng.random() for _ in range(5))
    if faults.stall is not None and u_stall < faults.stall.rate:
        return Plan(route, stall_s=faults.stall.seconds)
    latency_s = (faults.latency_ms + u_jitter * faults.jitter_ms) / 1000.0
    if u_before < faults.reset_before:
        return Plan(route, latency_s=latency_s, reset_before=True)
    cumulative = 0.0
    for rule in faults.errors:
        cumulative += rule.rate
        if u_error < cumulative:
            return Plan(route, latency_s=latency_s, error=rule)
    return Plan(route, latency_s=latency_s, reset_after=u_after < faults.reset_after)


# --- stats ---------------------------------------------------------------------------
def _counters() -> dict[str, Any]:
    return {
        "requests": 0,
        "errors": {},
        "reset_before": 0,
        "reset_after": 0,
        "stalls": 0,
        "latency_ms": 0.0,
    }


def _add(into: dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if key == "errors":
            for code, n in value.items():
                into["errors"][code] = into["errors"].get(code, 0) + n
        else:
            into[key] += value


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temp file next to ``path`` and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(text.encode("utf-8"))
    tmp.replace(path)


# --- the engine the addon drives --------------------------------------------------------
class Engine:
    """The live config (re-read when its file changes), the seeded RNG and the counters."""

    def __init__(self, config_path: Path, stats_path: Path) -> None:
        self.config_path = config_path
        self.stats_path = stats_path
        self.config = FaultConfig()
        self.rng = random.Random(0)  # noqa: S311 (fault schedules, not secrets)
        self._file_key: tuple[int, int, int] | None = None
        self._refused_key: tuple[int, int, int] | None = None
        self.config_info: dict[str, Any] = {
            "path": str(config_path),
            "name": None,
            "seed": 0,
            "sha256": None,
            "loaded_at": None,
            "loads": 0,
            "refused": 0,
            "last_error": None,
        }
        self.started_at = _now()
        self.actions: dict[tuple[str, str], dict[str, Any]] = {}
        self.unclassified = 0
        self.dirty = True

    # config ----------------------------------------------------------------
    def maybe_reload(self) -> bool:
        """Re-read the config if its file changed (one stat); True if something changed."""
        try:
            st = self.config_path.stat()
        except OSError:
            return False  # missing for a moment or deleted: keep the current config
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key in (self._file_key, self._refused_key):
            return False
        try:
            raw = self.config_path.read_bytes()
        except OSError:
            return False
        digest = hashlib.sha256(raw).hexdigest()
        try:
            config = load_config_text(raw.decode("utf-8"))
        except (ConfigError, UnicodeDecodeError) as exc:
            self._refused_key = key
            self.config_info["refused"] += 1
            self.config_info["last_error"] = {"at": _now(), "sha256": digest, "message": str(exc)}
            log.warning(
                "fault config %s refused, the previous one stays: %s", self.config_path, exc
            )
            self.dirty = True
            return True
        self._file_key = key
        self._refused_key = None
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 (reproducible by design)
        self.config_info.update(
            name=config.name,
            seed=config.seed,
            sha256=digest,
            loaded_at=_now(),
            loads=self.config_info["loads"] + 1,
        )
        log.info(
            "fault config %s loaded (seed %d): %s",
            self.config_path,
            config.seed,
            describe(config).replace("\n", "; "),
        )
        self.dirty = True
        return True

    # requests --------------------------------------------------------------
    def plan(self, route: Route | None) -> Plan:
        """Decide the fate of one classified request and count it."""
        self.maybe_reload()
        self.dirty = True
        if route is None:
            self.unclassified += 1
            return Plan(None)
        counters = self.actions.get((route.service, route.action))
        if counters is None:
            counters = self.actions[(route.service, route.action)] = _counters()
        counters["requests"] += 1
        if not self.config.services:  # pass-through: no draws, nothing to add
            return Plan(route)
        plan = decide(self.config.faults(route.service, route.action), self.rng, route)
        if plan.stall_s:
            counters["stalls"] += 1
        counters["latency_ms"] += plan.latency_s * 1000.0
        if plan.reset_before:
            counters["reset_before"] += 1
        if plan.error is not None:
            errors = counters["errors"]
            errors[plan.error.code] = errors.get(plan.error.code, 0) + 1
        return plan

    def reset_after_done(self, route: Route) -> None:
        self.actions[(route.service, route.action)]["reset_after"] += 1
        self.dirty = True

    # stats -----------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        services: dict[str, Any] = {}
        totals = _counters()
        for (service, action), counters in sorted(self.actions.items()):
            svc = services.setdefault(service, {**_counters(), "actions": {}})
            svc["actions"][action] = json.loads(json.dumps(counters))
            _add(svc, counters)
            _add(totals, counters)
        return {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": _now(),
            "config": dict(self.config_info),
            "totals": totals,
            "unclassified": self.unclassified,
            "services": services,
        }

    def write_stats(self) -> None:
        with contextlib.suppress(OSError):
            atomic_write(self.stats_path, json.dumps(self.stats(), indent=2) + "\n")
            self.dirty = False
