"""DLQ recovery engine (filesearch_worker.dlq.engine), moto in-process.

What a failed OpenSearch lookup does to a run, and what a dry run leaves
behind. OpenSearch is a stand-in with the one Indexer method recovery's
deduplication calls (existing_ids), or the real Indexer on a closed port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from worker_unit_helpers import s3_event

from filesearch_worker.config import Settings
from filesearch_worker.dlq import (
    RecoveryConfigError,
    RecoveryError,
    RecoveryOptions,
    RecoveryReport,
    recover,
)
from filesearch_worker.errors import TransientError
from filesearch_worker.index import Indexer


class FlakyIndexer:
    """existing_ids fails (``failures`` times, or always), then answers from ``docs``."""

    skip = False

    def __init__(
        self,
        failures: int = 0,
        error: Callable[[], Exception] | None = None,
        docs: Iterable[str] = (),
    ) -> None:
        self.failures = failures
        self.error = error or (
            lambda: TransientError(
                "mget: ConnectionTimeout: Read timed out. (read timeout=5.0)",
                "opensearch-unavailable",
            )
        )
        self.docs = set(docs)
        self.calls = 0

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        self.calls += 1
        if self.failures < 0 or self.calls <= self.failures:
            raise self.error()
        return {i for i in ids if i in self.docs}


def counts(sqs: Any, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def fill(sqs: Any, dlq: str, bucket: str, indexed: int, junk: int) -> None:
    """``indexed`` S3 events (keys done/N.txt) and ``junk`` unparseable bodies."""
    for i in range(indexed):
        sqs.send_message(QueueUrl=dlq, MessageBody=s3_event(bucket, f"done/{i}.txt"))
    for i in range(junk):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"junk {i}")


def run(
    settings: Settings, sqs: Any, s3: Any, dlq: str, indexer: Any, **options: Any
) -> RecoveryReport:
    values: dict[str, Any] = {
        "strategy": "archive-only",
        "threads": 1,  # moto's SQS is not thread-safe
        "wait_time_seconds": 0,
    }
    values.update(options)
    return recover(
        settings, RecoveryOptions(**values), sqs=sqs, s3=s3, indexer=indexer, dlq_url=dlq
    )


@pytest.fixture
def setup(
    sqs: Any, s3: Any, bucket: str, queues: tuple[str, str], make_settings: Callable[..., Settings]
) -> tuple[Settings, str]:
    return make_settings(s3_bucket=bucket, dlq_url=queues[1]), queues[1]


def archived_keys(s3: Any, bucket: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="dlq-archive/")
    return [o["Key"] for o in listing.get("Contents", [])]


# -- a transient OpenSearch error does not end the run --------------------------------


def test_one_mget_timeout_is_retried_and_the_run_completes(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=6, junk=0)
    index = FlakyIndexer(failures=1, docs={f"done/{i}.txt" for i in range(6)})
    report = run(settings, sqs, s3, dlq, index, batch_size=10)
    assert index.calls == 2  # the timeout, then the retry
    assert report.counts["deduplicated"] == 6
    assert report.counts["released"] == 0
    assert counts(sqs, dlq) == (0, 0)


def test_mget_failing_twice_holds_that_batch_and_the_run_goes_on(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=4, junk=3)
    # the first batch's lookup and its retry fail; the second batch's lookup works
    index = FlakyIndexer(failures=2, docs={f"done/{i}.txt" for i in range(4)})
    report = run(settings, sqs, s3, dlq, index, batch_size=7, max_batches=1)
    # the unparseable bodies do not need OpenSearch: archived; the events are held
    assert report.counts["archived"] == 3
    assert report.counts["released"] == 4
    assert report.examined == 7
    assert any("multi-get failed twice" in s for s in report.samples["released"])
    assert any("held for a later run" in e for e in report.errors)
    assert len(archived_keys(s3, bucket)) == 3
    # held, then made visible again when the run ended, still in the DLQ
    assert counts(sqs, dlq) == (4, 0)
    again = run(settings, sqs, s3, dlq, index)  # a later run settles them
    assert again.counts["deduplicated"] == 4
    assert counts(sqs, dlq) == (0, 0)


def test_circuit_open_stays_fatal_and_releases_what_it_held(
    setup: tuple[Settings, str],
    sqs: Any,
    s3: Any,
    bucket: str,
    closed_port: int,
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=12, junk=0)
    # the real Indexer and breaker (threshold 3): batch 1 fails twice (held); batch 2's
    # lookup opens the circuit and its retry meets the open circuit: OpenSearch is down
    index = Indexer.for_endpoint(f"http://127.0.0.1:{closed_port}", "files", timeout=2)
    with pytest.raises(RecoveryError, match="circuit breaker open") as failed:
        run(settings, sqs, s3, dlq, index, batch_size=6)
    assert not isinstance(failed.value, RecoveryConfigError)
    report = failed.value.report
    assert report is not None
    assert report.counts["released"] == 6
    assert counts(sqs, dlq) == (12, 0)  # nothing deleted, nothing left hidden


def test_opensearch_refusing_the_request_is_a_configuration_error(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    from opensearchpy.exceptions import AuthorizationException

    def forbidden() -> Exception:
        error = TransientError("mget: AuthorizationException(403)", "opensearch-unavailable")
        error.__cause__ = AuthorizationException(403, "security_exception", {})
        return error

    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=3, junk=0)
    index = FlakyIndexer(failures=-1, error=forbidden)
    with pytest.raises(RecoveryConfigError, match="HTTP 403"):
        run(settings, sqs, s3, dlq, index)
    assert index.calls == 1  # not retried
    assert counts(sqs, dlq) == (3, 0)


# -- the dry run leaves the DLQ as it found it ------------------------------------------


def test_dry_run_makes_everything_visible_again_and_changes_nothing(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str, queues: tuple[str, str]
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=8, junk=5)
    before = counts(sqs, dlq)
    assert before == (13, 0)
    index = FlakyIndexer(docs={f"done/{i}.txt" for i in range(3)})
    report = run(settings, sqs, s3, dlq, index, dry_run=True, strategy="redrive", batch_size=4)
    assert report.examined == 13
    assert report.counts["deduplicated"] == 3
    assert report.counts["redriven"] == 5
    assert report.counts["archived"] == 5
    assert counts(sqs, dlq) == before
    assert counts(sqs, queues[0]) == (0, 0)  # nothing sent to the source queue
    assert archived_keys(s3, bucket) == []
    assert report.remaining == 13


def test_dry_run_that_fails_still_makes_everything_visible_again(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=9, junk=0)
    # batch 1 is examined; batch 2's lookup fails for good (a bug in the indexer)
    index = FlakyIndexer()
    real = index.existing_ids

    def second_fails(ids: Iterable[str]) -> set[str]:
        if index.calls >= 1:
            index.calls += 1
            raise RuntimeError("indexer bug")
        return real(ids)

    index.existing_ids = second_fails  # type: ignore[method-assign]
    with pytest.raises(RecoveryError, match="indexer bug"):
        run(settings, sqs, s3, dlq, index, dry_run=True, batch_size=5)
    assert counts(sqs, dlq) == (9, 0)


def test_dry_run_stopped_from_outside_makes_everything_visible_again(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=9, junk=0)
    stop = threading.Event()
    index = FlakyIndexer()
    real = index.existing_ids

    def stop_after_first(ids: Iterable[str]) -> set[str]:
        stop.set()  # as SIGTERM would, while the first batch is in hand
        return real(ids)

    index.existing_ids = stop_after_first  # type: ignore[method-assign]
    options = RecoveryOptions(
        strategy="archive-only", threads=1, wait_time_seconds=0, batch_size=5, dry_run=True
    )
    report = recover(settings, options, sqs=sqs, s3=s3, indexer=index, dlq_url=dlq, stop=stop)
    assert report.examined == 5
    assert counts(sqs, dlq) == (9, 0)


class FirstReleaseFails:
    """An SQS client whose first ChangeMessageVisibilityBatch call raises (a throttled call)."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs
        self.release_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        self.release_calls += 1
        if self.release_calls == 1:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "ChangeMessageVisibilityBatch",
            )
        return self._sqs.change_message_visibility_batch(**kwargs)


