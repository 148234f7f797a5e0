"""Progress of long CLI runs: a tqdm bar on a TTY, plain log lines elsewhere.

The engines (``RetryStore.replay``, the DLQ recovery) know nothing of tqdm.
They take a :data:`ProgressHook` and call it as ``hook(done, total)`` after
each chunk or batch, from any thread; ``total`` is None when it is not known
(a DLQ whose depth could not be read). :func:`progress_for` picks what the
CLI shows: a bar on stderr when stderr is a TTY (``--progress auto``, the
default) or when asked (``always``), else a ``progress`` log line at most every
``interval`` seconds and one at the end, so journald shows how far a timer
run got without a line per batch.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]  # no hints shipped; types-tqdm not pinned

from filesearch_worker import logs

log = logging.getLogger(__name__)

#: ``hook(done, total)``: ``done`` items finished so far, of ``total`` (None: unknown).
ProgressHook = Callable[[int, int | None], None]
MODES: tuple[str, ...] = ("auto", "always", "never")
_DEFAULT_WIDTH = 80
_DEFAULT_HEIGHT = 24


class Progress(Protocol):
    """A :data:`ProgressHook` that is closed when the run ends."""

    def __call__(self, done: int, total: int | None) -> None: ...

    def close(self) -> None: ...


class BarProgress:
    """A tqdm bar on ``stream``; thread-safe."""

    def __init__(self, label: str, stream: TextIO, unit: str = "msg") -> None:
        self._lock = threading.Lock()
        sized = _has_width(stream)
        self._bar = tqdm(
            total=None,
            desc=label,
            unit=unit,
            file=stream,
            dynamic_ncols=sized,
            ncols=None if sized else _DEFAULT_WIDTH,
            nrows=None if sized else _DEFAULT_HEIGHT,
        )

    def __call__(self, done: int, total: int | None) -> None:
        with self._lock:
            if total is not None:
                total = max(total, done)  # the DLQ may grow while it is read
                if self._bar.total != total:
                    self._bar.total = total
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        with self._lock:
            self._bar.close()


def _has_width(stream: TextIO) -> bool:
    """Whether the terminal reports its width.

    A pty can say 0x0 (a fresh ``openpty``, some serial consoles); tqdm would
    draw nothing on it, so the bar gets a fixed size instead.
    """
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


class LogProgress:
    """A ``progress`` log line at most every ``interval`` seconds, and one at the end."""

    def __init__(
        self,
        label: str,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_logged: float | None = None
        self._latest: tuple[int, int | None] | None = None
        self._logged: tuple[int, int | None] | None = None

    def __call__(self, done: int, total: int | None) -> None:
        with self._lock:
            self._latest = (done, total)
            now = self._clock()
            if self._last_logged is not None and now - self._last_logged < self.interval:
                return
            self._last_logged = now
            self._emit()

    def close(self) -> None:
        with self._lock:
            if self._latest is not None and self._latest != self._logged:
                self._emit()

    def _emit(self) -> None:
        assert self._latest is not None
        done, total = self._latest
        self._logged = self._latest
        logs.event(log, "progress", command=self.label, done=done, total=total)


class _Closing:
    """Context manager around a :class:`Progress` (closed also when the run fails)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def __enter__(self) -> Progress:
        return self.progress

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.close()


def progress_for(
    label: str, mode: str = "auto", stream: TextIO | None = None, *, unit: str = "msg"
) -> _Closing:
    """``with progress_for("recover-dlq", args.progress) as hook: engine(..., progress=hook)``.

    A bar when ``mode`` is ``always``, or ``auto`` and ``stream`` (default
    stderr) is a TTY; log lines otherwise.
    """
    if mode not in MODES:
        raise ValueError(f"progress must be one of {', '.join(MODES)}, got {mode!r}")
    out = sys.stderr if stream is None else stream
    if mode == "always" or (mode == "auto" and out.isatty()):
        return _Closing(BarProgress(label, out, unit=unit))
    return _Closing(LogProgress(label))
