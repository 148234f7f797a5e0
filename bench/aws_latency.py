"""The benchmarks' AWS latency model: ``BENCH_LATENCY=aws`` / ``--latency aws``.

On loopback a call to LocalStack or osmem-server costs well under a
millisecond of network, so a sequential loop looks nearly as good as a batched,
concurrent one. In the same AWS region every call costs milliseconds. In mode
``aws`` a benchmark's *measured* traffic goes through a private instance of the
sandbox's fault-and-latency proxy (``sandbox/ctl proxy``, docs/sandbox.md) that
sleeps a per-call latency before forwarding; setup traffic (queues, uploads,
filling queues, depth polls, clean-up) keeps going to the emulators directly.

The model (per call, mean; a uniform jitter of +-jitter/2 around it):

====================  ======  ========================================================
call                  mean    source
====================  ======  ========================================================
SQS, every action     10 ms   SQS Developer Guide, "Increasing throughput using
                              horizontal scaling and action batching": its example
                              is 20 ms from EC2 to SQS in the same region (50 TPS
                              per thread); an older guide said a single-threaded
                              client sends or receives about 5 to 50 messages/s
                              (20-200 ms per call). 10 ms is optimistic, which
                              favours the sequential baselines: our ratios are
                              conservative.
S3 GetObject          20 ms   S3 performance whitepaper, "Timeouts and Retries for
S3 PutObject, others          Latency-Sensitive Applications": for small requests
                              (< 512 KB) the median latency is often in the tens of
                              milliseconds (first byte; PUT alike).
OpenSearch bulk       15 ms   no AWS-published figure: a same-region HTTPS round
OpenSearch index              trip plus a small shard write (assumption).
OpenSearch mget, get  10 ms   a same-region round trip plus a small read (assumption).
CloudWatch            10 ms   as SQS (the benchmarks run with WORKER_METRICS=off).
====================  ======  ========================================================

The proxy itself adds about 5 ms per call on this machine (mitmproxy;
docs/sandbox.md, "Overhead"); :func:`calibrate` measures it in the same run, so
each benchmark reports the effective per-call latency its loops saw.

Everything here except :class:`PrivateProxy` and :func:`calibrate` is pure and
unit-tested (tests/unit/bench/test_aws_latency.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
CTL = REPO / "sandbox" / "ctl"

MODES = ("none", "aws")
ENV_VAR = "BENCH_LATENCY"
SEED = 20261203  # the proxy's jitter schedule is reproducible from it


@dataclass(frozen=True)
class Delay:
    """The modelled latency of one kind of call (``action`` None: the service's default)."""

    service: str
    action: str | None
    mean_ms: float
    jitter_ms: float
    source: str

    @property
    def latency_ms(self) -> float:
        """The proxy's fixed part: the jitter is drawn in [0, jitter], centred on the mean."""
        return self.mean_ms - self.jitter_ms / 2

    @property
    def label(self) -> str:
        return f"{self.service} {self.action or '(all actions)'}"


AWS_MODEL: tuple[Delay, ...] = (
    Delay("sqs", None, 10, 4, "SQS Developer Guide (20 ms example; 5-50 msg/s single-threaded)"),
    Delay("s3", None, 20, 6, "S3 whitepaper: small requests, median in the tens of ms"),
    Delay("s3", "GetObject", 20, 6, "S3 whitepaper: first byte of a small GET"),
    Delay("s3", "PutObject", 20, 6, "S3 whitepaper: small PUT"),
    Delay("opensearch", None, 10, 4, "assumption: same-region round trip"),
    Delay("opensearch", "mget", 10, 4, "assumption: round trip + small read"),
    Delay("opensearch", "get", 10, 4, "assumption: round trip + small read"),
    Delay("opensearch", "bulk", 15, 4, "assumption: round trip + small shard write"),
    Delay("opensearch", "index", 15, 4, "assumption: round trip + small shard write"),
    Delay("cloudwatch", None, 10, 4, "as SQS"),
)


def resolve_mode(flag: str | None, environ: Mapping[str, str]) -> str:
    """``--latency`` wins over ``BENCH_LATENCY``; the default is ``none``."""
    value = (flag if flag is not None else environ.get(ENV_VAR, "")).strip().lower() or "none"
    if value not in MODES:
        known = ", ".join(MODES)
        raise SystemExit(
            f"bench: latency mode {value!r} (--latency / {ENV_VAR}): not one of {known}"
        )
    return value


def add_argument(parser: argparse.ArgumentParser) -> None:
    """``--latency {none,aws}`` (default: ``$BENCH_LATENCY``, else none)."""
    parser.add_argument(
        "--latency",
        choices=MODES,
        default=None,
        help=f"none: loopback; aws: measured calls through a latency proxy "
        f"(default: ${ENV_VAR}, else none)",
    )


def apply_defaults(args: argparse.Namespace, defaults: Mapping[str, Any]) -> None:
    """Fill the options left at None with the mode's defaults (a flag given wins)."""
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, list(value) if isinstance(value, list) else value)


