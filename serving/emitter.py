"""Prediction events to the monitoring sidecar: bounded, batched, never in the way of a prediction.

A request hands one compact record (its texts and probability matrix) to :meth:`EventEmitter.submit`, which only
appends to a deque: no serialisation, no hashing, no I/O on the request path. A background task on the same event
loop encodes each request as one NDJSON line (``serving.eventlog.events.RequestEncoder``; the sidecar expands it
into one event per text), in slices of about ``ENCODE_SLICE`` events, giving the loop back between slices so requests
never wait behind a whole batch, and POSTs them in batches of about ``batch_size`` events (a request is never
split, so a batch may exceed it by one request's texts) and at least every ``flush_interval_s``, and counts what
was sent. When more than ``queue_size`` events wait (sidecar slow or down), new ones are dropped and counted; a
failed POST drops its batch and is counted.
A batch stays in memory until the sidecar answered, so a send cut short by shutdown is sent again by
:meth:`EventEmitter.drain` (at least once; the drift job de-duplicates by event id). Nothing here raises into a
request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

import httpx
import numpy as np

from serving.eventlog.events import RequestEncoder
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
ENCODE_SLICE = 32


@dataclass(frozen=True)
class EventContext:
    """What is the same for every event of this predictor."""

    model_name: str
    model_version: str
    track: str
    environment: str
    classes: tuple[str, ...]
    log_text: bool


_Record = tuple[str, float, str, list[str], np.ndarray, float]
"""request id, time, protocol, texts, probabilities, latency in ms: one request's events, not yet encoded."""


class EventEmitter:
    """Bounded in-memory queue plus a background sender of NDJSON batches."""

    def __init__(
        self,
        url: str,
        context: EventContext,
        metrics: ServingMetrics,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        timeout_s: float = 2.0,
    ) -> None:
        """Nothing starts here; the sender task starts with the first event inside the server's loop."""
        self.url = url
        self.context = context
        self._metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.timeout_s = timeout_s
        self._encoder = RequestEncoder(
            context.model_name, context.model_version, context.track, context.environment, context.classes,
            context.log_text,
        )
        self._records: deque[_Record] = deque()
        self._queued = 0  # events accepted and not yet sent or dropped: waiting in records, or encoded
        self._waiting = 0  # events not yet encoded
        self._encoded: list[bytes] = []  # lines encoded and not yet sent or dropped; kept when a send is interrupted
        self._encoded_events = 0  # events in those lines
        self._sending = asyncio.Lock()  # one batch in flight at a time (background sender or flush)
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        self.dropped = 0
        self._failing = False

    @property
    def queued(self) -> int:
        """Events in memory: accepted and not yet sent or dropped."""
        return self._queued

    def submit(
        self, request_id: str, protocol: str, texts: list[str], probs: np.ndarray, latency_ms: float
    ) -> None:
        """Queue the events of one request, or drop and count them when the queue is full. Never raises."""
        n = len(texts)
        if self._queued + n > self.queue_size:
            self.dropped += n
            self._metrics.event("dropped_queue_full", n)
            return
        self._records.append((request_id, time.time(), protocol, texts, probs, latency_ms))
        self._queued += n
        self._waiting += n
        if self._task is None:
            self._start()
        if self._queued >= self.batch_size and self._wake is not None:
            self._wake.set()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="kube-sentiment-events")

    def _take(self, limit: int) -> None:
        """Encode queued requests (whole ones) into ``_encoded`` until at least ``limit`` more events are in it."""
        n = 0
        while self._records and n < limit:
            request_id, ts, protocol, texts, probs, latency_ms = self._records.popleft()
            try:
                line = self._encoder.line(request_id, ts, protocol, texts, probs, latency_ms)
            except Exception as e:  # a text that is not valid Unicode: drop its events, keep the others going
                self._waiting -= len(texts)
                self._queued -= len(texts)
                self.dropped += len(texts)
                self._metrics.event("dropped_unencodable", len(texts))
                log.warning("dropping the events of request %s: they cannot be encoded (%s)", request_id, e)
                continue
            self._encoded.append(line)
            n += len(texts)
        self._waiting -= n
        self._encoded_events += n

    async def _encode_batch(self) -> None:
        """Encode about ``batch_size`` events into ``_encoded``, a slice at a time, letting requests run between."""
        while self._waiting and self._encoded_events < self.batch_size:
            self._take(min(ENCODE_SLICE, self.batch_size - self._encoded_events))
            await asyncio.sleep(0)

    async def _send_encoded(self) -> None:
        """POST the encoded batch; count it as sent or dropped. Never raises (but may be cancelled: then the batch
        stays encoded, and ``drain`` sends it)."""
        if not self._encoded:  # everything taken was dropped as unencodable
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        body = b"\n".join(self._encoded) + b"\n"
        try:
            response = await self._client.post(self.url, content=body, headers={"content-type": NDJSON})
            ok = response.status_code < 300
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as e:
            ok, problem = False, f"{type(e).__name__}: {e}"
        self._account(ok, problem)

    def _account(self, ok: bool, problem: str) -> None:
        """Count the encoded batch as sent or dropped and forget it; log transitions between working and failing."""
        n = self._encoded_events
        self._encoded, self._encoded_events = [], 0
        self._queued -= n
        self._metrics.queued(self._queued)
        if ok:
            self.sent += n
            self._metrics.event("sent", n)
            if self._failing:
                log.info("prediction events reach %s again", self.url)
                self._failing = False
            return
        self.dropped += n
        self._metrics.event("dropped_send_failed", n)
        if not self._failing:  # log the transition, not every failed batch
            log.warning("dropping prediction events: sidecar %s failed (%s)", self.url, problem)
            self._failing = True

    async def _run(self) -> None:
        """Send whatever is queued every flush interval, or sooner when a full batch is waiting."""
        assert self._wake is not None
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the cancellation of aclose()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                async with self._sending:
                    while self._queued:
                        await self._encode_batch()
                        await self._send_encoded()
                        if self._failing or self._waiting < self.batch_size:
                            break  # a partial batch (or a failing sidecar) waits for the next interval
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the sender for good
                log.exception("prediction event sender failed; continuing")

    async def flush(self, deadline_s: float = 5.0) -> None:
        """Send everything queued now, including a batch the background sender has in flight (for tests and
        benchmarks), bounded by ``deadline_s``."""
        end = time.monotonic() + deadline_s
        async with self._sending:
            while self._queued and time.monotonic() < end:
                if not self._encoded:
                    self._take(self.batch_size)
                await self._send_encoded()

    def drain(self, deadline_s: float = 5.0) -> None:
        """Send what is still queued after the event loop has stopped (graceful shutdown), within ``deadline_s``,
        starting with a batch whose send the stop interrupted."""
        end = time.monotonic() + deadline_s
        with httpx.Client(timeout=min(self.timeout_s, deadline_s)) as client:
            while self._queued and time.monotonic() < end:
                if not self._encoded:
                    self._take(self.batch_size)
                    if not self._encoded:
                        continue
                try:
                    response = client.post(self.url, content=b"\n".join(self._encoded) + b"\n",
                                           headers={"content-type": NDJSON})
                    ok, problem = response.status_code < 300, f"HTTP {response.status_code}"
                except httpx.HTTPError as e:
                    ok, problem = False, f"{type(e).__name__}: {e}"
                self._account(ok, problem)
        if self._queued:
            log.warning("shutdown: %d prediction events not sent within %.0fs", self._queued, deadline_s)

    async def aclose(self) -> None:
        """Stop the sender and close its HTTP client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
