#!/usr/bin/env python3
"""Build the worker's wheelhouse once on the controller and describe the release.

Run by the sqs_worker role (``run_once``, ``delegate_to: localhost``). Prints one
JSON object: the wheelhouse tarball, its content checksum, a release id
(``<UTC timestamp>-<git short sha>``) and whether anything was built.

The wheelhouse is cached by a checksum of its inputs (the worker's source
tree, the constraints file, the target Python tag), so a repeated deploy of
the same code builds nothing and reports no change. The *release* checksum
adds the build tag, so ``-e sqs_worker_build_tag=v2`` makes a distinct
release from the same source (used by the end-to-end tests).

Standard library only: it runs with the controller's ansible Python.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

# Directories and files that never belong in a build's input checksum.
_SKIP_DIRS = {
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    ".git",
    ".venv",
    "tests",
}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def source_checksum(source: Path, extra: list[Path], tag: str) -> str:
    """sha256 over every relevant file's path and bytes, plus the extras and the tag."""
    digest = hashlib.sha256()
    for path in sorted(_source_files(source)):
        digest.update(str(path.relative_to(source)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    for path in extra:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(tag.encode())
    return digest.hexdigest()


def _source_files(source: Path) -> list[Path]:
    files: list[Path] = []
    for root, dirs, names in os.walk(source):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        files.extend(Path(root) / name for name in names if not name.endswith(_SKIP_SUFFIXES))
    return files


def _pip(args: argparse.Namespace, pip_args: list[str]) -> None:
    cmd = [args.pip_python, "-m", "pip", "--quiet", "--disable-pip-version-check", *pip_args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"pip {pip_args[0]} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def _dependency_wheels(
    args: argparse.Namespace, source: Path, constraints: Path, cache: Path, py_tag: str
) -> Path:
    """The wheels of the worker's dependencies (not the worker itself), built once.

    Keyed by the project metadata and the constraints only, so a change to the
    worker's code rebuilds just its own small wheel.
    """
    key = hashlib.sha256()
    for part in ((source / "pyproject.toml").read_bytes(), constraints.read_bytes()):
        key.update(part + b"\0")
    key.update(f"{py_tag}|{args.extras}".encode())
    deps = cache / f"deps-{key.hexdigest()[:16]}"
    if deps.is_dir():
        os.utime(deps)  # recently used: kept by prune_cache
        return deps
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        wheels = Path(tmp) / "wheels"
        target = f"{source}[{args.extras}]" if args.extras else str(source)
        _pip(args, ["wheel", "--wheel-dir", str(wheels), "--constraint", str(constraints), target])
        own = args.package.replace("-", "_") + "-"
        for wheel in wheels.glob(own + "*.whl"):
            wheel.unlink()
        wheels.replace(deps)
    return deps


def git_short_sha(source: Path) -> str:
    """The source tree's commit (``nogit`` outside a repository)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=8", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "nogit"
    return out.stdout.strip() or "nogit"


def build(args: argparse.Namespace) -> dict[str, object]:
    """Build (or reuse) the wheelhouse tarball and return the release description."""
    source = Path(args.source).resolve()
    constraints = Path(args.constraints).resolve()
    cache = Path(args.cache).resolve()
    if not (source / "pyproject.toml").is_file():
        raise SystemExit(f"{source} is not a Python project (no pyproject.toml)")
    if not constraints.is_file():
        raise SystemExit(f"constraints file {constraints} does not exist")
    py_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    input_sum = source_checksum(source, [constraints], py_tag + "|" + args.extras)
    release_sum = hashlib.sha256(f"{input_sum}|{args.tag}".encode()).hexdigest()
    tarball = cache / f"wheelhouse-{input_sum[:16]}.tar"
    built = False
    if not tarball.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        deps = _dependency_wheels(args, source, constraints, cache, py_tag)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            own = Path(tmp)
            # pip builds the local project in a temporary copy; nothing is written to source.
            _pip(args, ["wheel", "--no-deps", "--wheel-dir", str(own), str(source)])
            partial = tarball.with_suffix(".tar.partial")
            with tarfile.open(partial, "w") as tar:
                for wheel in sorted([*deps.iterdir(), *own.iterdir()]):
                    tar.add(wheel, arcname=wheel.name)
            partial.replace(tarball)
        built = True
    with tarfile.open(tarball) as tar:
        names = sorted(tar.getnames())
    worker = [n for n in names if n.startswith(args.package.replace("-", "_") + "-")]
    if len(worker) != 1:
        raise SystemExit(f"expected one {args.package} wheel in {tarball}, found {worker}")
    version = worker[0].split("-")[1]
    release_id = _release_id(cache, release_sum, source)
    return {
        "changed": built,
        "tarball": str(tarball),
        "wheels": names,
        "package": args.package,
        "version": version,
        "checksum": release_sum,
        "git_sha": release_id.rsplit("-", 1)[-1],
        "tag": args.tag,
        "release_id": release_id,
        "python_tag": py_tag,
    }


def _release_id(cache: Path, release_sum: str, source: Path) -> str:
    """The id of this build: the one it got when first built here, else a new one.

    Keyed by the release checksum, so the same code (and tag) keeps one id on
    every host and in every later run; a new build gets ``<UTC now>-<git sha>``.
    """
    ids = cache / "release-ids"
    ids.mkdir(parents=True, exist_ok=True)
    known = ids / release_sum
    if known.is_file():
        return known.read_text().strip()
    release_id = f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{git_short_sha(source)}"
    known.write_text(release_id + "\n")
    return release_id


def prune_cache(cache: Path, keep: int) -> None:
    """Keep the ``keep`` most recently used tarballs in the cache."""
    tarballs = sorted(cache.glob("wheelhouse-*.tar"), key=lambda p: p.stat().st_mtime)
    for old in tarballs[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    dep_sets = sorted(cache.glob("deps-*"), key=lambda p: p.stat().st_mtime)
    for old in dep_sets[:-2]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in cache.glob("tmp*"):  # left by a killed build (the lock is held here)
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints the JSON description."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the worker's project directory")
    parser.add_argument("--constraints", required=True, help="pip constraints file")
    parser.add_argument("--cache", required=True, help="wheelhouse cache directory")
    parser.add_argument("--package", default="filesearch-worker")
    parser.add_argument("--extras", default="all")
    parser.add_argument("--tag", default="", help="build tag mixed into the release checksum")
    parser.add_argument("--keep", type=int, default=5, help="tarballs kept in the cache")
    parser.add_argument("--pip-python", default=sys.executable, help="Python whose pip builds")
    args = parser.parse_args(argv)
    cache = Path(args.cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    # One build at a time per cache (parallel playbook runs share it).
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = build(args)
        Path(str(result["tarball"])).touch()  # mark as recently used for the cache pruning
        prune_cache(cache, args.keep)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
