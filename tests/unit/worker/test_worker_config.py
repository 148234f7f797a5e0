"""Settings.from_env: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from filesearch_worker.config import Settings


def test_defaults_follow_the_seed_fixes() -> None:
    settings = Settings.from_env({})
    assert settings.visibility_timeout == 600  # seed Fix 4
    assert settings.wait_time_seconds == 20
    assert settings.cloudwatch_namespace == "CISFileSearch/Worker"
    assert settings.shutdown_grace_seconds == 60  # below the unit's TimeoutStopSec=90
    assert settings.skip_opensearch is False
    assert settings.heartbeat_interval == 200  # a third of the timeout


def test_environment_is_parsed() -> None:
    settings = Settings.from_env(
        {
            "SQS_QUEUE_URL": "http://127.0.0.1:4566/queue/q",
            "SQS_VISIBILITY_TIMEOUT": "30",
            "SKIP_OPENSEARCH": "TRUE",
            "WORKER_CONCURRENCY": "8",
            "OPENSEARCH_AUTH": "basic",
            "OPENSEARCH_USERNAME": "admin",
            "OPENSEARCH_PASSWORD": " secret ",
            "CB_FAILURE_THRESHOLD": "5",
            "CB_COOLDOWN_SECONDS": "2.5",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
    )
    assert settings.queue_url.endswith("/queue/q")
    assert settings.visibility_timeout == 30
    assert settings.skip_opensearch is True
    assert settings.concurrency == 8
    assert settings.poller_count == 8
    assert settings.opensearch_password == " secret "  # passwords are not stripped
    assert settings.redacted()["opensearch_password"] == "***"
    assert (settings.cb_failure_threshold, settings.cb_cooldown_seconds) == (5, 2.5)
    assert settings.region == "eu-west-1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.concurrency = 1  # type: ignore[misc]


def test_aws_region_wins_over_default_region() -> None:
    env = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert Settings.from_env(env).region == "us-east-1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SQS_VISIBILITY_TIMEOUT", "ten"),
        ("SQS_VISIBILITY_TIMEOUT", "0"),
        ("SQS_VISIBILITY_TIMEOUT", "43201"),
        ("SQS_WAIT_TIME_SECONDS", "21"),
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CONCURRENCY", "4.5"),
        ("SKIP_OPENSEARCH", "maybe"),
        ("OPENSEARCH_AUTH", "kerberos"),
        ("OPENSEARCH_ENDPOINT", "localhost:9200"),
        ("SQS_QUEUE_URL", "not a url"),
        ("WORKER_METRICS", "prometheus"),
        ("WORKER_SHUTDOWN_GRACE_SECONDS", "nan"),
        ("CB_FAILURE_THRESHOLD", "-1"),
        ("WORKER_MAX_FILE_BYTES", "1MB"),
        ("WORKER_INSTANCE", "0"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({variable: value})


def test_cross_field_checks() -> None:
    with pytest.raises(ValueError, match="OPENSEARCH_USERNAME"):
        Settings.from_env({"OPENSEARCH_AUTH": "basic"})
    with pytest.raises(ValueError, match="WORKER_HEARTBEAT_SECONDS"):
        Settings.from_env({"SQS_VISIBILITY_TIMEOUT": "10", "WORKER_HEARTBEAT_SECONDS": "10"})
    with pytest.raises(ValueError, match="WORKER_BACKOFF_BASE_SECONDS"):
        Settings.from_env({"WORKER_BACKOFF_BASE_SECONDS": "60", "WORKER_BACKOFF_MAX_SECONDS": "30"})


def test_each_template_instance_gets_its_own_prometheus_port() -> None:
    assert Settings.from_env({}).prometheus_listen_port == 0
    assert Settings.from_env({"WORKER_INSTANCE": "3"}).prometheus_listen_port == 0
    assert Settings.from_env({"WORKER_PROMETHEUS_PORT": "9108"}).prometheus_listen_port == 9108
    third = {"WORKER_PROMETHEUS_PORT": "9108", "WORKER_INSTANCE": "3"}
    assert Settings.from_env(third).prometheus_listen_port == 9110
    with pytest.raises(ValueError, match="WORKER_PROMETHEUS_PORT 65535 \\+ WORKER_INSTANCE 2"):
        Settings.from_env({"WORKER_PROMETHEUS_PORT": "65535", "WORKER_INSTANCE": "2"})


def test_require_names_missing_variables() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ValueError, match="SQS_QUEUE_URL, S3_BUCKET must be set for run"):
        settings.require("queue_url", "s3_bucket", purpose="run")


def test_heartbeat_interval_stays_below_the_timeout() -> None:
    assert Settings.from_env({"SQS_VISIBILITY_TIMEOUT": "4"}).heartbeat_interval < 4
    short = Settings.from_env({"SQS_VISIBILITY_TIMEOUT": "1"})
    assert short.heartbeat_interval < 1


@pytest.mark.parametrize(
    ("endpoint", "auth"),
    [
        ("https://search-x.ap-northeast-1.es.amazonaws.com", "sigv4"),
        ("http://127.0.0.1:9200", "none"),
    ],
)
def test_auto_auth(endpoint: str, auth: str) -> None:
    assert Settings.from_env({"OPENSEARCH_ENDPOINT": endpoint}).effective_auth() == auth
