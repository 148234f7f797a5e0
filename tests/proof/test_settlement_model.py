"""The settlement protocol, model-checked with spin (``tests/proof/settlement.pml``).

The promise: no message is deleted from a queue unless its outcome is durable
somewhere else. The correct model is searched exhaustively in a few small
configurations, for safety (the assertions P1-P3 and the invariant ``kept``)
and for liveness (the LTL claim ``settled``, acceptance cycles). Each
deliberately broken ordering must be caught: the checker writes a trail, and
its replay shows the delete (or the heartbeat extension) happening before the
outcome is durable (or after the settlement). The incident report's ordering
is also compared with the committed replay in ``trails/``, so a model change
that stops finding it is noticed.

Every search runs in a temporary directory (pan writes ``pan.c``, trails and
so on). Without ``spin`` or ``gcc`` the module is skipped, except under CI
(``CI=true``), where that is a failure; ``make model-check`` installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODEL = HERE / "settlement.pml"
INCIDENT_TRAIL = HERE / "trails" / "delete_before_dlq_send.txt"
#: a hang guard for one tool run, not a timing assert
HANG_GUARD = 900
#: depth bound of a search; the deepest path of the configurations below is < 1,000 steps
DEPTH = "-m100000"

#: The configurations searched exhaustively (spin -D...; see the model's header).
CONFIGS: dict[str, tuple[str, ...]] = {
    # one worker, a batch of two (an indexable and a permanently failing message),
    # recovery, one fault and one crash anywhere
    "batch": ("NM=2", "NW=1", "B=2", "FAILS=1", "CRASHES=1", "NS=8"),
    # two worker hosts: a failed heartbeat delivers a message to both, stale receipts
    "two-workers": ("NM=1", "NW=2", "B=1", "FAILS=2", "CRASHES=0", "NS=8"),
    "two-workers-crash": ("NM=1", "NW=2", "B=1", "FAILS=1", "CRASHES=1", "NS=8"),
    "two-messages-two-workers": ("NM=2", "NW=2", "B=1", "FAILS=1", "CRASHES=0", "NS=8"),
}

#: Broken orderings that end with a delete of the last copy of a message that is
#: durable nowhere (P1): a step that must come up to that delete, one that must not.
DELETES_TOO_EARLY: dict[str, tuple[str, str]] = {
    # the worker deletes the permanent failure, its DLQ send not even tried
    "DELETE_BEFORE_DLQ_SEND": (r"W\d process m{m} permanent", r"dlq-send m{m} ok"),
    # the worker deletes it although the DLQ send failed
    "DELETE_UNCONFIRMED_DLQ_SEND": (r"W\d dlq-send m{m} failed", r"W\d dlq-send m{m} ok"),
    # recovery deletes its DLQ copy with no archive written (the loss shows when the
    # last copy goes, which may be the worker's own, correct, delete of the source)
    "ARCHIVE_AFTER_DELETE": (r"R delete m{m} from DLQ", r"archive-put m{m} ok"),
}

_DELETE = re.compile(
    r"^(?P<actor>\S+) delete m(?P<m>\d+) from \w+: "
    r"indexed=(?P<indexed>\d) s3=(?P<s3>\d) other-copy=(?P<other>\d)$"
)


@pytest.fixture(scope="module", autouse=True)
def _tools() -> None:
    missing = [tool for tool in ("spin", "gcc") if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (make model-check installs them)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _run(args: Sequence[str], cwd: Path) -> str:
    result = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=HANG_GUARD, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and args[0] != "./pan":
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{output}")
    return output


@dataclass(frozen=True)
class Model:
    """One compiled configuration of the model in its own directory."""

    workdir: Path
    defines: tuple[str, ...]

    @classmethod
    def build(
        cls, workdir: Path, defines: Sequence[str], *, optimise: str = "-O1", reach: bool = False
    ) -> Model:
        """spin -a, then gcc pan.c (partial-order reduction off: it removes nothing here)."""
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(MODEL, workdir / MODEL.name)
        flags = tuple(f"-D{d}" for d in defines)
        _run(["spin", *flags, "-a", MODEL.name], workdir)
        extra = ["-DREACH"] if reach else []  # -DREACH: pan -i finds the shortest trail
        _run(["gcc", optimise, "-w", "-DNOREDUCE", *extra, "-o", "pan", "pan.c"], workdir)
        return cls(workdir, flags)

    def search(self, *args: str) -> Search:
        """Run pan with these flags."""
        return Search(_run(["./pan", DEPTH, *args], self.workdir))

    @property
    def trail(self) -> Path:
        return self.workdir / f"{MODEL.name}.trail"

    def replay(self) -> list[str]:
        """The trail replayed by spin (-t), its lines stripped; -B: no final state dump."""
        output = _run(["spin", *self.defines, "-t", "-B", MODEL.name], self.workdir)
        return [line.strip() for line in output.splitlines()]


@dataclass(frozen=True)
class Search:
    """What pan printed, and the figures in it."""

    output: str

    def figure(self, pattern: str) -> float:
        match = re.search(pattern, self.output)
        assert match, f"no {pattern!r} in pan's output:\n{self.output}"
        return float(match.group(1))

    @property
    def errors(self) -> int:
        return int(self.figure(r"errors: (\d+)"))

    @property
    def complete(self) -> bool:
        return not any(
            sign in self.output
            for sign in (
                "Search not completed",
                "max search depth too small",
                "out of memory",
                "Bit statespace",
            )
        ) and ("Full statespace search" in self.output)

    def summary(self) -> str:
        stored = int(self.figure(r"(\d+) states, stored"))
        depth = int(self.figure(r"depth reached (\d+)"))
        seconds = self.figure(r"elapsed time ([\d.e+]+) seconds")
        return f"{stored} states stored, depth {depth}, {seconds:g} s"


def markers(replay: Sequence[str]) -> list[str]:
    """The protocol steps of a replay: its "@@ " lines, without the prefix."""
    return [line[3:] for line in replay if line.startswith("@@ ")]


def steps(lines: Sequence[str]) -> list[str]:
    """Markers reduced to actor and step (no message numbers, no figures): for a loose compare."""
    return [re.sub(r" m\d+", " m", line.split(":", 1)[0]) for line in lines]


# -- the correct model ----------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Model:
    name: str = request.param
    return Model.build(tmp_path_factory.mktemp(name), CONFIGS[name])


def test_safety_no_delete_before_durable(model: Model) -> None:
    """Assertions P1-P3 and the invariant `kept` hold in every reachable state."""
    search = model.search("-N", "kept")
    print(f"safety {' '.join(model.defines)}: {search.summary()}")
    assert "assertion violations\t+" in search.output, search.output
    assert "never claim         \t+ (kept)" in search.output, search.output
    assert search.errors == 0, search.output
    assert search.complete, search.output


def test_liveness_every_message_settles(model: Model) -> None:
    """<>[] every message durable with no copy left in a queue: no acceptance cycle."""
    search = model.search("-a", "-N", "settled")
    print(f"liveness {' '.join(model.defines)}: {search.summary()}")
    assert "acceptance   cycles \t+" in search.output, search.output
    assert "never claim         \t+ (settled)" in search.output, search.output
    assert search.errors == 0, search.output
    assert search.complete, search.output


# -- broken orderings -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Model]:
    """A broken variant of the batch configuration, searched once: claim `kept` with -i
    (the shortest trail), or `settled` with -a; returns the model with its trail."""
    done: dict[tuple[str, str], Model] = {}

    def get(variant: str, claim: str = "kept") -> Model:
        if (variant, claim) not in done:
            workdir = tmp_path_factory.mktemp(variant.lower())
            defines = (*CONFIGS["batch"], variant)
            if claim == "kept":
                model = Model.build(workdir, defines, optimise="-O0", reach=True)
                search = model.search("-i", "-N", "kept")
            else:
                model = Model.build(workdir, defines, optimise="-O0")
                search = model.search("-a", "-N", claim)
            assert search.errors >= 1, f"{variant}: no violation found:\n{search.output}"
            assert model.trail.is_file(), f"{variant}: pan wrote no trail"
            done[(variant, claim)] = model
        return done[(variant, claim)]

    return get


@pytest.mark.parametrize("variant", list(DELETES_TOO_EARLY))
def test_broken_ordering_deletes_before_durable(
    variant: str, broken: Callable[[str, str], Model]
) -> None:
    """The counterexample ends in a delete while the message is durable nowhere (P1)."""
    replay = broken(variant, "kept").replay()
    violated = [i for i, line in enumerate(replay) if "assertion violated" in line]
    assert violated, "\n".join(replay)
    assert any("durable_elsewhere" in line for line in replay), "\n".join(replay)
    before = markers(replay[: violated[0]])
    delete = _DELETE.match(before[-1])
    assert delete, f"the last step before the violation is not a delete:\n{before}"
    assert (delete["indexed"], delete["s3"], delete["other"]) == ("0", "0", "0"), before[-1]
    must, must_not = (p.format(m=delete["m"]) for p in DELETES_TOO_EARLY[variant])
    assert any(re.search(must, line) for line in before), (must, before)
    assert not any(re.search(must_not, line) for line in before), (must_not, before)


def test_incident_replay_matches_committed_trail(broken: Callable[[str, str], Model]) -> None:
    """The incident ordering's shortest counterexample has the committed steps."""
    fresh = markers(broken("DELETE_BEFORE_DLQ_SEND", "kept").replay())
    committed = markers(
        [line.strip() for line in INCIDENT_TRAIL.read_text(encoding="utf-8").splitlines()]
    )
    assert committed, f"no @@ step markers in {INCIDENT_TRAIL}"
    assert steps(fresh) == steps(committed), "\n".join(fresh)


