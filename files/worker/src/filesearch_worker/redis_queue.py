"""Redis-list queues as the backlog runbook runs them: status, stuck-job recovery, drain.

The data model (runbook seed 003, "Clear Stuck Jobs" and "Implement Job
Prioritization"), with the one thing the runbook leaves open decided here:

- **queues** are Redis lists of job ids: ``email_processing_queue``,
  ``analysis_queue``, ``notification_queue`` and the priority lists
  ``high_priority_queue``, ``normal_priority_queue``, ``low_priority_queue``.
  Producers ``LPUSH``, consumers pop from the right (``RPOP``/``BRPOP``), so the
  right end holds the oldest job.
- a consumer that takes a job adds its id to the set ``processing_jobs`` and
  keeps ``heartbeat:<id>`` set to the unix time (seconds) of its last sign of
  life; when it finishes it removes both. It must add the id and write the first
  heartbeat atomically (``MULTI``/``EXEC`` or one script): a job in the set
  without a heartbeat counts as stuck, as in the runbook.
- **a job's queue** is the field ``queue`` of the hash ``job:<id>`` (written
  by the producer with the job). The runbook's own requeue pushes every stuck
  job onto ``email_processing_queue``, which sends high-priority work to the
  wrong list; here a job goes back to the list named in its hash, or to
  ``default_queue`` when it has none (``None``: such a job is reported as
  unroutable and left where it is). A hash naming a list that is not one of
  the configured queues is unroutable too (a typo never creates a new list).
  ``enqueued_at`` in the same hash (unix seconds), when producers write it, gives
  the age of a queue's oldest job.

Every write that moves a job is one Lua script that re-checks, inside Redis, what
the scan saw: a job that a worker finished (no longer in the set) or
re-heartbeated in the meantime is left alone, so the worker wins; the id leaves
the processing set and enters its list in the same atomic step, so it is never in
neither place and never in both. Bad data (a malformed id, a key of the wrong
type, a heartbeat that is no timestamp) stops the run before anything is moved,
with an error naming the key.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from .backends import QueueSample

if TYPE_CHECKING:
    from redis import Redis

#: The runbook's queues: the three work lists and the three priority lists.
DEFAULT_QUEUES = (
    "email_processing_queue",
    "analysis_queue",
    "notification_queue",
    "high_priority_queue",
    "normal_priority_queue",
    "low_priority_queue",
)
PRIORITY_QUEUES = ("high_priority_queue", "normal_priority_queue", "low_priority_queue")
PROCESSING_SET = "processing_jobs"
HEARTBEAT_PREFIX = "heartbeat:"
JOB_PREFIX = "job:"
QUEUE_FIELD = "queue"
ENQUEUED_FIELD = "enqueued_at"
#: the runbook's "no heartbeat for >10 minutes"
STALE_AFTER_SECONDS = 600
#: ids that are safe inside key names and Lua arguments (UUIDs, numbers, ulid, a:b)
JOB_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}"
#: where the emergency drain parks a list between its rename and its backup's check
DRAIN_PREFIX = "filesearch-drain:"
#: commands a consumer blocks in while it waits for a job
BLOCKING_POPS = frozenset({"brpop", "blpop", "brpoplpush", "blmove", "blmpop"})

SCAN_CHUNK = 1000


class RedisQueueError(ValueError):
    """Bad data or a wrong key type; ``key`` names the key. Nothing was moved."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class Layout:
    """Where the queues, the processing set and the per-job keys live."""

    queues: tuple[str, ...] = DEFAULT_QUEUES
    processing_set: str = PROCESSING_SET
    heartbeat_prefix: str = HEARTBEAT_PREFIX
    job_prefix: str = JOB_PREFIX
    queue_field: str = QUEUE_FIELD
    enqueued_field: str = ENQUEUED_FIELD
    default_queue: str | None = None
    stale_after_seconds: float = STALE_AFTER_SECONDS
    job_id_pattern: str = JOB_ID_PATTERN

    def check(self) -> None:
        """ValueError naming the option for inconsistent settings."""
        if not self.queues:
            raise ValueError("queues must name at least one list")
        if len(set(self.queues)) != len(self.queues):
            raise ValueError(f"queues lists a name twice: {list(self.queues)}")
        if self.processing_set in self.queues:
            raise ValueError(f"processing_set {self.processing_set!r} is also in queues")
        if self.default_queue is not None and self.default_queue not in self.queues:
            raise ValueError(
                f"default_queue {self.default_queue!r} is not one of queues {list(self.queues)}"
            )
        if self.stale_after_seconds <= 0:
            raise ValueError(f"stale_after_seconds must be > 0, got {self.stale_after_seconds}")
        try:
            re.compile(self.job_id_pattern)
        except re.error as exc:
            raise ValueError(f"job_id_pattern is not a regular expression: {exc}") from None

    def heartbeat_key(self, job_id: str) -> str:
        return f"{self.heartbeat_prefix}{job_id}"

    def job_key(self, job_id: str) -> str:
        return f"{self.job_prefix}{job_id}"


