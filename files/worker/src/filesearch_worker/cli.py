"""``filesearch-worker run | health | recover-dlq | replay-retries``.

Output contract: results on stdout, everything else (errors, log lines,
progress) on stderr. With ``--json`` (``recover-dlq``, ``health``; always for
``replay-retries``) stdout is exactly one JSON object, also when the command
fails after its arguments were parsed: then it carries ``error`` (and the
partial report, if any). Exit codes: :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import textwrap
import threading
from collections.abc import Sequence
from typing import Any

from filesearch_worker import __version__, logs
from filesearch_worker.config import Settings
from filesearch_worker.dlq import (
    STRATEGIES,
    RecoveryConfigError,
    RecoveryError,
    RecoveryOptions,
    recover,
)
from filesearch_worker.errors import TransientError
from filesearch_worker.outcomes import Outcome
from filesearch_worker.progress import MODES, progress_for

#: Success: everything was done (``health``: every dependency answered).
EXIT_OK = 0
#: Runtime failure: a check failed, a dependency failed and the run stopped, or an
#: unexpected error. Whatever was not settled is left where it was for a later run.
EXIT_FAILED = 1
#: Usage or configuration error (argparse's own code): bad arguments, a bad or missing
#: environment variable, a queue that does not exist. Nothing was changed.
EXIT_USAGE = 2
#: Partial: the run completed but some messages (``recover-dlq``: released, failed
#: deletes) or entries (``replay-retries``: failed, unreadable) are left for a later run.
EXIT_PARTIAL = 3

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "runtime failure: a check failed, or a dependency failed and the run "
    "stopped (what was not settled stays for a later run)",
    EXIT_USAGE: "usage or configuration error: bad arguments or environment; nothing changed",
    EXIT_PARTIAL: "partial: the run completed, but some messages or entries are left for a "
    "later run (recover-dlq, replay-retries)",
}
EPILOG = "exit codes:\n" + "\n".join(
    textwrap.fill(what, 76, initial_indent=f"  {code}  ", subsequent_indent="     ")
    for code, what in EXIT_CODES.items()
)
LOG_LEVELS = ("debug", "info", "warning", "error")

log = logging.getLogger(__name__)


def _subparser(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands run, health, recover-dlq, replay-retries)."""
    parser = argparse.ArgumentParser(
        prog="filesearch-worker",
        description="SQS -> S3 -> OpenSearch indexing worker with guaranteed settlement. "
        "Configured by environment variables (see docs/worker.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        type=str.lower,
        choices=LOG_LEVELS,
        help="override LOG_LEVEL (%(choices)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _subparser(sub, "run", "run the worker until SIGTERM/SIGINT")
    health = _subparser(sub, "health", "check SQS, S3 and OpenSearch; non-zero on failure")
    health.add_argument("-v", "--verbose", action="store_true", help="also print passing checks")
    health.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _recover_arguments(_subparser(sub, "recover-dlq", "recover the DLQ (dedupe, reindex, archive)"))
    replay = _subparser(
        sub, "replay-retries", "re-index the retry store (retry-index/) into OpenSearch"
    )
    replay.add_argument("--date", help="only this day's entries (YYYY-MM-DD)")
    replay.add_argument("--limit", type=_positive_int, default=None, help="at most N entries")
    replay.add_argument("--dry-run", action="store_true", help="count entries, change nothing")
    _progress_argument(replay)
    return parser


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        choices=MODES,
        default="auto",
        help="progress bar on stderr (auto: when stderr is a TTY; otherwise, and with never, "
        "a progress log line every 10 s)",
    )


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
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="classify and count, change nothing (messages are received, hidden while the "
        "run lasts, then made visible again)",
    )
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
    parser.add_argument(
        "--json", action="store_true", help="print the report as one JSON object (also on errors)"
    )
    _progress_argument(parser)


def _json_mode(args: argparse.Namespace) -> bool:
    """Whether stdout is one JSON object for this command."""
    return args.command == "replay-retries" or bool(getattr(args, "json", False))


def _emit(result: dict[str, Any], code: int) -> int:
    """Print ``result`` as the command's JSON object (``error`` None) and return ``code``."""
    print(json.dumps({**result, "error": None, "exit_code": code}, ensure_ascii=False))
    return code


def _fail(
    args: argparse.Namespace,
    message: str,
    code: int,
    report: dict[str, Any] | None = None,
) -> int:
    """Report an error on stderr (and as the JSON object in JSON mode); return ``code``."""
    print(f"{args.command}: error: {message}", file=sys.stderr)
    if _json_mode(args):
        out = {**(report or {}), "error": message, "exit_code": code}
        print(json.dumps(out, ensure_ascii=False))
    return code


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
    try:
        with progress_for("replay-retries", args.progress, unit="entry") as progress:
            report = store.replay(
                indexer, date=args.date, limit=args.limit, dry_run=args.dry_run, progress=progress
            )
    except TransientError as exc:
        return _fail(args, str(exc), EXIT_FAILED)
    return _emit(report.as_dict(), EXIT_OK if report.ok else EXIT_PARTIAL)


def _health(args: argparse.Namespace, settings: Settings) -> int:
    from filesearch_worker.health import check_all

    results = check_all(settings)
    ok = all(c.ok for c in results)
    code = EXIT_OK if ok else EXIT_FAILED
    if args.json:
        checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in results]
        return _emit({"ok": ok, "checks": checks}, code)
    for check in results:
        if not check.ok or args.verbose:
            print(check.line())
    return code


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
    """``recover-dlq``: 0 when everything examined was settled, 3 when some was left.

    3 when messages were released (held for a later run) or deletes failed; 1
    when the run stopped on a failure (``RecoveryError``), 2 on a configuration
    error. SIGTERM/SIGINT end the run gracefully (batches in hand settled, held
    messages released) with the code of what was done.
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
        with progress_for("recover-dlq", args.progress) as progress:
            report = recover(
                settings,
                options,
                dlq_url=args.dlq_url,
                source_queue_url=args.source_queue_url,
                stop=stop,
                progress=progress,
            )
    except RecoveryError as exc:
        config = isinstance(exc, RecoveryConfigError)
        partial = exc.report
        if partial is not None and not args.json:
            print(partial.summary())
        return _fail(
            args,
            f"configuration error: {exc}" if config else str(exc),
            EXIT_USAGE if config else EXIT_FAILED,
            partial.to_dict() if partial is not None else None,
        )
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if stop.is_set():
        log.warning("recover-dlq stopped by a signal; the rest stays in the DLQ")
    settled = report.counts[Outcome.RELEASED] == 0 and report.delete_failed == 0
    code = EXIT_OK if settled else EXIT_PARTIAL
    if args.json:
        return _emit(report.to_dict(), code)
    print(report.summary())
    for outcome, samples in report.samples.items():
        for sample in samples:
            print(f"  {outcome}: {sample}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``filesearch-worker`` console script (exit codes: EXIT_CODES)."""
    args = build_parser().parse_args(argv)  # usage errors: argparse exits 2
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        return _fail(args, f"configuration error: {exc}", EXIT_USAGE)
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
    except ValueError as exc:  # a missing or invalid setting or argument, found by the command
        return _fail(args, f"configuration error: {exc}", EXIT_USAGE)
    except Exception as exc:
        log.exception("%s failed", args.command)
        return _fail(args, f"unexpected error: {type(exc).__name__}: {exc}", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
