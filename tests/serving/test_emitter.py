"""The event emitter: request records appended to the journal in batches by a background task, never blocking a
request; every event is written or counted as dropped, by reason."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from serving.emitter import EventContext, EventEmitter
from serving.eventlog.events import make_event, validate_event
from serving.eventlog.journal import DONE, OPEN, JournalReader, JournalWriter
from serving.metrics import ServingMetrics
from tests.support.events import journal_events

LABELS = {"model_name": "sentiment", "model_version": "9"}


def emitter(directory: Path, max_bytes: int = 1 << 24, file_bytes: int = 1 << 20,
            **kwargs: object) -> tuple[EventEmitter, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = ServingMetrics("sentiment", "9", "stable", registry)
    context = EventContext("sentiment", "9", "stable", "test", ("neg", "pos"), log_text=True)
    journal = JournalWriter(directory, max_bytes, file_bytes)
    return EventEmitter(journal, context, metrics, flush_interval_s=0.05, **kwargs), registry  # type: ignore[arg-type]


def count(registry: CollectorRegistry, outcome: str) -> float:
    return registry.get_sample_value("kube_sentiment_events_total", LABELS | {"outcome": outcome}) or 0.0


def test_the_background_task_writes_request_records_that_expand_into_the_contracts_events(tmp_path: Path) -> None:
    em, registry = emitter(tmp_path, batch_size=3)
    probs = np.array([[0.2, 0.8], [0.9, 0.1]])

    async def run() -> None:
        for i in range(4):
            em.submit(f"unit-{i}", "v1", ["good", "bad"], probs, 1.5)
        for _ in range(200):  # the task writes within its flush interval; no explicit flush
            if em.written == 8:
                break
            await asyncio.sleep(0.01)
        await em.aclose()

    asyncio.run(run())
    events = journal_events(tmp_path)
    assert len(events) == 8 and em.written == 8 and em.dropped == 0 and em.queued == 0
    first = next(e for e in events if e["id"] == "unit-0:0")
    assert first == orjson.loads(orjson.dumps(make_event(
        request_id="unit-0", index=0, ts=first["ts"], model_name="sentiment", model_version="9", track="stable",
        environment="test", protocol="v1", text="good", log_text=True, classes=("neg", "pos"),
        probabilities=[0.2, 0.8], latency_ms=1.5)))
    for event in events:
        validate_event(event)
    assert count(registry, "written") == 8
    assert [p.suffix for p in tmp_path.iterdir()] == [OPEN]  # one file, still being written
    em.close()
    assert [p.suffix for p in tmp_path.iterdir()] == [DONE]  # sealed at shutdown


def test_close_writes_what_is_still_queued(tmp_path: Path) -> None:
    em, _ = emitter(tmp_path)
    em.submit("left", "v2-grpc", ["a", "b", "c"], np.array([[0.5, 0.5]] * 3), 1.0)
    em.submit_line(b'{"schema": "kube-sentiment.test/v1", "id": "pre-encoded"}', events=1)
    em.close()  # no event loop ran: nothing was written before
    assert sorted(e["id"] for e in journal_events(tmp_path)) == ["left:0", "left:1", "left:2", "pre-encoded"]
    assert em.written == 4 and em.queued == 0


def test_an_unencodable_request_is_dropped_and_counted_the_rest_written(tmp_path: Path) -> None:
    em, registry = emitter(tmp_path)
    probs = np.array([[0.2, 0.8]])
    em.submit("enc-ok-1", "v1", ["good"], probs, 1.0)
    em.submit("enc-bad", "v1", ["lone \ud800 surrogate"], probs, 1.0)  # the model refuses these; still never raises
    em.submit("enc-ok-2", "v1", ["fine"], probs, 1.0)
    em.flush()
    assert sorted(e["id"] for e in journal_events(tmp_path)) == ["enc-ok-1:0", "enc-ok-2:0"]
    assert em.written == 2 and em.dropped == 1 and count(registry, "dropped_unencodable") == 1


def test_a_full_queue_drops_and_counts_at_once(tmp_path: Path) -> None:
    em, registry = emitter(tmp_path, queue_size=5)
    probs = np.array([[0.5, 0.5]] * 3)
    em.submit("a", "v1", ["x"] * 3, probs, 1.0)
    em.submit("b", "v1", ["x"] * 3, probs, 1.0)  # would exceed 5: dropped at once, never blocks
    em.flush()
    assert count(registry, "dropped_queue_full") == 3 and count(registry, "written") == 3


def test_a_full_journal_drops_and_counts_until_the_sidecar_reads(tmp_path: Path) -> None:
    em, registry = emitter(tmp_path, max_bytes=64 * 1024, file_bytes=8 * 1024)
    probs = np.array([[0.5, 0.5]])
    for i in range(2000):  # ~200 bytes a record: far more than 64 KiB
        em.submit(f"r{i}", "v1", ["some text to log"], probs, 1.0)
        if i % 100 == 99:
            em.flush()
    em.flush()
    written, dropped = count(registry, "written"), count(registry, "dropped_journal_full")
    assert written + dropped == 2000 and 0 < written < 2000 and em.queued == 0
    assert len(journal_events(tmp_path)) == written  # what is counted as written is there; the rest is counted
    reader = JournalReader(tmp_path)  # the sidecar comes back: reads, then deletes the sealed files
    while chunks := reader.poll():
        for chunk in chunks:
            reader.advance(chunk.stem, chunk.end)
    for stem in reader.finished:
        reader.remove(stem)
    em.submit("after", "v1", ["back"], probs, 1.0)
    em.flush()
    assert count(registry, "written") == written + 1


def test_a_failing_disk_drops_and_counts_and_recovers(tmp_path: Path) -> None:
    blocked = tmp_path / "journal"
    blocked.write_text("a file where the directory should be")
    em, registry = emitter(blocked)
    probs = np.array([[0.5, 0.5]])
    em.submit("lost", "v1", ["x"], probs, 1.0)
    em.flush()
    assert count(registry, "dropped_write_failed") == 1 and em.queued == 0
    blocked.unlink()
    em.submit("kept", "v1", ["x"], probs, 1.0)
    em.flush()
    assert [e["id"] for e in journal_events(blocked)] == ["kept:0"]
