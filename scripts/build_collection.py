#!/usr/bin/env python3
"""Build the collection ``filesearch_ops.filesearch`` from this repository (``make collection``).

The repository keeps its own layout (library/, module_utils/, plugins/, roles/,
files/worker/); this script assembles a collection tree from it in a temporary
directory and runs ``ansible-galaxy collection build`` on it, so only the
tarball lands in the output directory (``build/collection/`` by default,
gitignored). docs/collection.md describes the result.

What the tree gets:

- ``galaxy.yml``, ``README.md``, ``meta/runtime.yml`` from ``collection/``;
  ``action_groups.aws`` of runtime.yml is computed here: every module whose
  documentation extends an AWS fragment, plus amazon.aws's own group;
- ``plugins/modules/``: every ``library/*.py``; the read-only modules
  ``sqs_queue_status`` and ``cloudwatch_metric_data`` under their ``*_info``
  names (runtime.yml redirects the old names);
- ``plugins/module_utils/``: every file of ``module_utils/``; imports
  ``ansible.module_utils.<name>`` of those names become
  ``ansible_collections.filesearch_ops.filesearch.plugins.module_utils.<name>``
  in every module, module_utils file and role library;
- ``plugins/``: the repository's plugins/ (doc fragments ...); references to
  its doc fragments in ``extends_documentation_fragment`` become FQCNs;
- ``plugins/filter/``: the playbooks' filter plugins;
- ``roles/`` (without their molecule scenarios), and in ``roles/sqs_worker/files/``
  the worker's source (``worker/``) and ``constraints.txt``, where the role's
  defaults look for them.

Prints the tarball's path. Needs ansible-core's ``ansible-galaxy`` next to this
Python (the project venv) or on PATH, and PyYAML. Works offline.
"""

from __future__ import annotations

import argparse
import ast
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "filesearch_ops"
NAME = "filesearch"
FQCN = f"{NAMESPACE}.{NAME}"
MODULE_UTILS_PREFIX = f"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils"
#: Modules that only read, published under the *_info convention (runtime.yml redirects).
INFO_RENAMES = {
    "sqs_queue_status": "sqs_queue_info",
    "cloudwatch_metric_data": "cloudwatch_metric_data_info",
}
#: Documentation fragments that make a module an AWS module (member of action group aws).
AWS_FRAGMENTS = re.compile(
    r"^(amazon\.aws\.|filesearch_aws$|" + re.escape(FQCN) + r"\.filesearch_aws$)"
)
#: Never copied from files/worker into the role (build output, caches, tests).
WORKER_IGNORE = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", "tests", ".venv",
)  # fmt: skip


class BuildError(Exception):
    """The repository cannot be built into a collection; the message says why."""


def rewrite_module_utils_imports(source: str, names: set[str]) -> str:
    """``ansible.module_utils.<name>`` -> the collection's module_utils, for ``names`` only."""
    if not names:
        return source
    alternatives = "|".join(sorted(map(re.escape, names)))
    pattern = re.compile(
        r"^(\s*)(from|import)\s+ansible\.module_utils\.(" + alternatives + r")(?=[\s.]|$)",
        re.MULTILINE,
    )
    return pattern.sub(lambda m: f"{m[1]}{m[2]} {MODULE_UTILS_PREFIX}.{m[3]}", source)


def rewrite_doc_fragments(source: str, fragments: set[str]) -> str:
    """Bare references to this repository's doc fragments -> FQCN, in block or flow lists."""
    if not fragments:
        return source
    names = "|".join(sorted(map(re.escape, fragments)))
    item = re.compile(r"^(\s*-\s*)(" + names + r")((?:\.\w+)?\s*)$")
    flow = re.compile(r"^(\s*extends_documentation_fragment:\s*\[)([^\]]*)(\].*)$")
    out: list[str] = []
    in_block = False
    for line in source.splitlines(keepends=True):
        body = line.rstrip("\n")
        end = line[len(body) :]
        if flow_match := flow.match(body):
            parts = [p.strip() for p in flow_match[2].split(",")]
            parts = [f"{FQCN}.{p}" if p.split(".")[0] in fragments else p for p in parts if p]
            out.append(f"{flow_match[1]}{', '.join(parts)}{flow_match[3]}{end}")
            continue
        if re.match(r"^\s*extends_documentation_fragment:\s*$", body):
            in_block = True
        elif in_block and not re.match(r"^\s*-\s", body):
            in_block = False
        if in_block and (item_match := item.match(body)):
            body = f"{item_match[1]}{FQCN}.{item_match[2]}{item_match[3]}"
        out.append(body + end)
    return "".join(out)


