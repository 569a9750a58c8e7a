"""Shadow traffic in kserve mode, where KServe cannot mirror: the answering predictor sends copies itself.

Sender side (:class:`Mirror`, on the stable and canary predictors): after a request has been answered, its id,
protocol and texts are handed to :meth:`Mirror.submit`, which keeps ``percent`` % of them (every request adds
``percent`` credits, one copy costs 100: exactly that share, evenly spread, no random draw) and appends the kept
ones to a bounded deque; nothing else happens on the request path. A background task on the same event loop
encodes the copies as NDJSON records ``{"id", "protocol", "texts"}`` and POSTs them in batches (a POST per
request would cost the predictor more CPU than the request itself) to the shadow's
``POST /v1/models/<name>/mirror``, at most ``concurrency`` POSTs in flight. A full deque drops the new copy, a
failed POST drops its batch; both counted (``kube_sentiment_mirror_total``), never raised, never waited for: the
primary answer is neither slowed nor failed by the shadow.

Shadow side (:func:`install_mirror_route`, on a predictor of track ``shadow``): the endpoint answers each record
like a request of its own (same validation, same micro-batching) and logs its events with ``mirror_of`` = the
record's id (the live request's id, so the shadow's answer to text ``i`` pairs with the live event ``<id>:<i>``);
its answers go nowhere else. 202 ``{"accepted": n, "refused": m}``; records that break the input contract are
refused one by one (logged in one line), a body that is not NDJSON is a 400, a predictor that is no shadow a 409.

In deployment mode the Gateway's RequestMirror filter sends the copies instead, as ordinary requests carrying the
live request's ``x-request-id``: the shadow predictor takes ``mirror_of`` from it (``serving.model``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import httpx
import orjson
from fastapi import Request
from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
OUTCOMES = ("sent", "dropped_queue_full", "dropped_send_failed", "dropped_unencodable")


class Mirror:
    """Bounded, batched, fire-and-forget copies of answered requests to the shadow predictor."""

    def __init__(
        self,
        url: str,
        model_name: str,
        percent: int,
        registry: CollectorRegistry | None = None,
        queue_size: int = 1000,
        concurrency: int = 8,
        timeout_s: float = 2.0,
        batch_size: int = 512,
        batch_texts: int = 4096,
        flush_interval_s: float = 0.1,
    ) -> None:
        """Nothing starts here; the sender starts with the first copy, inside the server's event loop."""
        from prometheus_client import REGISTRY

        self.endpoint = f"{url.rstrip('/')}/v1/models/{model_name}/mirror"
        self.percent = percent
        self.queue_size = queue_size
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.batch_texts = batch_texts
        self.flush_interval_s = flush_interval_s
        self._credit = 0
        self._pending: deque[tuple[str, str, list[str]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._failing = False
        self.counts = dict.fromkeys(OUTCOMES, 0)
        counter = Counter("kube_sentiment_mirror", "Copies of requests for the shadow track by outcome: sent, "
                          "dropped_queue_full, dropped_send_failed, dropped_unencodable.", ["outcome"],
                          registry=REGISTRY if registry is None else registry)
        self._counters = {o: counter.labels(o) for o in OUTCOMES}

    @property
    def queued(self) -> int:
        """Copies waiting to be sent."""
        return len(self._pending)

    def _count(self, outcome: str, n: int = 1) -> None:
        if n:
            self.counts[outcome] += n
            self._counters[outcome].inc(n)

    def submit(self, request_id: str, protocol: str, texts: list[str]) -> None:
        """Keep a copy of this answered request for the shadow (``percent`` % of requests); never raises."""
        self._credit += self.percent
        if self._credit < 100:
            return
        self._credit -= 100
        if len(self._pending) >= self.queue_size:
            self._count("dropped_queue_full")
            return
        self._pending.append((request_id, protocol, texts))
        if self._task is None:
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(self.concurrency)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kube-sentiment-mirror")
        elif len(self._pending) >= self.batch_size and self._wake is not None:
            self._wake.set()

    def _encode(self) -> tuple[bytes, int]:
        """Up to ``batch_size`` copies (and ``batch_texts`` texts, or one copy) as NDJSON; copies that cannot be
        encoded are dropped and counted."""
        lines: list[bytes] = []
        n_texts = 0
        while self._pending and len(lines) < self.batch_size and (
                not lines or n_texts + len(self._pending[0][2]) <= self.batch_texts):
            request_id, protocol, texts = self._pending.popleft()
            n_texts += len(texts)
            try:
                lines.append(orjson.dumps({"id": request_id, "protocol": protocol, "texts": texts}))
            except orjson.JSONEncodeError:  # a text that is not valid Unicode
                self._count("dropped_unencodable")
        return b"\n".join(lines) + b"\n", len(lines)

    async def _run(self) -> None:
        assert self._wake is not None and self._slots is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while self._pending:
                    await self._slots.acquire()  # at most `concurrency` POSTs in flight; copies queue meanwhile
                    body, n = self._encode()
                    if not n:
                        self._slots.release()
                        continue
                    task = asyncio.get_running_loop().create_task(self._post(body, n))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the sender for good
                log.exception("shadow mirror sender failed; continuing")

    async def _post(self, body: bytes, n: int) -> None:
        assert self._slots is not None
        try:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=self.timeout_s,
                                                 limits=httpx.Limits(max_connections=self.concurrency))
            try:
                response = await self._client.post(self.endpoint, content=body, headers={"content-type": NDJSON})
                ok, problem = response.status_code < 300, f"HTTP {response.status_code}"
            except httpx.HTTPError as e:
                ok, problem = False, f"{type(e).__name__}: {e}"
            self._count("sent" if ok else "dropped_send_failed", n)
            if ok and self._failing:
                log.info("copies reach the shadow %s again", self.endpoint)
            elif not ok and not self._failing:  # the transition, not every failed batch
                log.warning("dropping copies for the shadow: %s failed (%s)", self.endpoint, problem)
            self._failing = not ok
        finally:
            self._slots.release()

    async def flush(self, deadline_s: float = 5.0) -> None:
        """Send everything queued now and wait for the POSTs in flight (tests, benchmarks, shutdown)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        if self._wake is not None:
            self._wake.set()
        while (self._pending or self._in_flight) and loop.time() < end:
            await asyncio.sleep(0.005)  # the sender task does the work; this only waits, bounded by the deadline

    async def aclose(self) -> None:
        """Stop the sender; copies still queued are dropped (the shadow's data, never an answer)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._in_flight):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def parse_records(body: bytes) -> list[tuple[str, str, Any]]:
    """The ``(id, protocol, texts)`` records of a mirror body; ``ValueError`` naming the first broken line."""
    records = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise ValueError(f"line {number} is not JSON ({e})") from e
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise ValueError(f'line {number} must be an object {{"id": "<request id>", "protocol": ..., '
                             '"texts": [...]}} with a non-empty string id')
        protocol = record.get("protocol", "v1")
        if protocol not in ("v1", "v2-rest", "v2-grpc"):
            raise ValueError(f"line {number}: protocol {protocol!r} is not v1, v2-rest or v2-grpc")
        records.append((record["id"], protocol, record.get("texts")))
    return records


def groups(records: list[tuple[str, str, Any]], room: int) -> list[list[tuple[str, str, Any]]]:
    """Consecutive records in groups of at most ``room`` texts (or one record): answered together, the copies of
    one group never overflow the micro-batching queue."""
    out: list[list[tuple[str, str, Any]]] = []
    size = 0
    for record in records:
        n = len(record[2]) if isinstance(record[2], list) else 1
        if not out or size + n > room:
            out.append([])
            size = 0
        out[-1].append(record)
        size += n
    return out


def install_mirror_route(model: Any) -> None:
    """``POST /v1/models/<name>/mirror`` on KServe's FastAPI app (``kserve.model_server.app``), before start."""
    from kserve.model_server import app

    from serving.bodies import JsonAnswer
    from serving.errors import BadInput, NotReady

    async def mirror(name: str, request: Request) -> JsonAnswer:
        if name != model.name:
            return JsonAnswer(status_code=404, content={"error": f"model {name!r} is not served here; "
                                                                 f"this predictor serves {model.name!r}"})
        if model.settings.track != "shadow":
            return JsonAnswer(status_code=409, content={"error": f"this predictor serves track "
                                                                 f"{model.settings.track!r}; copies go to a "
                                                                 "predictor of track 'shadow'"})
        if not model.ready:
            return JsonAnswer(status_code=503, content={"error": "the model is not loaded yet"})
        try:
            records = parse_records(await request.body())
        except ValueError as e:
            log.info("mirror body refused: %s", e)
            return JsonAnswer(status_code=400, content={"error": f"not a mirror body: {e}"})

        async def one(record: tuple[str, str, Any]) -> bool:
            try:
                await model.answer_copy(*record)
                return True
            except (BadInput, NotReady) as e:
                log.info("copy of request %s refused: %s", record[0], e)
                return False

        answered: list[bool] = []
        for group in groups(records, max(1, model.settings.max_queued_texts // 2)):
            answered += await asyncio.gather(*(one(r) for r in group))
        return JsonAnswer(status_code=202, content={"accepted": sum(answered),
                                                    "refused": len(answered) - sum(answered)})

    # FastAPI reads the handler's annotations to bind its parameters: ``Request`` must resolve at module level.
    app.add_api_route("/v1/models/{name}/mirror", mirror, methods=["POST"])