def proxy_config(model: tuple[Delay, ...] = AWS_MODEL, seed: int = SEED) -> dict[str, Any]:
    """The proxy's config (docs/sandbox.md, "Config format") for ``model``."""
    services: dict[str, dict[str, Any]] = {}
    for delay in model:
        entry = {"latency_ms": delay.latency_ms, "jitter_ms": delay.jitter_ms}
        service = services.setdefault(delay.service, {})
        if delay.action is None:
            service.update(entry)
        else:
            service.setdefault("actions", {})[delay.action] = entry
    return {"seed": seed, "name": "bench-aws-latency", "services": services}


def modelled_ms(service: str, action: str, model: tuple[Delay, ...] = AWS_MODEL) -> float:
    """The mean latency the model adds to one call (0 for a service it does not name)."""
    default = 0.0
    for delay in model:
        if delay.service == service and delay.action == action:
            return delay.mean_ms
        if delay.service == service and delay.action is None:
            default = delay.mean_ms
    return default


def model_table(model: tuple[Delay, ...] = AWS_MODEL) -> list[str]:
    """The model as markdown table lines."""
    lines = ["| call | mean | jitter | source |", "| --- | ---: | ---: | --- |"]
    lines += [
        f"| {d.label} | {d.mean_ms:g} ms | +-{d.jitter_ms / 2:g} ms | {d.source} |" for d in model
    ]
    return lines


# -- the proxy's counters ---------------------------------------------------------------


Counts = dict[tuple[str, str], int]


def request_counts(stats: Mapping[str, Any] | None) -> Counts:
    """``{(service, action): requests}`` from the proxy's stats file."""
    out: Counts = {}
    for service, info in ((stats or {}).get("services") or {}).items():
        for action, counters in (info.get("actions") or {}).items():
            out[(service, action)] = int(counters.get("requests", 0))
    return out


def added_ms(stats: Mapping[str, Any] | None) -> dict[tuple[str, str], float]:
    """``{(service, action): latency added in total, ms}`` from the proxy's stats file."""
    out: dict[tuple[str, str], float] = {}
    for service, info in ((stats or {}).get("services") or {}).items():
        for action, counters in (info.get("actions") or {}).items():
            out[(service, action)] = float(counters.get("latency_ms", 0.0))
    return out


def diff(after: Mapping[tuple[str, str], float], before: Mapping[tuple[str, str], float]) -> Counts:
    """What happened between two readings (actions with no new calls left out)."""
    out: Counts = {}
    for key, value in after.items():
        delta = round(value - before.get(key, 0))
        if delta:
            out[key] = delta
    return out


def per_message(counts: Mapping[tuple[str, str], int], messages: int) -> str:
    """``"ReceiveMessage 0.10, GetObject 1.00, ..."``: calls per message, busiest first."""
    if messages <= 0 or not counts:
        return "-"
    parts = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{action} {n / messages:.2f}" for (_, action), n in parts)


