"""The chaos soak's accounting: where every sent message ended, from the evidence.

Pure: the soak collects the evidence (OpenSearch, the retry store, the DLQ,
the archive, the worker's journal, the queue's counters) and :func:`account`
decides, per sent message, one final state:

``indexed``   its document is in the index (expected for files that exist)
``retry``     its document went through the retry store: it is still there,
              or it was there before a replay and is in the index now
``dlq``       a copy is still in the DLQ (with its reason attributes)
``archived``  a copy was archived by ``recover-dlq`` (``dlq-archive/``)
``stuck``     none of the above while the queue still holds messages
``lost``      none of the above and the queue is empty

A message expected to be indexed that ends archived is counted ``archived``
and reported as misrouted; a poison message (missing object, unparseable
body) is expected archived (or still in the DLQ). Copies are matched to the
sent message by message id (SQS's redrive keeps it), by the worker's
``original-message-id`` attribute, then by the body (every body is unique).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaos_plan import Message

from filesearch_worker.errors import PermanentError
from filesearch_worker.events import parse_message

STATES = ("indexed", "retry", "dlq", "archived", "lost", "stuck")
#: the message attributes the worker puts on every DLQ copy it sends (docs/worker.md)
DLQ_ATTRIBUTES = (
    "error-type",
    "error-message",
    "original-message-id",
    "failed-at",
    "receive-count",
)
#: settled outcomes that end a delivery (a release does not)
TERMINAL = ("indexed", "retry_stored", "dead_lettered", "removed", "acknowledged")


@dataclass(frozen=True)
class Sent:
    """A message as it was sent: what it is, its SQS message id and body."""

    message: Message
    message_id: str
    body: str


@dataclass(frozen=True)
class Copy:
    """One copy of a message outside the queue: in the DLQ or in the archive."""

    where: str  # "dlq" | "archive"
    copy_id: str  # its own message id (the DLQ's; for an archive object, the archived one)
    body: str
    message_attributes: Mapping[str, Any] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""  # archive: recovery's reason

    def attr(self, name: str) -> str | None:
        """A message attribute's string value."""
        value = self.message_attributes.get(name)
        if isinstance(value, Mapping):
            got = value.get("StringValue")
            return None if got is None else str(got)
        return None

    @property
    def error_type(self) -> str | None:
        """The worker's reason code (None on a copy SQS's RedrivePolicy moved)."""
        return self.attr("error-type")


@dataclass
class Evidence:
    """What the soak found at the end (and on the way, for the retry store and the DLQ)."""

    indexed: set[str] = field(default_factory=set)  # keys with a document
    retry_seen: set[str] = field(default_factory=set)  # keys seen in the retry store
    retry_left: set[str] = field(default_factory=set)  # keys in the retry store at the end
    dlq_seen: list[Copy] = field(default_factory=list)  # DLQ snapshots (before recoveries)
    dlq_left: list[Copy] = field(default_factory=list)  # still in the DLQ at the end
    archived: list[Copy] = field(default_factory=list)  # dlq-archive/ objects
    settled: list[dict[str, Any]] = field(default_factory=list)  # journal "settled" events
    queue_left: int = 0  # main queue: visible + in flight + delayed at the end


@dataclass
class Ledger:
    """The result: a final state per message, counts, duplicates and problems."""

    state: dict[int, str]  # Message.n -> state
    counts: dict[str, int]
    duplicates: dict[str, int]
    paths: dict[str, int]
    problems: list[str]
    unmatched: list[Copy]
    copies: dict[int, list[Copy]]
    trace: dict[int, list[dict[str, Any]]]  # Message.n -> its settled events
    reasons: dict[str, int] = field(default_factory=dict)  # DLQ copies by error-type

    @property
    def total_duplicates(self) -> int:
        """Extra settlements of one message beyond its first (journal + DLQ copies)."""
        return self.duplicates["settled_again"] + self.duplicates["dlq_copies"]

    @property
    def failed(self) -> bool:
        """Any message lost or stuck, or a problem the accounting found."""
        return bool(self.counts["lost"] or self.counts["stuck"] or self.problems)

    def summary(self, sent: int) -> str:
        """The one summary line."""
        c = self.counts
        return (
            f"sent={sent} indexed={c['indexed']} retry={c['retry']} dlq={c['dlq']} "
            f"archived={c['archived']} lost={c['lost']} stuck={c['stuck']} "
            f"duplicates={self.total_duplicates}"
        )


