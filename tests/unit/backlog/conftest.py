"""Fixtures for the backlog unit tests: library modules run in-process, moto for AWS.

The modules import ``ansible.module_utils.filesearch_aws``; the repository's
module_utils directory is added to ``ansible.module_utils.__path__`` as Ansible
would. exit_json/fail_json raise, arguments are set with patch_module_args.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn
from unittest import mock

import ansible.module_utils
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

ROOT = Path(__file__).resolve().parents[3]
LIBRARY = ROOT / "library"
if str(ROOT / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(ROOT / "module_utils"))


class ModuleExit(Exception):
    """exit_json was called."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", "exit_json"))
        self.result = result


class ModuleFail(Exception):
    """fail_json was called."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", "fail_json"))
        self.result = result


def _exit(self: basic.AnsibleModule, **kwargs: Any) -> NoReturn:
    kwargs.setdefault("changed", False)
    raise ModuleExit(kwargs)


def _fail(self: basic.AnsibleModule, msg: str = "", **kwargs: Any) -> NoReturn:
    raise ModuleFail({**kwargs, "failed": True, "msg": msg})


def load_library(name: str) -> ModuleType:
    """Import library/<name>.py."""
    spec = importlib.util.spec_from_file_location(f"backlog_lib_{name}", LIBRARY / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


RunModule = Callable[..., dict[str, Any]]


@pytest.fixture
def run_module() -> RunModule:
    """run_module(module, args, check_mode=False) -> exit_json's result (fail_json raises)."""

    def run(module: ModuleType, args: dict[str, Any], check_mode: bool = False) -> dict[str, Any]:
        full = dict(args, _ansible_check_mode=check_mode)
        with (
            patch_module_args(full),
            mock.patch.object(basic.AnsibleModule, "exit_json", _exit),
            mock.patch.object(basic.AnsibleModule, "fail_json", _fail),
        ):
            try:
                module.main()
            except ModuleExit as done:
                return done.result
        raise AssertionError("the module returned without exit_json or fail_json")

    return run


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process with fake credentials; no endpoint from the caller's environment."""
    from moto import mock_aws

    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with mock_aws():
        yield
