"""``ansible-playbook`` as a real process, the way every playbook test runs it.

On ``sys.path`` through the root conftest (pytest's rootdir import mode), so
the helper modules of each test directory import it by name and wrap the
completed process in the result type their tests read (plain text with a
PLAY RECAP, or the ``ansible.posix.json`` callback's document).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


def ansible_playbook(
    playbook: str | Path,
    env: Mapping[str, str] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    limit: str | None = None,
    check: bool = False,
    json_output: bool = False,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``playbooks/<playbook>`` (or a path) with the repository's ansible.cfg.

    ``extra`` goes in as one ``-e`` JSON document; the default inventory is
    ansible.cfg's (inventories/local, the sandbox). Never raises on failure.
    """
    path = Path(playbook)
    if not path.is_absolute() and path.parent == Path():
        path = REPO / "playbooks" / path
    argv = [str(ANSIBLE_PLAYBOOK), str(path)]
    if extra:
        argv += ["-e", json.dumps(extra)]
    if limit:
        argv += ["--limit", limit]
    if check:
        argv.append("--check")
    run_env = {**(os.environ if env is None else env)}
    run_env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    if json_output:
        run_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    return subprocess.run(
        argv, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=timeout, check=False
    )
