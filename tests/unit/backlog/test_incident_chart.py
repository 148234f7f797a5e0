"""playbooks/files/incident_chart.py: the PNG is drawn from the given points only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "playbooks" / "files" / "incident_chart.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chart(tmp_path: Path, data: object) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "series.json"
    source.write_text(json.dumps(data))
    return subprocess.run(
        [sys.executable, str(CHART), "--data", str(source), "--out", str(tmp_path / "c.png")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


WINDOW = {"start_time": "2026-11-23T19:00:00Z", "end_time": "2026-11-23T20:00:00Z"}


def test_points_are_drawn_and_summarised(tmp_path: Path) -> None:
    data = {
        **WINDOW,
        "series": [
            {
                "id": "queue",
                "label": "queue visible",
                "timestamps": ["2026-11-23T19:10:00Z", "2026-11-23T19:20:00Z"],
                "values": [5.0, 120.0],
            },
            {"id": "dlq", "label": "dlq visible", "timestamps": [], "values": []},
        ],
    }
    done = chart(tmp_path, data)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["points"] == {"queue": 2, "dlq": 0}
    assert summary["peak"] == {"queue": 120.0}
    assert summary["no_data"] == ["dlq"]
    assert (tmp_path / "c.png").read_bytes().startswith(PNG_SIGNATURE)


def test_no_data_at_all_still_gives_a_chart_that_says_so(tmp_path: Path) -> None:
    data = {**WINDOW, "series": [{"id": "queue", "timestamps": [], "values": []}]}
    done = chart(tmp_path, data)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["no_data"] == ["queue"] and summary["peak"] == {}
    assert (tmp_path / "c.png").read_bytes().startswith(PNG_SIGNATURE)


def test_mismatched_points_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = {
        **WINDOW,
        "series": [{"id": "queue", "timestamps": ["2026-11-23T19:10:00Z"], "values": []}],
    }
    done = chart(tmp_path, data)
    assert done.returncode == 2
    assert "series[0] (queue) has 1 timestamps but 0 values" in done.stderr
    assert not (tmp_path / "c.png").exists()
