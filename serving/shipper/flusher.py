"""The flusher thread: seals due segments, turns sealed segments into sink objects, deletes them once written."""

from __future__ import annotations

import logging
import threading
import time

from serving.shipper.cloudevents import Joiner
from serving.shipper.metrics import ShipMetrics
from serving.shipper.objects import segment_objects
from serving.shipper.sinks import Sink, SinkError
from serving.shipper.spool import Segment, Spool

log = logging.getLogger(__name__)


class Flusher:
    """Ships sealed spool segments in order; on a sink error it backs off and retries the same segment."""

    def __init__(self, spool: Spool, sink: Sink, joiner: Joiner, metrics: ShipMetrics,
                 poll_interval_s: float, backoff_max_s: float) -> None:
        self.spool = spool
        self.sink = sink
        self.joiner = joiner
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.backoff_max_s = backoff_max_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.0
        self.sink_healthy = True

    def ship_segment(self, segment: Segment) -> int:
        """Write every object of ``segment`` to the sink, then delete it; return the events written."""
        lines = segment.lines()
        objects, duplicates = segment_objects(segment.id, lines)
        for key, data, _ in objects:
            self.sink.put(key, data)
        self.spool.remove(segment, len(lines))
        written = sum(n for key, _, n in objects if key.endswith(".parquet"))
        self.metrics.events_written.inc(written)
        self.metrics.duplicates.inc(duplicates)
        self.metrics.segments_shipped.inc()
        self.metrics.last_flush.set(time.time())
        return written

    def ship_ready(self, deadline: float | None = None) -> bool:
        """Ship sealed segments oldest first; stop at the first sink error. True when none is left."""
        for segment in self.spool.ready_segments():
            if deadline is not None and time.monotonic() > deadline:
                return False
            try:
                self.ship_segment(segment)
            except (ValueError, KeyError, TypeError) as e:
                # a segment the flusher cannot turn into objects must not block the ones behind it
                kept = self.spool.set_aside(segment)
                self.metrics.quarantined.inc()
                log.error("segment %s cannot be shipped (%s: %s); kept as %s for inspection", segment.id,
                          type(e).__name__, e, kept)
                continue
            except SinkError as e:
                self.metrics.sink_errors.inc()
                self.sink_healthy = False
                self._backoff = min(self.backoff_max_s, max(0.5, self._backoff * 2))
                log.warning("sink write failed; %d segment(s) wait, retry in %.1fs: %s",
                            len(self.spool.ready_segments()), self._backoff, e)
                return False
            if not self.sink_healthy:
                log.info("sink is back; draining the backlog")
            self.sink_healthy = True
            self._backoff = 0.0
        return True

    def tick(self) -> None:
        """One round: quarantine expired CloudEvent halves, seal the open segment if due, ship what is sealed."""
        expired = self.joiner.expire(time.time())
        if expired:
            self.spool.append(expired, force=True)
            self.metrics.quarantined.inc(len(expired))
        self.spool.seal(only_if_due=True)
        self.ship_ready()
        self.update_gauges()

    def update_gauges(self) -> None:
        """Refresh the pending / spool / halves gauges."""
        self.metrics.pending.set(self.spool.pending_records)
        self.metrics.spool_bytes.set(self.spool.bytes_used)
        self.metrics.pending_halves.set(len(self.joiner))

    def _run(self) -> None:
        """Thread body: rounds until stopped; unexpected errors are logged and retried with backoff."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the flusher must outlive any single bad segment or disk hiccup
                log.exception("flusher round failed; retrying")
                self._backoff = min(self.backoff_max_s, max(0.5, self._backoff * 2))
            self._wake.wait(max(self.poll_interval_s, self._backoff))
            self._wake.clear()

    def start(self) -> None:
        """Start the background thread."""
        self._thread = threading.Thread(target=self._run, name="ks-ship-flusher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Ask for a round now (a segment was just sealed)."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        """Whether the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, drain_timeout_s: float) -> bool:
        """Stop the thread, seal the open segment and ship for up to ``drain_timeout_s``. True when all shipped."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=drain_timeout_s + 5)
        self.spool.seal()
        deadline = time.monotonic() + drain_timeout_s
        done = self.ship_ready(deadline)
        while not done and time.monotonic() < deadline:
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            done = self.ship_ready(deadline)
        self.update_gauges()
        return done
