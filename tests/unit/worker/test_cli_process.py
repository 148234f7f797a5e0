"""``filesearch-worker`` as a real process: usage errors, exit codes, JSON on failure.

No local stack: the AWS and OpenSearch endpoints are a local port nothing
listens on, so every dependency fails at once (connection refused). The
partial-run exit code needs a queue and is in tests/integration/worker/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CLI = str(Path(sys.executable).with_name("filesearch-worker"))


@pytest.fixture
def dead_env(closed_port: int) -> dict[str, str]:
    """Credentials, a region and endpoints on a closed port; nothing else of the caller's."""
    dead = f"http://127.0.0.1:{closed_port}"
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {
        **keep,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "ap-northeast-1",
        "AWS_ENDPOINT_URL": dead,
        "WORKER_AWS_MAX_ATTEMPTS": "1",
        "SQS_QUEUE_URL": f"{dead}/000000000000/q",
        "SQS_DLQ_URL": f"{dead}/000000000000/q-dlq",
        "S3_BUCKET": "bkt",
        "OPENSEARCH_ENDPOINT": dead,
        "OPENSEARCH_TIMEOUT": "2",
        "WORKER_METRICS": "off",
    }


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def one_json_object(stdout: str) -> dict[str, Any]:
    """stdout is exactly one JSON object (nothing else on it)."""
    doc = json.loads(stdout)
    assert isinstance(doc, dict), stdout
    return doc


def test_bad_log_level_is_a_usage_error(dead_env: dict[str, str]) -> None:
    done = cli(dead_env, "--log-level", "foo", "health")
    assert done.returncode == 2
    assert "argument --log-level: invalid choice: 'foo'" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_log_level_is_case_insensitive(dead_env: dict[str, str]) -> None:
    done = cli(dead_env, "--log-level", "DEBUG", "health", "--json")
    assert done.returncode == 1  # the dependencies are down; the flag itself was fine
    assert one_json_object(done.stdout)["ok"] is False


def test_help_lists_the_exit_codes(dead_env: dict[str, str]) -> None:
    for argv in (["--help"], ["recover-dlq", "--help"], ["replay-retries", "--help"]):
        done = cli(dead_env, *argv)
        assert done.returncode == 0
        assert "exit codes:" in done.stdout
        for code in ("0  success", "1  runtime failure", "2  usage or configuration", "3  partial"):
            assert code in done.stdout, (argv, done.stdout)


def test_recover_dlq_json_configuration_error(dead_env: dict[str, str]) -> None:
    env = {k: v for k, v in dead_env.items() if k != "SQS_DLQ_URL"}
    done = cli(env, "recover-dlq", "--json")
    assert done.returncode == 2
    report = one_json_object(done.stdout)
    assert report["exit_code"] == 2
    assert "SQS_DLQ_URL" in report["error"]
    assert "recover-dlq: error: configuration error: SQS_DLQ_URL" in done.stderr


def test_recover_dlq_json_bad_environment_variable(dead_env: dict[str, str]) -> None:
    done = cli({**dead_env, "WORKER_CONCURRENCY": "lots"}, "recover-dlq", "--json")
    assert done.returncode == 2
    report = one_json_object(done.stdout)
    assert "WORKER_CONCURRENCY must be an integer" in report["error"]
    assert "WORKER_CONCURRENCY" in done.stderr


def test_recover_dlq_json_runtime_failure(dead_env: dict[str, str]) -> None:
    # SQS refuses the connection: the run stops (1, not 2: the configuration is fine)
    done = cli(dead_env, "recover-dlq", "--json", "--strategy", "archive-only", "--no-dedupe")
    assert done.returncode == 1, done.stderr
    report = one_json_object(done.stdout)
    assert report["exit_code"] == 1
    assert "Could not connect" in report["error"]
    assert report["examined"] == 0 and report["strategy"] == "archive-only"  # the partial report
    assert "recover-dlq: error:" in done.stderr


