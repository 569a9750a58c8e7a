"""Prediction events to the monitoring sidecar: bounded, batched, never in the way of a prediction, and not lost
while the sidecar is away.

A request hands one compact record (its texts and probability matrix) to :meth:`EventEmitter.submit`, which only
appends to a deque: no serialisation, no hashing, no I/O on the request path. A background task on the same event
loop encodes each request as one NDJSON line (``serving.eventlog.events.RequestEncoder``; the sidecar expands it
into one event per text), in slices of about ``ENCODE_SLICE`` events, giving the loop back between slices so requests
never wait behind a whole batch, and appends the lines to this process's journal file on the volume it shares with
the sidecar (:class:`serving.eventlog.journal.JournalWriter`): one ``write()`` per batch of up to ``batch_size``
events or ``WRITE_BYTES`` bytes, every ``flush_interval_s`` at least, no ``fsync``. The sidecar reads the file,
makes the events durable and ships them; whether it is running at the time does not matter.

Events are dropped, and counted by reason in ``kube_sentiment_events_total``, only when more than ``queue_size``
wait in memory (``dropped_queue_full``), when this process's journal files on disk reach their budget because the
sidecar has not read them for a long time (``dropped_journal_full``), when the disk refuses the write
(``dropped_write_failed``), or when a text cannot be encoded (``dropped_unencodable``). Nothing here raises into a
request. :meth:`EventEmitter.close` writes what is still queued and seals the file at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from serving.eventlog.events import RequestEncoder
from serving.eventlog.journal import JournalFull, JournalWriter
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

ENCODE_SLICE = 32
#: Largest write to the journal in one go (bounds how long one write holds the event loop).
WRITE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class EventContext:
    """What is the same for every event of this predictor."""

    model_name: str
    model_version: str
    track: str
    environment: str
    classes: tuple[str, ...]
    log_text: bool


_Record = tuple[str, float, str, list[str], np.ndarray, float, str | None]
"""request id, time, protocol, texts, probabilities, latency in ms, id of the request it mirrors: one request's
events, not yet encoded."""
_Encoded = tuple[bytes, int]
"""A line already encoded (by :meth:`EventEmitter.submit_line`) and the number of events it counts for."""


class EventEmitter:
    """Bounded in-memory queue plus a background writer of NDJSON lines to the journal."""

    def __init__(
        self,
        journal: JournalWriter,
        context: EventContext,
        metrics: ServingMetrics,
        queue_size: int = 10_000,
        batch_size: int = 5_000,
        flush_interval_s: float = 0.2,
    ) -> None:
        """Nothing starts here; the writer task starts with the first event inside the server's loop."""
        self.journal = journal
        self.context = context
        self._metrics = metrics
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._encoder = RequestEncoder(
            context.model_name, context.model_version, context.track, context.environment, context.classes,
            context.log_text,
        )
        self._records: deque[_Record | _Encoded] = deque()
        self._queued = 0  # events accepted and not yet written or dropped: waiting in records, or encoded
        self._encoded: list[bytes] = []  # lines encoded and not yet written
        self._counts: list[int] = []  # events of each encoded line
        self._encoded_events = 0
        self._encoded_bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self.written = 0
        self.dropped = 0
        self._failing = ""

    @property
    def queued(self) -> int:
        """Events in memory: accepted and not yet written or dropped."""
        return self._queued

    def submit(
        self, request_id: str, protocol: str, texts: list[str], probs: np.ndarray, latency_ms: float,
        mirror_of: str | None = None,
    ) -> None:
        """Queue the events of one request (``mirror_of``: a shadow's copy of that request), or drop and count them
        when the queue is full. Never raises."""
        n = len(texts)
        if self._queued + n > self.queue_size:
            self._drop("dropped_queue_full", n)
            return
        self._records.append((request_id, time.time(), protocol, texts, probs, latency_ms, mirror_of))
        self._accepted(n)

    def submit_line(self, line: bytes, events: int = 1) -> None:
        """Queue one record encoded by the caller (one NDJSON line the sidecar accepts, without newline), counted
        as ``events`` events; same bounds and counts as :meth:`submit`. Never raises."""
        if self._queued + events > self.queue_size:
            self._drop("dropped_queue_full", events)
            return
        self._records.append((line, events))
        self._accepted(events)

    def _accepted(self, n: int) -> None:
        self._queued += n
        if self._task is None:
            self._start()
        if self._queued >= self.batch_size and self._wake is not None:
            self._wake.set()

    def _drop(self, reason: str, n: int) -> None:
        self.dropped += n
        self._metrics.event(reason, n)

    def _start(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop (a test calling submit directly): flush() writes
            loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name="kube-sentiment-events")

    def _take(self, limit: int) -> None:
        """Encode queued records (whole requests) into ``_encoded`` until ``limit`` more events or the byte bound."""
        n = 0
        while self._records and n < limit and self._encoded_bytes < WRITE_BYTES:
            record = self._records.popleft()
            if type(record[0]) is bytes:
                line, count = record  # type: ignore[misc]
            else:
                request_id, ts, protocol, texts, probs, latency_ms, mirror_of = record  # type: ignore[misc]
                count = len(texts)
                try:
                    line = self._encoder.line(request_id, ts, protocol, texts, probs, latency_ms, mirror_of)
                except Exception as e:  # not valid Unicode (the model refuses it, so a bug): drop, keep going
                    self._queued -= count
                    self._drop("dropped_unencodable", count)
                    log.warning("dropping the events of request %s: they cannot be encoded (%s)", request_id, e)
                    continue
            self._encoded.append(line)
            self._counts.append(count)
            self._encoded_bytes += len(line) + 1
            n += count
        self._encoded_events += n

    async def _encode_batch(self) -> None:
        """Encode up to ``batch_size`` events, a slice at a time, letting requests run between slices."""
        while self._records and self._encoded_events < self.batch_size and self._encoded_bytes < WRITE_BYTES:
            self._take(ENCODE_SLICE)
            await asyncio.sleep(0)

    def _write(self) -> None:
        """Append the encoded lines to the journal; count what was written and what was dropped, and why."""
        if not self._encoded:
            return
        lines, counts = self._encoded, self._counts
        self._encoded, self._counts, self._encoded_events, self._encoded_bytes = [], [], 0, 0
        try:
            done = self.journal.append(lines)
            problem = "" if done == len(lines) else "journal_full"
        except JournalFull:
            done, problem = 0, "journal_full"
        except OSError as e:
            done, problem = 0, f"write_failed ({e})"
        written = sum(counts[:done])
        lost = sum(counts[done:])
        self._queued -= written + lost
        self._metrics.queued(self._queued)
        if written:
            self.written += written
            self._metrics.event("written", written)
        if lost:
            reason = "dropped_journal_full" if problem == "journal_full" else "dropped_write_failed"
            self._drop(reason, lost)
        self._transition(problem)

    def _transition(self, problem: str) -> None:
        """Log when writing starts failing (once per kind of failure) and when it works again."""
        if problem and not self._failing.startswith(problem.split(" ")[0]):
            if problem == "journal_full":
                log.warning("dropping prediction events: this process's journal files hold %d bytes, the limit; the "
                            "sidecar has not read %s for a while", self.journal.bytes_on_disk,
                            self.journal.directory)
            else:
                log.warning("dropping prediction events: cannot write to %s: %s", self.journal.directory, problem)
        elif not problem and self._failing:
            log.info("prediction events are written to %s again", self.journal.directory)
        self._failing = problem

    async def _run(self) -> None:
        """Write whatever is queued every flush interval, or sooner when a full batch is waiting."""
        assert self._wake is not None
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the cancellation of aclose()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                while self._records or self._encoded:
                    await self._encode_batch()
                    self._write()
                    if self._queued < self.batch_size:
                        break  # a partial batch waits for the next interval
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not stop the writer for good
                log.exception("prediction event writer failed; continuing")

    def flush(self) -> None:
        """Write everything queued now (tests, benchmarks, shutdown)."""
        while self._records or self._encoded:
            self._take(self.batch_size)
            self._write()

    def close(self) -> None:
        """Write what is still queued and seal the journal file (after the event loop has stopped)."""
        self.flush()
        try:
            self.journal.close()
        except OSError as e:
            log.warning("cannot seal the journal file in %s: %s", self.journal.directory, e)

    async def aclose(self) -> None:
        """Stop the writer task (inside the loop); :meth:`close` writes the rest."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
