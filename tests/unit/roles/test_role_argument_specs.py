"""Every role's defaults/main.yml and meta/argument_specs.yml (entry point main) hold the same keys.

STYLE.md "Roles": defaults are mirrored in argument_specs so the two never drift;
every default also carries a comment line.
"""

from __future__ import annotations

from pathlib import Path

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
