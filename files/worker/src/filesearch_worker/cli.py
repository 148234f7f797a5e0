"""``filesearch-worker run | health | recover-dlq | replay-retries``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

from filesearch_worker import __version__, logs
from filesearch_worker.config import Settings
from filesearch_worker.dlq import STRATEGIES, RecoveryError, RecoveryOptions, recover
from filesearch_worker.errors import TransientError
from filesearch_worker.outcomes import Outcome

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger(__name__)


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
    _recover_arguments(
        sub.add_parser("recover-dlq", help="recover the DLQ (dedupe, reindex, archive)")
    )
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


def _recover_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``recover-dlq`` (the original script's, and the module's options)."""
    parser.add_argument(
        "--batch-size", type=int, default=10, help="messages per batch (default 10)"
    )
    parser.add_argument("--max-batches", type=int, default=None, help="stop after N batches")
    parser.add_argument("--max-messages", type=int, default=None, help="stop after N messages")
    parser.add_argument(
        "--messages-per-second", type=float, default=None, help="rate limit (default none)"
    )
    parser.add_argument("--dry-run", action="store_true", help="classify and count, change nothing")
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="reindex",
        help="what to do with recoverable messages",
    )
    parser.add_argument(
        "--max-attempts", type=int, default=3, help="recoveries before a message is archived"
    )
    parser.add_argument("--threads", type=int, default=None, help="default WORKER_CONCURRENCY")
    parser.add_argument("--dlq-url", default=None, help="default SQS_DLQ_URL")
    parser.add_argument(
        "--source-queue-url", default=None, help="redrive target (default SQS_QUEUE_URL)"
    )
    parser.add_argument("--no-dedupe", action="store_true", help="skip the OpenSearch multi-get")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


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


def _on_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM/SIGINT set ``stop`` (systemd stops a timer run with SIGTERM); old handlers."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous

    def handler(signum: int, _frame: Any) -> None:
        log.warning("signal %d: finishing the batches in hand, then stopping", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _recover(args: argparse.Namespace, settings: Settings) -> int:
    """``recover-dlq``: 0 when everything examined was settled.

    1 when messages were released or deletes failed, 2 on a configuration or
    fatal error. SIGTERM/SIGINT end the run gracefully (batches in hand settled,
    held messages released).
    """
    options = RecoveryOptions(
        strategy=args.strategy,
        batch_size=args.batch_size,
        max_batches=args.max_batches,
        max_messages=args.max_messages,
        messages_per_second=args.messages_per_second,
        max_attempts=args.max_attempts,
        dry_run=args.dry_run,
        threads=args.threads or settings.concurrency,
        dedupe=not args.no_dedupe,
    )
    stop = threading.Event()
    previous = _on_signals(stop)
    try:
        report = recover(
            settings,
            options,
            dlq_url=args.dlq_url,
            source_queue_url=args.source_queue_url,
            stop=stop,
        )
    except RecoveryError as exc:
        log.error("recover-dlq failed: %s", exc)  # noqa: TRY400 - the error is the message
        if exc.report is not None:
            print(json.dumps(exc.report.to_dict()) if args.json else exc.report.summary())
        print(f"recover-dlq: error: {exc}")
        return EXIT_USAGE
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if stop.is_set():
        log.warning("recover-dlq stopped by a signal; the rest stays in the DLQ")
    print(json.dumps(report.to_dict()) if args.json else report.summary())
    if not args.json:
        for outcome, samples in report.samples.items():
            for sample in samples:
                print(f"  {outcome}: {sample}")
    settled = report.counts[Outcome.RELEASED] == 0 and report.delete_failed == 0
    return EXIT_OK if settled else EXIT_FAILED


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
