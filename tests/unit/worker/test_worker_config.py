"""Settings.from_env: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from filesearch_worker.config import Settings, is_aws_opensearch_endpoint, resolve_opensearch_auth


def test_defaults_follow_the_incident_report_fixes() -> None:
    settings = Settings.from_env({})
    assert settings.visibility_timeout == 600  # the incident report's Fix 4
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


@pytest.mark.parametrize(
    ("endpoint", "aws"),
    [
        ("https://search-cis-abc123.ap-northeast-1.es.amazonaws.com", True),
        ("https://vpc-cis-abc123.ap-northeast-1.es.amazonaws.com:443/", True),
        ("https://SEARCH-CIS-ABC123.AP-NORTHEAST-1.ES.AMAZONAWS.COM", True),
        ("https://search-cis-abc123.ap-northeast-1.es.amazonaws.com.", True),
        ("https://user:pw@search-cis-abc123.eu-west-1.es.amazonaws.com/_dashboards", True),
        ("https://search-cis-abc123.cn-north-1.es.amazonaws.com.cn", True),
        ("https://search-cis-abc123.aos.us-east-1.on.aws", True),
        ("search-cis-abc123.ap-northeast-1.es.amazonaws.com:443", True),
        # look-alikes: only the hostname's suffix counts
        ("https://es.amazonaws.com.evil.example", False),
        ("https://search-x.es.amazonaws.com.evil.example/", False),
        ("https://evil.example/search-x.es.amazonaws.com", False),
        ("https://evil.example/?next=https://x.es.amazonaws.com", False),
        ("https://evil.example#.es.amazonaws.com", False),
        ("https://x.es.amazonaws.com@evil.example", False),
        ("https://evil-es.amazonaws.com", False),
        ("https://es.amazonaws.com", False),
        # other AWS hosts: not an OpenSearch Service domain
        ("https://sqs.ap-northeast-1.amazonaws.com", False),
        ("https://abc.us-east-1.aoss.amazonaws.com", False),  # Serverless signs as "aoss"
        ("https://x.aos.us-east-1.on.aws.evil.example", False),
        ("http://127.0.0.1:9200", False),
        ("http://localhost:9200", False),
        ("", False),
        ("http://[::1", False),
    ],
)
def test_aws_opensearch_endpoint_is_decided_by_the_hostname(endpoint: str, aws: bool) -> None:
    assert is_aws_opensearch_endpoint(endpoint) is aws
    assert resolve_opensearch_auth("auto", endpoint) == ("sigv4" if aws else "none")


@pytest.mark.parametrize(
    ("auth", "endpoint", "username", "expected"),
    [
        ("auto", "https://search-x.ap-northeast-1.es.amazonaws.com", "", "sigv4"),
        ("auto", "https://search-x.ap-northeast-1.es.amazonaws.com", "admin", "sigv4"),
        ("auto", "https://opensearch.internal:9200", "admin", "basic"),
        ("auto", "https://opensearch.internal:9200", "", "none"),
        ("AUTO", "https://es.amazonaws.com.evil.example", "", "none"),
        ("none", "https://search-x.ap-northeast-1.es.amazonaws.com", "", "none"),
        ("sigv4", "http://127.0.0.1:9200", "", "sigv4"),
        ("basic", "https://search-x.ap-northeast-1.es.amazonaws.com", "admin", "basic"),
    ],
)
def test_resolve_opensearch_auth(auth: str, endpoint: str, username: str, expected: str) -> None:
    assert resolve_opensearch_auth(auth, endpoint, username=username) == expected


def test_auto_auth_is_basic_with_a_user_name() -> None:
    env = {
        "OPENSEARCH_ENDPOINT": "https://opensearch.internal:9200",
        "OPENSEARCH_USERNAME": "admin",
        "OPENSEARCH_PASSWORD": "secret",
    }
    assert Settings.from_env(env).effective_auth() == "basic"
