"""playbooks/smoke_test.yml against a worker deployed by playbooks/deploy.yml on worker1.

Also installs role dlq_recovery_timer (playbooks/dlq_recovery_timer.yml) on that
release and checks one run of the real ``recover-dlq`` archives two poison
messages from the DLQ.

The worker gets a private layout (base dir, unit, environment file) and a private
queue/bucket/index (the ``stack`` fixture), so the host's regular phased-worker
and the shared resources are left alone. One deploy with the smoke test as its
last phase (-e deploy_smoke_test=true), then: the smoke test passes on its own
and leaves nothing behind; with the worker stopped it fails with a clear message
and still cleans up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from ops_helpers import run_playbook, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.hosts, pytest.mark.slow]

HOST = "worker1"
DEPLOY_OUTPUT: dict[str, str] = {}  # service name -> output of the fixture's deploy.yml


@pytest.fixture
def deployed(sandbox: Any, stack: Any) -> Iterator[dict[str, Any]]:
    """A worker for ``stack`` deployed on worker1 under a private name; removed afterwards."""
    slug = f"ops-smoke-{uuid.uuid4().hex[:6]}"
    base_dir = f"/home/ec2-user/{slug}"
    layout = {
        "sqs_worker_base_dir": base_dir,
        "sqs_worker_service_name": slug,
        "worker_backup_dir": f"/home/ec2-user/{slug}-backups",
        "sqs_worker_queue_url": stack.queue_url,
        "sqs_worker_dlq_url": stack.dlq_url,
        "sqs_worker_s3_bucket": stack.bucket,
        "sqs_worker_opensearch_index": stack.index,
        "sqs_worker_visibility_timeout": 30,
    }
    smoke = {"smoke_test_service_name": slug, "smoke_test_timeout": 90}
    try:
        # deploy.yml with its last phase, the smoke test (needs localhost in the limit)
        deploy = run_playbook(
            "deploy.yml",
            sandbox.env,
            {**layout, **smoke, "deploy_smoke_test": True},
            timeout=900,
            limit=f"localhost,{HOST}",
        )
        assert deploy.rc == 0, deploy.output[-4000:]
        DEPLOY_OUTPUT[slug] = deploy.output
        yield {**layout, **smoke}
    finally:
        sandbox.ssh(
            HOST,
            f"systemctl disable --now {slug}-dlq.timer 2>/dev/null; "
            f"rm -f /etc/systemd/system/{slug}-dlq.timer /etc/systemd/system/{slug}-dlq.service; "
            f"systemctl disable --now {slug} 2>/dev/null; "
            f"rm -f /etc/systemd/system/{slug}.service /etc/{slug}.env; "
            f"rm -rf {base_dir} /home/ec2-user/{slug}-backups; systemctl daemon-reload",
        )


def _leftovers(s3: Any, opensearch: Any, stack: Any) -> tuple[list[str], int]:
    listed = s3.list_objects_v2(Bucket=stack.bucket, Prefix="smoke-test/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    if not opensearch.indices.exists(index=stack.index):
        return keys, 0
    opensearch.indices.refresh(index=stack.index)
    count = opensearch.count(index=stack.index)["count"]
    return keys, int(count)


def _timer_runs_the_real_recovery(
    sandbox: Any, stack: Any, sqs: Any, s3: Any, deployed: dict[str, Any]
) -> None:
    """Role dlq_recovery_timer on the deployed release: a run recovers (archives) the DLQ."""
    unit = f"{deployed['sqs_worker_service_name']}-dlq"
    run = run_playbook(
        "dlq_recovery_timer.yml",
        sandbox.env,
        {
            **deployed,
            "dlq_recovery_timer_unit_name": unit,
            "dlq_recovery_timer_lock_file": f"/run/{unit}/lock",
        },
        limit=HOST,
    )
    assert run.rc == 0, run.output[-4000:]
    for body in ("not json at all", '{"Records": "nonsense"}'):
        sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body)
    started = sandbox.ssh(HOST, f"systemctl start {unit}.service", timeout=300)
    journal = sandbox.ssh(HOST, f"journalctl -u {unit} --no-pager -n 50")
    assert started.returncode == 0, started.stderr + journal.stdout
    result = sandbox.ssh(
        HOST,
        f"systemctl show -p Result -p ExecMainStatus {unit}.service; "
        f"systemctl is-enabled {unit}.timer",
    ).stdout
    assert "Result=success" in result and "ExecMainStatus=0" in result, result + journal.stdout
    assert result.strip().endswith("enabled"), result
    wait_for(lambda: _visible_and_in_flight(sqs, stack.dlq_url) == 0, 60, "the DLQ to be empty")
    archived = s3.list_objects_v2(Bucket=stack.bucket, Prefix="dlq-archive/").get("KeyCount", 0)
    assert archived == 2, journal.stdout


def _visible_and_in_flight(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_smoke_test_passes_then_fails_when_the_worker_is_down(
    sandbox: Any, stack: Any, sqs: Any, s3: Any, opensearch: Any, deployed: dict[str, Any]
) -> None:
    # The fixture's deploy ran the smoke test as its last phase (-e deploy_smoke_test=true).
    deploy_output = DEPLOY_OUTPUT[deployed["sqs_worker_service_name"]]
    assert "Smoke test - send test files through the pipeline" in deploy_output
    assert '"indexed": 3' in deploy_output
    assert _leftovers(s3, opensearch, stack) == ([], 0)

    # And on its own, as an operator runs it against any inventory.
    run = run_playbook("smoke_test.yml", sandbox.env, deployed, limit=f"localhost,{HOST}")
    assert run.rc == 0, run.output[-5000:]
    assert '"indexed": 3' in run.output
    assert run.output.count(': "indexed"') == 3  # three messages settled as indexed
    assert '"in_flight_at_end": 0' in run.output
    assert "スモーク テスト 1.txt" in run.output
    assert _leftovers(s3, opensearch, stack) == ([], 0)

    _timer_runs_the_real_recovery(sandbox, stack, sqs, s3, deployed)

    sandbox.ssh(
        HOST,
        f"systemctl stop {deployed['sqs_worker_service_name']}",
    )
    down = run_playbook(
        "smoke_test.yml",
        sandbox.env,
        {**deployed, "smoke_test_timeout": 15, "smoke_test_count": 2},
        limit=f"localhost,{HOST}",
    )
    assert down.rc != 0
    assert "2 of 2 documents not indexed after 15s" in down.output
    keys, documents = _leftovers(s3, opensearch, stack)
    assert keys == []  # cleaned up after the failure too
    assert documents == 0
