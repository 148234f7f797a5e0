"""Fixtures for the unit tests of the modules in library/.

The modules import their shared code as ``ansible.module_utils.filesearch``;
Ansible finds it through ansible.cfg's ``module_utils`` when it runs a module,
and these tests put the same directory on ``ansible.module_utils.__path__``.
AnsibleModule.exit_json/fail_json are patched to raise (AnsibleAWSModule calls
them), and arguments are set with ``ansible.module_utils.testing.patch_module_args``.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, NoReturn
from unittest import mock

import ansible.module_utils
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = ROOT / "library"
MODULE_UTILS = ROOT / "module_utils"

if str(MODULE_UTILS) not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(MODULE_UTILS))


class AnsibleExitJson(Exception):
    """exit_json was called; ``result`` holds its arguments."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", "exit_json"))
        self.result = result


class AnsibleFailJson(Exception):
    """fail_json was called; ``result`` holds its arguments."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", "fail_json"))
        self.result = result


def _exit_json(self: basic.AnsibleModule, **kwargs: Any) -> NoReturn:
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self: basic.AnsibleModule, msg: str = "", **kwargs: Any) -> NoReturn:
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise AnsibleFailJson(kwargs)


def load_module(name: str) -> ModuleType:
    """Import library/<name>.py as a fresh Python module."""
    spec = importlib.util.spec_from_file_location(f"library_{name}", LIBRARY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


RunModule = Callable[..., dict[str, Any]]


@pytest.fixture
def run_module() -> Iterator[RunModule]:
    """run_module(module, args, check_mode=False, diff=False) -> result of exit_json.

    A call of fail_json raises AnsibleFailJson (use pytest.raises).
    """

    def run(
        module: ModuleType, args: dict[str, Any], check_mode: bool = False, diff: bool = False
    ) -> dict[str, Any]:
        full = dict(args)
        if check_mode:
            full["_ansible_check_mode"] = True
        if diff:
            full["_ansible_diff"] = True
        with (
            patch_module_args(full),
            mock.patch.object(basic.AnsibleModule, "exit_json", _exit_json),
            mock.patch.object(basic.AnsibleModule, "fail_json", _fail_json),
        ):
            try:
                module.main()
            except AnsibleExitJson as done:
                return done.result
        raise AssertionError("the module returned without exit_json or fail_json")

    yield run


def use_client(monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    """Make every ``module.client(service)`` of the modules return ``client``."""
    from ansible.module_utils.filesearch import FilesearchAWSModule

    monkeypatch.setattr(FilesearchAWSModule, "client", lambda self, service, *a, **k: client)


@pytest.fixture
def without_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    """amazon.aws's boto3 check sees no boto3 (AnsibleAWSModule fails at once)."""
    from ansible_collections.amazon.aws.plugins.module_utils import botocore

    monkeypatch.setattr(botocore, "HAS_BOTO3", False)


@pytest.fixture
def without_filesearch_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The filesearch_worker presence check fails."""
    from ansible.module_utils import filesearch

    monkeypatch.setattr(filesearch, "HAS_FILESEARCH_WORKER", False)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process, with fake credentials and no endpoint override from the caller's env."""
    from moto import mock_aws

    for var in list(os.environ):
        if var.startswith("AWS_ENDPOINT_URL") or var in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_URL",  # amazon.aws's endpoint_url fallback
            "AWS_SESSION_TOKEN",
        ):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with mock_aws():
        yield


class _OpenSearchRecorder(http.server.BaseHTTPRequestHandler):
    """Answers like an empty OpenSearch and records each request's path and headers."""

    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self, body: dict[str, Any]) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer({"version": {"number": "2.11.0"}})

    def do_POST(self) -> None:
        if self.path.split("?")[0].endswith("/_mget"):
            self._answer({"docs": []})
        else:
            self._answer({"took": 0, "errors": False, "items": []})

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Recorder:
    """The stand-in OpenSearch's URL and the requests it received."""

    url: str
    requests: list[dict[str, str]]

    def authorizations(self) -> list[str]:
        return [r.get("authorization", "") for r in self.requests]


@pytest.fixture
def opensearch_recorder() -> Iterator[Recorder]:
    """An HTTP server on 127.0.0.1 standing in for an empty OpenSearch, recording requests."""
    _OpenSearchRecorder.seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _OpenSearchRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Recorder(f"http://127.0.0.1:{server.server_address[1]}", _OpenSearchRecorder.seen)
    server.shutdown()
    server.server_close()
