#!/usr/bin/python
# Copyright: filesearch-ops contributors
# Apache License 2.0 (see files/worker/pyproject.toml)
"""Ansible module worker_backup_snapshot: snapshot what the worker runs, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: worker_backup_snapshot
short_description: Snapshot the worker's release id, environment file and units with checksums
description:
  - Reads what the worker runs - the release named by O(base_dir)/current, the environment
    file, the plain and template unit files, the enabled units and, for a legacy flat install,
    the flat files in O(base_dir) - and compares it with the newest snapshot's manifest.
  - When something differs (or O(force)), writes a new snapshot directory
    O(backup_dir)/<UTC timestamp>/ with C(manifest.json) (sha256 of every file), C(RELEASE),
    C(env/), C(units/) and C(legacy/); otherwise changes nothing.
  - Keeps the newest O(keep) snapshots; never removes the one describing what runs.
  - The layout is what the sqs_worker role's C(restore) entry point reads back.
version_added: "1.0.0"
author:
  - filesearch-ops contributors
options:
  base_dir:
    description: Base directory of the worker's releases.
    type: path
    required: true
  service_name:
    description: Name of the worker's unit.
    type: str
    required: true
  env_file:
    description: The worker's environment file.
    type: path
    required: true
  unit_dir:
    description: Directory of the unit files.
    type: path
    default: /etc/systemd/system
  legacy_patterns:
    description: Glob patterns of a legacy flat install's files in O(base_dir).
    type: list
    elements: str
    default: []
  backup_dir:
    description: Directory of the snapshots.
    type: path
    required: true
  keep:
    description: Snapshots kept.
    type: int
    default: 10
  force:
    description: Write a snapshot even when nothing changed since the newest one.
    type: bool
    default: false
  host:
    description: Host name recorded in the manifest.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Snapshot what the worker runs
  worker_backup_snapshot:
    base_dir: /home/ec2-user/file-processor
    service_name: phased-worker
    env_file: /etc/phased-worker.env
    backup_dir: /home/ec2-user/backups
    keep: 10
"""

RETURN = r"""
path:
  description: The snapshot describing what runs now (new, or the unchanged newest one).
  returned: always
  type: str
  sample: /home/ec2-user/backups/20261123T190632Z
created:
  description: Whether a new snapshot was written.
  returned: always
  type: bool
  sample: true
manifest:
  description: The snapshot's manifest.
  returned: always
  type: dict
  sample: {"release_id": "20261123T190437Z-3c03cc73", "enabled_units": ["phased-worker.service"],
           "env_file": "/etc/phased-worker.env", "files": {"env/phased-worker.env": "01028c..."}}
removed:
  description: Snapshots removed by the retention.
  returned: always
  type: list
  elements: str
  sample: ["/home/ec2-user/backups/20261101T101010Z"]
"""

import fnmatch
import hashlib
import json
import shutil
import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

_STAMP = "%Y%m%dT%H%M%SZ"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sources(params: dict) -> dict[str, Path]:
    """Relative path in the snapshot -> path on the host, for the files that exist."""
    out: dict[str, Path] = {}
    env = Path(params["env_file"])
    if env.is_file():
        out["env/" + env.name] = env
    for name in (params["service_name"] + ".service", params["service_name"] + "@.service"):
        unit = Path(params["unit_dir"]) / name
        if unit.is_file():
            out["units/" + name] = unit
    base = Path(params["base_dir"])
    if (base / "worker.py").is_file():
        for path in sorted(base.iterdir()):
            if (
                path.is_file()
                and not path.is_symlink()
                and any(fnmatch.fnmatch(path.name, pat) for pat in params["legacy_patterns"])
            ):
                out["legacy/" + path.name] = path
    return out


def _enabled_units(unit_dir: Path, service: str) -> list[str]:
    found: set[str] = set()
    for wants in unit_dir.iterdir() if unit_dir.is_dir() else []:
        if not wants.name.endswith((".wants", ".requires")) or not wants.is_dir():
            continue
        for link in wants.iterdir():
            name = link.name
            if name == service + ".service" or (
                name.startswith(service + "@") and name.endswith(".service")
            ):
                found.add(name)
    return sorted(found)


def _snapshots(backup_dir: Path) -> list[Path]:
    if not backup_dir.is_dir():
        return []
    return sorted(d for d in backup_dir.iterdir() if d.is_dir() and not d.name.endswith(".partial"))


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(partial: Path, sources: dict[str, Path], state: dict, manifest: dict) -> str | None:
    """Write the snapshot into ``partial``; an error message when a file changed meanwhile."""
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700, parents=True)
    for rel, src in sources.items():
        dest = partial / rel
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(0o600)
        if _sha256(dest) != state["files"][rel]:
            return f"{src} changed while it was copied; run again"
    (partial / "RELEASE").write_text(state["release_id"] + "\n", encoding="utf-8")
    (partial / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return None


def main() -> None:
    """Module entry point."""
    module = AnsibleModule(
        argument_spec={
            "base_dir": {"type": "path", "required": True},
            "service_name": {"type": "str", "required": True},
            "env_file": {"type": "path", "required": True},
            "unit_dir": {"type": "path", "default": "/etc/systemd/system"},
            "legacy_patterns": {"type": "list", "elements": "str", "default": []},
            "backup_dir": {"type": "path", "required": True},
            "keep": {"type": "int", "default": 10},
            "force": {"type": "bool", "default": False},
            "host": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["keep"] < 1:
        module.fail_json(msg="keep must be at least 1")
    backup_dir = Path(p["backup_dir"])
    current = Path(p["base_dir"]) / "current"
    release_id = current.readlink().name if current.is_symlink() else ""
    sources = _sources(p)
    state = {
        "release_id": release_id,
        "env_file": p["env_file"],
        "enabled_units": _enabled_units(Path(p["unit_dir"]), p["service_name"]),
        "files": {rel: _sha256(path) for rel, path in sorted(sources.items())},
    }
    existing = _snapshots(backup_dir)
    newest = existing[-1] if existing else None
    old = _read_manifest(newest) if newest else {}
    needed = p["force"] or any(old.get(k) != v for k, v in state.items())
    path = newest
    manifest = old
    if needed:
        stamp = time.strftime(_STAMP, time.gmtime())
        path = backup_dir / stamp
        suffix = 1
        while path.exists():  # two snapshots in one second
            path = backup_dir / f"{stamp}-{suffix}"
            suffix += 1
        manifest = dict(
            state,
            format=1,
            host=p["host"],
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            base_dir=p["base_dir"],
            unit_dir=p["unit_dir"],
            service_name=p["service_name"],
        )
        if not module.check_mode:
            backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            error = _write(partial, sources, state, manifest)
            if error:
                shutil.rmtree(partial, ignore_errors=True)
                module.fail_json(msg=error)
            partial.rename(path)  # a snapshot appears complete or not at all
        # counted in check mode too: the new snapshot pushes the oldest out of the keep window
        existing.append(path)
    removed = [old_path for old_path in sorted(existing)[: -p["keep"]] if old_path != path]
    if not module.check_mode:
        for old_path in removed:
            shutil.rmtree(old_path, ignore_errors=True)
    module.exit_json(
        changed=needed or bool(removed),
        path=str(path) if path else "",
        created=needed,
        manifest=manifest,
        removed=[str(r) for r in removed],
    )


if __name__ == "__main__":
    main()
