"""The seeded part of the chaos soak: the message mix and the fault schedule.

Everything here is a pure function of (seed, seconds, messages) and a few
timeouts, so one seed always gives the same inputs and the same schedule
(tests/unit/chaos checks that). What it cannot fix is the interleaving: when
the worker's requests meet a fault depends on the machine, so a seed
reproduces the run's inputs and faults, not its exact trace.

Independent random streams (``Random(f"{seed}:<name>")``) keep the parts
apart: changing CHAOS_MESSAGES changes the mix and the feed, never the faults.
"""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SERVICES = ("sqs", "s3", "cloudwatch", "opensearch")

# --- the message mix ------------------------------------------------------------------

#: kind -> (share of the messages, what the accounting expects at the end)
MIX: dict[str, tuple[float, str]] = {
    "text": (0.78, "indexed"),  # txt/md/csv/html/json, Japanese names and spaces
    "docx": (0.03, "indexed"),  # a real .docx (python-docx)
    "pdf": (0.03, "indexed"),  # a real one-page .pdf with text
    "corrupt": (0.06, "indexed"),  # random bytes as .docx/.pdf/.xlsx/.pptx: metadata-only
    "missing": (0.05, "archived"),  # event for an object never uploaded: object-not-found
    "unparseable": (0.05, "archived"),  # bodies the worker cannot parse: DLQ, then archive
}

#: unparseable variant -> the worker's reason code (DLQ error-type) for it
UNPARSEABLE: dict[str, str] = {
    "truncated-json": "invalid-json",
    "plain-text": "invalid-json",
    "json-array": "not-an-object",
    "no-records": "missing-records",
    "restore-event": "unsupported-event",
    "other-source": "unsupported-event-source",
}
CORRUPT_EXTENSIONS = ("docx", "pdf", "xlsx", "pptx")
TEXT_EXTENSIONS = ("txt", "md", "csv", "html", "json")
NAMES = ("報告書", "議事録 第{n}回", "quarterly report", "見積書_{n}", "notes", "設計 メモ")


@dataclass(frozen=True)
class Message:
    """One message the soak sends (``n`` is unique within a run)."""

    n: int
    kind: str
    key: str  # the S3 key (for unparseable bodies: a key for the books only)
    variant: str = ""  # unparseable variant, or the corrupt file's extension
    size: int = 0  # bytes of the uploaded file (0: nothing uploaded)

    @property
    def expected(self) -> str:
        """``indexed`` or ``archived``: where the accounting expects it at the end."""
        return MIX[self.kind][1]

    @property
    def uploads(self) -> bool:
        """Whether a file is uploaded for it."""
        return self.kind in ("text", "docx", "pdf", "corrupt")

    @property
    def expected_reason(self) -> str | None:
        """The DLQ error-type the worker must give it (None: it should not go there)."""
        if self.kind == "missing":
            return "object-not-found"
        if self.kind == "unparseable":
            return UNPARSEABLE[self.variant]
        return None


def message_mix(seed: int, total: int) -> list[Message]:
    """``total`` messages in the seeded mix, in a seeded send order."""
    rng = random.Random(f"{seed}:mix")
    counts = _split(total, {kind: share for kind, (share, _) in MIX.items()})
    kinds = [kind for kind, n in counts.items() for _ in range(n)]
    rng.shuffle(kinds)
    out: list[Message] = []
    for n, kind in enumerate(kinds):
        name = rng.choice(NAMES).format(n=n)
        if kind == "text":
            ext = rng.choice(TEXT_EXTENSIONS)
            # mostly small; a few of 1 MiB so downloads take long enough to be cut mid-body
            size = 1 << 20 if rng.random() < 0.02 else rng.randint(64, 20_000)
            out.append(Message(n, kind, f"chaos/{n:05d} {name}.{ext}", ext, size))
        elif kind in ("docx", "pdf"):
            out.append(Message(n, kind, f"chaos/{n:05d} {name}.{kind}", kind, 1))
        elif kind == "corrupt":
            ext = rng.choice(CORRUPT_EXTENSIONS)
            size = rng.randint(200, 5000)
            out.append(Message(n, kind, f"chaos/corrupt/{n:05d} {name}.{ext}", ext, size))
        elif kind == "missing":
            out.append(Message(n, kind, f"chaos/missing/{n:05d} {name}.txt"))
        else:
            variant = rng.choice(sorted(UNPARSEABLE))
            out.append(Message(n, kind, f"chaos/unparseable/{n:05d}.txt", variant))
    return out


