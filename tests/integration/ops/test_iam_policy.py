"""playbooks/iam_policy.yml: the worker's IAM policy, rendered from the inventory's variables."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from ops_helpers import REPO, run_playbook

ACCOUNT = "123456789012"  # a documentation-style account id, only in this temporary copy


def _render(tmp_path: Path, inventory: Path | None, **extra: Any) -> dict[str, Any]:
    dest = tmp_path / "policy.json"
    env = {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin"}
    argv_extra = {"iam_policy_dest": str(dest), **extra}
    if inventory is not None:
        done = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "ansible-playbook"),
                "-i",
                str(inventory),
                str(REPO / "playbooks" / "iam_policy.yml"),
                "-e",
                json.dumps(argv_extra),
            ],
            cwd=REPO,
            env={**env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        run = run_playbook("iam_policy.yml", env, argv_extra)
        assert run.rc == 0, run.output
    policy: dict[str, Any] = json.loads(dest.read_text())
    return policy


def _production(tmp_path: Path) -> Path:
    copy = tmp_path / "production"
    subprocess.run(["cp", "-r", str(REPO / "inventories" / "production"), str(copy)], check=True)
    vault = (copy / "group_vars" / "all" / "vault.yml.example").read_text()
    vault = vault.replace(
        'vault_aws_account_id: "000000000000"', f'vault_aws_account_id: "{ACCOUNT}"'
    )
    (copy / "group_vars" / "all" / "vault.yml").write_text(vault)
    return copy


def _by_sid(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def _valid_for_iam(policy: dict[str, Any]) -> None:
    """IAM's grammar check (moto's validator, in-process)."""
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_policy(PolicyName="filesearch-worker", PolicyDocument=json.dumps(policy))


def test_production_policy_names_exactly_the_fleets_resources(tmp_path: Path) -> None:
    policy = _render(tmp_path, _production(tmp_path))
    _valid_for_iam(policy)
    statements = _by_sid(policy)
    queue = f"arn:aws:sqs:ap-northeast-1:{ACCOUNT}:cis-filesearch-index-queue"
    dlq = f"arn:aws:sqs:ap-northeast-1:{ACCOUNT}:cis-filesearch-dlq"
    assert statements["ConsumeTheQueue"]["Resource"] == [queue]
    assert "sqs:SendMessage" not in statements["ConsumeTheQueue"]["Action"]
    assert statements["DeadLetterPermanentFailures"]["Resource"] == [dlq]
    assert statements["RecoverTheDeadLetterQueue"]["Resource"] == [dlq]
    assert "RedriveToTheQueue" not in statements  # default strategy reindex
    assert statements["WriteRetryStoreAndArchive"]["Resource"] == [
        "arn:aws:s3:::cis-filesearch-files/retry-index/*",
        "arn:aws:s3:::cis-filesearch-files/dlq-archive/*",
    ]
    assert statements["PublishWorkerMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "CISFileSearch/Worker"}
    }
    domain = f"arn:aws:es:ap-northeast-1:{ACCOUNT}:domain/cis-filesearch"
    assert f"{domain}/file-index/*" in statements["IndexTheDocuments"]["Resource"]
    every_resource = [r for s in policy["Statement"] for r in s["Resource"]]
    assert every_resource.count("*") == 1  # only PutMetricData, which has no resource ARN
    actions = [a for s in policy["Statement"] for a in s["Action"]]
    assert not any(a.endswith("*") for a in actions)
    assert "sqs:PurgeQueue" not in actions and "s3:DeleteBucket" not in actions


def test_strategy_and_keys_change_the_policy(tmp_path: Path) -> None:
    policy = _render(
        tmp_path,
        _production(tmp_path),
        dlq_recovery_timer_strategy="redrive",
        iam_policy_kms_key_arns=[f"arn:aws:kms:ap-northeast-1:{ACCOUNT}:key/abcd"],
    )
    _valid_for_iam(policy)
    statements = _by_sid(policy)
    assert statements["RedriveToTheQueue"]["Action"] == ["sqs:SendMessage"]
    assert statements["UseTheEncryptionKeys"]["Resource"] == [
        f"arn:aws:kms:ap-northeast-1:{ACCOUNT}:key/abcd"
    ]


def test_sandbox_policy_has_no_opensearch_statement(tmp_path: Path) -> None:
    """The local inventory: OpenSearch without SigV4 needs no es: permission."""
    policy = _render(tmp_path, None)
    _valid_for_iam(policy)
    assert "IndexTheDocuments" not in _by_sid(policy)
    assert _by_sid(policy)["ConsumeTheQueue"]["Resource"] == [
        "arn:aws:sqs:ap-northeast-1:000000000000:cis-filesearch-index-queue"
    ]


def test_a_queue_url_without_account_is_refused(tmp_path: Path) -> None:
    run = run_playbook(
        "iam_policy.yml",
        {"PATH": f"{REPO / '.venv' / 'bin'}:/usr/bin:/bin"},
        {"iam_policy_dest": str(tmp_path / "p.json"), "iam_policy_account_id": "me"},
    )
    assert run.rc != 0
    assert "Got account 'me'" in run.output
    assert not (tmp_path / "p.json").exists()


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
