"""The event emitter: NDJSON batches to the sidecar, never blocking a request; drops are counted."""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from prometheus_client import CollectorRegistry

from serving.emitter import EventContext, EventEmitter
from serving.eventlog.events import validate_event
from serving.metrics import ServingMetrics
from tests.support import free_port
from tests.support.servers import EventSink


def emitter(url: str, **kwargs: object) -> tuple[EventEmitter, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = ServingMetrics("sentiment", "9", "stable", registry)
    context = EventContext("sentiment", "9", "stable", "test", ("neg", "pos"), log_text=True)
    return EventEmitter(url, context, metrics, flush_interval_s=0.05, **kwargs), registry


def test_events_are_sent_as_ndjson_in_batches(event_sink: EventSink) -> None:
    em, registry = emitter(event_sink.url, batch_size=3)
    probs = np.array([[0.2, 0.8], [0.9, 0.1]])

    async def run() -> None:
        for i in range(4):
            em.submit(f"unit-{i}", "v1", ["good", "bad"], probs, 1.5)
        await em.flush()
        await em.aclose()

    asyncio.run(run())
    mine = [e for e in event_sink.snapshot() if e["request_id"].startswith("unit-")]
    assert len(mine) == 8 and em.sent == 8 and em.dropped == 0
    for event in mine:
        validate_event(event)
    first = next(e for e in mine if e["id"] == "unit-0:0")
    assert first["text"] == "good" and first["label"] == "pos" and first["confidence"] == 0.8
    assert registry.get_sample_value(
        "kube_sentiment_events_total", {"model_name": "sentiment", "model_version": "9", "outcome": "sent"}) == 8


def test_a_request_whose_events_cannot_be_encoded_is_dropped_and_counted(event_sink: EventSink) -> None:
    em, registry = emitter(event_sink.url)
    probs = np.array([[0.2, 0.8]])

    async def run() -> None:
        em.submit("enc-ok-1", "v1", ["good"], probs, 1.0)
        em.submit("enc-bad", "v1", ["lone \ud800 surrogate"], probs, 1.0)  # not valid Unicode
        em.submit("enc-ok-2", "v1", ["fine"], probs, 1.0)
        await em.flush()
        em.submit("enc-bad-alone", "v1", ["\udfff"], probs, 1.0)  # a batch with nothing left to send
        await em.flush()
        await em.aclose()

    asyncio.run(run())
    assert sorted(e["id"] for e in event_sink.snapshot() if e["request_id"].startswith("enc-")) == [
        "enc-ok-1:0", "enc-ok-2:0"]
    assert em.sent == 2 and em.dropped == 2 and em.queued == 0 and not em._failing
    assert registry.get_sample_value("kube_sentiment_events_total", {
        "model_name": "sentiment", "model_version": "9", "outcome": "dropped_unencodable"}) == 2


def test_flush_waits_for_the_batch_the_background_sender_has_in_flight(event_sink: EventSink) -> None:
    em, _ = emitter(event_sink.url, batch_size=40, queue_size=10_000)
    probs = np.array([[0.2, 0.8]])

    async def run() -> None:
        for i in range(3000):
            em.submit(f"race-{i}", "v1", ["good"], probs, 1.0)
            if i % 100 == 0:
                await asyncio.sleep(0.001)  # the background sender takes and sends batches meanwhile
        await em.flush(deadline_s=30)
        await em.aclose()

    asyncio.run(run())
    ids = [e["id"] for e in event_sink.snapshot() if e["request_id"].startswith("race-")]
    assert em.sent == 3000 and em.queued == 0 and em.dropped == 0
    assert sorted(ids) == sorted(f"race-{i}:0" for i in range(3000))


def test_a_send_interrupted_at_shutdown_is_sent_by_drain(event_sink: EventSink) -> None:
    stalled = threading.Event()

    class Stalling(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # never answers: the sender is stopped while waiting here
            stalled.set()
            self.rfile.read(int(self.headers.get("content-length", "0")))
            time.sleep(5)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    em, _ = emitter(f"http://127.0.0.1:{server.server_address[1]}/v1/events", batch_size=10, timeout_s=30)

    async def run() -> None:
        em.submit("cut", "v1", ["good"] * 4, np.array([[0.2, 0.8]] * 4), 1.0)
        while not stalled.is_set():
            await asyncio.sleep(0.01)  # the background sender's POST is in flight
        await em.aclose()  # the server stops: the send is cancelled

    asyncio.run(run())
    server.shutdown()
    server.server_close()
    assert em.queued == 4 and em.sent == 0  # not lost, not counted as sent
    em.url = event_sink.url
    em.drain(deadline_s=10)
    assert em.queued == 0 and em.sent == 4
    assert {e["id"] for e in event_sink.snapshot() if e["request_id"] == "cut"} == {f"cut:{i}" for i in range(4)}


def test_events_are_dropped_and_counted_when_the_queue_is_full_or_the_sidecar_is_down() -> None:
    em, registry = emitter(f"http://127.0.0.1:{free_port()}/v1/events", queue_size=5, timeout_s=1.0)
    probs = np.array([[0.5, 0.5]] * 3)

    async def run() -> None:
        em.submit("a", "v1", ["x"] * 3, probs, 1.0)
        em.submit("b", "v1", ["x"] * 3, probs, 1.0)  # would exceed 5: dropped at once, never blocks
        await em.flush()  # the sidecar is down: the batch is dropped, no exception
        await em.aclose()

    asyncio.run(run())
    labels = {"model_name": "sentiment", "model_version": "9"}
    assert registry.get_sample_value("kube_sentiment_events_total", labels | {"outcome": "dropped_queue_full"}) == 3
    assert registry.get_sample_value("kube_sentiment_events_total", labels | {"outcome": "dropped_send_failed"}) == 3
    assert em.queued == 0 and em.sent == 0 and em.dropped == 6