def _split(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Integer counts in proportion to ``shares`` summing to ``total`` (>= 1 each if room)."""
    counts = {k: int(total * s) for k, s in shares.items()}
    if total >= 2 * len(shares):
        counts = {k: max(1, n) for k, n in counts.items()}
    first = next(iter(shares))
    counts[first] += total - sum(counts.values())
    return counts


def mix_counts(messages: list[Message]) -> dict[str, int]:
    """kind -> count, in MIX's order."""
    found = Counter(m.kind for m in messages)
    return {kind: found.get(kind, 0) for kind in MIX}


# --- the fault schedule ---------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """Client timeouts the stalls must exceed (the worker's settings in the soak)."""

    aws_read: float = 60.0  # botocore read timeout of the worker's clients
    opensearch: float = 5.0  # OPENSEARCH_TIMEOUT


@dataclass(frozen=True)
class Outage:
    """A service taken away through the proxy: every request fails (``errors``) or is reset."""

    start: float
    end: float
    service: str  # "opensearch" | "s3"
    mode: str  # "errors" | "reset"

    def __str__(self) -> str:
        return f"{self.service} {self.start:.0f}-{self.end:.0f}s ({self.mode})"

    @property
    def config(self) -> dict[str, Any]:
        """The service's whole proxy config while it is away."""
        if self.mode == "reset":
            return {"reset_before": 1.0}
        if self.service == "s3":
            return {"errors": [{"rate": 1.0, "status": 503, "code": "SlowDown"}]}
        return {"errors": [{"rate": 1.0, "status": 503}]}


#: service -> (one outage per this many seconds, shortest, longest). S3 stays away long
#: enough for a message to fail three receives (botocore's retries, then the worker's
#: 5-10-20 s backoffs), so the RedrivePolicy moves some to the DLQ.
OUTAGES = {"opensearch": (250.0, 20.0, 60.0), "s3": (300.0, 40.0, 90.0)}


@dataclass(frozen=True)
class Step:
    """One scheduled action, ``at`` seconds into the fault window."""

    at: float
    kind: str  # "proxy" | "kill" | "feed"
    label: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the proxy's whole config
    count: int = 0  # feed: messages in this chunk


@dataclass(frozen=True)
class Schedule:
    """The whole run: steps in time order plus what the summary prints about them."""

    seed: int
    seconds: float
    steps: tuple[Step, ...]
    outages: tuple[Outage, ...]  # OpenSearch and S3 taken away for a while

    def of(self, kind: str) -> list[Step]:
        """The steps of one kind."""
        return [s for s in self.steps if s.kind == kind]

    def describe(self) -> str:
        """One line: how many of what."""
        proxy = self.of("proxy")
        labels = Counter(part for s in proxy for part in s.label.split("+") if part)
        top = ", ".join(f"{k} {v}" for k, v in labels.most_common())
        outages = ", ".join(str(o) for o in self.outages)
        kills = ", ".join(f"{s.at:.0f}s" for s in self.of("kill"))
        return (
            f"{len(proxy)} proxy configs ({top}); away: {outages or 'nothing'}; "
            f"SIGKILL at {kills or 'never'}; {len(self.of('feed'))} feed chunks"
        )


def _u(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 3)


def _latency(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    chosen = rng.sample(SERVICES, k=rng.randint(1, len(SERVICES)))
    out = {}
    for s in chosen:
        latency = rng.randint(20, 400)
        out[s] = {"latency_ms": latency, "jitter_ms": rng.randint(0, latency)}
    return out


def _sqs_5xx(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    return {
        "sqs": {
            "errors": [
                {"rate": _u(rng, 0.05, 0.3), "status": 500, "code": "InternalError"},
                {"rate": _u(rng, 0.02, 0.1), "status": 503, "code": "ServiceUnavailable"},
            ]
        }
    }


def _sqs_throttle(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    code = rng.choice(("ThrottlingException", "RequestThrottled"))
    return {"sqs": {"errors": [{"rate": _u(rng, 0.1, 0.4), "status": 400, "code": code}]}}


def _s3_slowdown(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    return {"s3": {"errors": [{"rate": _u(rng, 0.1, 0.5), "status": 503, "code": "SlowDown"}]}}


def _s3_5xx(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    return {
        "s3": {"errors": [{"rate": _u(rng, 0.05, 0.3), "status": 500, "code": "InternalError"}]}
    }


def _os_429(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    # the proxy's default code for 429: rejected_execution_exception (a full bulk queue)
    error = {"rate": _u(rng, 0.2, 0.6), "status": 429}
    if rng.random() < 0.5:  # on the bulk requests only, or on everything
        return {"opensearch": {"actions": {"bulk": {"errors": [error]}}}}
    return {"opensearch": {"errors": [error]}}


def _os_5xx(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    status, code = rng.choice(
        (
            (500, "internal_server_error"),
            (502, "bad_gateway"),
            (503, "unavailable_shards_exception"),
        )
    )
    return {"opensearch": {"errors": [{"rate": _u(rng, 0.1, 0.5), "status": status, "code": code}]}}


def _resets(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    chosen = rng.sample(("sqs", "s3", "opensearch"), k=rng.randint(1, 2))
    return {
        s: {"reset_before": _u(rng, 0.02, 0.15), "reset_after": _u(rng, 0.02, 0.15)} for s in chosen
    }


def _lost_answers(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    """The request takes effect, the answer is lost: deletes, DLQ sends, index writes."""
    actions = rng.sample(
        ("DeleteMessageBatch", "SendMessageBatch", "ChangeMessageVisibilityBatch"), k=2
    )
    out: dict[str, Any] = {
        "sqs": {"actions": {a: {"reset_after": _u(rng, 0.2, 0.5)} for a in actions}}
    }
    if rng.random() < 0.5:
        out["opensearch"] = {"reset_after": _u(rng, 0.1, 0.4)}
    if rng.random() < 0.5:
        out["s3"] = {"actions": {"PutObject": {"reset_after": _u(rng, 0.2, 0.5)}}}
    return out


def _stall(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    """Requests that hang longer than the client waits (a read timeout, then a retry)."""
    which = rng.choice(("s3", "opensearch", "sqs"))
    if which == "opensearch":
        return {"opensearch": {"stall": {"rate": _u(rng, 0.1, 0.3), "seconds": t.opensearch + 3}}}
    stall = {"rate": _u(rng, 0.02, 0.08), "seconds": t.aws_read + 5}
    if which == "sqs":
        action = rng.choice(("ReceiveMessage", "DeleteMessageBatch"))
        return {"sqs": {"actions": {action: {"stall": stall}}}}
    return {"s3": {"actions": {"GetObject": {"stall": stall}}}}


def _dlq_denied(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    """DLQ sends refused (an IAM mistake): not retryable, so the message must stay queued."""
    error = {"rate": _u(rng, 0.5, 1.0), "status": 403, "code": "AccessDenied"}
    return {"sqs": {"actions": {"SendMessageBatch": {"errors": [error]}}}}


def _cloudwatch(rng: random.Random, t: Timeouts) -> dict[str, Any]:
    error = {"rate": _u(rng, 0.3, 1.0), "status": 500, "code": "InternalFailure"}
    return {"cloudwatch": {"errors": [error], "latency_ms": rng.randint(0, 500)}}


#: name -> (weight, maker); a phase draws one to three of them
SCENARIOS = {
    "calm": (1, lambda rng, t: {}),
    "latency": (3, _latency),
    "sqs-5xx": (2, _sqs_5xx),
    "sqs-throttle": (2, _sqs_throttle),
    "s3-slowdown": (2, _s3_slowdown),
    "s3-5xx": (1, _s3_5xx),
    "os-429": (2, _os_429),
    "os-5xx": (1, _os_5xx),
    "resets": (2, _resets),
    "lost-answers": (2, _lost_answers),
    "stall": (1, _stall),
    "dlq-denied": (1, _dlq_denied),
    "cloudwatch": (1, _cloudwatch),
}


def merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge service configs: error lists add up, actions merge, other keys: the later wins."""
    out = copy.deepcopy(into)
    for service, conf in extra.items():
        target = out.setdefault(service, {})
        for key, value in conf.items():
            if key == "errors":
                errors = target.setdefault("errors", [])
                errors.extend(copy.deepcopy(value))
                total = sum(e["rate"] for e in errors)
                if total > 1:  # one draw picks at most one error: the rates share 1
                    for e in errors:
                        e["rate"] = math.floor(e["rate"] / total * 1000) / 1000
            elif key == "actions":
                actions = target.setdefault("actions", {})
                for action, override in value.items():
                    actions[action] = merge({"x": actions.get(action, {})}, {"x": override})["x"]
            else:
                target[key] = copy.deepcopy(value)
    return out


def outages(seed: int, seconds: float) -> list[Outage]:
    """Each service's outages: evenly spread slots, one outage at a seeded place in each."""
    out: list[Outage] = []
    for service, (every, shortest, longest) in OUTAGES.items():
        rng = random.Random(f"{seed}:outages:{service}")
        wanted = max(1, round(seconds / every))
        slot = seconds * 0.8 / wanted
        for i in range(wanted):
            length = min(_u(rng, shortest, longest), slot * 0.6)
            start = seconds * 0.1 + i * slot + _u(rng, 0, slot - length)
            mode = rng.choice(("errors", "reset"))
            out.append(Outage(round(start, 1), round(start + length, 1), service, mode))
    return sorted(out, key=lambda o: o.start)


def fault_schedule(
    seed: int,
    seconds: float,
    messages: int,
    timeouts: Timeouts | None = None,
    *,
    phase: tuple[float, float] = (3.0, 8.0),
    kill_min_gap: float = 45.0,
    kill_mean_gap: float = 75.0,
    feed_share: float = 0.85,
    feed_every: float = 2.0,
) -> Schedule:
    """The run's schedule: proxy configs, SIGKILLs and feed chunks, time-ordered.

    Kills are at least ``kill_min_gap`` apart: the unit allows 10 starts in
    300 s (StartLimitBurst), so at most 7 kills fall in any 300 s window.
    Messages are fed over the first ``feed_share`` of the window, so the last
    stretch of faults meets retries and redeliveries rather than new work.
    """
    t = timeouts or Timeouts()
    steps: list[Step] = []

    away = outages(seed, seconds)

    # proxy phases: a new mix of scenarios every few seconds; an outage overrides its service
    prng = random.Random(f"{seed}:faults")
    names = list(SCENARIOS)
    weights = [SCENARIOS[n][0] for n in names]
    base_times: list[tuple[float, str, dict[str, Any]]] = []
    at = 0.0
    while at < seconds:
        picked = sorted(set(prng.choices(names, weights, k=prng.choice((1, 1, 2, 2, 3)))))
        config: dict[str, Any] = {}
        for name in picked:
            config = merge(config, SCENARIOS[name][1](prng, t))
        base_times.append((round(at, 1), "+".join(picked), config))
        at += prng.uniform(*phase)
    boundaries = sorted({b[0] for b in base_times} | {x for o in away for x in (o.start, o.end)})
    for i, when in enumerate(b for b in boundaries if b < seconds):
        label, config = next((lb, c) for a, lb, c in reversed(base_times) if a <= when)
        for outage in away:
            if outage.start <= when < outage.end:
                config = {**config, outage.service: outage.config}
                label = f"{label}+{outage.service}-away-{outage.mode}"
        steps.append(Step(when, "proxy", label, {"seed": seed * 1000 + i, "services": config}))

    # SIGKILLs of the worker
    krng = random.Random(f"{seed}:kills")
    at = krng.uniform(15, 30)
    while at < seconds - 10:
        at = round(at, 1)
        steps.append(Step(at, "kill", "SIGKILL"))
        at += max(kill_min_gap, krng.expovariate(1 / kill_mean_gap))

    # feed chunks over the first part of the window, bursty
    frng = random.Random(f"{seed}:feed:{messages}")
    chunks = max(1, int(seconds * feed_share / feed_every))
    weights_f = [frng.expovariate(1.0) for _ in range(chunks)]
    scale = messages / sum(weights_f)
    counts = [int(w * scale) for w in weights_f]
    for i in range(messages - sum(counts)):
        counts[i % chunks] += 1
    for i, count in enumerate(counts):
        if count:
            steps.append(Step(round(i * feed_every, 1), "feed", "", count=count))

    order = {"feed": 0, "proxy": 1, "kill": 2}
    steps.sort(key=lambda s: (s.at, order[s.kind]))
    return Schedule(seed, seconds, tuple(steps), tuple(away))