# -- reading --------------------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def key_type(client: Redis, key: str) -> str:
    return _text(client.type(key))


def require_type(client: Redis, key: str, expected: str, what: str) -> bool:
    """True when ``key`` exists with ``expected`` type, False when absent; else RedisQueueError."""
    found = key_type(client, key)
    if found == "none":
        return False
    if found != expected:
        raise RedisQueueError(key, f"is a {found}, expected a {expected} ({what}); nothing moved")
    return True


def server_time(client: Redis) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1e6


@dataclass(frozen=True)
class ListStatus:
    """One queue list."""

    name: str
    exists: bool
    depth: int
    oldest_job: str | None
    oldest_age_seconds: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_list(client: Redis, layout: Layout, name: str, now: float) -> ListStatus:
    """Depth of ``name`` and, when its oldest job's hash says when, that job's age."""
    if not require_type(client, name, "list", "a queue"):
        return ListStatus(name, False, 0, None, None)
    depth = int(client.llen(name))
    oldest_raw = client.lindex(name, -1)
    oldest = None if oldest_raw is None else _decode_item(oldest_raw)
    age: int | None = None
    if oldest is not None and re.fullmatch(layout.job_id_pattern, oldest):
        job_key = layout.job_key(oldest)
        if key_type(client, job_key) == "hash":
            raw = client.hget(job_key, layout.enqueued_field)
            with contextlib.suppress(ValueError):
                if raw is not None:
                    age = max(0, int(now - float(_text(raw))))
    return ListStatus(name, True, depth, oldest, age)


