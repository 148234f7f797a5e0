"""Every role's defaults/main.yml and meta/argument_specs.yml (entry point main) hold the same keys.

STYLE.md "Roles": defaults are mirrored in argument_specs so the two never drift;
every default also carries a comment line. Every entry point a playbook or role calls
with ``tasks_from`` has its own argument spec, whose options are role defaults with the
same default values, and no role reaches outside itself (``../..``): each is installable
on its own (the collection filesearch_ops.filesearch ships them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
WITH_DEFAULTS = sorted(p.parent.parent for p in ROLES.glob("*/defaults/main.yml"))


@pytest.mark.parametrize("role", WITH_DEFAULTS, ids=lambda p: p.name)
def test_defaults_and_argument_specs_have_the_same_keys(role: Path) -> None:
    """The main entry point documents exactly the role's defaults."""
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"].get("options") or {}
    assert sorted(set(defaults) - set(options)) == [], "in defaults, not in argument_specs"
    assert sorted(set(options) - set(defaults)) == [], "in argument_specs, not in defaults"


@pytest.mark.parametrize("role", WITH_DEFAULTS, ids=lambda p: p.name)
def test_defaults_are_prefixed_and_commented(role: Path) -> None:
    """Each default starts with the role name and has a comment line right above it."""
    lines = (role / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line[0].isspace() and not line.startswith(("#", "-")) and ":" in line:
            key = line.split(":", 1)[0]
            assert key.startswith(role.name + "_"), f"{key} is not prefixed with {role.name}_"
            assert lines[i - 1].startswith("#"), f"{key} has no comment line above it"


# --- entry points (include_role/import_role tasks_from) -----------------------------
REPO = ROLES.parent
ALL_ROLES = sorted(p.parent.parent for p in ROLES.glob("*/meta/argument_specs.yml"))
_TASKS_FROM = re.compile(
    r"^(\s*)(?:- )?name: (\w+)\s*\n(?:\1.*\n)*?\1tasks_from: (\w+)", re.MULTILINE
)
# Variables an entry point takes that the role has no default for (set by the caller).
CALLER_ONLY = {
    "sqs_worker_verify_units",
    "sqs_worker_verify_full",
    "sqs_worker_restore_from",
    "worker_backup_find_release",
}


def _specs(role: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    return dict(loaded["argument_specs"])


def _tasks_from_calls() -> list[tuple[str, str, str]]:
    """(file, role, entry point) of every include_role/import_role with tasks_from."""
    calls = []
    for path in sorted([*(REPO / "playbooks").rglob("*.yml"), *ROLES.rglob("*.yml")]):
        if "molecule" in path.parts:
            continue
        for match in _TASKS_FROM.finditer(path.read_text()):
            calls.append((str(path.relative_to(REPO)), match.group(2), match.group(3)))
    return calls


def test_the_tasks_from_calls_are_found() -> None:
    """The scan below sees the playbooks' calls (a broken pattern would make it vacuous)."""
    found = {(role, entry) for _, role, entry in _tasks_from_calls()}
    assert {
        ("sqs_worker", "units"),
        ("sqs_worker", "preflight"),
        ("worker_backup", "find"),
    } <= found


@pytest.mark.parametrize("call", _tasks_from_calls(), ids=lambda c: f"{c[0]}:{c[1]}.{c[2]}")
def test_every_tasks_from_entry_point_has_an_argument_spec(call: tuple[str, str, str]) -> None:
    """A playbook calling ``tasks_from: X`` gets its variables checked: X is an entry point."""
    where, role, entry = call
    assert (ROLES / role).is_dir(), f"{where}: no role {role}"
    assert entry in _specs(ROLES / role), (
        f"{where} calls {role} tasks_from {entry}, which has no entry in "
        f"roles/{role}/meta/argument_specs.yml"
    )


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda p: p.name)
def test_every_entry_point_has_its_tasks_file(role: Path) -> None:
    for entry in _specs(role):
        assert (role / "tasks" / f"{entry}.yml").is_file(), f"{entry}: no tasks/{entry}.yml"


@pytest.mark.parametrize("role", WITH_DEFAULTS, ids=lambda p: p.name)
def test_entry_point_options_are_the_main_options(role: Path) -> None:
    """Another entry point's option is a role default, documented as main documents it
    (type, default), or a variable only its callers set."""
    specs = _specs(role)
    main = specs["main"].get("options") or {}
    for entry, spec in specs.items():
        if entry == "main":
            continue
        for name, option in (spec.get("options") or {}).items():
            if name in CALLER_ONLY:
                continue
            assert name in main, f"{entry}: option {name} is not a role default (main's options)"
            for key in ("type", "default", "elements", "choices"):
                assert option.get(key) == main[name].get(key), (
                    f"{entry}: {name} has {key} {option.get(key)!r}, main {main[name].get(key)!r}"
                )


@pytest.mark.parametrize("role", ALL_ROLES, ids=lambda p: p.name)
def test_role_does_not_reach_outside_itself(role: Path) -> None:
    """Installable on its own: no ../../ into the repository from defaults, specs, tasks, vars."""
    for sub in ("defaults", "meta", "tasks", "vars", "handlers", "templates"):
        for path in sorted((role / sub).rglob("*")) if (role / sub).is_dir() else []:
            if path.is_file():
                assert "../.." not in path.read_text(), (
                    f"{path.relative_to(REPO)} reaches outside the role"
                )
