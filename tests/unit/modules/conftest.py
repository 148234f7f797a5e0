"""Fixtures for the unit tests of the modules in library/.

The modules import their shared code as ``ansible.module_utils.filesearch_aws``;
Ansible finds it through ansible.cfg's ``module_utils`` when it runs a module,
and these tests put the same directory on ``ansible.module_utils.__path__``.
AnsibleModule.exit_json/fail_json are patched to raise, and arguments are set
with ``ansible.module_utils.testing.patch_module_args``.
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


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process, with fake credentials and no endpoint override from the caller's env."""
    from moto import mock_aws

    for var in list(os.environ):
        if var.startswith("AWS_ENDPOINT_URL") or var in ("AWS_PROFILE", "AWS_CONFIG_FILE"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with mock_aws():
        yield