def parse_journal(text: str) -> list[dict[str, Any]]:
    """The worker's ``settled`` events from ``journalctl -o cat`` output."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"settled"' not in line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("event") == "settled":
            out.append(doc)
    return out


class _Index:
    """Sent messages by id, body and key."""

    def __init__(self, sent: Iterable[Sent]) -> None:
        self.sent = list(sent)
        self.by_id = {s.message_id: s for s in self.sent}
        self.by_body = {s.body: s for s in self.sent}
        self.by_key: dict[str, Sent] = {}
        for s in self.sent:
            if s.message.kind != "unparseable":
                self.by_key[s.message.key] = s

    def match(self, copy: Copy) -> Sent | None:
        for candidate in (copy.copy_id, copy.attr("original-message-id")):
            if candidate and candidate in self.by_id:
                return self.by_id[candidate]
        if copy.body in self.by_body:
            return self.by_body[copy.body]
        try:
            events = parse_message(copy.body)
        except PermanentError:
            return None
        for event in events:
            if event.key in self.by_key:
                return self.by_key[event.key]
        return None


def account(sent: list[Sent], ev: Evidence) -> Ledger:
    """Decide every sent message's final state from the evidence."""
    index = _Index(sent)
    problems: list[str] = []
    unmatched: list[Copy] = []

    # every copy (DLQ snapshots, DLQ leftovers, archive) matched to its message, once per copy id
    copies: dict[int, dict[tuple[str, str], Copy]] = defaultdict(dict)
    left: dict[int, list[Copy]] = defaultdict(list)
    archived: dict[int, list[Copy]] = defaultdict(list)
    for copy in [*ev.dlq_seen, *ev.dlq_left, *ev.archived]:
        owner = index.match(copy)
        if owner is None:
            unmatched.append(copy)
            continue
        n = owner.message.n
        copies[n].setdefault((copy.where, copy.copy_id), copy)
        if copy.where == "archive":
            archived[n].append(copy)
        elif copy in ev.dlq_left:
            left[n].append(copy)
        missing = [a for a in DLQ_ATTRIBUTES if copy.attr(a) is None]
        if copy.copy_id != owner.message_id and missing:  # a copy the worker sent
            problems.append(
                f"message {owner.message_id} ({owner.message.key}): DLQ copy {copy.copy_id} "
                f"({copy.where}) sent by the worker without {', '.join(missing)}"
            )
    if unmatched:
        problems.append(f"{len(unmatched)} DLQ/archive copies match no sent message")
    if ev.queue_left:
        problems.append(
            f"the queue still holds {ev.queue_left} message(s) (visible, in flight or delayed)"
        )

    # the worker's settlements, per sent message id
    trace: dict[int, list[dict[str, Any]]] = defaultdict(list)
    terminal: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    for event in ev.settled:
        owner = index.by_id.get(str(event.get("message_id")))
        outcome = str(event.get("outcome"))
        paths[f"worker_{outcome}"] += 1
        if event.get("delete_failed"):
            paths["worker_delete_failed"] += 1
        if owner is None:
            continue
        trace[owner.message.n].append(event)
        if outcome in TERMINAL:
            terminal[owner.message_id] += 1
        if outcome == "retry_stored":
            ev.retry_seen.add(owner.message.key)

    state: dict[int, str] = {}
    unaccounted: list[Sent] = []
    for s in sent:
        m, n = s.message, s.message.n
        if m.expected == "indexed":
            if m.key in ev.indexed:
                state[n] = "retry" if m.key in ev.retry_seen else "indexed"
            elif m.key in ev.retry_left:
                state[n] = "retry"
            elif left[n]:
                state[n] = "dlq"
            elif archived[n]:
                state[n] = "archived"
                reasons = "; ".join(c.reason for c in archived[n])
                problems.append(f"misrouted: {s.message_id} ({m.key}) archived: {reasons}")
            else:
                unaccounted.append(s)
        else:
            if m.kind == "missing" and m.key in ev.indexed:
                problems.append(f"{s.message_id}: a document exists for the missing {m.key}")
            if archived[n]:
                state[n] = "archived"
            elif left[n]:
                state[n] = "dlq"
            else:
                unaccounted.append(s)
        for copy in copies.get(n, {}).values():
            if copy.where == "dlq" and copy.copy_id != s.message_id:
                want = m.expected_reason
                if want and copy.error_type and copy.error_type != want:
                    paths["dlq_reason_unexpected"] += 1
    stuck = min(len(unaccounted), max(0, ev.queue_left))
    for i, s in enumerate(unaccounted):
        state[s.message.n] = "stuck" if i < stuck else "lost"

    # paths through the system (a message may take several)
    for n, found in copies.items():
        owner_id = next(s.message_id for s in sent if s.message.n == n)
        dlq_ids = {cid for (where, cid) in found if where == "dlq"}
        dlq_ids |= {c.copy_id for c in found.values() if c.where == "archive"}
        paths["messages_dead_lettered"] += 1
        paths["dlq_copies_by_worker"] += len({i for i in dlq_ids if i != owner_id})
        paths["dlq_copies_by_redrive"] += int(owner_id in dlq_ids)
    paths["retry_store_keys"] = len(ev.retry_seen)

    reasons: Counter[str] = Counter()
    for n, found in copies.items():
        owner_id = next(s.message_id for s in sent if s.message.n == n)
        seen: set[str] = set()
        for c in found.values():
            if c.copy_id in seen:
                continue
            seen.add(c.copy_id)
            reasons[c.error_type or ("redrive" if c.copy_id == owner_id else "no-reason")] += 1

    dlq_extra = 0
    for found in copies.values():
        ids = {cid for (_, cid) in found}
        dlq_extra += max(0, len(ids) - 1)
    duplicates = {
        "settled_again": sum(max(0, v - 1) for v in terminal.values()),
        "dlq_copies": dlq_extra,
    }
    counts = dict.fromkeys(STATES, 0)
    counts.update(Counter(state.values()))
    return Ledger(
        state=state,
        counts=counts,
        duplicates=duplicates,
        paths=dict(sorted(paths.items())),
        problems=problems,
        unmatched=unmatched,
        copies={n: list(c.values()) for n, c in copies.items()},
        trace=dict(trace),
        reasons=dict(reasons.most_common()),
    )
