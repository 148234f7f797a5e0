"""Generated fault schedules over the real settlement engine (hypothesis stateful tests).

The promise under test: no SQS message is deleted before its outcome is
durable elsewhere (indexed, in the retry store, confirmed in the DLQ or back
in the source queue, archived), and no message is lost.

:class:`SettlementSchedules` drives the REAL engine objects (``Runner`` and
its ``Processor``/``Settler``, ``filesearch_worker.dlq.recover``,
``RetryStore.replay``) against the in-memory fakes of ``fakes.py``. A
schedule is one generated sequence of steps: upload files and send their S3
events (good files, PDFs whose extraction fails, missing objects, objects the
worker may not read yet, files the worker raises on, unparseable bodies), run
worker batches (sometimes after a restart), run a DLQ recovery (redrive,
reindex, archive-only), replay the retry store, and let time pass (the clock
moves, OpenSearch goes down or comes back, access is fixed, a late upload).
Every engine step draws a :class:`~fakes.FaultPlan`: which calls fail before
taking effect, time out after taking effect, partly fail, and where the
process crashes (its engine objects are then thrown away and rebuilt).

Checked: every delete, at the moment it happens (``fakes.World.check_delete``);
at the end of each schedule, draining everything with faults off (worker and
recovery with strategy redrive) must empty both queues in a bounded number of
rounds, and every message sent is accounted for (indexed, retry store, DLQ,
archive, still in a queue) and none is lost; duplicates are counted, not failed.
The last tests run the same machine against deliberately broken orderings
and require the proof to catch them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any, ClassVar
from unittest import mock

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from fakes import (
    FAULTS,
    NO_FAULTS,
    OPERATIONS,
    RETRY_PREFIX,
    Crash,
    Fault,
    FaultPlan,
    Origin,
    World,
)
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import filesearch_worker.processor as processor_module
import filesearch_worker.settle as settle_module
from filesearch_worker import aws
from filesearch_worker.breaker import CircuitBreaker
from filesearch_worker.config import Settings
from filesearch_worker.dlq import RECOVERIES_ATTRIBUTE, RecoveryError, RecoveryOptions, recover
from filesearch_worker.dlq.engine import DlqRecovery
from filesearch_worker.errors import TransientError
from filesearch_worker.events import s3_event_body
from filesearch_worker.index import Indexer
from filesearch_worker.outcomes import Outcome
from filesearch_worker.processor import Processor
from filesearch_worker.retry_store import RetryStore
from filesearch_worker.runner import Runner
from filesearch_worker.sqs_batch import Settlement, SqsBatch

QUEUE = "cis-filesearch-index-queue"
DLQ = "cis-filesearch-dlq"
UPLOADS = "cis-filesearch-uploads"  # where the files are
BUCKET = "cis-filesearch-ops"  # retry store and DLQ archive
INDEX = "filesearch"
MAX_RECEIVE_COUNT = 3
POISON = "poison-"  # WORKER_TEST_RAISE_ON_KEY: the worker raises on these keys
EVENT_TIME = "2026-01-05T09:00:00.000Z"
KINDS = ("good", "corrupt", "missing", "denied", "poison", "unparseable")
DRAIN_ROUNDS = 40


class DeleteInvariantViolation(AssertionError):
    """A message (or retry-store entry) was deleted before its outcome was durable."""


# --- strategies -----------------------------------------------------------------------

# A scattered plan may hit any call (OK three times out of eight, so a faulty step
# still gets somewhere); a targeted one aims at one operation, which then mostly fails.
_SCATTERED = (Fault.OK, Fault.OK, Fault.OK, *[f for f in FAULTS if f is not Fault.OK])


@st.composite
def fault_plans(draw: st.DrawFn) -> FaultPlan:
    """What goes wrong during one engine step (``fakes.FaultPlan``)."""
    mode = draw(st.sampled_from(("none", "targeted", "scattered")))
    faults: dict[str, Any] = {}
    if mode == "targeted":
        faults["only"] = draw(st.sampled_from(OPERATIONS))
        faults["tape"] = tuple(draw(st.lists(st.sampled_from(FAULTS), min_size=1, max_size=4)))
    elif mode == "scattered":
        faults["tape"] = tuple(draw(st.lists(st.sampled_from(_SCATTERED), min_size=1, max_size=6)))
    if faults:
        faults["salt"] = draw(st.integers(0, 255))
    if draw(st.integers(0, 3)) == 3:  # a crash in one step of four
        faults["crash_every"] = draw(st.integers(1, 16))
        faults["crash_salt"] = draw(st.integers(0, 255))
        faults["crash_only"] = draw(st.sampled_from(("", *OPERATIONS)))
        faults["crash_after"] = draw(st.booleans())
    return FaultPlan(**faults)


# --- the machine ----------------------------------------------------------------------


@contextmanager
def _processors_joined() -> Iterator[None]:
    """Join the pools of the processors recovery makes (a killed process runs nothing on)."""
    made: list[Processor] = []

    class Tracked(Processor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    with mock.patch.object(processor_module, "Processor", Tracked):
        try:
            yield
        finally:
            for processor in made:
                processor.pool.shutdown(wait=True, cancel_futures=True)


class SettlementSchedules(RuleBasedStateMachine):
    """One worker host, its DLQ recovery and retry-store replay, under generated faults."""

    stats: ClassVar[Any] = None  # conftest.ProofStats: the session's counters
    #: drain and account at the end of each schedule (off where only deletes matter)
    drain_at_teardown: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__()
        self.world = w = World(bucket=BUCKET, index=INDEX)
        self.dlq_url = w.sqs.create_queue(DLQ, visibility_timeout=30)
        self.queue_url = w.sqs.create_queue(
            QUEUE,
            visibility_timeout=600,
            dead_letter_queue=f"https://sqs.ap-northeast-1.amazonaws.com/123456789012/{DLQ}",
            max_receive_count=MAX_RECEIVE_COUNT,
        )
        w.s3.create_bucket(UPLOADS)
        w.s3.create_bucket(BUCKET)
        self.settings = Settings(
            queue_url=self.queue_url,
            dlq_url=self.dlq_url,
            s3_bucket=BUCKET,
            opensearch_endpoint="http://opensearch.proof.invalid:9200",
            opensearch_index=INDEX,
            concurrency=2,
            pollers=1,
            metrics="off",
            visibility_timeout=600,
            wait_time_seconds=0,
            backoff_base_seconds=30,
            backoff_max_seconds=900,
            cb_failure_threshold=3,
            cb_cooldown_seconds=30.0,
            shutdown_grace_seconds=0.0,
            test_raise_on_key=POISON,
        )
        self.runner: Runner | None = None
        self.missing: list[tuple[str, bytes]] = []  # objects a message names but S3 lacks
        self.steps = 0
        self.duplicate_copies = 0

    # -- engine objects ----------------------------------------------------------------

    def _indexer(self) -> Indexer:
        breaker = CircuitBreaker(
            "opensearch",
            self.settings.cb_failure_threshold,
            self.settings.cb_cooldown_seconds,
            clock=self.world.clock,
        )
        return Indexer(self.world.opensearch, INDEX, breaker=breaker)

    def _runner(self) -> Runner:
        """The worker process (built once, kept until it crashes or restarts)."""
        if self.runner is None:
            w = self.world

            def no_cloudwatch(*_args: Any, **_kwargs: Any) -> Any:
                raise AssertionError("metrics are off; no CloudWatch client")

            with (
                mock.patch.object(aws, "sqs_client", lambda _settings, **_: w.sqs),
                mock.patch.object(aws, "s3_client", lambda _settings, **_: w.s3),
                mock.patch.object(aws, "cloudwatch_client", no_cloudwatch),
                mock.patch.object(
                    Indexer, "from_settings", classmethod(lambda _cls, _s: self._indexer())
                ),
            ):
                self.runner = Runner(self.settings)
        return self.runner

    def _discard_runner(self) -> None:
        if self.runner is not None:
            self.runner.processor.pool.shutdown(wait=True, cancel_futures=True)
            self.runner = None

    def _engine_step(self, plan: FaultPlan, action: Callable[[], object]) -> None:
        """Run ``action`` under ``plan``; a crash kills the process (its objects go)."""
        w = self.world
        self.steps += 1
        before = {body: len(w.live_copies(body)) for body in w.origins}
        w.begin(plan)
        try:
            action()
        except Crash:
            self._discard_runner()
            w.revive()
        for body, had in before.items():
            now = len(w.live_copies(body))
            self.duplicate_copies += max(0, now - max(had, 1))

    def _worker_batch(self) -> int:
        """One receive of the worker's lane and its batch (Runner._lane, one iteration)."""
        runner = self._runner()
        s = runner.settings
        try:
            response = runner.sqs.receive_message(
                QueueUrl=s.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=s.wait_time_seconds,
                VisibilityTimeout=s.visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"],
            )
        except (BotoCoreError, ClientError):
            return 0  # the lane logs it, backs off and polls again
        messages: list[Any] = list(response.get("Messages", []))
        if not messages:
            return 0
        received_at = time.monotonic()
        runner.heartbeat.track([m["ReceiptHandle"] for m in messages], received_at)
        runner.stats.add("received", len(messages))
        runner.handle_batch(messages, received_at)
        return len(messages)

    def _recover(self, strategy: str, max_batches: int | None) -> None:
        options = RecoveryOptions(
            strategy=strategy,
            batch_size=10,
            max_batches=max_batches,
            threads=1,
            wait_time_seconds=0,
            messages_per_second=None,  # no RateLimiter sleeps
        )
        # no queue_url: redrive finds the source queue with ListDeadLetterSourceQueues
        settings = replace(self.settings, queue_url="")
        w = self.world
        # RecoveryError: a dependency failed; the report says so and a rerun goes on
        with _processors_joined(), suppress(RecoveryError):
            recover(
                settings,
                options,
                sqs=w.sqs,
                s3=w.s3,
                indexer=self._indexer(),
                dlq_url=self.dlq_url,
            )

    def _replay(self) -> None:
        # OpenSearch or the listing failed: the entries stay for the next replay
        with suppress(TransientError, ClientError, BotoCoreError):
            RetryStore(self.world.s3, BUCKET).replay(self._indexer())

    def _send(self, kinds: Sequence[str]) -> None:
        w = self.world
        for kind in kinds:
            n = len(w.origins) + 1
            if kind == "unparseable":
                w.add_origin(kind, f"not an S3 event: upload notice #{n}")
                w.sqs.enqueue(self.queue_url, f"not an S3 event: upload notice #{n}")
                continue
            key, data = {
                "good": (f"docs/good-{n}.txt", f"hello {n}\n".encode()),
                "corrupt": (f"docs/scan-{n}.pdf", b"%PDF-1.7 truncated before any object"),
                "missing": (f"docs/missing-{n}.txt", f"late upload {n}\n".encode()),
                "denied": (f"docs/locked-{n}.txt", f"no read access yet {n}\n".encode()),
                "poison": (f"docs/{POISON}{n}.txt", f"the worker raises on {n}\n".encode()),
            }[kind]
            body = s3_event_body(UPLOADS, key, size=len(data), event_time=EVENT_TIME)
            w.add_origin(kind, body, (key,))
            if kind == "missing":
                self.missing.append((key, data))
            else:
                w.s3.store(UPLOADS, key, data)
            if kind == "denied":
                w.s3.denied.add((UPLOADS, key))
            w.sqs.enqueue(self.queue_url, body)

    # -- rules -------------------------------------------------------------------------

    @initialize(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=8))
    def first_uploads(self, kinds: list[str]) -> None:
        self._send(kinds)

    @rule(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    def more_uploads(self, kinds: list[str]) -> None:
        self._send(kinds)

    @precondition(lambda self: self.world.sqs.depth(self.queue_url) > 0)
    @rule(
        plans=st.lists(fault_plans(), min_size=1, max_size=3),
        pause=st.sampled_from((0, 31, 601)),
        restart=st.booleans(),
    )
    def worker_batches(self, plans: list[FaultPlan], pause: int, restart: bool) -> None:
        """The worker's lane receives and settles one batch per plan, ``pause`` s apart.

        ``restart``: the worker process was killed between batches and started again.
        """
        if restart:
            self._discard_runner()
        for plan in plans:
            self.world.advance(pause)
            self._engine_step(plan, self._worker_batch)

    @precondition(lambda self: self.world.sqs.depth(self.dlq_url) > 0)
    @rule(
        plan=fault_plans(),
        strategy=st.sampled_from(("redrive", "reindex", "archive-only")),
        max_batches=st.integers(1, 3),
        pause=st.sampled_from((0, 301)),
    )
    def recover_dlq(self, plan: FaultPlan, strategy: str, max_batches: int, pause: int) -> None:
        """One ``recover-dlq`` run (a separate process), ``pause`` s after the last step."""
        self.world.advance(pause)
        self._engine_step(plan, lambda: self._recover(strategy, max_batches))

    @precondition(lambda self: bool(self.world.s3.objects(BUCKET, RETRY_PREFIX)))
    @rule(plan=fault_plans())
    def replay_retry_store(self, plan: FaultPlan) -> None:
        """One ``replay-retries`` run (a separate process)."""
        self._engine_step(plan, self._replay)

    @rule(
        seconds=st.sampled_from((0, 31, 301, 601, 3601)),
        opensearch_up=st.booleans(),
        access_fixed=st.booleans(),
        late_upload=st.booleans(),
    )
    def time_passes(
        self, seconds: int, opensearch_up: bool, access_fixed: bool, late_upload: bool
    ) -> None:
        """The clock moves on; OpenSearch goes down or comes back; files get fixed."""
        w = self.world
        w.advance(seconds)
        w.opensearch_up = opensearch_up
        if access_fixed:
            w.s3.denied.clear()  # the bucket policy is fixed
        if late_upload and self.missing:
            key, data = self.missing.pop(0)
            w.s3.store(UPLOADS, key, data)  # the object a message named arrives late

    @invariant()
    def nothing_deleted_before_durable(self) -> None:
        if self.world.violations:
            raise DeleteInvariantViolation("\n".join(self.world.violations))

    # -- the end of a schedule: drain with faults off, account for every message --------

    def teardown(self) -> None:
        try:
            if self.drain_at_teardown and not self.world.violations:
                self._drain()
                self._account()
        finally:
            self._discard_runner()

    def _drain(self) -> None:
        w = self.world
        w.begin(NO_FAULTS)
        w.opensearch_up = True
        w.s3.denied.clear()
        for _ in range(DRAIN_ROUNDS):
            w.advance(3600)  # past every visibility timeout and backoff
            for _batch in range(200):
                if not self._worker_batch():
                    break
            if w.sqs.depth(self.dlq_url):
                # redrive, the strategy that sends messages round again: a message that
                # keeps failing must still end (archived after max_attempts recoveries)
                self._recover("redrive", None)
            if not w.sqs.depth(self.queue_url) and not w.sqs.depth(self.dlq_url):
                break
        else:
            raise AssertionError(
                f"queues did not drain in {DRAIN_ROUNDS} rounds without faults (worker + "
                f"recovery redrive): {w.sqs.depth(self.queue_url)} in {QUEUE}, "
                f"{w.sqs.depth(self.dlq_url)} in {DLQ}; a message going round forever?"
            )
        for _ in range(3):
            if not w.s3.objects(BUCKET, RETRY_PREFIX):
                break
            self._replay()
        if w.violations:
            raise DeleteInvariantViolation("while draining:\n" + "\n".join(w.violations))
        left = [name for name, _ in w.s3.objects(BUCKET, RETRY_PREFIX)]
        assert not left, f"retry store not replayed with OpenSearch up: {left}"

    def _places(self, origin: Origin) -> list[str]:
        w = self.world
        places = []
        if origin.keys and all(w.indexed(k) for k in origin.keys):
            places.append("indexed")
        if any(w.retry_stored(k) for k in origin.keys):
            places.append("retry_store")
        if w.archives_of(origin.body):
            places.append("archive")
        queues = {name for name, _ in w.live_copies(origin.body)}
        if DLQ in queues:
            places.append("dlq")
        if QUEUE in queues:
            places.append("queue")
        return places

    def _account(self) -> None:
        w = self.world
        outcomes: Counter[str] = Counter()
        lost = []
        for origin in w.origins.values():
            places = self._places(origin)
            if places:
                outcomes[f"{origin.kind}->{places[0]}"] += 1
            else:
                lost.append(f"{origin.kind} message o{origin.number}: {origin.body[:120]}")
        if self.stats is not None:
            self.stats.lost += len(lost)
        assert not lost, f"{len(lost)} message(s) LOST (in no durable place, in no queue): {lost}"
        for queue, _body, attributes in w.sqs.sent:
            if queue == DLQ:
                for name in ("error-type", "error-message", "original-message-id"):
                    assert attributes.get(name, {}).get("StringValue"), (
                        f"a DLQ message without its reason attribute {name}: {attributes}"
                    )
        extra_archives = sum(max(0, w.archives_of(o.body) - 1) for o in w.origins.values())
        if self.stats is not None:
            stats = self.stats
            stats.schedules += 1
            stats.steps += self.steps
            stats.messages += len(w.origins)
            stats.outcomes.update(o.split("->")[1] for o in outcomes.elements())
            stats.duplicate_copies += self.duplicate_copies
            stats.extra_archives += extra_archives
            stats.deletes_checked += w.deletes_checked
            stats.faults += w.faults_injected
            stats.crashes += w.crashes


@pytest.fixture(autouse=True)
def _quiet_engine() -> Iterator[None]:
    """No engine logs (thousands of schedules) and no thread tracebacks for a Crash."""
    loggers = [logging.getLogger(name) for name in ("filesearch_worker", "pypdf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    hook = threading.excepthook

    def excepthook(args: Any) -> None:
        if args.exc_type is not None and issubclass(args.exc_type, Crash):
            return  # a recovery thread unwound by the simulated kill
        hook(args)

    threading.excepthook = excepthook
    try:
        yield
    finally:
        threading.excepthook = hook
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@pytest.mark.timeout(3_600 if settings.get_current_profile_name() == "fuzz" else 1_200)
def test_settlement_schedules(proof_stats: Any) -> None:
    """No delete before the outcome is durable, nothing lost, over generated fault schedules."""

    class Recorded(SettlementSchedules):
        stats = proof_stats

    started = time.monotonic()
    try:
        run_state_machine_as_test(Recorded)
    finally:
        proof_stats.seconds += time.monotonic() - started
    assert proof_stats.schedules > 0
    assert proof_stats.lost == 0


# --- the proof can fail: deliberately broken orderings --------------------------------

BROKEN = settings(
    max_examples=1_000,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    report_multiple_bugs=False,
    # find and shrink; no "explain" phase (it traces every line and takes minutes here)
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _delete_then_send(
    queue: SqsBatch,
    handle: Callable[[Any], str],
    *,
    durable: Sequence[Any] = (),
    send_to: SqsBatch | None = None,
    send: Sequence[Any] = (),
    entry: Callable[[Any], dict[str, Any]] | None = None,
    release: Sequence[Any] = (),
    release_visibility: Callable[[Any], int] | None = None,
    before_delete: Callable[[], None] | None = None,
) -> Settlement[Any]:
    """The incident report's order (seed Fix 1): delete everything, then send to the DLQ."""
    result: Settlement[Any] = Settlement()
    if before_delete is not None:
        before_delete()
    deleted = queue.delete([*durable, *send], handle)
    result.deleted, result.delete_failed = deleted.ok, deleted.failed
    if send and send_to is not None and entry is not None:
        sent = send_to.send(send, entry)
        result.sent, result.send_failed = sent.ok, sent.failed
    if release and release_visibility is not None:
        released = queue.change_visibility(release, handle, release_visibility)
        result.released, result.release_failed = list(release), released.failed
    return result


def _delete_unconfirmed(
    queue: SqsBatch,
    handle: Callable[[Any], str],
    *,
    durable: Sequence[Any] = (),
    send_to: SqsBatch | None = None,
    send: Sequence[Any] = (),
    entry: Callable[[Any], dict[str, Any]] | None = None,
    release: Sequence[Any] = (),
    release_visibility: Callable[[Any], int] | None = None,
    before_delete: Callable[[], None] | None = None,
) -> Settlement[Any]:
    """Send to the DLQ first, but delete whether or not the send was confirmed."""
    result: Settlement[Any] = Settlement()
    if send and send_to is not None and entry is not None:
        sent = send_to.send(send, entry)
        result.sent = sent.ok
    if before_delete is not None:
        before_delete()
    deleted = queue.delete([*durable, *send], handle)
    result.deleted, result.delete_failed = deleted.ok, deleted.failed
    if release and release_visibility is not None:
        released = queue.change_visibility(release, handle, release_visibility)
        result.released, result.release_failed = list(release), released.failed
    return result


class BrokenOrderSchedules(SettlementSchedules):
    """The same schedules; the check at each delete is all these runs need."""

    drain_at_teardown = False


def _run_broken() -> str:
    """Run the machine under BROKEN settings; the delete-invariant failure it must find."""
    with pytest.raises(DeleteInvariantViolation) as caught:
        run_state_machine_as_test(BrokenOrderSchedules, settings=BROKEN)
    return str(caught.value)


def test_proof_catches_delete_before_dlq_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """The incident report's ordering: the delete comes before the DLQ copy exists."""
    monkeypatch.setattr(settle_module, "settle", _delete_then_send)
    found = _run_broken()
    assert "DELETE of" in found
    assert any(f"{kind} message" in found for kind in ("missing", "poison", "unparseable"))


def test_proof_catches_delete_without_confirmed_dlq_send(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting although the DLQ send failed: needs a failed send, which hypothesis must find."""
    monkeypatch.setattr(settle_module, "settle", _delete_unconfirmed)
    found = _run_broken()
    assert "DELETE of" in found
    assert "SendMessageBatch" in found  # the fault that made the difference


def test_proof_catches_recovery_archiving_after_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    """DLQ recovery deletes a message first and writes its archive object afterwards."""
    archive = DlqRecovery._archive
    settle_plan = DlqRecovery._settle

    def archive_later(self: DlqRecovery, plan: Any) -> None:
        self._deferred = list(plan.archive)  # type: ignore[attr-defined]
        plan.durable.extend((m, Outcome.ARCHIVED, why) for m, why in plan.archive)
        plan.archive = []

    def settle_then_archive(self: DlqRecovery, plan: Any) -> None:
        settle_plan(self, plan)
        plan.archive = getattr(self, "_deferred", [])
        self._deferred = []  # type: ignore[attr-defined]
        durable = list(plan.durable)
        archive(self, plan)
        plan.durable = durable

    monkeypatch.setattr(DlqRecovery, "_archive", archive_later)
    monkeypatch.setattr(DlqRecovery, "_settle", settle_then_archive)
    found = _run_broken()
    assert "DELETE of" in found
    assert f"from {DLQ}" in found


def test_proof_catches_recovery_counter_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's DLQ copy drops ``dlq-recoveries`` (the engine before 03bf8ff).

    No delete is unsafe then, but a message that keeps failing goes DLQ -> redrive
    -> DLQ forever instead of being archived after ``max_attempts`` recoveries: the
    drain at the end of a schedule must catch that it never ends.
    """
    attributes = settle_module.dlq_attributes

    def without_counter(processed: Any) -> dict[str, Any]:
        found = attributes(processed)
        found.pop(RECOVERIES_ATTRIBUTE, None)
        return found

    monkeypatch.setattr(settle_module, "dlq_attributes", without_counter)
    with pytest.raises(AssertionError, match="did not drain") as caught:
        run_state_machine_as_test(SettlementSchedules, settings=BROKEN)
    assert not isinstance(caught.value, DeleteInvariantViolation)
