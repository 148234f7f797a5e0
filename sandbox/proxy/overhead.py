"""What the fault proxy adds per request with no faults configured.

    .venv/bin/python sandbox/proxy/overhead.py [--calls 1000] [--rounds 5]

Needs a running sandbox and proxy (``sandbox/ctl up && sandbox/ctl proxy up``;
SANDBOX_DIR and the SANDBOX_PROXY_* ports as for those). It makes ``--calls``
SQS GetQueueAttributes on the shared queue directly against LocalStack and as
many through the proxy, in alternating rounds in the same run (so both see the
same machine load), one boto3 client each (keep-alive, no retries), and prints
the per-call latency of both and their difference. The figure is in
docs/sandbox.md ("Fault and latency proxy").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sandboxctl.config import Config


def _client(endpoint: str, stack: dict[str, Any]) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=stack["region"],
        aws_access_key_id=stack["env"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=stack["env"]["AWS_SECRET_ACCESS_KEY"],
        config=BotoConfig(retries={"total_max_attempts": 1}),
    )


def _timed(client: Any, queue_url: str, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per path (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    args = parser.parse_args()
    cfg = Config.from_env()
    stack = json.loads(cfg.stack_file.read_text())
    direct = _client(stack["aws_endpoint"], stack)
    proxied = _client(f"http://127.0.0.1:{cfg.proxy_aws_port}", stack)
    per_round = max(1, args.calls // args.rounds)
    for client in (direct, proxied):  # connections and botocore's caches warm
        _timed(client, stack["queue_url"], 20)
    times: dict[str, list[float]] = {"direct": [], "proxy": []}
    for _ in range(args.rounds):
        times["direct"] += _timed(direct, stack["queue_url"], per_round)
        times["proxy"] += _timed(proxied, stack["queue_url"], per_round)
    print(f"{'path':8} {'calls':>6} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
    summary = {}
    for path, samples in times.items():
        samples.sort()
        mean = statistics.fmean(samples) * 1000
        p50 = samples[len(samples) // 2] * 1000
        p95 = samples[int(len(samples) * 0.95)] * 1000
        summary[path] = (mean, p50, p95)
        print(f"{path:8} {len(samples):6d} {mean:8.2f} {p50:8.2f} {p95:8.2f}")
    d_mean = summary["proxy"][0] - summary["direct"][0]
    d_p50 = summary["proxy"][1] - summary["direct"][1]
    print(f"added by the proxy: {d_mean:.2f} ms per call (mean), {d_p50:.2f} ms (p50)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