def rename_module(source: str, old: str, new: str) -> str:
    """Rename a module in its documentation (``module:``) and its examples' task keys."""
    source = re.sub(rf"^module: {re.escape(old)}\s*$", f"module: {new}", source, flags=re.M)
    return re.sub(
        rf"^(\s+(?:- )?){re.escape(old)}:(\s*)$", rf"\g<1>{FQCN}.{new}:\2", source, flags=re.M
    )


def qualify_modules_in_yaml(source: str, modules: dict[str, str]) -> str:
    """Keys naming this collection's modules (task actions, module_defaults) -> FQCN.

    Inside a collection, a role's module_defaults resolve short names as ansible.legacy
    ones, so the roles' tasks name the collection's modules (and the old names, mapped
    in ``modules`` to the new ones) by FQCN.
    """
    if not modules:
        return source
    names = "|".join(sorted(map(re.escape, modules), key=len, reverse=True))
    pattern = re.compile(r"^(\s*(?:- )?)(" + names + r"):(?=\s|$)", re.MULTILINE)
    return pattern.sub(lambda m: f"{m[1]}{FQCN}.{modules[m[2]]}:", source)


def documentation(source: str, path: Path) -> dict[str, Any]:
    """The module's DOCUMENTATION, parsed."""
    for node in ast.parse(source, filename=str(path)).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "DOCUMENTATION" for t in node.targets)
            and isinstance(node.value, ast.Constant)
        ):
            doc = yaml.safe_load(node.value.value)
            if isinstance(doc, dict):
                return doc
    raise BuildError(f"{path.relative_to(REPO)} has no DOCUMENTATION string")


def is_aws_module(doc: dict[str, Any]) -> bool:
    fragments = doc.get("extends_documentation_fragment") or []
    if isinstance(fragments, str):
        fragments = [fragments]
    return any(AWS_FRAGMENTS.match(str(f)) for f in fragments)


