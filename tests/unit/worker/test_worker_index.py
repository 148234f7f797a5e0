"""Indexer against osmem-server: bulk, multi-get, delete; the breaker against a closed port."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from filesearch_worker.breaker import CircuitBreaker
from filesearch_worker.errors import TransientError
from filesearch_worker.index import Indexer, document_id


@pytest.fixture
def indexer(osmem_url: str) -> Indexer:
    return Indexer.for_endpoint(osmem_url, "files")


def test_document_id_is_the_key() -> None:
    assert document_id("a/b c/日本.txt") == "a/b c/日本.txt"


def test_bulk_multiget_delete(indexer: Indexer) -> None:
    assert indexer.ensure_index() is True
    assert indexer.ensure_index() is False
    docs = {
        "a/one.txt": {"file_key": "a/one.txt", "content": "one"},
        "日本/二.txt": {"file_key": "日本/二.txt", "content": "二"},
    }
    assert indexer.bulk_index(docs) == {"a/one.txt": None, "日本/二.txt": None}
    assert indexer.existing_ids(["a/one.txt", "日本/二.txt", "missing"]) == {
        "a/one.txt",
        "日本/二.txt",
    }
    got = indexer.get("日本/二.txt")
    assert got is not None and got["content"] == "二"
    assert indexer.delete("a/one.txt") is True
    assert indexer.delete("a/one.txt") is False
    assert indexer.existing_ids(["a/one.txt"]) == set()
    assert indexer.ping()


def test_existing_ids_of_a_missing_index(osmem_url: str) -> None:
    assert Indexer.for_endpoint(osmem_url, "nothing-here").existing_ids(["x"]) == set()


def test_outage_costs_one_fast_failure_per_cooldown(closed_port: int) -> None:
    down = Indexer.for_endpoint(f"http://127.0.0.1:{closed_port}", "files", timeout=2)
    calls: list[str] = []
    perform = down.client.transport.perform_request

    def counting(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(url)
        return perform(method, url, *args, **kwargs)

    down.client.transport.perform_request = counting
    indexer = Indexer(down.client, "files", breaker=CircuitBreaker("os", 1, cooldown=3600))
    first = indexer.bulk_index({"k": {"file_key": "k"}})
    assert first["k"] is not None and first["k"].startswith("opensearch-unavailable")
    assert len(calls) == 1
    for _ in range(5):
        again = indexer.bulk_index({"k": {"file_key": "k"}})
        assert again["k"] is not None and again["k"].startswith("circuit-open")
    assert len(calls) == 1  # refused without touching the network
    with pytest.raises(TransientError) as caught:
        indexer.delete("k")
    assert caught.value.error_type == "circuit-open"
    with pytest.raises(TransientError):
        indexer.existing_ids(["k"])
    assert not indexer.ping()


def test_skip_reports_every_document(make_settings: Any) -> None:
    indexer = Indexer.from_settings(make_settings(skip_opensearch=True))
    result = indexer.bulk_index({"a": {}, "b": {}})
    assert set(result) == {"a", "b"}
    assert all(v and v.startswith("opensearch-skipped") for v in result.values())


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = json.dumps({"version": {"number": "2.11.0"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("auth", "prefix"),
    [("sigv4", "AWS4-HMAC-SHA256 Credential=testing/"), ("basic", "Basic "), ("none", None)],
)
def test_auth_modes_sign_requests(recorder: str, auth: str, prefix: str | None) -> None:
    indexer = Indexer.for_endpoint(recorder, "files", auth=auth, username="u", password="p")
    assert indexer.info()["version"]["number"] == "2.11.0"
    header = _Recorder.seen[-1].get("authorization")
    if prefix is None:
        assert header is None
    else:
        assert header is not None and header.startswith(prefix)
    if auth == "sigv4":
        assert "/ap-northeast-1/es/aws4_request" in header


def test_sigv4_signs_with_the_given_credentials_not_the_default_chain(
    recorder: str, make_settings: Any
) -> None:
    # the environment holds the default chain's key (testing); an Ansible task's own keys win
    from botocore.credentials import Credentials

    task = Credentials("AKIDTASKKEY", "task-secret", "task-token")
    for indexer in (
        Indexer.for_endpoint(recorder, "files", auth="sigv4", credentials=task),
        Indexer.from_settings(
            make_settings(opensearch_endpoint=recorder, opensearch_auth="sigv4"),
            credentials=task,
        ),
    ):
        indexer.info()
        headers = _Recorder.seen[-1]
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTASKKEY/")
        assert headers["x-amz-security-token"] == "task-token"


def test_sigv4_without_any_credentials_is_a_clear_error(
    recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ValueError, match="sigv4 needs AWS credentials"):
        Indexer.for_endpoint(recorder, "files", auth="sigv4")
