"""OpenSearch access: bulk index, multi-get of existing ids, delete, behind a circuit breaker.

Connectivity problems never raise out of ``bulk_index``: every document gets
an error string instead, so the caller can put it in the retry store. Calls
refused by an open circuit fail at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from filesearch_worker.breaker import CircuitBreaker
from filesearch_worker.errors import TransientError

if TYPE_CHECKING:
    from filesearch_worker.config import Settings

log = logging.getLogger(__name__)

MAPPING: dict[str, Any] = {
    "properties": {
        "file_key": {"type": "keyword"},
        "bucket": {"type": "keyword"},
        "file_name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "file_extension": {"type": "keyword"},
        "content_type": {"type": "keyword"},
        "file_size": {"type": "long"},
        "etag": {"type": "keyword"},
        "last_modified": {"type": "date"},
        "event_name": {"type": "keyword"},
        "event_time": {"type": "date"},
        "content": {"type": "text"},
        "content_length": {"type": "integer"},
        "content_truncated": {"type": "boolean"},
        "extraction_method": {"type": "keyword"},
        "extraction_error": {"type": "keyword"},
        "metadata_only": {"type": "boolean"},
        "indexed_at": {"type": "date"},
    }
}


def document_id(key: str) -> str:
    """The document id for an S3 key: the key itself (as in the original script)."""
    return key


def make_client(
    endpoint: str,
    *,
    auth: str = "none",
    region: str = "ap-northeast-1",
    username: str = "",
    password: str = "",
    timeout: float = 10.0,
    pool_size: int = 10,
    credentials: Any = None,
) -> Any:
    """An opensearch-py client; ``auth`` is sigv4, basic or none. No client-side retries.

    SigV4 signs with ``credentials`` (botocore credentials, such as an Ansible
    task's ``session.get_credentials()``) when given, else with boto3's default
    credential chain (the daemon's instance role or environment).
    """
    from opensearchpy import OpenSearch, RequestsHttpConnection

    kwargs: dict[str, Any] = {
        "hosts": [endpoint],
        "timeout": timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "pool_maxsize": pool_size,
    }
    if auth == "sigv4":
        kwargs["http_auth"] = sigv4_auth(region, credentials)
        kwargs["connection_class"] = RequestsHttpConnection
    elif auth == "basic":
        kwargs["http_auth"] = (username, password)
    if endpoint.startswith("https://"):
        kwargs["use_ssl"] = True
        kwargs["verify_certs"] = True
    return OpenSearch(**kwargs)


def sigv4_auth(region: str, credentials: Any = None) -> Any:
    """The SigV4 signer for Amazon OpenSearch Service (service ``es``) in ``region``.

    ``credentials`` (botocore credentials) are used as given; None means boto3's
    default chain. Raises ValueError when no credentials can be found.
    """
    from opensearchpy import AWSV4SignerAuth

    if credentials is None:
        import boto3

        credentials = boto3.session.Session(region_name=region).get_credentials()
    if credentials is None:
        raise ValueError(
            "OpenSearch auth sigv4 needs AWS credentials and none were found "
            "(give access_key/secret_key or profile, or configure boto3's credential chain)"
        )
    return AWSV4SignerAuth(credentials, region, "es")


class Indexer:
    """Index, look up and delete documents in one index, guarded by a circuit breaker."""

    def __init__(
        self,
        client: Any,
        index: str,
        *,
        breaker: CircuitBreaker | None = None,
        skip: bool = False,
    ) -> None:
        self.client = client
        self.index = index
        self.breaker = breaker or CircuitBreaker("opensearch")
        self.skip = skip

    @classmethod
    def from_settings(cls, settings: Settings, *, credentials: Any = None) -> Indexer:
        """The indexer the worker uses (``SKIP_OPENSEARCH`` and breaker settings honoured).

        ``credentials`` sign SigV4 requests (an Ansible task's); None: boto3's default chain.
        """
        breaker = CircuitBreaker(
            "opensearch",
            failure_threshold=settings.cb_failure_threshold,
            cooldown=settings.cb_cooldown_seconds,
        )
        if settings.skip_opensearch or not settings.opensearch_endpoint:
            if not settings.skip_opensearch:
                log.warning("OPENSEARCH_ENDPOINT is not set; documents go to the retry store")
            return cls(None, settings.opensearch_index, breaker=breaker, skip=True)
        client = make_client(
            settings.opensearch_endpoint,
            auth=settings.effective_auth(),
            region=settings.region,
            username=settings.opensearch_username,
            password=settings.opensearch_password,
            timeout=settings.opensearch_timeout,
            pool_size=max(10, settings.concurrency * 2),
            credentials=credentials,
        )
        return cls(client, settings.opensearch_index, breaker=breaker)

    @classmethod
    def for_endpoint(
        cls,
        endpoint: str,
        index: str,
        *,
        auth: str = "none",
        region: str = "ap-northeast-1",
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        credentials: Any = None,
    ) -> Indexer:
        """An indexer for an explicit endpoint (Ansible modules, tests).

        ``credentials`` sign SigV4 requests (an Ansible task's); None: boto3's default chain.
        """
        client = make_client(
            endpoint,
            auth=auth,
            region=region,
            username=username,
            password=password,
            timeout=timeout,
            credentials=credentials,
        )
        breaker = CircuitBreaker("opensearch", failure_threshold, cooldown)
        return cls(client, index, breaker=breaker)

    # -- availability -------------------------------------------------------

    def _unavailable(self) -> str | None:
        """Why calls cannot be made now, or None."""
        if self.skip:
            return "opensearch-skipped: SKIP_OPENSEARCH is set or no endpoint configured"
        if not self.breaker.allow():
            return (
                "circuit-open: OpenSearch failed recently; next attempt in "
                f"{self.breaker.retry_after():.0f} s"
            )
        return None

    def ping(self) -> bool:
        """True when OpenSearch answers (bypasses the breaker; a success closes it)."""
        if self.skip:
            return False
        try:
            self.client.info()
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            log.debug("OpenSearch ping failed: %s", exc)
            return False
        self.breaker.record_success()
        return True

    def info(self) -> dict[str, Any]:
        """Cluster info; raises on failure (used by ``health``)."""
        if self.skip:
            raise TransientError("SKIP_OPENSEARCH is set", "opensearch-skipped")
        result: dict[str, Any] = self.client.info()
        return result

    def ensure_index(self) -> bool:
        """Create the index with the worker's mapping when it does not exist; True if created."""
        if self.skip:
            return False
        try:
            if self.client.indices.exists(index=self.index, request_timeout=60):
                return False
            self.client.indices.create(
                index=self.index, body={"mappings": MAPPING}, request_timeout=60
            )
        except Exception as exc:  # noqa: BLE001 - the first bulk will report it again
            log.warning("could not check or create index %s: %s", self.index, exc)
            return False
        log.info("created index %s", self.index)
        return True

    # -- writes ---------------------------------------------------------------

    def bulk_index(self, docs: Mapping[str, Mapping[str, Any]]) -> dict[str, str | None]:
        """Index ``{id: document}`` in one bulk request; ``{id: None or error}``. Never raises."""
        if not docs:
            return {}
        why = self._unavailable()
        if why:
            return dict.fromkeys(docs, why)
        from opensearchpy import helpers

        actions = (
            {"_op_type": "index", "_index": self.index, "_id": doc_id, "_source": dict(doc)}
            for doc_id, doc in docs.items()
        )
        results: dict[str, str | None] = dict.fromkeys(docs, "bulk: no result for this document")
        try:
            for ok, item in helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=max(1, len(docs)),
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=0,
                yield_ok=True,
            ):
                info = item.get("index", item)
                doc_id = str(info.get("_id"))
                if ok:
                    results[doc_id] = None
                else:
                    error = info.get("error")
                    if isinstance(error, dict):
                        error = f"{error.get('type')}: {error.get('reason')}"
                    results[doc_id] = f"index-rejected: status {info.get('status')}: {error}"
        except Exception as exc:  # noqa: BLE001 - every document gets the error instead
            self.breaker.record_failure()
            reason = f"opensearch-unavailable: {type(exc).__name__}: {str(exc)[:300]}"
            log.warning("bulk index of %d document(s) failed: %s", len(docs), reason)
            return dict.fromkeys(docs, reason)
        self.breaker.record_success()
        return results

    def delete(self, doc_id: str) -> bool:
        """Delete one document; True if it was there. Raises TransientError when unreachable."""
        why = self._unavailable()
        if why:
            raise TransientError(why, why.split(":", 1)[0])
        from opensearchpy.exceptions import NotFoundError

        try:
            self.client.delete(index=self.index, id=doc_id)
        except NotFoundError:
            self.breaker.record_success()
            return False
        except Exception as exc:
            self.breaker.record_failure()
            raise TransientError(
                f"delete {doc_id!r}: {type(exc).__name__}: {str(exc)[:300]}",
                "opensearch-unavailable",
            ) from exc
        self.breaker.record_success()
        return True

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` present in the index (one multi-get). Raises TransientError."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return set()
        why = self._unavailable()
        if why:
            raise TransientError(why, why.split(":", 1)[0])
        from opensearchpy.exceptions import NotFoundError

        try:
            response = self.client.mget(index=self.index, body={"ids": wanted}, _source=False)
        except NotFoundError:  # the index does not exist yet
            self.breaker.record_success()
            return set()
        except Exception as exc:
            self.breaker.record_failure()
            raise TransientError(
                f"mget: {type(exc).__name__}: {str(exc)[:300]}", "opensearch-unavailable"
            ) from exc
        self.breaker.record_success()
        return {str(d["_id"]) for d in response.get("docs", []) if d.get("found")}

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """The stored source of one document, or None (tests, replay checks)."""
        from opensearchpy.exceptions import NotFoundError

        try:
            response = self.client.get(index=self.index, id=doc_id)
        except NotFoundError:
            return None
        source: dict[str, Any] = response.get("_source", {})
        return source
