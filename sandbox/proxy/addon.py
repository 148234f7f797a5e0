"""mitmproxy addon: the sandbox's fault-and-latency proxy (docs/sandbox.md).

Loaded by ``sandbox/ctl proxy up`` as ``mitmdump -s sandbox/proxy/addon.py`` in two
reverse-proxy modes (AWS side -> LocalStack, OpenSearch side -> osmem-server).
This file is the thin mitmproxy part; what to do with a request is decided by
``sandboxctl.faults`` (pure Python, unit-tested without mitmproxy).

Options (``--set NAME=VALUE``):
  faults_config  the live config file, re-read when it changes (a stat per request
                 and a 0.2 s poll); an invalid one is refused and logged
  faults_stats   where the counters are written (every second while traffic
                 flows, at each config load or refusal, and on shutdown)
  faults_sides   which listen port is which side: ``4576=aws,9210=opensearch``
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from mitmproxy import addonmanager, ctx, http

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # sandbox/: sandboxctl
from sandboxctl import faults

log = logging.getLogger("sandbox.proxy")

POLL_S = 0.2
STATS_EVERY_S = 1.0


class FaultProxy:
    def __init__(self) -> None:
        self.engine: faults.Engine | None = None
        self.sides: dict[int, str] = {}
        self._poller: asyncio.Task[None] | None = None

    def load(self, loader: addonmanager.Loader) -> None:
        loader.add_option("faults_config", str, "", "the live fault config file (JSON)")
        loader.add_option("faults_stats", str, "", "where the counters are written (JSON)")
        loader.add_option("faults_sides", str, "", "listen port -> side: 4576=aws,9210=opensearch")

    def configure(self, updated: set[str]) -> None:
        if "faults_sides" in updated:
            self.sides = {}
            for item in filter(None, ctx.options.faults_sides.split(",")):
                port, side = item.split("=", 1)
                if side not in ("aws", "opensearch"):
                    raise ValueError(f"faults_sides: unknown side {side!r}")
                self.sides[int(port)] = side
        if "faults_config" in updated or "faults_stats" in updated:
            if not ctx.options.faults_config or not ctx.options.faults_stats:
                raise ValueError("faults_config and faults_stats are required")
            self.engine = faults.Engine(
                Path(ctx.options.faults_config), Path(ctx.options.faults_stats)
            )
            self.engine.maybe_reload()
            self.engine.write_stats()

    async def running(self) -> None:
        self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        """Reload a changed config while idle; write the counters when they changed."""
        last_write = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(POLL_S)
            engine = self.engine
            if engine is None:
                continue
            changed = engine.maybe_reload()
            now = loop.time()
            if changed or (engine.dirty and now - last_write >= STATS_EVERY_S):
                engine.write_stats()
                last_write = now

    def _route(self, flow: http.HTTPFlow) -> faults.Route | None:
        side = self.sides.get(flow.client_conn.sockname[1])
        req = flow.request
        if side == "opensearch":
            return faults.classify_opensearch(req.method, req.path)
        if side == "aws":
            return faults.classify_aws(req.method, req.path, req.headers, req.raw_content or b"")
        return None

    async def request(self, flow: http.HTTPFlow) -> None:
        engine = self.engine
        if engine is None:
            return
        plan = engine.plan(self._route(flow))
        if plan.passes and not plan.reset_after:
            return
        flow.metadata["sandbox_faults"] = plan
        if plan.stall_s:
            await asyncio.sleep(plan.stall_s)
            _close(flow)
            return
        if plan.latency_s:
            await asyncio.sleep(plan.latency_s)  # this flow only: others go on
        if plan.reset_before:
            _close(flow)
        elif plan.error is not None and plan.route is not None:
            status, headers, body = faults.error_reply(plan.route, plan.error, flow.request.method)
            flow.response = http.Response.make(status, body, headers)

    def response(self, flow: http.HTTPFlow) -> None:
        plan = flow.metadata.get("sandbox_faults")
        if plan is None or not plan.reset_after or flow.response is None:
            return
        _close(flow)
        if self.engine is not None and plan.route is not None:
            self.engine.reset_after_done(plan.route)

    async def done(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.engine is not None:
            self.engine.write_stats()


def _close(flow: http.HTTPFlow) -> None:
    """Close the client's connection without an answer (mitmproxy's kill)."""
    if flow.killable:
        flow.kill()


addons = [FaultProxy()]