# -- a private proxy in front of the shared emulators ---------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateProxy:
    """``sandbox/ctl proxy up`` with its own SANDBOX_DIR and free ports; stopped by pid.

    Like tests/integration/test_sandbox_proxy.py: the upstreams are the shared
    stack's LocalStack and osmem-server; nobody else's proxy is touched.
    """

    def __init__(self, stack: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
        self.config_file = self.state_dir / "latency.json"
        self.config_file.write_text(json.dumps(config, indent=2) + "\n")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_PROXY_")},
            "SANDBOX_DIR": str(self.state_dir),
            "SANDBOX_LOCALSTACK_PORT": str(urlsplit(stack["aws_endpoint"]).port),
            "SANDBOX_OSMEM_PORT": str(urlsplit(stack["opensearch_endpoint"]).port),
            "SANDBOX_PROXY_AWS_PORT": str(free_port()),
            "SANDBOX_PROXY_OPENSEARCH_PORT": str(free_port()),
        }
        self.aws_endpoint = f"http://127.0.0.1:{self.env['SANDBOX_PROXY_AWS_PORT']}"
        self.opensearch_endpoint = f"http://127.0.0.1:{self.env['SANDBOX_PROXY_OPENSEARCH_PORT']}"
        self.pid: int | None = None

    def _ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(CTL), *args]
        return subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, timeout=180, check=False
        )

    def __enter__(self) -> PrivateProxy:
        done = self._ctl("proxy", "up", "--config", str(self.config_file))
        if done.returncode != 0:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            raise RuntimeError(f"bench: private proxy did not start:\n{done.stdout}{done.stderr}")
        self.pid = int((self.state_dir / "run" / "proxy.pid").read_text())
        print(f"latency proxy (pid {self.pid}): {done.stdout.strip()}", flush=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        done = self._ctl("proxy", "down")
        if done.returncode != 0:
            print(f"bench: proxy down failed: {done.stderr}", flush=True)
        pid = self.pid
        deadline = time.monotonic() + 15
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and _alive(pid):
            print(f"bench: proxy pid {pid} still running after proxy down", flush=True)
        else:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def stats(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.state_dir / "proxy" / "stats.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def settled_stats(self, timeout: float = 10.0) -> dict[str, Any]:
        """The counters once the last requests are written (the file lags up to ~1 s)."""
        deadline = time.monotonic() + timeout
        last = self.stats()
        while time.monotonic() < deadline:
            time.sleep(1.3)
            now = self.stats()
            if now.get("totals") == last.get("totals"):
                return now
            last = now
        return last


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# -- what one call costs, direct and through the proxy ----------------------------------


@dataclass(frozen=True)
class Calibration:
    """Per-call times (ms) of one kind of call, direct and through the proxy."""

    label: str
    service: str
    action: str
    calls: int
    direct_ms: float
    proxied_ms: float
    modelled_ms: float  # what the proxy's draws added on average (its stats file)

    @property
    def added_ms(self) -> float:
        """The effective per-call latency the model adds: its draw plus the proxy itself."""
        return self.proxied_ms - self.direct_ms

    @property
    def proxy_ms(self) -> float:
        """What the proxy itself adds beyond the modelled draw."""
        return self.added_ms - self.modelled_ms


def timed_ms(call: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def calibrate(
    proxy: PrivateProxy,
    probes: list[tuple[str, str, str, Callable[[], object], Callable[[], object]]],
    calls: int = 60,
    rounds: int = 3,
) -> list[Calibration]:
    """Median per-call time of each probe direct and through the proxy, in alternating rounds.

    ``probes``: (label, service, action, direct call, proxied call). The modelled
    part comes from the proxy's own counters for that action over the run.
    """
    results = []
    for label, service, action, direct, proxied in probes:
        direct()  # connections open, botocore's caches warm
        proxied()
        before = proxy.settled_stats(5)
        times: dict[str, list[float]] = {"direct": [], "proxied": []}
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            times["direct"] += timed_ms(direct, per_round)
            times["proxied"] += timed_ms(proxied, per_round)
        after = proxy.settled_stats(5)
        key = (service, action)
        n = diff(request_counts(after), request_counts(before)).get(key, 0)
        added = added_ms(after).get(key, 0.0) - added_ms(before).get(key, 0.0)
        results.append(
            Calibration(
                label,
                service,
                action,
                len(times["proxied"]),
                statistics.median(times["direct"]),
                statistics.median(times["proxied"]),
                added / n if n else modelled_ms(service, action),
            )
        )
    return results


def model_preamble(rows: list[Calibration]) -> list[str]:
    """Markdown lines a report starts with under the model: what it is and the calibration."""
    return [
        "Latency model (bench/aws_latency.py), added by a private proxy to every measured "
        "call; what one call cost in this run, direct and through the proxy:",
        "",
        *calibration_table(rows),
        "",
    ]


def calibration_table(rows: list[Calibration]) -> list[str]:
    """Markdown lines: direct, through the proxy, modelled, the proxy's own share."""
    lines = [
        "| call (median of n) | n | direct | through the proxy | added: model + proxy "
        "| of which the model | of which the proxy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r.label} | {r.calls} | {r.direct_ms:.1f} ms | {r.proxied_ms:.1f} ms "
        f"| {r.added_ms:.1f} ms | {r.modelled_ms:.1f} ms | {r.proxy_ms:.1f} ms |"
        for r in rows
    ]
    return lines


def probes(
    direct: tuple[Any, Any, Any],
    proxied: tuple[Any, Any, Any],
    queue_url: str,
    bucket: str,
    index: str,
) -> list[tuple[str, str, str, Callable[[], object], Callable[[], object]]]:
    """One call of each kind the benchmarks make, direct and through the proxy.

    ``direct`` and ``proxied`` are (sqs, s3, opensearch) clients; the probe
    object and documents are written directly first.
    """
    _, s3, search = direct
    key = "probe/object.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 200)
    ids = [f"probe-{i}" for i in range(10)]
    docs: list[dict[str, Any]] = []
    for i in ids:
        docs += [{"index": {"_index": index, "_id": i}}, {"content": "probe"}]
    search.bulk(body=docs, refresh=True)

    def calls(clients: tuple[Any, Any, Any]) -> list[Callable[[], object]]:
        q, o, os_ = clients
        return [
            lambda: q.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
            ),
            lambda: o.get_object(Bucket=bucket, Key=key)["Body"].read(),
            lambda: o.put_object(Bucket=bucket, Key="probe/put.json", Body=b"{}"),
            lambda: os_.bulk(body=docs),
            lambda: os_.mget(index=index, body={"ids": ids}, _source=False),
        ]

    kinds = [
        ("SQS GetQueueAttributes", "sqs", "GetQueueAttributes"),
        ("S3 GetObject (200 B)", "s3", "GetObject"),
        ("S3 PutObject (2 B)", "s3", "PutObject"),
        ("OpenSearch bulk (10 docs)", "opensearch", "bulk"),
        ("OpenSearch mget (10 ids)", "opensearch", "mget"),
    ]
    return [(*kind, d, p) for kind, d, p in zip(kinds, calls(direct), calls(proxied), strict=True)]


class PhaseCounter:
    """The proxy's request counts per phase label, taken the first time a label runs.

    Reading settled counters costs a few seconds, so later rounds are not counted.
    """

    def __init__(self, proxy: PrivateProxy | None) -> None:
        self.proxy = proxy
        self.calls: dict[str, tuple[Counts, int]] = {}

    def phase(self, label: str, messages: int, run: Any, *args: Any, **kwargs: Any) -> Any:
        """``run(*args, **kwargs)``, counting its calls through the proxy the first time."""
        if self.proxy is None or label in self.calls:
            return run(*args, **kwargs)
        before = request_counts(self.proxy.settled_stats())
        result = run(*args, **kwargs)
        after = request_counts(self.proxy.settled_stats())
        self.calls[label] = (diff(after, before), messages)
        return result

    def lines(self) -> list[str]:
        """Markdown bullet lines: calls per message per phase."""
        if not self.calls:
            return []
        return [
            "Calls per message through the proxy (first round; counted by the proxy):",
            "",
            *[f"- {label}: {per_message(c, n)}" for label, (c, n) in self.calls.items()],
        ]
