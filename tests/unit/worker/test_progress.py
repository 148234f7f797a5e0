"""The progress hook (filesearch_worker.progress): a tqdm bar on a TTY, log lines elsewhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from filesearch_worker import logs
from filesearch_worker.progress import BarProgress, LogProgress, progress_for
from filesearch_worker.retry_store import RetryStore


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "fields", {}).get("event") == "progress"
    ]


def test_auto_on_a_tty_draws_a_bar_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    stream = Tty()
    caplog.set_level(logging.INFO)
    with progress_for("recover-dlq", "auto", stream) as hook:
        assert isinstance(hook, BarProgress)
        hook(0, 20)
        hook(10, 20)
        hook(20, 20)
    drawn = stream.getvalue()
    assert "recover-dlq" in drawn and "20/20" in drawn and "100%" in drawn
    assert progress_lines(caplog) == []


def test_auto_without_a_tty_logs_and_draws_nothing(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    caplog.set_level(logging.INFO)
    with progress_for("replay-retries", "auto", stream) as hook:
        assert isinstance(hook, LogProgress)
        hook(0, 3)
        hook(3, 3)  # within the interval: only logged when the run ends
    assert stream.getvalue() == ""
    assert progress_lines(caplog) == [
        {"event": "progress", "command": "replay-retries", "done": 0, "total": 3},
        {"event": "progress", "command": "replay-retries", "done": 3, "total": 3},
    ]


@pytest.mark.parametrize(
    ("mode", "stream", "kind"),
    [("always", io.StringIO(), BarProgress), ("never", Tty(), LogProgress)],
)
def test_mode_overrides_the_tty_check(mode: str, stream: io.StringIO, kind: type) -> None:
    with progress_for("x", mode, stream) as hook:
        assert isinstance(hook, kind)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="progress must be one of auto, always, never"):
        progress_for("x", "sometimes", io.StringIO())


def test_bar_grows_its_total_and_takes_an_unknown_one() -> None:
    stream = Tty()
    bar = BarProgress("recover-dlq", stream)
    bar(0, None)
    bar(7, None)
    bar(9, 5)  # more arrived than the depth read at the start
    bar.close()
    assert "9/9" in stream.getvalue()


def test_log_lines_are_spaced_by_the_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    caplog.set_level(logging.INFO)
    hook = LogProgress("recover-dlq", interval=10.0, clock=lambda: now[0])
    for done, at in ((0, 0.0), (10, 4.0), (20, 9.9), (30, 10.0), (40, 15.0)):
        now[0] = at
        hook(done, None)
    hook.close()
    assert [line["done"] for line in progress_lines(caplog)] == [0, 30, 40]
    assert "total" not in progress_lines(caplog)[0]  # None values are left out


def test_log_line_is_json_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info")
    hook = LogProgress("replay-retries")
    hook(5, 8)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert (line["event"], line["done"], line["total"]) == ("progress", 5, 8)


class Index:
    def ping(self) -> bool:
        return True

    def bulk_index(self, docs: Mapping[str, Any]) -> dict[str, str | None]:
        return dict.fromkeys(docs, None)

    def delete(self, doc_id: str) -> bool:
        return True

    def existing_ids(self, ids: Iterable[str]) -> set[str]:
        return set()


def test_replay_calls_the_hook_per_chunk(s3: Any, bucket: str) -> None:
    for i in range(5):
        body = json.dumps({"file_key": f"k{i}"}).encode()
        s3.put_object(Bucket=bucket, Key=f"retry-index/2026-01-01/k{i}.json", Body=body)
    calls: list[tuple[int, int | None]] = []
    report = RetryStore(s3, bucket).replay(
        Index(),  # type: ignore[arg-type]
        chunk_size=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.indexed == 5
    assert calls == [(0, 5), (2, 5), (4, 5), (5, 5)]