def assemble(tree: Path) -> dict[str, Any]:
    """Lay the collection out in ``tree``; return what went in (for the log)."""
    src = REPO / "collection"
    for name in ("galaxy.yml", "README.md", "CHANGELOG.md"):
        shutil.copy2(src / name, tree / name)

    module_utils = {
        p.stem if p.is_file() else p.name
        for p in (REPO / "module_utils").iterdir()
        if (p.suffix == ".py" or p.is_dir()) and p.name != "__pycache__"
    }
    fragments = {p.stem for p in (REPO / "plugins" / "doc_fragments").glob("*.py")}

    # plugins/ as it is, then the module_utils and the modules (rewritten)
    shutil.copytree(
        REPO / "plugins", tree / "plugins", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    utils_dir = tree / "plugins" / "module_utils"
    shutil.copytree(
        REPO / "module_utils",
        utils_dir,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        dirs_exist_ok=True,
    )
    for path in utils_dir.rglob("*.py"):
        path.write_text(rewrite_module_utils_imports(path.read_text(), module_utils))

    modules_dir = tree / "plugins" / "modules"
    modules_dir.mkdir(parents=True, exist_ok=True)
    aws_modules: list[str] = []
    published: list[str] = []
    for path in sorted((REPO / "library").glob("*.py")):
        source = path.read_text()
        source = rewrite_module_utils_imports(source, module_utils)
        source = rewrite_doc_fragments(source, fragments)
        name = INFO_RENAMES.get(path.stem, path.stem)
        if name != path.stem:
            source = rename_module(source, path.stem, name)
        doc = documentation(source, path)
        if doc.get("module") != name:
            raise BuildError(
                f"{path.relative_to(REPO)} documents module {doc.get('module')!r}, "
                f"expected {path.stem!r}"
            )
        (modules_dir / f"{name}.py").write_text(source)
        published.append(name)
        if is_aws_module(doc):
            aws_modules.append(name)

    filters = REPO / "playbooks" / "filter_plugins"
    if any(filters.glob("*.py")):
        (tree / "plugins" / "filter").mkdir(parents=True, exist_ok=True)
        for path in filters.glob("*.py"):
            shutil.copy2(path, tree / "plugins" / "filter" / path.name)

    # roles, without molecule; their own modules (role library/) get the same rewrite
    shutil.copytree(
        REPO / "roles",
        tree / "roles",
        ignore=shutil.ignore_patterns("molecule", "__pycache__", "*.pyc", ".pytest_cache"),
    )
    for path in (tree / "roles").glob("*/library/*.py"):
        text = rewrite_doc_fragments(
            rewrite_module_utils_imports(path.read_text(), module_utils), fragments
        )
        path.write_text(text)
    qualify = {name: name for name in published} | {
        old: new for old, new in INFO_RENAMES.items() if new in published
    }
    for path in [*(tree / "roles").rglob("*.yml"), *(tree / "roles").rglob("*.yaml")]:
        path.write_text(qualify_modules_in_yaml(path.read_text(), qualify))
    worker_files = tree / "roles" / "sqs_worker" / "files"
    shutil.copytree(REPO / "files" / "worker", worker_files / "worker", ignore=WORKER_IGNORE)
    shutil.copy2(REPO / "constraints.txt", worker_files / "constraints.txt")

    runtime = yaml.safe_load((src / "meta" / "runtime.yml").read_text())
    for old, new in INFO_RENAMES.items():
        if new in published:
            routing = runtime["plugin_routing"]["modules"].get(old, {})
            if routing.get("redirect") != f"{FQCN}.{new}":
                raise BuildError(f"collection/meta/runtime.yml must redirect {old} to {FQCN}.{new}")
    runtime["action_groups"] = {
        "aws": [{"metadata": {"extend_group": ["amazon.aws.aws"]}}, *sorted(aws_modules)]
    }
    (tree / "meta").mkdir(exist_ok=True)
    header = "".join(
        line + "\n"
        for line in (src / "meta" / "runtime.yml").read_text().splitlines()
        if line.startswith("#")
    )
    (tree / "meta" / "runtime.yml").write_text(
        "---\n" + header + yaml.safe_dump(runtime, sort_keys=False, default_flow_style=False)
    )
    return {"modules": published, "aws": sorted(aws_modules), "module_utils": sorted(module_utils)}


def ansible_galaxy() -> str:
    beside = Path(sys.executable).with_name("ansible-galaxy")
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-galaxy")
    if not found:
        raise BuildError("ansible-galaxy not found (run `make venv`, or put ansible-core on PATH)")
    return found


def build(output: Path, keep_tree: Path | None = None) -> Path:
    """Assemble and build; return the tarball."""
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="filesearch-collection-") as tmp:
        tree = Path(tmp) / "ansible_collections" / NAMESPACE / NAME
        tree.mkdir(parents=True)
        contents = assemble(tree)
        logger.info("modules %s; AWS group %s", contents["modules"], contents["aws"])
        if keep_tree:
            shutil.rmtree(keep_tree, ignore_errors=True)
            shutil.copytree(tree, keep_tree)
        done = subprocess.run(
            [
                ansible_galaxy(),
                "collection",
                "build",
                str(tree),
                "--output-path",
                str(output),
                "--force",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BuildError(f"ansible-galaxy collection build failed:\n{done.stdout}{done.stderr}")
    version = yaml.safe_load((REPO / "collection" / "galaxy.yml").read_text())["version"]
    tarball = output / f"{NAMESPACE}-{NAME}-{version}.tar.gz"
    if not tarball.is_file():
        raise BuildError(f"ansible-galaxy reported success but {tarball} is missing")
    return tarball


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", type=Path, default=REPO / "build" / "collection", help="where the tarball goes"
    )
    parser.add_argument("--keep-tree", type=Path, help="also copy the assembled tree here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        tarball = build(args.output.resolve(), args.keep_tree)
    except BuildError as exc:
        print(f"build_collection: {exc}", file=sys.stderr)
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())
