"""Code the Redis-queue modules share: connection options, the queue layout, errors.

Imported by ``library/redis_*.py`` as ``ansible.module_utils.filesearch_redis``.
The options are documented once in ``plugins/doc_fragments/filesearch_redis.py``
(fragments ``filesearch_redis`` and ``filesearch_redis.layout``).
"""

from __future__ import annotations

import traceback
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib

try:
    import redis
    from redis.exceptions import RedisError
except ImportError:
    HAS_REDIS = False
    REDIS_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None

try:
    from filesearch_worker.redis_queue import Layout, RedisQueueError
except ImportError:
    HAS_ENGINE = False
    ENGINE_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_ENGINE = True
    ENGINE_IMPORT_ERROR = None

#: How the libraries are named in missing_required_lib messages.
REDIS_LIB = "redis (pip install 'files/worker[redis]')"
ENGINE_LIB = "filesearch-worker (pip install files/worker)"


def redis_argument_spec() -> dict[str, Any]:
    """The connection options (fragment ``filesearch_redis``)."""
    return {
        "url": {
            "type": "str",
            "aliases": ["redis_url"],
            "default": "redis://127.0.0.1:6379/0",
            "fallback": (env_fallback, ["REDIS_URL"]),
        },
        "password": {
            "type": "str",
            "no_log": True,
            "fallback": (env_fallback, ["REDIS_PASSWORD"]),
        },
        "socket_timeout": {"type": "float", "default": 10},
    }


def layout_argument_spec() -> dict[str, Any]:
    """Where the queues, the processing set and the per-job keys are (``.layout``).

    The defaults are the engine's (``Layout()``). Where the engine cannot be
    imported there are none: the module fails with missing_required_lib
    (``require_redis``) before it reads an option.
    """
    default = Layout() if HAS_ENGINE else None

    def option(name: str, kind: str) -> dict[str, Any]:
        return {"type": kind, "default": getattr(default, name, None)}

    return {
        "queues": {
            "type": "list",
            "elements": "str",
            "default": list(default.queues) if default else None,
        },
        "processing_set": option("processing_set", "str"),
        "heartbeat_prefix": option("heartbeat_prefix", "str"),
        "job_prefix": option("job_prefix", "str"),
        "queue_field": option("queue_field", "str"),
        "default_queue": {"type": "str"},
        "stale_after_seconds": {
            "type": "float",
            "default": float(default.stale_after_seconds) if default else None,
        },
        "job_id_pattern": option("job_id_pattern", "str"),
    }


def require_redis(module: AnsibleModule) -> None:
    """Fail with missing_required_lib when redis-py or the engine cannot be imported."""
    if not HAS_REDIS:
        module.fail_json(msg=missing_required_lib(REDIS_LIB), exception=REDIS_IMPORT_ERROR)
    if not HAS_ENGINE:
        module.fail_json(msg=missing_required_lib(ENGINE_LIB), exception=ENGINE_IMPORT_ERROR)


def safe_url(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def layout_from_params(module: AnsibleModule) -> Any:
    """The engine's Layout from the module's options; bad settings fail naming the option."""
    p = module.params
    layout = Layout(
        queues=tuple(p["queues"]),
        processing_set=p["processing_set"],
        heartbeat_prefix=p["heartbeat_prefix"],
        job_prefix=p["job_prefix"],
        queue_field=p["queue_field"],
        default_queue=p["default_queue"],
        stale_after_seconds=p["stale_after_seconds"],
        job_id_pattern=p["job_id_pattern"],
    )
    try:
        layout.check()
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    return layout


def redis_client(module: AnsibleModule) -> Any:
    """A connected client (PING answered); an unreachable server fails the module."""
    require_redis(module)
    p = module.params
    try:
        client = redis.Redis.from_url(
            p["url"],
            password=p.get("password") or None,
            socket_timeout=p["socket_timeout"],
            socket_connect_timeout=p["socket_timeout"],
            decode_responses=False,
        )
        client.ping()
    except (RedisError, ValueError) as exc:
        fail_redis(module, exc, f"Cannot connect to Redis at {safe_url(p['url'])}")
    return client


def fail_redis(module: AnsibleModule, exc: BaseException, msg: str, **result: Any) -> NoReturn:
    """Fail for a Redis error or bad data; ``key`` names the key when the engine knows it."""
    details: dict[str, Any] = {"error_code": type(exc).__name__}
    if HAS_ENGINE and isinstance(exc, RedisQueueError):
        details["key"] = exc.key
    module.fail_json(msg=f"{msg}: {exc}", **details, **result)
    raise AssertionError("fail_json returned")  # pragma: no cover  (fail_json exits)
