#!/usr/bin/env python3
"""Draw the incident report's chart: queue depth and DLQ depth over the window (PNG).

Used by playbooks/incident_report.yml on the control node:

    incident_chart.py --data series.json --out queue-depth.png

``series.json`` holds ``{"title", "start_time", "end_time", "series": [{"id", "label",
"timestamps": [ISO 8601...], "values": [...]}]}`` (the cloudwatch_metric_data module's
result). Only the points CloudWatch returned are drawn; a series without points
is named in the legend as "no data", and when no series has any point the chart
says so in its middle instead of showing an empty or invented line. Prints a JSON
summary (points per series, peak per series) on stdout.

matplotlib runs with the Agg backend (no display needed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt

log = logging.getLogger(__name__)


def parse_time(text: str) -> datetime:
    """ISO 8601 (with Z) to an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load(path: Path) -> dict[str, Any]:
    """Read and check the input; raise ValueError naming what is wrong."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("series"), list):
        raise ValueError(f"{path}: expected an object with a 'series' list")  # noqa: TRY004  (bad input, not a bad call)
    for n, series in enumerate(data["series"]):
        stamps, values = series.get("timestamps", []), series.get("values", [])
        if len(stamps) != len(values):
            raise ValueError(
                f"{path}: series[{n}] ({series.get('id')}) has {len(stamps)} timestamps "
                f"but {len(values)} values"
            )
    return data


def draw(data: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write the PNG; return the summary."""
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    summary: dict[str, Any] = {"points": {}, "peak": {}, "no_data": []}
    for series in data["series"]:
        label = str(series.get("label") or series.get("id"))
        stamps = [parse_time(t) for t in series.get("timestamps", [])]
        values = [float(v) for v in series.get("values", [])]
        summary["points"][series.get("id", label)] = len(values)
        if not values:
            summary["no_data"].append(series.get("id", label))
            ax.plot([], [], label=f"{label} (no data)")
            continue
        summary["peak"][series.get("id", label)] = max(values)
        ax.plot(stamps, values, marker="o", markersize=3, linewidth=1.5, label=label)
    if data.get("start_time") and data.get("end_time"):
        ax.set_xlim(parse_time(data["start_time"]), parse_time(data["end_time"]))
    if not any(summary["points"].values()):
        ax.text(
            0.5,
            0.5,
            "No data: CloudWatch returned no points for these metrics in this window",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=11,
            color="dimgray",
        )
        ax.set_ylim(0, 1)
    else:
        ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("messages")
    ax.set_title(str(data.get("title") or "Queue depth"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    summary["file"] = str(out)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="series JSON")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        summary = draw(load(args.data), args.out)
    except ValueError as exc:
        log.error("%s", exc)  # noqa: TRY400  (a clear message, no traceback)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