def test_broken_heartbeat_cancel_extends_a_settled_message(
    broken: Callable[[str, str], Model],
) -> None:
    """Cancelling after the settlement lets the heartbeat extend a settled copy (P2)."""
    replay = broken("DELETE_BEFORE_HEARTBEAT_CANCEL", "kept").replay()
    assert any("assert(!(wdone[k]))" in line for line in replay), "\n".join(replay)
    steps_ = markers(replay)
    late = [i for i, s in enumerate(steps_) if re.match(r"HB extend m\d+ after", s)]
    assert late, steps_
    message = re.match(r"HB extend (m\d+)", steps_[late[0]])
    assert message
    settled = [
        i
        for i, s in enumerate(steps_[: late[0]])
        if re.match(rf"W\d (delete|release) {message[1]}\b", s)
    ]
    assert settled, steps_
    assert not any("cancel heartbeat" in s for s in steps_[settled[-1] : late[0]]), steps_


def test_worker_dropping_recovery_count_redrives_forever(
    broken: Callable[[str, str], Model],
) -> None:
    """Without dlq-recoveries on the worker's DLQ copy, redrive never ends: an acceptance
    cycle of the liveness claim whose loop sends the message round and never archives it."""
    replay = broken("WORKER_DROPS_RECOVERIES", "settled").replay()
    start = [i for i, line in enumerate(replay) if "START OF CYCLE" in line]
    assert start, "\n".join(replay)
    cycle = markers(replay[start[0] :])
    assert any(re.match(r"R redrive-send m\d+ ok", s) for s in cycle), cycle
    assert any(re.match(r"W\d dlq-send m\d+ ok", s) for s in cycle), cycle
    assert not any("archive" in s for s in cycle), cycle