def test_dry_run_release_that_fails_once_is_tried_again(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=0, junk=4)
    flaky = FirstReleaseFails(sqs)
    report = run(settings, flaky, s3, dlq, FlakyIndexer(), dry_run=True)
    assert report.examined == 4
    assert flaky.release_calls == 2
    assert report.errors == []
    assert counts(sqs, dlq) == (4, 0)


def test_dry_run_interrupted_in_the_main_thread_receives_nothing_after_its_release(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    """Ctrl-C where no handler is installed (the Ansible module): KeyboardInterrupt in run().

    The worker thread sends SIGINT to the main thread while its first batch is in
    hand, then waits until either run() released what it holds (the old order: its
    next batch would be received after that release and stay hidden) or the run
    told it to stop.
    """
    import signal
    import time

    from filesearch_worker.dlq import engine

    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=0, junk=9)
    stop = threading.Event()
    released = threading.Event()
    original_release = engine.DlqRecovery._release

    def release(self: Any, handles: list[str], *, final: bool = False) -> None:
        original_release(self, handles, final=final)
        if final:
            released.set()

    calls = {"n": 0}
    real_parse = engine.parse_message

    def parse(body: str) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            deadline = time.monotonic() + 10
            while not (released.is_set() or stop.is_set()) and time.monotonic() < deadline:
                time.sleep(0.01)  # polling for either condition, bounded
        return real_parse(body)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.DlqRecovery, "_release", release)
        patch.setattr(engine, "parse_message", parse)
        options = RecoveryOptions(
            strategy="archive-only",
            threads=1,
            wait_time_seconds=0,
            batch_size=3,
            dry_run=True,
            dedupe=False,
        )
        with pytest.raises(KeyboardInterrupt):
            recover(settings, options, sqs=sqs, s3=s3, dlq_url=dlq, stop=stop)
    assert counts(sqs, dlq) == (9, 0)


# -- the progress hook -------------------------------------------------------------------


def test_progress_hook_is_called_after_each_batch(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=0, junk=12)
    calls: list[tuple[int, int | None]] = []
    options = RecoveryOptions(
        strategy="archive-only", threads=1, wait_time_seconds=0, batch_size=5, dedupe=False
    )
    report = recover(
        settings,
        options,
        sqs=sqs,
        s3=s3,
        dlq_url=dlq,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.counts["archived"] == 12
    assert calls == [(0, 12), (5, 12), (10, 12), (12, 12)]


def test_progress_total_is_capped_by_the_limits(
    setup: tuple[Settings, str], sqs: Any, s3: Any, bucket: str
) -> None:
    settings, dlq = setup
    fill(sqs, dlq, bucket, indexed=0, junk=12)
    calls: list[tuple[int, int | None]] = []
    options = RecoveryOptions(
        strategy="archive-only",
        threads=1,
        wait_time_seconds=0,
        batch_size=4,
        max_batches=2,
        dedupe=False,
        dry_run=True,
    )
    recover(
        settings,
        options,
        sqs=sqs,
        s3=s3,
        dlq_url=dlq,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(0, 8), (4, 8), (8, 8)]
