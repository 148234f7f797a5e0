"""The collection filesearch_ops.filesearch, built, installed and used from outside the repository.

``scripts/build_collection.py`` builds the tarball; ``ansible-galaxy collection
install --offline`` puts it into a fresh directory (its dependencies amazon.aws and
community.aws resolve from the ``ansible`` package already installed); then
``ansible-doc`` and ``ansible-playbook`` run in a temporary directory with an
ansible.cfg of their own, a fresh HOME and no ANSIBLE_* or AWS_* variable from
this environment, so nothing of the repository (library/, roles/, module_utils/,
ansible.cfg) can be picked up: modules and roles resolve by FQCN from the install
only. The AWS side is the sandbox's LocalStack, reached through
``module_defaults: group/filesearch_ops.filesearch.aws`` alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FQCN = "filesearch_ops.filesearch"
# library/ names -> the names the collection publishes (*_info for the read-only ones)
RENAMED = {
    "sqs_queue_status": "sqs_queue_info",
    "cloudwatch_metric_data": "cloudwatch_metric_data_info",
}
INSTALLED = REPO / ".venv" / "lib"


@dataclass(frozen=True)
class Install:
    """The tarball and a directory set up to use its installed copy only."""

    tarball: Path
    workdir: Path
    collections: Path
    env: dict[str, str]

    @property
    def root(self) -> Path:
        return self.collections / "ansible_collections" / "filesearch_ops" / "filesearch"

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def playbook(self, text: str, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        path = self.workdir / f"play-{uuid.uuid4().hex[:8]}.yml"
        path.write_text(text)
        return self.run("ansible-playbook", str(path), "-e", json.dumps(extra))


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    base = tmp_path_factory.mktemp("collection")
    built = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "build_collection.py"),
            "--output",
            str(base / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    tarball = Path(built.stdout.strip().splitlines()[-1])
    assert tarball.is_file() and tarball.parent == base / "dist"

    workdir = base / "elsewhere"
    workdir.mkdir()
    collections = base / "installed"
    (workdir / "ansible.cfg").write_text(
        f"[defaults]\ncollections_path = {collections}\nretry_files_enabled = False\n"
    )
    env = {
        "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(base / "home"),
        "LANG": "C.UTF-8",
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    setup = Install(tarball=tarball, workdir=workdir, collections=collections, env=env)
    done = setup.run(
        "ansible-galaxy", "collection", "install", str(tarball), "-p", str(collections), "--offline"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{FQCN}:" in done.stdout and "installed successfully" in done.stdout
    return setup


def test_the_installed_collection_holds_every_module(install: Install) -> None:
    expected = {RENAMED.get(p.stem, p.stem) for p in (REPO / "library").glob("*.py")}
    published = {p.stem for p in (install.root / "plugins" / "modules").glob("*.py")}
    assert published == expected
    assert (install.root / "roles" / "sqs_worker" / "files" / "worker" / "pyproject.toml").is_file()
    assert (install.root / "roles" / "sqs_worker" / "files" / "constraints.txt").is_file()
    assert not list(install.root.glob("roles/*/molecule"))


def test_ansible_doc_shows_every_module(install: Install) -> None:
    names = sorted({RENAMED.get(p.stem, p.stem) for p in (REPO / "library").glob("*.py")})
    for name in [*names, *RENAMED]:  # the old names through the redirects too
        done = install.run("ansible-doc", f"{FQCN}.{name}")
        assert done.returncode == 0, f"{name}: {done.stderr}"
        target = RENAMED.get(name, name)
        assert f"{FQCN}.{target}" in done.stdout, done.stdout[:500]
        assert str(install.root / "plugins" / "modules" / f"{target}.py") in done.stdout


def test_ansible_doc_shows_the_role_entry_points(install: Install) -> None:
    done = install.run("ansible-doc", "-t", "role", f"{FQCN}.sqs_worker")
    assert done.returncode == 0, done.stderr
    for entry in ("main", "preflight", "configure", "start", "verify", "units", "restore"):
        assert re.search(rf"ENTRY POINT: \*?{entry}\*? - ", done.stdout), entry


def test_the_aws_group_lists_the_aws_modules(install: Install) -> None:
    runtime = yaml.safe_load((install.root / "meta" / "runtime.yml").read_text())
    group = runtime["action_groups"]["aws"]
    assert {"metadata": {"extend_group": ["amazon.aws.aws"]}} in group
    assert {
        "cloudwatch_dashboard",
        "cloudwatch_metric_data_info",
        "index_retry_replay",
        "sqs_dlq_recover",
        "sqs_queue_info",
        "sqs_stress_test",
    } <= {m for m in group if isinstance(m, str)}
    assert "redis_queue_info" not in group  # Redis only: no AWS options


def _installed_version(collection: str) -> str:
    namespace, name = collection.split(".")
    manifests = list(
        INSTALLED.glob(
            f"python3*/site-packages/ansible_collections/{namespace}/{name}/MANIFEST.json"
        )
    )
    assert manifests, f"{collection} is not in the venv's ansible package"
    return str(json.loads(manifests[0].read_text())["collection_info"]["version"])


def test_dependencies_pin_the_versions_the_ansible_package_brings() -> None:
    galaxy = yaml.safe_load((REPO / "collection" / "galaxy.yml").read_text())
    requirements = yaml.safe_load((REPO / "requirements.yml").read_text())
    pinned = {c["name"]: c["version"] for c in requirements["collections"]}
    for collection in ("amazon.aws", "community.aws"):
        version = _installed_version(collection)
        assert galaxy["dependencies"][collection] == f"=={version}"
        assert pinned[collection] == f"=={version}"


USE_BY_FQCN = """
- name: Use the collection by FQCN only
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/filesearch_ops.filesearch.aws:
      endpoint_url: "{{ it_endpoint }}"
      region: "{{ it_region }}"
      access_key: "{{ it_access_key }}"
      secret_key: "{{ it_secret_key }}"
  tasks:
    - name: Read the queue with the info module
      filesearch_ops.filesearch.sqs_queue_info:
        queue: "{{ it_queue }}"
        cloudwatch_age: false
      register: info

    - name: Read it through the old name (redirected)
      filesearch_ops.filesearch.sqs_queue_status:
        queue: "{{ it_queue }}"
        cloudwatch_age: false
      register: old_name

    - name: List the bucket with amazon.aws (its group is part of this one)
      amazon.aws.s3_object_info:
        bucket_name: "{{ it_bucket }}"
      register: listing

    - name: Manage alarms and a dashboard with the role
      ansible.builtin.import_role:
        name: filesearch_ops.filesearch.cloudwatch_alarms
      vars:
        cloudwatch_alarms_region: "{{ it_region }}"
        cloudwatch_alarms_endpoint_url: "{{ it_endpoint }}"
        cloudwatch_alarms_aws_access_key: "{{ it_access_key }}"
        cloudwatch_alarms_aws_secret_key: "{{ it_secret_key }}"
        cloudwatch_alarms_name_prefix: "{{ it_prefix }}"
        cloudwatch_alarms_queue_name: "{{ it_queue_name }}"
        cloudwatch_alarms_dlq_name: "{{ it_queue_name }}-dlq"
        cloudwatch_alarms_enabled: [dlq_accumulation]
        cloudwatch_alarms_dashboard_name: "{{ it_prefix }}dashboard"

    - name: Write what was read
      ansible.builtin.copy:
        content: "{{ {'visible': info.queue.visible, 'old_name_visible': old_name.queue.visible,
                      'keys': listing.s3_keys} | to_json }}"
        dest: "{{ it_result }}"
        mode: "0644"
