"""events.parse_message: every supported shape, and a specific reason for everything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from worker_unit_helpers import s3_event

from filesearch_worker.errors import PermanentError
from filesearch_worker.events import parse_message, s3_event_body


@pytest.mark.parametrize(
    ("raw_key", "key"),
    [
        ("plain.txt", "plain.txt"),
        ("my+file+name.txt", "my file name.txt"),
        ("a%2Bb.txt", "a+b.txt"),
        ("dir/sub+dir/%E6%97%A5%E6%9C%AC%E8%AA%9E.pdf", "dir/sub dir/日本語.pdf"),
        ("100%25.txt", "100%.txt"),
    ],
)
def test_keys_are_url_decoded(raw_key: str, key: str) -> None:
    body = json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": raw_key, "size": 5}},
                }
            ]
        }
    )
    (event,) = parse_message(body)
    assert (event.bucket, event.key, event.kind, event.size) == ("b", key, "created", 5)


def test_record_fields() -> None:
    (event,) = parse_message(s3_event("b", "x y.txt", "ObjectRemoved:Delete"))
    assert event.kind == "removed"
    assert event.key == "x y.txt"
    assert event.event_name == "ObjectRemoved:Delete"
    assert event.event_time == "2026-01-01T00:00:00.000Z"


def test_sns_wrapped_event() -> None:
    body = json.dumps({"Type": "Notification", "Message": s3_event("b", "日本.txt")})
    (event,) = parse_message(body)
    assert (event.key, event.source) == ("日本.txt", "sns")


def test_eventbridge_event() -> None:
    body = json.dumps(
        {
            "version": "0",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "time": "2026-01-01T00:00:00Z",
            "detail": {
                "bucket": {"name": "b"},
                "object": {"key": "a+b/c.txt", "size": 3, "etag": "e"},
            },
        }
    )
    (event,) = parse_message(body)
    assert (event.key, event.kind, event.source, event.etag) == (
        "a b/c.txt",
        "created",
        "eventbridge",
        "e",
    )


def test_test_event_is_recognised() -> None:
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})
    (event,) = parse_message(body)
    assert event.kind == "test"


def test_several_records() -> None:
    one = json.loads(s3_event("b", "1.txt"))["Records"][0]
    two = json.loads(s3_event("b", "2.txt", "ObjectRemoved:Delete"))["Records"][0]
    events = parse_message(json.dumps({"Records": [one, two]}))
    assert [(e.key, e.kind) for e in events] == [("1.txt", "created"), ("2.txt", "removed")]


def _record(**changes: object) -> str:
    record = json.loads(s3_event("b", "k.txt"))["Records"][0]
    record.update(changes)
    return json.dumps({"Records": [record]})


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        ("", "empty-body"),
        ("   \n", "empty-body"),
        ("hello", "invalid-json"),
        ('{"Records": [', "invalid-json"),
        ("[" * 100_000 + "]" * 100_000, "invalid-json"),
        ("[1, 2]", "not-an-object"),
        ('"just a string"', "not-an-object"),
        ("{}", "missing-records"),
        ('{"Records": []}', "missing-records"),
        (json.dumps({"padding": "x" * 200_000}), "missing-records"),
        ('{"Records": "x"}', "malformed-records"),
        ('{"Records": [1]}', "malformed-record"),
        (json.dumps({"Records": [{}] * 101}), "too-many-records"),
        (_record(eventSource="aws:dynamodb"), "unsupported-event-source"),
        (_record(eventName="ObjectRestore:Completed"), "unsupported-event"),
        (_record(eventName=None), "malformed-record"),
        (_record(s3={"bucket": {"name": "b"}, "object": {}}), "malformed-record"),
        (_record(s3={"object": {"key": "k"}}), "malformed-record"),
        (_record(s3={"bucket": {"name": "b"}, "object": {"key": "%FF%FE.txt"}}), "malformed-key"),
        (_record(s3={"bucket": {"name": "b"}, "object": {"key": "a%00b"}}), "malformed-key"),
        (_record(s3={"bucket": {"name": "b"}, "object": {"key": "k" * 1025}}), "malformed-key"),
        (json.dumps({"Type": "Notification", "Message": "not json"}), "invalid-json"),
        (json.dumps({"Type": "Notification", "Message": {"a": 1}}), "malformed-sns"),
        (
            json.dumps({"detail-type": "Object Created", "source": "aws.ec2", "detail": {}}),
            "unsupported-event-source",
        ),
        (
            json.dumps({"detail-type": "Object Tagged", "source": "aws.s3", "detail": {}}),
            "unsupported-event",
        ),
        (
            json.dumps({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}),
            "malformed-record",
        ),
    ],
)
def test_bad_bodies_get_a_specific_reason(body: str, error_type: str) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_message(body)
    assert caught.value.error_type == error_type
    assert caught.value.reason


# --- s3_event_body: the one synthetic notification --------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "plain.txt",
        "dir/sub dir/スモーク テスト 1.txt",
        "a+b&c=d?e#f.txt",
        "100%.txt",
        "recoverable/00001+file.txt",
        "  leading and trailing  ",
    ],
)
def test_s3_event_body_parses_back(key: str) -> None:
    body = s3_event_body("bucket-1", key, size=2048, region="eu-west-1")
    (event,) = parse_message(body)
    assert (event.bucket, event.key, event.kind, event.size) == ("bucket-1", key, "created", 2048)
    assert event.event_name == "ObjectCreated:Put"
    assert event.source == "s3"


def test_s3_event_body_is_shaped_as_s3_sends_it() -> None:
    body = s3_event_body(
        "b",
        "x y/z.txt",
        size=7,
        region="ap-northeast-1",
        event_time="2026-01-01T00:00:00.000Z",
        configuration_id="smoke-test",
    )
    (record,) = json.loads(body)["Records"]
    assert record["eventVersion"] == "2.1"
    assert record["eventSource"] == "aws:s3"
    assert record["awsRegion"] == "ap-northeast-1"
    assert record["eventTime"] == "2026-01-01T00:00:00.000Z"
    assert record["s3"]["configurationId"] == "smoke-test"
    assert record["s3"]["bucket"] == {"name": "b", "arn": "arn:aws:s3:::b"}
    assert record["s3"]["object"] == {"key": "x+y/z.txt", "size": 7}


def test_s3_event_body_options() -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, 891_234, tzinfo=UTC)
    (event,) = parse_message(
        s3_event_body("b", "k", size=None, event_name="ObjectRemoved:Delete", event_time=when)
    )
    assert (event.kind, event.size) == ("removed", None)
    assert event.event_time == "2026-03-04T05:06:07.891Z"
    assert "configurationId" not in json.loads(s3_event_body("b", "k"))["Records"][0]["s3"]


def test_s3_event_body_defaults_to_now() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    (event,) = parse_message(s3_event_body("b", "k"))
    assert event.event_time is not None and event.event_time.endswith("Z")
    seen = datetime.strptime(event.event_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= seen <= datetime.now(UTC)