def _decode_item(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode(errors="backslashreplace")


def blocked_consumers(client: Redis) -> int | None:
    """Clients waiting in a blocking list pop right now (idle consumers); None if not allowed."""
    try:
        clients = client.client_list()
    except Exception:  # noqa: BLE001 (CLIENT LIST may be renamed or denied by ACL: unknown)
        return None
    return sum(1 for c in clients if str(c.get("cmd", "")).lower() in BLOCKING_POPS)


@dataclass(frozen=True)
class StuckJob:
    """A job in the processing set whose heartbeat is missing or older than the threshold."""

    id: str
    queue: str | None  # where it goes back; None: unroutable
    reason: str  # "missing" | "stale"
    heartbeat_age_seconds: float | None
    queue_source: str | None  # "job_hash" | "default_queue" | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProcessingScan:
    """What the processing set holds, judged at ``now`` (Redis's clock)."""

    now: float
    size: int
    live: int
    stuck: list[StuckJob] = field(default_factory=list)
    unroutable: list[StuckJob] = field(default_factory=list)
    unroutable_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def routable(self) -> list[StuckJob]:
        return [job for job in self.stuck if job.queue is not None]


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def processing_members(client: Redis, layout: Layout) -> list[str]:
    """Every id in the processing set (SSCAN); a malformed one is a RedisQueueError."""
    if not require_type(client, layout.processing_set, "set", "the processing set"):
        return []
    ids: list[str] = []
    pattern = re.compile(layout.job_id_pattern)
    for raw in client.sscan_iter(layout.processing_set, count=SCAN_CHUNK):
        try:
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            job_id = None
        if job_id is None or not pattern.fullmatch(job_id):
            shown = raw.decode(errors="backslashreplace") if isinstance(raw, bytes) else raw
            raise RedisQueueError(
                layout.processing_set,
                f"member {shown!r} is not a valid job id (job_id_pattern "
                f"{layout.job_id_pattern!r}); remove or rename it by hand; nothing moved",
            )
        ids.append(job_id)
    return sorted(set(ids))


#: Read-only. KEYS[1] the processing set, KEYS[1+i] the heartbeat of job ARGV[1+i];
#: ARGV[1] stale seconds. For each job, at one instant: "gone" (no longer in the set),
#: "live", "missing" (no heartbeat) or "stale:<age>". The scan confirms its candidates with
#: it, so a job a worker settled between two of the scan's reads is never reported stuck.
CONFIRM_SCRIPT = """
local stale = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i = 2, #ARGV do
  local hb = KEYS[i]
  local status
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then
    status = 'gone'
  else
    local ht = redis.call('TYPE', hb)['ok']
    if ht == 'none' then
      status = 'missing'
    elseif ht ~= 'string' then
      return redis.error_reply('WRONGTYPE ' .. hb .. ' is a ' .. ht .. ', expected a string')
    else
      local beat = tonumber(redis.call('GET', hb))
      if beat == nil then
        return redis.error_reply('BADHEARTBEAT ' .. hb .. ' holds no unix timestamp')
      end
      if now - beat <= stale then status = 'live' else status = 'stale:' .. (now - beat) end
    end
  end
  out[#out + 1] = status
end
return out
"""


def scan_processing(client: Redis, layout: Layout) -> ProcessingScan:
    """Classify every job of the processing set; read-only. Bad data raises RedisQueueError.

    A first pass reads the heartbeats with MGET; the candidates (missing or stale)
    are then confirmed atomically by :data:`CONFIRM_SCRIPT`, and only the
    confirmed ones are looked up in their job hash.
    """
    layout.check()
    ids = processing_members(client, layout)
    now = server_time(client)
    scan = ProcessingScan(now=now, size=len(ids), live=0)
    confirm = client.register_script(CONFIRM_SCRIPT)
    for chunk in _chunks(ids, SCAN_CHUNK):
        hb_keys = [layout.heartbeat_key(i) for i in chunk]
        values = client.mget(hb_keys)
        candidates: list[str] = []
        for job_id, key, value in zip(chunk, hb_keys, values, strict=True):
            if value is None:  # absent, or (MGET answers nil for it) a key of another type
                candidates.append(job_id)
                continue
            try:
                age = now - float(_text(value))
            except ValueError:
                raise RedisQueueError(
                    key,
                    f"holds {_decode_item(value)[:40]!r}, not a unix timestamp "
                    "(a heartbeat); nothing moved",
                ) from None
            if age <= layout.stale_after_seconds:
                scan.live += 1
            else:
                candidates.append(job_id)
        if not candidates:
            continue
        try:
            statuses = confirm(
                keys=[layout.processing_set, *(layout.heartbeat_key(i) for i in candidates)],
                args=[layout.stale_after_seconds, *candidates],
            )
        except ResponseError as exc:
            key = str(exc).split(" ")[1] if len(str(exc).split(" ")) > 1 else layout.processing_set
            raise RedisQueueError(key, f"{exc}; nothing moved") from None
        confirmed: list[tuple[str, float | None]] = []
        for job_id, raw in zip(candidates, statuses, strict=True):
            status = _text(raw)
            if status == "live":
                scan.live += 1
            elif status == "missing":
                confirmed.append((job_id, None))
            elif status.startswith("stale:"):
                confirmed.append((job_id, float(status.split(":", 1)[1])))
        pipe = client.pipeline(transaction=False)
        for job_id, _ in confirmed:
            pipe.type(layout.job_key(job_id))
            pipe.hget(layout.job_key(job_id), layout.queue_field)
        job_info = pipe.execute(raise_on_error=False)
        for n, (job_id, stuck_for) in enumerate(confirmed):
            job = _route(layout, job_id, stuck_for, job_info[2 * n], job_info[2 * n + 1], scan)
            (scan.stuck if job.queue is not None else scan.unroutable).append(job)
    return scan


def _route(
    layout: Layout,
    job_id: str,
    age: float | None,
    job_type: Any,
    queue_raw: Any,
    scan: ProcessingScan,
) -> StuckJob:
    reason = "missing" if age is None else "stale"
    rounded = None if age is None else round(age, 1)
    job_key = layout.job_key(job_id)
    found = _text(job_type) if isinstance(job_type, bytes | str) else "none"
    if found not in ("hash", "none"):
        raise RedisQueueError(
            job_key, f"is a {found}, expected a hash (the job, naming its queue); nothing moved"
        )
    queue = None if queue_raw is None or isinstance(queue_raw, Exception) else _text(queue_raw)
    if queue is not None:
        if queue in layout.queues:
            return StuckJob(job_id, queue, reason, rounded, "job_hash")
        scan.unroutable_reasons[job_id] = (
            f"{job_key} names queue {queue!r}, which is not one of {list(layout.queues)}"
        )
        return StuckJob(job_id, None, reason, rounded, None)
    if layout.default_queue is not None:
        return StuckJob(job_id, layout.default_queue, reason, rounded, "default_queue")
    scan.unroutable_reasons[job_id] = (
        f"{job_key} has no {layout.queue_field!r} field and no default_queue is set"
    )
    return StuckJob(job_id, None, reason, rounded, None)


class RedisListBackend:
    """Redis lists plus the processing set, as a ``backends.QueueBackend``."""

    def __init__(self, client: Redis, layout: Layout, name: str = "redis") -> None:
        self.client = client
        self.layout = layout
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def lists(self) -> list[ListStatus]:
        now = server_time(self.client)
        return [read_list(self.client, self.layout, q, now) for q in self.layout.queues]

    def sample(self) -> QueueSample:
        lists = self.lists()
        in_flight = 0
        if require_type(self.client, self.layout.processing_set, "set", "the processing set"):
            in_flight = int(self.client.scard(self.layout.processing_set))
        ages = [(s.oldest_age_seconds, s.name) for s in lists if s.oldest_age_seconds is not None]
        return QueueSample(
            name=self._name,
            depth=sum(s.depth for s in lists),
            in_flight=in_flight,
            oldest_age_seconds=max(ages)[0] if ages else None,
            oldest_age_source="job_hash" if ages else None,
            consumers=blocked_consumers(self.client),
        )


# -- stuck-job recovery -------------------------------------------------------------------

#: KEYS[1] the processing set; per job i (1-based): KEYS[2i] its heartbeat, KEYS[2i+1] its list.
#: ARGV[1] stale seconds, ARGV[2] lpush|rpush, ARGV[3..] the job ids.
#: Checks every key's type before the first write (a script is not rolled back),
#: then per job re-checks membership and heartbeat: a finished or live job is left alone.
REQUEUE_SCRIPT = """
local stale = tonumber(ARGV[1])
local push = ARGV[2]
local now = tonumber(redis.call('TIME')[1])
local st = redis.call('TYPE', KEYS[1])['ok']
if st ~= 'set' and st ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. st .. ', expected a set')
end
for i = 3, #ARGV do
  local hb = KEYS[2 * (i - 2)]
  local q = KEYS[2 * (i - 2) + 1]
  local ht = redis.call('TYPE', hb)['ok']
  if ht ~= 'string' and ht ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. hb .. ' is a ' .. ht .. ', expected a string')
  end
  if ht == 'string' and tonumber(redis.call('GET', hb)) == nil then
    return redis.error_reply('BADHEARTBEAT ' .. hb .. ' holds no unix timestamp')
  end
  local qt = redis.call('TYPE', q)['ok']
  if qt ~= 'list' and qt ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. q .. ' is a ' .. qt .. ', expected a list')
  end
end
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local hb = KEYS[2 * (i - 2)]
  local q = KEYS[2 * (i - 2) + 1]
  local status
  if redis.call('SISMEMBER', KEYS[1], id) == 0 then
    status = 'finished'
  else
    local beat = redis.call('GET', hb)
    if beat and (now - tonumber(beat)) <= stale then
      status = 'alive'
    else
      redis.call('SREM', KEYS[1], id)
      if beat then redis.call('DEL', hb) end
      if redis.call('LPOS', q, id) then
        status = 'already_queued'
      else
        redis.call(push, q, id)
        status = 'moved'
      end
    end
  end
  out[#out + 1] = status
end
return out
"""


@dataclass
class Recovery:
    """What a stuck-job run did (or, in check mode, would do)."""

    check_mode: bool
    processing_size: int
    live: int
    stuck: int
    moved: dict[str, list[str]] = field(default_factory=dict)  # queue -> ids
    already_queued: dict[str, list[str]] = field(default_factory=dict)  # queue -> ids
    skipped_finished: list[str] = field(default_factory=list)
    skipped_alive: list[str] = field(default_factory=list)
    unroutable: list[dict[str, Any]] = field(default_factory=list)
    #: a batch Redis refused (its script checks every key before writing: that batch moved
    #: nothing); the run stops there, what earlier batches moved is in ``moved``
    error: str | None = None

    @property
    def changed(self) -> bool:
        return any(self.moved.values()) or any(self.already_queued.values())

    def counts(self) -> dict[str, Any]:
        return {
            "processing": self.processing_size,
            "live": self.live,
            "stuck": self.stuck,
            "moved": sum(len(v) for v in self.moved.values()),
            "moved_per_queue": {q: len(v) for q, v in sorted(self.moved.items())},
            "already_queued": sum(len(v) for v in self.already_queued.values()),
            "skipped_finished": len(self.skipped_finished),
            "skipped_alive": len(self.skipped_alive),
            "unroutable": len(self.unroutable),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "moved": {q: list(v) for q, v in sorted(self.moved.items())},
            "already_queued": {q: list(v) for q, v in sorted(self.already_queued.items())},
            "skipped_finished": list(self.skipped_finished),
            "skipped_alive": list(self.skipped_alive),
            "unroutable": list(self.unroutable),
            "counts": self.counts(),
            "error": self.error,
        }


def recover_stuck(
    client: Redis,
    layout: Layout,
    check_mode: bool = False,
    push: str = "lpush",
    batch_size: int = 100,
    max_jobs: int | None = None,
    scan: ProcessingScan | None = None,
) -> Recovery:
    """Put stuck jobs back on their lists; in check mode, list what would move.

    ``scan`` (from :func:`scan_processing`) may be given to act on an earlier
    reading; every job is re-checked inside Redis either way.
    """
    if push not in ("lpush", "rpush"):
        raise ValueError(f"push must be lpush or rpush, got {push!r}")
    if not 1 <= batch_size <= 1000:
        raise ValueError(f"batch_size must be 1..1000, got {batch_size}")
    scan = scan or scan_processing(client, layout)
    jobs = scan.routable
    if max_jobs is not None:
        jobs = jobs[:max_jobs]
    for queue in sorted({job.queue for job in jobs if job.queue}):
        require_type(client, queue, "list", "a queue")
    result = Recovery(
        check_mode=check_mode,
        processing_size=scan.size,
        live=scan.live,
        stuck=len(scan.stuck) + len(scan.unroutable),
        unroutable=[
            {**job.to_dict(), "why": scan.unroutable_reasons.get(job.id, "")}
            for job in scan.unroutable
        ],
    )
    if check_mode:
        for job in jobs:
            result.moved.setdefault(str(job.queue), []).append(job.id)
        return result
    script = client.register_script(REQUEUE_SCRIPT)
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        keys = [layout.processing_set]
        for job in batch:
            keys += [layout.heartbeat_key(job.id), str(job.queue)]
        args: list[Any] = [layout.stale_after_seconds, push, *(job.id for job in batch)]
        try:
            statuses = script(keys=keys, args=args)
        except ResponseError as exc:
            result.error = str(exc)
            return result
        for job, status in zip(batch, statuses, strict=True):
            outcome = _text(status)
            if outcome == "moved":
                result.moved.setdefault(str(job.queue), []).append(job.id)
            elif outcome == "already_queued":
                result.already_queued.setdefault(str(job.queue), []).append(job.id)
            elif outcome == "finished":
                result.skipped_finished.append(job.id)
            else:
                result.skipped_alive.append(job.id)
    return result


# -- emergency drain: back up to S3, then delete; restore from the backup ----------------

#: KEYS[1] the list, KEYS[2] its staging key. Renames the list atomically (producers then
#: push to a fresh list); returns the number of jobs parked, 0 for an absent list.
PARK_SCRIPT = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then return 0 end
if t ~= 'list' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. t .. ', expected a list')
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('BUSY ' .. KEYS[2] .. ' already exists')
end
redis.call('RENAME', KEYS[1], KEYS[2])
return redis.call('LLEN', KEYS[2])
"""

#: KEYS[1] the list, KEYS[2] the restore marker. ARGV: the drain time, then the jobs in list
#: order. Pushes them at the consumer (right) end only if the marker was not set: one
#: restore per backup, atomically with the marker.
RESTORE_SCRIPT = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'list' and t ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. t .. ', expected a list')
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX') == false then return -1 end
for i = 2, #ARGV, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return #ARGV - 1
"""