"""


@pytest.fixture
def alarm_prefix(cloudwatch: Any) -> Iterator[str]:
    prefix = f"it-coll-{uuid.uuid4().hex[:8]}-"
    yield prefix
    names = [
        a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    ]
    if names:
        cloudwatch.delete_alarms(AlarmNames=names)
    cloudwatch.delete_dashboards(DashboardNames=[f"{prefix}dashboard"])


@pytest.mark.sandbox
def test_a_playbook_outside_the_repository_uses_modules_and_roles_by_fqcn(
    install: Install,
    sandbox: Any,
    stack: Any,
    sqs: Any,
    s3: Any,
    cloudwatch: Any,
    alarm_prefix: str,
) -> None:
    for i in range(2):
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps({"n": i}))
    s3.put_object(Bucket=stack.bucket, Key="collection-test.txt", Body=b"x")

    done = install.playbook(
        USE_BY_FQCN,
        {
            "it_endpoint": sandbox.aws_endpoint,
            "it_region": sandbox.region,
            "it_access_key": sandbox.env["AWS_ACCESS_KEY_ID"],
            "it_secret_key": sandbox.env["AWS_SECRET_ACCESS_KEY"],
            "it_queue": stack.queue_url,
            "it_queue_name": stack.name,
            "it_bucket": stack.bucket,
            "it_prefix": alarm_prefix,
            "it_result": str(install.workdir / "result.json"),
        },
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    result = json.loads((install.workdir / "result.json").read_text())
    assert result == {"visible": 2, "old_name_visible": 2, "keys": ["collection-test.txt"]}
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=alarm_prefix)["MetricAlarms"]
    assert [a["AlarmName"] for a in alarms] == [f"{alarm_prefix}DLQ-Accumulation"]
    assert alarms[0]["Dimensions"] == [{"Name": "QueueName", "Value": f"{stack.name}-dlq"}]
    body = json.loads(
        cloudwatch.get_dashboard(DashboardName=f"{alarm_prefix}dashboard")["DashboardBody"]
    )
    assert body["widgets"]


BAD_ARGUMENTS = """
- name: Call the roles with bad arguments
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Call an entry point by FQCN
      ansible.builtin.include_role:
        name: filesearch_ops.filesearch.{role}
        tasks_from: {entry}
      vars: {variables}
"""


@pytest.mark.parametrize(
    ("role", "entry", "variables", "expected"),
    [
        (
            "cloudwatch_alarms",
            "main",
            {"cloudwatch_alarms_state": "gone"},
            "cloudwatch_alarms_state must be one of: present, absent",
        ),
        (
            "sqs_worker",
            "preflight",
            {"sqs_worker_instances": "many"},
            "sqs_worker_instances",
        ),
        ("sqs_worker", "verify", {}, "missing required arguments: sqs_worker_verify_units"),
    ],
    ids=["cloudwatch_alarms-main", "sqs_worker-preflight", "sqs_worker-verify"],
)
def test_role_arguments_are_checked_by_fqcn(
    install: Install, role: str, entry: str, variables: dict[str, Any], expected: str
) -> None:
    play = BAD_ARGUMENTS.format(role=role, entry=entry, variables=json.dumps(variables))
    done = install.playbook(play, {})
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert f"Validating arguments against arg spec '{entry}'" in output, output[-3000:]
    assert expected in output, output[-3000:]
