"""``filesearch-worker recover-dlq`` (the CLI face of the engine behind sqs_dlq_recover),
run as a real process against the local stack with the worker's environment."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playbook_helpers import load_scenario

scenario_lib = load_scenario()
CLI = str(Path(sys.executable).with_name("filesearch-worker"))

pytestmark = pytest.mark.sandbox


def recover_dlq(stack: Any, *flags: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [CLI, "recover-dlq", "--json", *flags],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.returncode, json.loads(lines[-1]), done.stderr


def test_seed_flags_dry_run_then_full_run(stack: Any, sqs: Any, s3: Any, opensearch: Any) -> None:
    scenario = scenario_lib.build(stack.bucket, total=30)
    scenario_lib.seed(
        scenario, sqs=sqs, s3=s3, opensearch=opensearch, dlq_url=stack.dlq_url, index=stack.index
    )
    scenario_lib.wait_for(lambda: scenario_lib.depth(sqs, stack.dlq_url) == (30, 0), 30, "seed")

    rc, report, err = recover_dlq(stack, "--batch-size", "5", "--max-batches", "1", "--dry-run")
    assert rc == 0, err
    assert report["dry_run"] is True and report["examined"] == 5 and report["batches"] == 1
    assert scenario_lib.depth(sqs, stack.dlq_url) == (30, 0)  # visible again at once

    rc, report, err = recover_dlq(stack)
    assert rc == 0, err
    counts = report["counts"]
    assert counts["deduplicated"] == len(scenario.indexed)
    assert counts["reindexed"] == len(scenario.recoverable)
    assert counts["archived"] == scenario.poison
    assert sum(counts.values()) == 30 and counts["released"] == 0
    assert scenario_lib.depth(sqs, stack.dlq_url) == (0, 0)


def test_configuration_error_is_reported(stack: Any) -> None:
    env = {**stack.env, "OPENSEARCH_ENDPOINT": ""}
    done = subprocess.run(
        [CLI, "recover-dlq"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert "deduplication needs OpenSearch" in done.stdout + done.stderr


def test_sigterm_settles_the_batch_in_hand_and_releases_the_rest(
    stack: Any, sqs: Any, s3: Any
) -> None:
    total = 200
    for start in range(0, total, 10):
        sqs.send_message_batch(
            QueueUrl=stack.dlq_url,
            Entries=[{"Id": str(i), "MessageBody": f"junk {start + i}"} for i in range(10)],
        )
    scenario_lib.wait_for(lambda: scenario_lib.depth(sqs, stack.dlq_url) == (total, 0), 30, "seed")
    proc = subprocess.Popen(
        [CLI, "recover-dlq", "--json", "--threads", "1", "--messages-per-second", "20"],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # wait until it has settled something, then stop it as systemd would
        scenario_lib.wait_for(
            lambda: sum(scenario_lib.depth(sqs, stack.dlq_url)) < total - 20, 60, "progress"
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    report = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    archived = report["counts"]["archived"]
    assert 20 <= archived < total
    keys = s3.list_objects_v2(Bucket=stack.bucket, Prefix="dlq-archive/").get("KeyCount", 0)
    assert keys == archived
    # nothing left in flight: everything not archived is visible in the DLQ again
    assert scenario_lib.depth(sqs, stack.dlq_url) == (total - archived, 0)