def staging_key(run_id: str, name: str, park_prefix: str = DRAIN_PREFIX) -> str:
    return f"{park_prefix}{run_id}:{name}"


def restored_marker(run_id: str, name: str, park_prefix: str = DRAIN_PREFIX) -> str:
    return f"{park_prefix}restored:{run_id}:{name}"


RUN_ID_PATTERN = r"[0-9A-Za-z][0-9A-Za-z_.-]{0,63}"


def check_run_id(run_id: str) -> None:
    if not re.fullmatch(RUN_ID_PATTERN, run_id):
        raise ValueError(f"run_id {run_id!r} must match {RUN_ID_PATTERN} (e.g. 20261203T170000Z)")


def backup_key(prefix: str, run_id: str, name: str) -> str:
    return f"{prefix.strip('/')}/{run_id}/{name}.json"


def _encode_items(items: list[bytes]) -> tuple[str, list[str]]:
    try:
        return "utf-8", [i.decode() for i in items]
    except UnicodeDecodeError:
        return "base64", [base64.b64encode(i).decode() for i in items]


def _decode_items(encoding: str, items: list[str]) -> list[bytes]:
    if encoding == "utf-8":
        return [i.encode() for i in items]
    if encoding == "base64":
        return [base64.b64decode(i) for i in items]
    raise ValueError(f"unknown item encoding {encoding!r}")