def test_recover_dlq_text_failure_keeps_the_error_off_stdout(dead_env: dict[str, str]) -> None:
    done = cli(dead_env, "recover-dlq", "--strategy", "archive-only", "--no-dedupe")
    assert done.returncode == 1
    assert done.stdout.startswith("recover-dlq: strategy archive-only, 0 examined")
    assert "error" not in done.stdout
    assert "recover-dlq: error:" in done.stderr


def test_health_json(dead_env: dict[str, str]) -> None:
    done = cli(dead_env, "health", "--json")
    assert done.returncode == 1
    result = one_json_object(done.stdout)
    assert result["ok"] is False and result["error"] is None and result["exit_code"] == 1
    assert [c["name"] for c in result["checks"]] == ["sqs", "sqs-dlq", "s3", "opensearch"]
    assert not any(c["ok"] for c in result["checks"])


def test_health_json_configuration_error(dead_env: dict[str, str]) -> None:
    done = cli({**dead_env, "SQS_VISIBILITY_TIMEOUT": "0"}, "health", "--json")
    assert done.returncode == 2
    assert "SQS_VISIBILITY_TIMEOUT" in one_json_object(done.stdout)["error"]


def test_replay_retries_failure_is_json_on_stdout(dead_env: dict[str, str]) -> None:
    # listing the retry store fails (S3 refuses the connection): an unexpected error, 1
    done = cli(dead_env, "replay-retries", "--progress", "never")
    assert done.returncode == 1
    result = one_json_object(done.stdout)
    assert result["exit_code"] == 1
    assert result["error"].startswith("unexpected error: EndpointConnectionError")
    assert "replay-retries: error: unexpected error" in done.stderr


def test_replay_retries_usage_error(dead_env: dict[str, str]) -> None:
    done = cli(dead_env, "replay-retries", "--date", "2026/01/01", "--dry-run")
    assert done.returncode == 2
    assert "date must be YYYY-MM-DD" in one_json_object(done.stdout)["error"]


def test_recover_dlq_json_unexpected_error_in_process(
    dead_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bug inside the run (no subprocess: the bug is injected): 1, JSON on stdout."""
    from filesearch_worker import cli as cli_module

    for name, value in dead_env.items():
        monkeypatch.setenv(name, value)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_module, "recover", broken)
    assert cli_module.main(["recover-dlq", "--json"]) == 1
    out, err = capsys.readouterr()
    assert one_json_object(out) == {
        "error": "unexpected error: RuntimeError: a bug",
        "exit_code": 1,
    }
    assert "Traceback" in err  # the log line keeps the traceback for the journal


def test_recover_dlq_missing_queue_is_a_configuration_error(
    dead_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    aws: None,
) -> None:
    """A DLQ URL that names no queue (moto in-process: no endpoint variables): 2, not 1."""
    from filesearch_worker import cli as cli_module

    for name in ("AWS_ENDPOINT_URL", "SQS_QUEUE_URL"):
        monkeypatch.delenv(name, raising=False)
    env = {k: v for k, v in dead_env.items() if not k.startswith(("AWS_ENDPOINT", "SQS_"))}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "SQS_DLQ_URL", "https://sqs.ap-northeast-1.amazonaws.com/123456789012/no-such-dlq"
    )
    code = cli_module.main(["recover-dlq", "--json", "--no-dedupe", "--strategy", "archive-only"])
    out, err = capsys.readouterr()
    assert code == 2, err
    error = one_json_object(out)["error"]
    assert error.startswith("configuration error: ")
    assert "The specified queue does not exist" in error


@pytest.mark.parametrize("limit", ["0", "-1", "ten"])
def test_replay_retries_limit_must_be_positive(dead_env: dict[str, str], limit: str) -> None:
    # --limit 0 used to replay one entry (the limit was checked after the first append)
    done = cli(dead_env, "replay-retries", "--dry-run", "--limit", limit)
    assert done.returncode == 2
    assert "argument --limit: must be" in done.stderr
