"""The shipper's HTTP app, built by :func:`create_app` from settings (no module-level app).

Routes:

``POST /v1/events``  NDJSON prediction events (``serving.eventlog.events``); 202 ``{"accepted", "quarantined"}`` once
                     they are fsync'ed; 400 when every line was malformed (they are quarantined all the same);
                     415 wrong content type; 413 body too large; 503 + ``Retry-After`` when the spool is full.
                     For producers outside the pod: the predictor beside it writes to its journal files instead,
                     which the tailer thread reads (``serving.shipper.tailer``).
``POST /``           KServe payload-logger CloudEvents in HTTP binary mode (``ce-*`` headers); request and
                     response halves are joined by ``ce-id`` into prediction events. 202 / 400 / 503 as above.
``GET /healthz``     200 while the flusher and tailer threads run.
``GET /readyz``      200 once the spool is recovered and the flusher and tailer run. A full spool or a down sink
                     does not make the pod unready (that would turn a logging outage into a serving outage); both
                     are reported in the body and by the metrics; the predictors' journal files wait on disk.
``GET /metrics``     Prometheus text format.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from serving.bodies import BodyTooLarge, read_body
from serving.eventlog.journal import JournalReader
from serving.shipper.cloudevents import JoinDefaults, Joiner, make_half
from serving.shipper.flusher import Flusher
from serving.shipper.metrics import ShipMetrics
from serving.shipper.settings import ShipSettings
from serving.shipper.sinks import Sink, build_sink
from serving.shipper.spool import Spool, SpoolFull
from serving.shipper.tailer import Tailer
from serving.shipper.wire import (
    SOURCE_KSERVE,
    SOURCE_PREDICTOR,
    MalformedInput,
    journal_positions,
    parse_ndjson,
    quarantine_line,
    spooled_halves,
)

log = logging.getLogger(__name__)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-lines")


@dataclass
class Shipper:
    """The parts of one running shipper, shared by the routes."""

    settings: ShipSettings
    spool: Spool
    sink: Sink
    joiner: Joiner
    flusher: Flusher
    metrics: ShipMetrics
    tailer: Tailer | None = None
    ready: bool = False

    def start(self) -> None:
        """Recover the spool, rebuild waiting CloudEvent halves and the journal positions, start the tailer and the
        flusher."""
        segments = self.spool.recover()
        halves: list[Any] = []
        joined: set[str] = set()
        positions: dict[str, int] = {}
        for segment in segments:
            lines = segment.lines()
            segment_halves, segment_joined = spooled_halves(lines)
            halves.extend(segment_halves)
            joined.update(segment_joined)
            for stem, offset in journal_positions(lines).items():
                positions[stem] = max(offset, positions.get(stem, 0))
        self.joiner.restore(halves, joined)
        journal = self.settings.resolved_journal_dir
        journal.mkdir(parents=True, exist_ok=True)
        self.tailer = Tailer(JournalReader(journal, positions), self.spool, self.metrics,
                             self.settings.journal_poll_interval_s, on_sealed=self.flusher.wake)
        tailer = self.tailer
        self.spool.carry_forward = lambda: [*self.joiner.pending_lines(), *tailer.position_lines()]
        self.spool.carry()
        if segments:
            log.info("recovered %d spooled segment(s) (%d records) to ship; resuming %d journal file(s)",
                     len(segments), self.spool.pending_records, len(positions))
        self.flusher.update_gauges()
        self.tailer.start()
        self.flusher.start()
        self.ready = True
        log.info("shipper ready", extra={"sink": self.sink.describe(), "spool": str(self.spool.directory),
                                         "journal": str(journal)})

    @property
    def alive(self) -> bool:
        """Whether the flusher and the tailer threads run."""
        return self.flusher.alive and (self.tailer is None or self.tailer.alive)

    def stop(self) -> None:
        """Read what the predictors left in their journals, then flush what is spooled, within the drain timeout."""
        self.ready = False
        started = time.monotonic()
        # the tailer normally catches up in milliseconds; half the time at most, the flusher gets the rest
        caught_up = self.tailer.stop(self.settings.drain_timeout_s / 2) if self.tailer is not None else True
        left = max(0.0, self.settings.drain_timeout_s - (time.monotonic() - started))
        done = self.flusher.stop(left)
        self.spool.close()
        log.info("shipper stopped; %s%s", "spool drained" if done else
                 f"{self.spool.pending_records} record(s) stay spooled for the next start",
                 "" if caught_up else "; journal files not read yet stay for the next start")


def build_shipper(settings: ShipSettings, sink: Sink | None = None) -> Shipper:
    """Wire spool, sink, joiner, flusher and metrics from settings (``sink`` overrides the configured one)."""
    metrics = ShipMetrics()
    spool = Spool(settings.spool_dir, settings.shipper_id, settings.segment_max_bytes,
                  settings.segment_max_age_s, settings.spool_max_bytes)
    joiner = Joiner(
        JoinDefaults(settings.environment, settings.model_name, settings.model_version, settings.track,
                     tuple(settings.classes)),
        settings.join_ttl_s,
        settings.max_pending_halves,
    )
    the_sink = sink if sink is not None else build_sink(settings)
    flusher = Flusher(spool, the_sink, joiner, metrics, settings.poll_interval_s, settings.sink_backoff_max_s)
    return Shipper(settings, spool, the_sink, joiner, flusher, metrics)


def create_app(settings: ShipSettings, sink: Sink | None = None) -> Starlette:
    """The shipper's ASGI app. Startup recovers the spool and starts the flusher; shutdown drains it."""
    shipper = build_shipper(settings, sink)
    metrics = shipper.metrics

    def busy(reason: str) -> Response:
        """503 with ``Retry-After``: the spool is full."""
        metrics.rejected.labels(reason).inc()
        return JSONResponse(
            {"error": "spool full: the sink is behind or down; retry later", "reason": reason},
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    async def spool_lines(lines: list[bytes]) -> None:
        """Append durably (in a worker thread); wake the flusher when a segment was sealed."""
        seals = shipper.spool.seals
        await anyio.to_thread.run_sync(shipper.spool.append, lines)
        if shipper.spool.seals != seals:
            shipper.flusher.wake()

    async def accepted_body(request: Request, hint: str = "") -> bytes | Response:
        """The request body, or the response refusing it: 503 while the spool is full, 413 when too large."""
        if shipper.spool.is_full():
            return busy("spool_full")
        try:
            return await read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            metrics.rejected.labels("too_large").inc()
            return JSONResponse({"error": f"body exceeds {settings.max_body_bytes} bytes{hint}"}, status_code=413)

    async def events(request: Request) -> Response:
        """``POST /v1/events``: NDJSON prediction events."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in NDJSON_TYPES:
            metrics.rejected.labels("content_type").inc()
            return JSONResponse({"error": f"content type {content_type!r} is not NDJSON; send "
                                 "'application/x-ndjson', one event per line"}, status_code=415)
        body = await accepted_body(request, "; send smaller batches")
        if isinstance(body, Response):
            return body
        good, bad, n = parse_ndjson(body, time.time())
        try:
            await spool_lines(good + bad)
        except SpoolFull:
            return busy("spool_full")
        metrics.events_in.labels(SOURCE_PREDICTOR).inc(n)
        metrics.quarantined.inc(len(bad))
        result = {"accepted": n, "quarantined": len(bad)}
        if n == 0 and bad:
            return JSONResponse(result | {"error": "no line is a valid prediction event; all were quarantined"},
                                status_code=400)
        return JSONResponse(result, status_code=202)

    async def cloudevent(request: Request) -> Response:
        """``POST /``: one KServe payload-logger CloudEvent (binary mode)."""
        body = await accepted_body(request)
        if isinstance(body, Response):
            return body
        now = time.time()
        try:
            half = make_half(request.headers, body, now)
        except MalformedInput as e:
            raw = orjson.dumps({"headers": dict(request.headers), "body": body.decode("utf-8", "replace")})
            try:
                await spool_lines([quarantine_line(str(e), raw, now)])
            except SpoolFull:
                return busy("spool_full")
            metrics.quarantined.inc()
            return JSONResponse({"error": str(e), "quarantined": 1}, status_code=400)
        lines, evicted = shipper.joiner.offer(half)
        try:
            await spool_lines(lines + evicted)
        except SpoolFull:
            return busy("spool_full")
        joined = sum(1 for line in lines if not line.startswith(b'{"_'))
        quarantined = len(evicted) + sum(1 for line in lines if line.startswith(b'{"_q"'))
        metrics.events_in.labels(SOURCE_KSERVE).inc(joined)
        metrics.quarantined.inc(quarantined)
        return JSONResponse({"accepted": joined, "quarantined": quarantined, "half": half["_h"]}, status_code=202)

    async def healthz(_: Request) -> Response:
        """``GET /healthz``: the flusher and tailer threads run."""
        alive = shipper.alive
        return JSONResponse({"status": "ok" if alive else "flusher or tailer stopped"},
                            status_code=200 if alive else 503)

    async def readyz(_: Request) -> Response:
        """``GET /readyz``: recovered, flushing and tailing; spool, journal and sink state in the body."""
        ok = shipper.ready and shipper.alive
        body = {"ready": ok, "spool_bytes": shipper.spool.bytes_used, "spool_max_bytes": settings.spool_max_bytes,
                "journal_pending_bytes": shipper.tailer.reader.pending_bytes if shipper.tailer else 0,
                "sink_healthy": shipper.flusher.sink_healthy}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def prometheus(_: Request) -> Response:
        """``GET /metrics``."""
        shipper.flusher.update_gauges()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        """Start the shipper before serving; drain it after the last request."""
        await anyio.to_thread.run_sync(shipper.start)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(shipper.stop)

    app = Starlette(
        routes=[
            Route("/v1/events", events, methods=["POST"]),
            Route("/", cloudevent, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.shipper = shipper
    return app