def _digest(items: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(len(item).to_bytes(8, "big"))
        h.update(item)
    return h.hexdigest()


def _read_all(client: Redis, key: str) -> list[bytes]:
    items: list[bytes] = []
    while True:
        chunk = client.lrange(key, len(items), len(items) + SCAN_CHUNK - 1)
        items += [c.encode() if isinstance(c, str) else c for c in chunk]
        if len(chunk) < SCAN_CHUNK:
            return items


@dataclass
class DrainReport:
    """Per list: what was backed up and deleted, or restored."""

    run_id: str
    bucket: str
    check_mode: bool
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(v.get("changed") for v in self.lists.values())

    def to_dict(self) -> dict[str, Any]:
        total = sum(int(v.get("jobs", 0)) for v in self.lists.values() if v.get("changed"))
        return {"run_id": self.run_id, "bucket": self.bucket, "lists": self.lists, "jobs": total}


def _s3_exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def other_drains(client: Redis, run_id: str, park_prefix: str = DRAIN_PREFIX) -> list[str]:
    """Staging keys left by an unfinished drain of another run."""
    keys = [_text(k) for k in client.scan_iter(match=f"{park_prefix}*", count=SCAN_CHUNK)]
    return sorted(
        k
        for k in keys
        if not k.startswith(f"{park_prefix}restored:")
        and not k.startswith(f"{park_prefix}{run_id}:")
    )


def drain_lists(
    client: Redis,
    s3: Any,
    bucket: str,
    prefix: str,
    run_id: str,
    lists: Sequence[str],
    check_mode: bool = False,
    source: str = "",
    park_prefix: str = DRAIN_PREFIX,
) -> DrainReport:
    """Back every list up to S3, check the copy, and only then delete the jobs from Redis.

    Per list: RENAME to ``filesearch-drain:<run_id>:<list>`` (atomic; jobs pushed
    after that land in a fresh list and stay), PutObject
    ``<prefix>/<run_id>/<list>.json``, GetObject it back and compare every job,
    DEL the parked key. A run interrupted anywhere is resumed by running it again
    with the same ``run_id``; a list already backed up in this run is left alone.
    """
    check_run_id(run_id)
    report = DrainReport(run_id=run_id, bucket=bucket, check_mode=check_mode)
    leftovers = other_drains(client, run_id, park_prefix)
    if leftovers:
        raise RedisQueueError(
            leftovers[0],
            "an earlier drain did not finish (its jobs are parked there); rerun it with its "
            f"run_id to back them up and finish it ({len(leftovers)} such keys); nothing drained",
        )
    for name in lists:  # types first: a wrong one stops before anything is renamed
        require_type(client, name, "list", "a queue to drain")
    for name in lists:
        key = backup_key(prefix, run_id, name)
        parked = staging_key(run_id, name, park_prefix)
        entry: dict[str, Any] = {"backup": f"s3://{bucket}/{key}", "changed": False}
        report.lists[name] = entry
        has_parked = require_type(client, parked, "list", "a parked list of this drain")
        if not has_parked and _s3_exists(s3, bucket, key):
            entry.update(jobs=0, state="already drained in this run")
            continue
        if check_mode:
            depth = int(client.llen(name))
            if has_parked:
                depth += int(client.llen(parked))
            entry.update(jobs=depth, state="would drain", changed=depth > 0)
            continue
        if not has_parked:
            client.register_script(PARK_SCRIPT)(keys=[name, parked])
        items = _read_all(client, parked)
        encoding, encoded = _encode_items(items)
        digest = _digest(items)
        document = {
            "run_id": run_id,
            "list": name,
            "source": source,
            "drained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "count": len(items),
            "sha256": digest,
            "encoding": encoding,
            "order": "LRANGE 0 -1 (left end first; consumers pop from the right)",
            "items": encoded,
        }
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(document).encode(),
            ContentType="application/json",
            Metadata={"run-id": run_id, "list": name, "count": str(len(items)), "sha256": digest},
        )
        back = load_backup(s3, bucket, key)
        if back != items:
            raise RedisQueueError(
                parked,
                f"the backup s3://{bucket}/{key} does not read back as written; the jobs stay "
                "parked in Redis (rerun with this run_id)",
            )
        client.delete(parked)
        entry.update(jobs=len(items), sha256=digest, state="drained", changed=bool(items))
    return report


