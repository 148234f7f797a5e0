"""Testinfra checks of the worker_backup scenario."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

BACKUPS = "/home/ec2-user/backups"


def _snapshots(host: Any) -> list[str]:
    with host.sudo():
        out = host.run(f"ls -1 {BACKUPS}").stdout.split()
    return sorted(out)


def _manifest(host: Any) -> dict[str, Any]:
    newest = _snapshots(host)[-1]
    with host.sudo():
        return json.loads(host.file(f"{BACKUPS}/{newest}/manifest.json").content_string)


def test_one_snapshot_after_two_runs(host: Any) -> None:
    """Converge + idempotence made one snapshot: nothing changed in between."""
    assert len(_snapshots(host)) == 1


def test_backup_dir_private(host: Any) -> None:
    """The backup directory is root-only."""
    backups = host.file(BACKUPS)
    assert backups.user == "root"
    assert backups.mode == 0o700


def test_manifest_names_release_and_units(host: Any) -> None:
    """The manifest records the release, the enabled unit and the files."""
    manifest = _manifest(host)
    assert manifest["release_id"] == "20260101T000000Z-abcdef12"
    assert manifest["enabled_units"] == ["phased-worker.service"]
    assert set(manifest["files"]) == {
        "env/phased-worker.env",
        "units/phased-worker.service",
        "legacy/worker.py",
    }


def test_checksums_match(host: Any) -> None:
    """Every file in the snapshot has the sha256 the manifest lists."""
    newest = _snapshots(host)[-1]
    for rel, digest in _manifest(host)["files"].items():
        with host.sudo():
            data = host.run(f"base64 -w0 {BACKUPS}/{newest}/{rel}").stdout
        assert hashlib.sha256(base64.b64decode(data)).hexdigest() == digest, rel


def test_environment_copy_private(host: Any) -> None:
    """The copied environment file is 0600."""
    newest = _snapshots(host)[-1]
    with host.sudo():
        env = host.file(f"{BACKUPS}/{newest}/env/phased-worker.env")
        assert env.mode == 0o600
