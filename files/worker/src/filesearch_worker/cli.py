"""``filesearch-worker run | health | recover-dlq | replay-retries``."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import TextIO

from filesearch_worker import __version__, logs
from filesearch_worker.config import Settings
from filesearch_worker.errors import TransientError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _dlq_module() -> ModuleType | None:
    """The DLQ recovery engine, if this build has it (imported lazily)."""
    try:
        return importlib.import_module("filesearch_worker.dlq")
    except ImportError as exc:
        if exc.name not in ("filesearch_worker.dlq",):
            raise
        return None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands run, health, recover-dlq, replay-retries)."""
    parser = argparse.ArgumentParser(
        prog="filesearch-worker",
        description="SQS -> S3 -> OpenSearch indexing worker with guaranteed settlement. "
        "Configured by environment variables (see docs/worker.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default=None, help="override LOG_LEVEL (debug, info, warning, error)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("run", help="run the worker until SIGTERM/SIGINT")
    health = sub.add_parser("health", help="check SQS, S3 and OpenSearch; non-zero on failure")
    health.add_argument("-v", "--verbose", action="store_true", help="also print passing checks")
    recover = sub.add_parser("recover-dlq", help="recover the DLQ (dedupe, reindex, archive)")
    dlq = _dlq_module()
    if dlq is not None:
        dlq.add_arguments(recover)
    else:
        recover.add_argument("--batch-size", type=int, default=10)
        recover.add_argument("--max-batches", type=int, default=None)
        recover.add_argument("--dry-run", action="store_true")
    replay = sub.add_parser(
        "replay-retries", help="re-index the retry store (retry-index/) into OpenSearch"
    )
    replay.add_argument("--date", help="only this day's entries (YYYY-MM-DD)")
    replay.add_argument("--limit", type=int, default=None, help="at most N entries")
    replay.add_argument("--dry-run", action="store_true", help="count entries, change nothing")
    replay.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: when stderr is a TTY)",
    )
    return parser


class ProgressBar:
    """A small progress bar on a stream (a TTY by default)."""

    def __init__(self, stream: TextIO, label: str, width: int = 30) -> None:
        self.stream = stream
        self.label = label
        self.width = width
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        """Redraw for ``done`` of ``total``."""
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        rate = done / max(1e-6, time.monotonic() - self.started)
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done}/{total} {rate:.0f}/s"
        )
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from filesearch_worker import aws
    from filesearch_worker.index import Indexer
    from filesearch_worker.retry_store import RetryStore, validate_date

    settings.require("s3_bucket", purpose="replay-retries")
    if not args.dry_run:
        settings.require("opensearch_endpoint", purpose="replay-retries")
        if settings.skip_opensearch:
            raise ValueError("SKIP_OPENSEARCH is set; replay-retries needs OpenSearch")
    if args.date:
        validate_date(args.date)
    store = RetryStore(aws.s3_client(settings), settings.s3_bucket)
    indexer = Indexer.from_settings(settings)
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    progress = ProgressBar(sys.stderr, "replay") if show else None
    try:
        report = store.replay(
            indexer, date=args.date, limit=args.limit, dry_run=args.dry_run, progress=progress
        )
    except TransientError as exc:
        print(f"replay-retries: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(report.as_dict(), ensure_ascii=False))
    return EXIT_OK if report.ok else EXIT_FAILED


def _health(args: argparse.Namespace, settings: Settings) -> int:
    from filesearch_worker.health import check_all

    results = check_all(settings)
    for check in results:
        if not check.ok or args.verbose:
            print(check.line())
    return EXIT_OK if all(c.ok for c in results) else EXIT_FAILED


def _recover(args: argparse.Namespace, settings: Settings) -> int:
    dlq = _dlq_module()
    if dlq is None:
        print("recover-dlq: the DLQ recovery engine is not in this build", file=sys.stderr)
        return EXIT_USAGE
    result: int = dlq.main(args, settings)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``filesearch-worker`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"filesearch-worker: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logs.setup(args.log_level or settings.log_level)
    try:
        if args.command == "run":
            from filesearch_worker.runner import run

            return run(settings)
        if args.command == "health":
            return _health(args, settings)
        if args.command == "replay-retries":
            return _replay(args, settings)
        return _recover(args, settings)
    except ValueError as exc:
        print(f"filesearch-worker {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
