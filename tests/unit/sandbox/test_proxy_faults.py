"""The fault proxy's logic (sandbox/sandboxctl/faults.py), without mitmproxy.

Requests are built by the real clients (botocore, opensearch-py) and caught
before they leave the process; injected errors are fed back to those clients
the same way, so the classification and the error wording are checked against
what the clients really send and how they really classify answers.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from opensearchpy import OpenSearch, TransportError
from opensearchpy.connection import Connection

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sandbox"))
from sandboxctl import faults

# The example of the config format in docs/sandbox.md (and in the issue).
EXAMPLE = {
    "seed": 42,
    "services": {
        "sqs": {
            "latency_ms": 10,
            "jitter_ms": 3,
            "errors": [
                {"rate": 0.05, "status": 503, "code": "ServiceUnavailable"},
                {"rate": 0.02, "status": 400, "code": "RequestThrottled"},
            ],
            "reset_before": 0.01,
            "reset_after": 0.01,
            "stall": {"rate": 0.001, "seconds": 75},
            "actions": {
                "ReceiveMessage": {"latency_ms": 20},
                "DeleteMessageBatch": {"reset_after": 0.05},
            },
        },
        "s3": {"errors": [{"rate": 0.01, "status": 503}]},
        "cloudwatch": {"errors": [{"rate": 0.01, "status": 400, "code": "Throttling"}]},
        "opensearch": {"actions": {"bulk": {"errors": [{"rate": 0.02, "status": 429}]}}},
    },
}

ENDPOINT = "http://127.0.0.1:4576"
QUEUE_URL = "http://127.0.0.1:4566/queue/ap-northeast-1/000000000000/q"


# --- config validation ------------------------------------------------------------------
def test_the_documented_example_is_valid() -> None:
    config = faults.parse_config(EXAMPLE)
    assert config.seed == 42
    assert set(config.services) == {"sqs", "s3", "cloudwatch", "opensearch"}


def test_an_action_override_replaces_only_the_keys_it_gives() -> None:
    config = faults.parse_config(EXAMPLE)
    base = config.faults("sqs", "SendMessage")
    receive = config.faults("sqs", "ReceiveMessage")
    delete = config.faults("sqs", "DeleteMessageBatch")
    assert (base.latency_ms, base.jitter_ms, base.reset_after) == (10, 3, 0.01)
    assert (receive.latency_ms, receive.jitter_ms) == (20, 3)
    assert receive.errors == base.errors and receive.stall == base.stall
    assert (delete.latency_ms, delete.reset_after) == (10, 0.05)


def test_default_codes_fill_in_a_missing_code() -> None:
    config = faults.parse_config(EXAMPLE)
    assert config.faults("s3", "GetObject").errors[0].code == "SlowDown"
    assert config.faults("opensearch", "bulk").errors[0].code == "rejected_execution_exception"
    assert config.faults("opensearch", "search").errors == ()


def test_no_services_is_pass_through() -> None:
    config = faults.load_config_text(faults.NO_FAULTS_TEXT)
    assert config.services == {}
    assert config.faults("sqs", "ReceiveMessage") == faults.NO_FAULTS
    assert faults.describe(config) == "no faults (pure pass-through)"


def _sqs(**block: Any) -> dict[str, Any]:
    return {"services": {"sqs": block}}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "config: must be a JSON object, not a list"),
        ({"sed": 1}, "config: unknown key 'sed'"),
        ({"seed": "1"}, "seed: must be an integer, not a string"),
        ({"seed": True}, "seed: must be an integer, not a boolean"),
        ({"services": {"sns": {}}}, "services: unknown service 'sns'"),
        ({"services": {"sqs": []}}, "services.sqs: must be a JSON object"),
        (_sqs(latency=5), "services.sqs: unknown key 'latency'"),
        (_sqs(latency_ms=-1), "services.sqs.latency_ms: must not be negative"),
        (_sqs(jitter_ms=-0.5), "services.sqs.jitter_ms: must not be negative"),
        (_sqs(latency_ms="10"), "services.sqs.latency_ms: must be a number, not a string"),
        (_sqs(latency_ms=float("nan")), "services.sqs.latency_ms: must be a finite number"),
        (_sqs(latency_ms=700_000), "is more than 600000 ms (use a stall instead)"),
        (_sqs(reset_before=1.5), "services.sqs.reset_before: rate 1.5 is outside [0, 1]"),
        (_sqs(reset_after=-0.1), "services.sqs.reset_after: rate -0.1 is outside [0, 1]"),
        (_sqs(errors={}), "services.sqs.errors: must be a list"),
        (
            _sqs(errors=[{"rate": 2, "status": 503}]),
            "services.sqs.errors[0].rate: rate 2 is outside [0, 1]",
        ),
        (_sqs(errors=[{"status": 503}]), "services.sqs.errors[0]: 'rate' is required"),
        (
            _sqs(errors=[{"rate": 0.1, "status": 200}]),
            "services.sqs.errors[0].status: 200 is not an HTTP error status",
        ),
        (_sqs(errors=[{"rate": 0.1, "status": 600}]), "600 is not an HTTP error status"),
        (_sqs(errors=[{"rate": 0.1, "status": "503"}]), "'503' is not an HTTP error status"),
        (_sqs(errors=[{"rate": 0.1, "status": 418}]), "code: required for status 418"),
        (
            _sqs(errors=[{"rate": 0.1, "status": 503, "code": "A;B"}]),
            "code: 'A;B' must be a non-empty plain word",
        ),
        (
            _sqs(errors=[{"rate": 0.1, "status": 503, "kode": "X"}]),
            "services.sqs.errors[0]: unknown key 'kode'",
        ),
        (
            _sqs(errors=[{"rate": 0.6, "status": 503}, {"rate": 0.6, "status": 500}]),
            "services.sqs.errors: the rates add up to 1.2, more than 1",
        ),
        (
            _sqs(stall={"rate": 0.1, "seconds": 0.5}),
            "services.sqs.stall.seconds: 0.5 is shorter than 1 s",
        ),
        (_sqs(stall={"seconds": 5}), "services.sqs.stall: 'rate' is required"),
        (_sqs(stall={"rate": 1.2, "seconds": 5}), "services.sqs.stall.rate: rate 1.2 is outside"),
        (_sqs(stall={"rate": 0.1, "seconds": 7200}), "is longer than 3600 s"),
        (
            _sqs(actions={"RecieveMessage": {}}),
            "services.sqs.actions: unknown sqs action 'RecieveMessage'",
        ),
        (
            _sqs(actions={"ReceiveMessage": {"actions": {}}}),
            "services.sqs.actions.ReceiveMessage: unknown key 'actions'",
        ),
        (
            _sqs(actions={"ReceiveMessage": {"latency_ms": -3}}),
            "services.sqs.actions.ReceiveMessage.latency_ms: must not be negative",
        ),
        (
            {"services": {"opensearch": {"actions": {"_bulk": {}}}}},
            "unknown opensearch action '_bulk'",
        ),
    ],
)
def test_an_invalid_config_is_refused_with_a_specific_message(config: object, message: str) -> None:
    with pytest.raises(faults.ConfigError) as raised:
        faults.parse_config(config)
    assert message in str(raised.value)


def test_text_that_is_not_json_is_refused_with_its_position() -> None:
    with pytest.raises(faults.ConfigError, match=r"not valid JSON: .* line 1 column 12"):
        faults.load_config_text('{"seed": 1,}')


# --- classification of what the real clients send -----------------------------------
class _Sent(Exception):
    def __init__(self, request: AWSPreparedRequest) -> None:
        super().__init__(request.url)
        self.request = request


def _client(service: str, **config: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name="ap-northeast-1",
        aws_access_key_id="test",
        aws_secret_access_key="dummy",
        config=BotoConfig(**config),
    )


def _sent(service: str, operation: str, **params: Any) -> AWSPreparedRequest:
    """The HTTP request botocore would send for ``operation`` (nothing leaves the process)."""
    client = _client(service, retries={"total_max_attempts": 1})

    def catch(request: AWSPreparedRequest, **_: Any) -> None:
        raise _Sent(request)

    client.meta.events.register("before-send", catch)
    with pytest.raises(_Sent) as sent:
        getattr(client, operation)(**params)
    return sent.value.request


def _classify(request: AWSPreparedRequest) -> faults.Route | None:
    target = request.url.split("127.0.0.1:4576", 1)[1] or "/"
    headers = {
        k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
    }
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = body.read()
    return faults.classify_aws(request.method, target, headers, body)


BUCKET = {"Bucket": "b"}
OBJECT = {"Bucket": "b", "Key": "dir/file.txt"}


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("sqs", "receive_message", {"QueueUrl": QUEUE_URL}, ("sqs", "ReceiveMessage", "json")),
        (
            "sqs",
            "send_message",
            {"QueueUrl": QUEUE_URL, "MessageBody": "x"},
            ("sqs", "SendMessage", "json"),
        ),
        (
            "sqs",
            "delete_message_batch",
            {"QueueUrl": QUEUE_URL, "Entries": [{"Id": "1", "ReceiptHandle": "r"}]},
            ("sqs", "DeleteMessageBatch", "json"),
        ),
        (
            "sqs",
            "change_message_visibility",
            {"QueueUrl": QUEUE_URL, "ReceiptHandle": "r", "VisibilityTimeout": 0},
            ("sqs", "ChangeMessageVisibility", "json"),
        ),
        ("sqs", "get_queue_url", {"QueueName": "q"}, ("sqs", "GetQueueUrl", "json")),
        (
            "cloudwatch",
            "put_metric_data",
            {"Namespace": "N", "MetricData": [{"MetricName": "m", "Value": 1.0}]},
            ("cloudwatch", "PutMetricData", "json"),
        ),
        ("cloudwatch", "describe_alarms", {}, ("cloudwatch", "DescribeAlarms", "json")),
        ("s3", "get_object", OBJECT, ("s3", "GetObject", "rest-xml")),
        ("s3", "put_object", {**OBJECT, "Body": b"x"}, ("s3", "PutObject", "rest-xml")),
        ("s3", "head_object", OBJECT, ("s3", "HeadObject", "rest-xml")),
        ("s3", "delete_object", OBJECT, ("s3", "DeleteObject", "rest-xml")),
        (
            "s3",
            "copy_object",
            {**OBJECT, "CopySource": {"Bucket": "b", "Key": "other"}},
            ("s3", "CopyObject", "rest-xml"),
        ),
        (
            "s3",
            "delete_objects",
            {**BUCKET, "Delete": {"Objects": [{"Key": "k"}]}},
            ("s3", "DeleteObjects", "rest-xml"),
        ),
        ("s3", "list_objects_v2", BUCKET, ("s3", "ListObjectsV2", "rest-xml")),
        ("s3", "list_objects", BUCKET, ("s3", "ListObjects", "rest-xml")),
        ("s3", "head_bucket", BUCKET, ("s3", "HeadBucket", "rest-xml")),
        ("s3", "create_bucket", BUCKET, ("s3", "CreateBucket", "rest-xml")),
        ("s3", "delete_bucket", BUCKET, ("s3", "DeleteBucket", "rest-xml")),
        ("s3", "list_buckets", {}, ("s3", "ListBuckets", "rest-xml")),
        ("s3", "get_bucket_location", BUCKET, ("s3", "GetBucketLocation", "rest-xml")),
        ("s3", "get_bucket_versioning", BUCKET, ("s3", "GetBucketVersioning", "rest-xml")),
        ("s3", "get_object_tagging", OBJECT, ("s3", "GetObjectTagging", "rest-xml")),
        (
            "s3",
            "create_multipart_upload",
            OBJECT,
            ("s3", "CreateMultipartUpload", "rest-xml"),
        ),
        (
            "s3",
            "upload_part",
            {**OBJECT, "UploadId": "u", "PartNumber": 1, "Body": b"x"},
            ("s3", "UploadPart", "rest-xml"),
        ),
        (
            "s3",
            "complete_multipart_upload",
            {**OBJECT, "UploadId": "u", "MultipartUpload": {"Parts": []}},
            ("s3", "CompleteMultipartUpload", "rest-xml"),
        ),
        (
            "s3",
            "abort_multipart_upload",
            {**OBJECT, "UploadId": "u"},
            ("s3", "AbortMultipartUpload", "rest-xml"),
        ),
        ("s3", "list_parts", {**OBJECT, "UploadId": "u"}, ("s3", "ListParts", "rest-xml")),
    ],
)
def test_what_botocore_sends_is_classified(
    service: str, operation: str, params: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    route = _classify(_sent(service, operation, **params))
    assert route is not None
    assert (route.service, route.action, route.protocol) == expected
    assert route.action in faults.ACTIONS[route.service]


@pytest.mark.parametrize(
    ("method", "target", "body", "expected"),
    [
        (
            "POST",
            "/queue/ap-northeast-1/000000000000/q",
            b"Action=SendMessage&Version=2012-11-05&MessageBody=x",
            ("sqs", "SendMessage", "query"),
        ),
        ("POST", "/", b"Action=ReceiveMessage&QueueUrl=u", ("sqs", "ReceiveMessage", "query")),
        (
            "POST",
            "/",
            b"Action=PutMetricData&Version=2010-08-01&Namespace=N",
            ("cloudwatch", "PutMetricData", "query"),
        ),
        ("GET", "/?Action=ListQueues&Version=2012-11-05", b"", ("sqs", "ListQueues", "query")),
    ],
)
def test_query_protocol_requests_are_classified(
    method: str, target: str, body: bytes, expected: tuple[str, str, str]
) -> None:
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"} if body else {}
    route = faults.classify_aws(method, target, headers, body)
    assert route is not None
    assert (route.service, route.action, route.protocol) == expected


def test_cloudwatch_json_protocol_is_classified_by_its_target() -> None:
    headers = {"x-amz-target": "GraniteServiceVersion20100801.PutMetricData"}
    assert faults.classify_aws("POST", "/", headers) == faults.Route(
        "cloudwatch", "PutMetricData", "json"
    )


def test_cloudwatch_rpc_v2_cbor_is_classified_by_its_path() -> None:
    # botocore 1.44 resolves CloudWatch to its JSON protocol; newer SDKs may send CBOR
    target = "/service/GraniteServiceVersion20100801/operation/PutMetricData"
    headers = {"smithy-protocol": "rpc-v2-cbor", "content-type": "application/cbor"}
    assert faults.classify_aws("POST", target, headers) == faults.Route(
        "cloudwatch", "PutMetricData", "cbor"
    )


def test_localstacks_own_endpoints_are_not_classified() -> None:
    assert faults.classify_aws("GET", "/_localstack/health", {}) is None
    assert faults.classify_aws("GET", "/_aws/sqs/messages", {}) is None


def test_every_s3_action_the_classifier_can_name_is_a_known_action() -> None:
    subresources = ["", "acl", "tagging", "uploads", "uploadId=u", "partNumber=1&uploadId=u"]
    subresources += ["location", "versioning", "delete", "list-type=2", "lifecycle", "restore"]
    subresources += ["attributes", "retention", "legal-hold", "versions", "policy", "cors"]
    for method in ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"):
        for path in ("/", "/b", "/b/", "/b/k", "/b/dir/k"):
            for query in subresources:
                for headers in ({}, {"x-amz-copy-source": "b/o"}):
                    action = faults.s3_action(method, path, query, headers)
                    assert action in faults.S3_ACTIONS, (method, path, query, action)


class _Recorder(Connection):
    """An opensearch-py connection that records requests and answers 200 {}."""

    sent: ClassVar[list[tuple[str, str]]] = []

    def perform_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((method, url))
        body = '{"acknowledged": true}' if method != "HEAD" else ""
        return 200, {"content-type": "application/json"}, body


@pytest.fixture
def recorded() -> Iterator[tuple[OpenSearch, list[tuple[str, str]]]]:
    _Recorder.sent = []
    client = OpenSearch(hosts=["http://127.0.0.1:9210"], connection_class=_Recorder)
    yield client, _Recorder.sent


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.info(), "info"),
        (lambda c: c.ping(), "ping"),
        (lambda c: c.bulk(body=[{"index": {"_index": "i", "_id": "1"}}, {"a": 1}]), "bulk"),
        (lambda c: c.bulk(index="i", body=[{"index": {"_id": "1"}}, {"a": 1}]), "bulk"),
        (lambda c: c.mget(index="i", body={"ids": ["1"]}), "mget"),
        (lambda c: c.index(index="i", id="1", body={"a": 1}), "index"),
        (lambda c: c.index(index="i", body={"a": 1}), "index"),
        (lambda c: c.get(index="i", id="1"), "get"),
        (lambda c: c.exists(index="i", id="1"), "exists"),
        (lambda c: c.delete(index="i", id="1"), "delete"),
        (lambda c: c.update(index="i", id="1", body={"doc": {}}), "update"),
        (lambda c: c.create(index="i", id="1", body={"a": 1}), "create"),
        (lambda c: c.search(index="i", body={}), "search"),
        (lambda c: c.search(body={}), "search"),
        (lambda c: c.count(index="i"), "count"),
        (lambda c: c.scroll(scroll_id="s", scroll="1m"), "scroll"),
        (lambda c: c.clear_scroll(scroll_id="s"), "clear_scroll"),
        (lambda c: c.delete_by_query(index="i", body={}), "delete_by_query"),
        (lambda c: c.indices.create(index="i"), "indices.create"),
        (lambda c: c.indices.exists(index="i"), "indices.exists"),
        (lambda c: c.indices.delete(index="i"), "indices.delete"),
        (lambda c: c.indices.get(index="i"), "indices.get"),
        (lambda c: c.indices.refresh(index="i"), "indices.refresh"),
        (lambda c: c.indices.put_mapping(index="i", body={}), "indices.put_mapping"),
        (lambda c: c.indices.get_mapping(index="i"), "indices.get_mapping"),
        (lambda c: c.cluster.health(), "cluster.health"),
    ],
)
def test_what_opensearch_py_sends_is_classified(
    recorded: tuple[OpenSearch, list[tuple[str, str]]], call: Any, expected: str
) -> None:
    client, sent = recorded
    call(client)
    method, url = sent[-1]
    route = faults.classify_opensearch(method, url)
    assert route == faults.Route("opensearch", expected, "opensearch")
    assert expected in faults.OPENSEARCH_ACTIONS


# --- injected errors, as the real clients see them -------------------------------------
class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _answered_by_proxy(
    service: str, operation: str, params: dict[str, Any], rule: faults.ErrorRule, **config: Any
) -> tuple[ClientError, int]:
    """Call ``operation`` with the proxy's injected answer; the error and the attempts."""
    client = _client(service, **config)
    attempts = 0

    def answer(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        nonlocal attempts
        attempts += 1
        route = _classify(request)
        assert route is not None
        status, headers, body = faults.error_reply(route, rule, request.method)
        return AWSResponse(request.url, status, headers, _Raw(body))

    client.meta.events.register("before-send", answer)
    with pytest.raises(ClientError) as raised:
        getattr(client, operation)(**params)
    return raised.value, attempts


NO_RETRY = {"retries": {"total_max_attempts": 1}}


@pytest.mark.parametrize(
    ("service", "operation", "params", "status", "code"),
    [
        ("sqs", "receive_message", {"QueueUrl": QUEUE_URL}, 503, "ServiceUnavailable"),
        (
            "sqs",
            "send_message",
            {"QueueUrl": QUEUE_URL, "MessageBody": "x"},
            400,
            "RequestThrottled",
        ),
        (
            "sqs",
            "delete_message_batch",
            {"QueueUrl": QUEUE_URL, "Entries": [{"Id": "1", "ReceiptHandle": "r"}]},
            500,
            "InternalFailure",
        ),
        ("s3", "get_object", OBJECT, 503, "SlowDown"),
        ("s3", "put_object", {**OBJECT, "Body": b"x"}, 500, "InternalError"),
        (
            "cloudwatch",
            "put_metric_data",
            {"Namespace": "N", "MetricData": [{"MetricName": "m", "Value": 1.0}]},
            400,
            "Throttling",
        ),
        ("cloudwatch", "describe_alarms", {}, 503, "ServiceUnavailable"),
    ],
)
def test_boto3_sees_an_injected_error_as_the_services_own(
    service: str, operation: str, params: dict[str, Any], status: int, code: str
) -> None:
    rule = faults.ErrorRule(rate=1.0, status=status, code=code, message="m")
    error, attempts = _answered_by_proxy(service, operation, params, rule, **NO_RETRY)
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert attempts == 1


def test_a_head_error_has_no_body_like_s3s() -> None:
    rule = faults.ErrorRule(rate=1.0, status=503, code="SlowDown", message="m")
    error, _ = _answered_by_proxy("s3", "head_object", OBJECT, rule, **NO_RETRY)
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error.response["Error"]["Code"] == "503"  # what boto3 says of a real one too


def test_a_modeled_sqs_error_raises_its_modeled_exception() -> None:
    client = _client("sqs")
    rule = faults.ErrorRule(rate=1.0, status=400, code="RequestThrottled", message="m")
    error, _ = _answered_by_proxy("sqs", "get_queue_url", {"QueueName": "q"}, rule, **NO_RETRY)
    assert isinstance(error, client.exceptions.RequestThrottled)


@pytest.mark.parametrize(
    ("status", "code", "retried"),
    [
        (503, "ServiceUnavailable", True),  # transient (5xx)
        (400, "RequestThrottled", True),  # throttling
        (400, "InvalidAttributeValue", False),  # a client error is not retried
    ],
)
def test_boto3_standard_retries_treat_injected_errors_like_real_ones(
    status: int, code: str, retried: bool
) -> None:
    rule = faults.ErrorRule(rate=1.0, status=status, code=code, message="m")
    _, attempts = _answered_by_proxy(
        "sqs",
        "receive_message",
        {"QueueUrl": QUEUE_URL},
        rule,
        retries={"mode": "standard", "total_max_attempts": 3},
    )
    assert attempts == (3 if retried else 1)


def test_opensearch_py_sees_an_injected_429_as_a_transport_error() -> None:
    rule = faults.ErrorRule(rate=1.0, status=429, code="rejected_execution_exception", message="m")
    status, headers, body = faults.error_reply(
        faults.Route("opensearch", "bulk", "opensearch"), rule, "POST"
    )
    with pytest.raises(TransportError) as raised:
        Connection()._raise_error(status, body.decode(), headers["content-type"])
    assert raised.value.status_code == 429
    assert raised.value.error == "rejected_execution_exception"


def test_a_cbor_error_is_parsed_by_botocores_rpc_v2_cbor_parser() -> None:
    rule = faults.ErrorRule(rate=1.0, status=400, code="Throttling", message="Rate exceeded")
    route = faults.Route("cloudwatch", "PutMetricData", "cbor")
    status, headers, body = faults.error_reply(route, rule, "POST")
    parsed = create_parser("smithy-rpc-v2-cbor").parse(
        {"status_code": status, "headers": headers, "body": body}, None
    )
    assert parsed["Error"]["Code"] == "Throttling"
    assert parsed["Error"]["Message"] == "Rate exceeded"


def test_cbor_map_encodes_long_strings() -> None:
    encoded = faults.cbor_map({"k": "x" * 300})
    assert encoded[:3] == bytes([0xA1, 0x61, ord("k")])
    assert encoded[3:6] == bytes([0x79, 0x01, 0x2C])  # text, 2-byte length 300


# --- decisions ------------------------------------------------------------------------
SQS_ROUTE = faults.Route("sqs", "SendMessage", "json")


def _plans(config: dict[str, Any], n: int, seed: int = 1) -> list[faults.Plan]:
    sqs = faults.parse_config(config).faults("sqs", "SendMessage")
    rng = random.Random(seed)
    return [faults.decide(sqs, rng, SQS_ROUTE) for _ in range(n)]


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert _plans(EXAMPLE, 500, seed=3) == _plans(EXAMPLE, 500, seed=3)
    assert _plans(EXAMPLE, 500, seed=3) != _plans(EXAMPLE, 500, seed=4)


def test_every_request_draws_five_numbers_whatever_happens() -> None:
    rng = random.Random(9)
    stall = faults.parse_config(_sqs(stall={"rate": 1, "seconds": 5}))
    faults.decide(stall.faults("sqs", "SendMessage"), rng, SQS_ROUTE)
    reference = random.Random(9)
    for _ in range(5):
        reference.random()
    assert rng.random() == reference.random()


def test_latency_is_the_base_plus_up_to_the_jitter() -> None:
    plans = _plans(_sqs(latency_ms=100, jitter_ms=20), 2000)
    latencies = [p.latency_s for p in plans]
    assert min(latencies) >= 0.100
    assert max(latencies) <= 0.120
    assert max(latencies) - min(latencies) > 0.015


def test_rates_are_honoured_over_many_requests() -> None:
    config = _sqs(
        errors=[
            {"rate": 0.2, "status": 503},
            {"rate": 0.1, "status": 400, "code": "RequestThrottled"},
        ],
        reset_after=0.5,
    )
    plans = _plans(config, 10_000)
    unavailable = sum(1 for p in plans if p.error and p.error.code == "ServiceUnavailable")
    throttled = sum(1 for p in plans if p.error and p.error.code == "RequestThrottled")
    reset_after = sum(1 for p in plans if p.reset_after)
    assert 1800 < unavailable < 2200
    assert 850 < throttled < 1150
    assert 3200 < reset_after < 3800  # half of the 70 % that are forwarded


def test_a_stall_wins_over_everything_else() -> None:
    config = _sqs(
        latency_ms=50,
        stall={"rate": 1, "seconds": 75},
        reset_before=1,
        errors=[{"rate": 1, "status": 503}],
    )
    plan = _plans(config, 1)[0]
    assert plan == faults.Plan(SQS_ROUTE, stall_s=75)


def test_a_reset_before_wins_over_an_error_and_keeps_the_latency() -> None:
    config = _sqs(latency_ms=50, reset_before=1, errors=[{"rate": 1, "status": 503}])
    plan = _plans(config, 1)[0]
    assert plan.reset_before and plan.error is None and plan.latency_s == 0.05


# --- the engine: live reload and counters ----------------------------------------------------
def _write(path: Path, config: object) -> None:
    faults.atomic_write(path, json.dumps(config))


def test_the_engine_reloads_a_changed_config_before_the_next_request(tmp_path: Path) -> None:
    live, stats = tmp_path / "faults.json", tmp_path / "stats.json"
    _write(live, {"services": {}})
    engine = faults.Engine(live, stats)
    assert engine.plan(SQS_ROUTE).passes
    _write(live, _sqs(errors=[{"rate": 1, "status": 503}]))
    plan = engine.plan(SQS_ROUTE)  # no poll in between: the stat per request sees it
    assert plan.error is not None and plan.error.code == "ServiceUnavailable"
    assert engine.config_info["loads"] == 2


def test_an_invalid_config_is_refused_and_the_old_one_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live, stats = tmp_path / "faults.json", tmp_path / "stats.json"
    _write(live, _sqs(errors=[{"rate": 1, "status": 503}]))
    engine = faults.Engine(live, stats)
    engine.maybe_reload()
    _write(live, _sqs(latency_ms=-5))
    plan = engine.plan(SQS_ROUTE)
    assert plan.error is not None  # still the old config
    assert engine.config_info["refused"] == 1
    assert "latency_ms: must not be negative" in engine.config_info["last_error"]["message"]
    assert "refused, the previous one stays" in caplog.text
    engine.plan(SQS_ROUTE)  # the same broken file is not refused (nor logged) again
    assert engine.config_info["refused"] == 1


def test_a_reload_reseeds_the_schedule(tmp_path: Path) -> None:
    live, stats = tmp_path / "faults.json", tmp_path / "stats.json"
    config = {"seed": 5, **_sqs(errors=[{"rate": 0.5, "status": 503}])}
    _write(live, config)
    engine = faults.Engine(live, stats)
    first = [engine.plan(SQS_ROUTE).error is not None for _ in range(50)]
    _write(live, {**config, "name": "again"})
    second = [engine.plan(SQS_ROUTE).error is not None for _ in range(50)]
    assert first == second


def test_the_stats_count_per_service_and_action(tmp_path: Path) -> None:
    live, stats = tmp_path / "faults.json", tmp_path / "stats.json"
    config = {
        "name": "count-me",
        "services": {
            "sqs": {
                "latency_ms": 10,
                "actions": {"ReceiveMessage": {"errors": [{"rate": 1, "status": 503}]}},
            },
            "opensearch": {"reset_before": 1},
        },
    }
    _write(live, config)
    engine = faults.Engine(live, stats)
    receive = faults.Route("sqs", "ReceiveMessage", "json")
    for _ in range(3):
        engine.plan(receive)
    send = engine.plan(SQS_ROUTE)
    engine.plan(faults.Route("opensearch", "bulk", "opensearch"))
    engine.plan(None)
    engine.reset_after_done(SQS_ROUTE)
    assert send.passes is False  # its latency
    engine.write_stats()
    data = json.loads(stats.read_text())
    assert data["config"]["name"] == "count-me" and data["config"]["loads"] == 1
    sqs = data["services"]["sqs"]
    assert sqs["requests"] == 4
    assert sqs["actions"]["ReceiveMessage"]["errors"] == {"ServiceUnavailable": 3}
    assert sqs["actions"]["SendMessage"]["reset_after"] == 1
    assert sqs["latency_ms"] == pytest.approx(40.0)
    assert data["services"]["opensearch"]["actions"]["bulk"]["reset_before"] == 1
    assert data["totals"]["requests"] == 5
    assert data["unclassified"] == 1


def test_pass_through_draws_nothing_and_only_counts(tmp_path: Path) -> None:
    live = tmp_path / "faults.json"
    faults.atomic_write(live, faults.NO_FAULTS_TEXT)
    engine = faults.Engine(live, tmp_path / "stats.json")
    state = engine.rng.getstate()
    assert all(engine.plan(SQS_ROUTE) == faults.Plan(SQS_ROUTE) for _ in range(10))
    assert engine.rng.getstate() == state
    assert engine.actions[("sqs", "SendMessage")]["requests"] == 10
