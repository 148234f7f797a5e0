"""The chaos soak's seeded plan and its accounting (tests/chaos), without the stack."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "chaos"))

from chaos_ledger import Copy, Evidence, Sent, account, parse_journal
from chaos_plan import (
    MIX,
    SERVICES,
    UNPARSEABLE,
    Message,
    Timeouts,
    fault_schedule,
    message_mix,
    mix_counts,
)
from soak import file_bytes, message_body, proxy_faults, tiny_pdf

from filesearch_worker.errors import PermanentError
from filesearch_worker.events import parse_message
from filesearch_worker.extract import extract

BUCKET = "chaos-1-abcdef"


# --- the plan ------------------------------------------------------------------------
def test_one_seed_gives_one_plan() -> None:
    assert message_mix(7, 500) == message_mix(7, 500)
    assert fault_schedule(7, 600, 500) == fault_schedule(7, 600, 500)
    assert fault_schedule(7, 600, 500) != fault_schedule(8, 600, 500)


def test_the_message_count_never_changes_the_faults() -> None:
    a, b = fault_schedule(3, 600, 300), fault_schedule(3, 600, 3000)
    assert [s for s in a.steps if s.kind != "feed"] == [s for s in b.steps if s.kind != "feed"]


def test_mix_has_every_kind_and_unique_keys() -> None:
    messages = message_mix(11, 300)
    counts = mix_counts(messages)
    assert sum(counts.values()) == 300
    assert all(counts[kind] >= 1 for kind in MIX), counts
    assert len({m.key for m in messages}) == 300
    assert [m.n for m in messages] == list(range(300))


def test_kills_respect_systemds_start_limit() -> None:
    for seed in range(1, 40):
        kills = [s.at for s in fault_schedule(seed, 600, 100).of("kill")]
        assert kills, seed
        assert all(b - a >= 45 - 1e-6 for a, b in itertools.pairwise(kills)), kills
        # the unit allows 10 starts in 300 s: at most 7 kills in any 300 s window
        assert max(sum(1 for k in kills if a <= k < a + 300) for a in kills) <= 7


def test_feed_sends_every_message_in_the_first_part_of_the_window() -> None:
    schedule = fault_schedule(5, 120, 333)
    feed = schedule.of("feed")
    assert sum(s.count for s in feed) == 333
    assert max(s.at for s in feed) <= 120 * 0.85


def test_proxy_configs_are_complete_and_stalls_outlast_the_clients() -> None:
    timeouts = Timeouts(aws_read=60, opensearch=5)
    schedule = fault_schedule(9, 600, 100, timeouts)
    proxy = schedule.of("proxy")
    assert proxy[0].at == 0
    for step in proxy:
        json.dumps(step.config)
        assert set(step.config["services"]) <= set(SERVICES), step
    text = json.dumps([s.config for s in proxy])
    assert '"stall"' in text  # over 600 s a stall is drawn
    for step in proxy:
        for service, conf in step.config["services"].items():
            stalls = [conf.get("stall")] + [
                a.get("stall") for a in conf.get("actions", {}).values()
            ]
            for stall in filter(None, stalls):
                limit = timeouts.opensearch if service == "opensearch" else timeouts.aws_read
                assert stall["seconds"] > limit, step
    # OpenSearch and S3 are away (every request failed or reset) during each outage, back after
    assert {o.service for o in schedule.outages} == {"opensearch", "s3"}
    for outage in schedule.outages:
        inside = [s for s in proxy if outage.start <= s.at < outage.end]
        away = f"{outage.service}-away-{outage.mode}"
        assert inside and all(away in s.label for s in inside)
        assert all(s.config["services"][outage.service] == outage.config for s in inside)
        after = next(s for s in proxy if s.at >= outage.end)
        assert away not in after.label
        rate = outage.config.get("reset_before") or outage.config["errors"][0]["rate"]
        assert rate == 1.0


def test_the_proxy_accepts_every_config_of_many_seeds() -> None:
    for seed in range(1, 60):
        for step in fault_schedule(seed, 600, 100).of("proxy"):
            proxy_faults.parse_config(step.config)  # raises ConfigError naming the key


# --- the inputs ----------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(UNPARSEABLE))
def test_unparseable_bodies_fail_with_the_reason_the_ledger_expects(variant: str) -> None:
    m = Message(1, "unparseable", "chaos/unparseable/00001.txt", variant)
    with pytest.raises(PermanentError) as caught:
        parse_message(message_body(1, m, BUCKET, "ap-northeast-1"))
    assert caught.value.error_type == m.expected_reason


def test_good_bodies_parse_back_to_their_key() -> None:
    for m in message_mix(2, 200):
        if m.kind != "unparseable":
            (event,) = parse_message(message_body(2, m, BUCKET, "ap-northeast-1"))
            assert event.key == m.key and event.bucket == BUCKET


@pytest.mark.parametrize(
    ("kind", "variant", "error"),
    [
        ("pdf", "pdf", None),
        ("docx", "docx", None),
        ("text", "md", None),
        ("corrupt", "docx", "corrupt-docx"),
        ("corrupt", "pdf", "corrupt-pdf"),
    ],
)
def test_files_extract_as_the_mix_intends(kind: str, variant: str, error: str | None) -> None:
    import io

    m = Message(3, kind, f"chaos/00003 x.{variant}", variant, 900)
    data = file_bytes(4, m)
    result = extract(io.BytesIO(data), m.key, len(data))
    if error is None:
        assert result.error is None
        assert "chaos-4-3" in result.text
    else:
        assert result.metadata_only and (result.error or "").startswith(error)


def test_tiny_pdf_has_its_text() -> None:
    import io

    data = tiny_pdf("hello chaos")
    assert "hello chaos" in extract(io.BytesIO(data), "a.pdf", len(data)).text


# --- the accounting ------------------------------------------------------------------
def _sent(kinds: list[str]) -> list[Sent]:
    out = []
    for n, kind in enumerate(kinds):
        variant = "plain-text" if kind == "unparseable" else "txt"
        m = Message(n, kind, f"chaos/{n:05d} f.txt", variant, 10 if kind == "text" else 0)
        out.append(Sent(m, f"id-{n}", message_body(1, m, BUCKET, "ap-northeast-1")))
    return out


def _worker_copy(s: Sent, copy_id: str, error_type: str | None = "x") -> Copy:
    def attr(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value}

    attrs = {
        "original-message-id": attr(s.message_id),
        "error-message": attr("why"),
        "failed-at": attr("2026-12-03T00:00:00Z"),
        "receive-count": {"DataType": "Number", "StringValue": "1"},
    }
    if error_type:
        attrs["error-type"] = attr(error_type)
    return Copy("dlq", copy_id, s.body, attrs)


def _no_id(copy: Copy) -> dict[str, object]:
    return {k: v for k, v in copy.message_attributes.items() if k != "original-message-id"} | {
        "original-message-id": {"DataType": "String", "StringValue": "unknown"}
    }


def test_every_final_state() -> None:
    sent = _sent(["text", "text", "text", "missing", "unparseable", "text", "text", "missing"])
    worker_copy = _worker_copy(sent[3], "dlq-a", "object-not-found")
    ev = Evidence(
        indexed={sent[0].message.key, sent[1].message.key},
        retry_seen={sent[1].message.key},
        retry_left={sent[2].message.key},
        dlq_seen=[worker_copy],
        dlq_left=[Copy("dlq", "id-5", sent[5].body)],  # moved by the RedrivePolicy: same id
        archived=[
            Copy("archive", "dlq-a", sent[3].body, worker_copy.message_attributes),
            # matched by body (and "dlq-b" was never seen in the DLQ itself)
            Copy(
                "archive",
                "dlq-b",
                sent[4].body,
                _no_id(_worker_copy(sent[4], "dlq-b", "invalid-json")),
            ),
        ],
        queue_left=0,
    )
    ledger = account(sent, ev)
    assert [ledger.state[n] for n in range(8)] == [
        "indexed",
        "retry",
        "retry",
        "archived",
        "archived",
        "dlq",
        "lost",
        "lost",
    ]
    assert ledger.summary(8) == (
        "sent=8 indexed=1 retry=2 dlq=1 archived=2 lost=2 stuck=0 duplicates=0"
    )
    assert ledger.failed and not ledger.problems
    assert ledger.paths["messages_dead_lettered"] == 3
    assert ledger.reasons == {"object-not-found": 1, "invalid-json": 1, "redrive": 1}


def test_unaccounted_messages_are_stuck_while_the_queue_holds_some() -> None:
    sent = _sent(["text", "text", "text"])
    ledger = account(sent, Evidence(indexed={sent[0].message.key}, queue_left=1))
    assert sorted(ledger.state.values()) == ["indexed", "lost", "stuck"]
    # a copy left in flight fails the run even when every message is accounted for
    done = account(sent, Evidence(indexed={s.message.key for s in sent}, queue_left=1))
    assert done.counts["stuck"] == 0 and done.failed
    assert "the queue still holds 1 message(s)" in done.problems[0]


def test_duplicates_count_settlements_and_dlq_copies() -> None:
    sent = _sent(["text", "unparseable"])
    journal = "\n".join(
        json.dumps({"event": "settled", "message_id": mid, "outcome": outcome})
        for mid, outcome in [
            ("id-0", "released"),
            ("id-0", "indexed"),
            ("id-0", "indexed"),  # delete failed or redelivered: processed twice
            ("id-1", "dead_lettered"),
            ("id-1", "dead_lettered"),
        ]
    )
    journal += "\nnot json\n" + json.dumps({"event": "stats"})
    settled = parse_journal(journal)
    assert len(settled) == 5
    ev = Evidence(
        indexed={sent[0].message.key},
        settled=settled,
        dlq_seen=[_worker_copy(sent[1], "c1", "invalid-json"), _worker_copy(sent[1], "c2")],
        archived=[
            Copy("archive", c.copy_id, c.body, c.message_attributes)
            for c in (_worker_copy(sent[1], "c1", "invalid-json"), _worker_copy(sent[1], "c2"))
        ],
    )
    ledger = account(sent, ev)
    assert ledger.duplicates == {"settled_again": 2, "dlq_copies": 1}
    assert ledger.total_duplicates == 3
    assert ledger.counts["archived"] == 1 and not ledger.failed
    assert ledger.paths["dlq_reason_unexpected"] == 1  # c2 says "x", the mix wants invalid-json


def test_problems_fail_the_run() -> None:
    sent = _sent(["text", "missing"])
    ev = Evidence(
        dlq_seen=[_worker_copy(sent[1], "c1", error_type=None)],  # the worker gave no reason
        archived=[Copy("archive", "id-0", sent[0].body, reason="object-not-found")],  # misrouted
        indexed={sent[1].message.key},
    )
    ledger = account(sent, ev)
    assert ledger.state == {0: "archived", 1: "lost"}
    problems = " | ".join(ledger.problems)
    assert "without error-type" in problems
    assert "misrouted" in problems
    assert "a document exists for the missing" in problems
    assert ledger.failed


def test_every_mutant_still_applies_to_the_worker(tmp_path: Path) -> None:
    import shutil

    from soak import MUTANTS, REPO, mutate

    for mutant, (name, _, replacement) in MUTANTS.items():
        copy = tmp_path / mutant / "src" / "filesearch_worker"
        copy.mkdir(parents=True)
        shutil.copy(REPO / "files" / "worker" / "src" / "filesearch_worker" / name, copy / name)
        mutate(tmp_path / mutant, mutant)
        assert replacement in (copy / name).read_text()