def load_backup(s3: Any, bucket: str, key: str) -> list[bytes]:
    """The jobs of one backup object, checked against its count and digest."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        doc = json.loads(body)
        items = _decode_items(doc["encoding"], doc["items"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RedisQueueError(key, f"is not a drain backup: {exc}") from None
    if len(items) != doc.get("count") or _digest(items) != doc.get("sha256"):
        raise RedisQueueError(key, "count or sha256 does not match its jobs; not restored")
    return items


def restore_lists(
    client: Redis,
    s3: Any,
    bucket: str,
    prefix: str,
    run_id: str,
    lists: Sequence[str] | None = None,
    check_mode: bool = False,
    park_prefix: str = DRAIN_PREFIX,
) -> DrainReport:
    """Push the jobs of drain ``run_id`` back onto their lists, once (a marker key per list).

    Every backup object under ``<prefix>/<run_id>/`` is restored (or only
    ``lists``). The jobs go to the consumer (right) end in their old order, ahead
    of anything pushed since. A restored backup is never pushed twice.
    """
    check_run_id(run_id)
    report = DrainReport(run_id=run_id, bucket=bucket, check_mode=check_mode)
    folder = f"{prefix.strip('/')}/{run_id}/"
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    found = {k[len(folder) : -len(".json")]: k for k in keys}
    wanted = list(lists) if lists else sorted(found)
    missing = [name for name in wanted if name not in found]
    if missing or not wanted:
        raise RedisQueueError(
            f"s3://{bucket}/{folder}",
            f"has no backup of {missing or 'any list'}; nothing restored",
        )
    for name in wanted:
        require_type(client, name, "list", "a queue to restore into")
        parked = staging_key(run_id, name, park_prefix)
        if key_type(client, parked) != "none":
            raise RedisQueueError(
                parked,
                "the drain of this run did not finish (jobs still parked); rerun the drain with "
                "this run_id first; nothing restored",
            )
    items_of = {name: load_backup(s3, bucket, found[name]) for name in wanted}
    for name in wanted:
        marker = restored_marker(run_id, name, park_prefix)
        entry: dict[str, Any] = {"backup": f"s3://{bucket}/{found[name]}", "changed": False}
        report.lists[name] = entry
        items = items_of[name]
        if client.exists(marker):
            entry.update(
                jobs=0, state="already restored", restored_at=_text(client.get(marker) or b"")
            )
            continue
        if check_mode:
            entry.update(jobs=len(items), state="would restore", changed=bool(items))
            continue
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        pushed = client.register_script(RESTORE_SCRIPT)(keys=[name, marker], args=[stamp, *items])
        if int(pushed) < 0:
            entry.update(jobs=0, state="already restored")
            continue
        entry.update(jobs=len(items), state="restored", changed=bool(items))
    return report
