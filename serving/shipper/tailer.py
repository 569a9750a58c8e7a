"""The journal tailer thread: moves what predictor processes append to their journal files
(:mod:`serving.eventlog.journal`) into the spool, exactly once, and deletes each file once all of it is spooled.

Each round reads the new complete lines of every file, turns them into spool lines the way ``POST /v1/events`` does
(:func:`~serving.shipper.wire.parse_ndjson`: request records expanded into events, broken lines quarantined), ends
them with a journal position line (``{"_j": stem, "_o": end}``) and appends the lot to the spool as one fsync'ed
append (all or nothing: the spool's recovery cuts an append that ``kill -9`` stopped part way, so no line is kept
without the position that closes it). The reader's position advances under the spool lock right after that write
(``Spool.append(on_written=)``), and the spool carries the positions of the files still being read into every new
segment it opens, the first one after a restart included, so the spool always holds how far each file was read: a
restarted shipper takes the furthest position per file from the segments it recovers
(:func:`~serving.shipper.wire.journal_positions`) and resumes there, repeating nothing and skipping nothing. A file
is deleted only after its last line is fsync'ed in the spool. When the spool is full the tailer stops reading (the
journal files wait on disk, the predictor's own budget is the next bound) and retries each round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from serving.eventlog.journal import JournalReader
from serving.shipper.metrics import ShipMetrics
from serving.shipper.spool import Spool, SpoolFull
from serving.shipper.wire import SOURCE_PREDICTOR, parse_ndjson, position_line, quarantine_line

log = logging.getLogger(__name__)

TORN = "torn line: the predictor process stopped while writing it (its other lines were shipped)"


class Tailer:
    """Reads journal files into the spool in a background thread (or round by round with :meth:`tick`)."""

    def __init__(self, reader: JournalReader, spool: Spool, metrics: ShipMetrics, poll_interval_s: float,
                 on_sealed: Callable[[], None] | None = None) -> None:
        """``on_sealed``: called when an append sealed a segment (the app wakes the flusher)."""
        self.reader = reader
        self.spool = spool
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.on_sealed = on_sealed
        self._lock = threading.Lock()  # the reader's positions: read by the flusher's seal, changed here
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._full = False

    def position_lines(self) -> list[bytes]:
        """The position of every file being read, as spool lines (the spool carries them into each new segment)."""
        with self._lock:
            positions = dict(self.reader.positions)
        return [position_line(stem, offset) for stem, offset in sorted(positions.items()) if offset > 0]

    def tick(self) -> int:
        """One round: spool the new lines of every journal file, delete finished files; return events spooled."""
        with self._lock:
            chunks = self.reader.poll()
            finished = list(self.reader.finished)
        spooled = 0
        seals = self.spool.seals
        for chunk in chunks:
            now = time.time()
            good, bad, n = parse_ndjson(chunk.data, now) if chunk.data else ([], [], 0)
            if chunk.torn:
                bad.append(quarantine_line(TORN, chunk.torn, now))
            lines = [*good, *bad, position_line(chunk.stem, chunk.end)]

            def advance(stem: str = chunk.stem, end: int = chunk.end) -> None:
                with self._lock:
                    self.reader.advance(stem, end)

            try:
                self.spool.append(lines, on_written=advance)
            except SpoolFull:
                if not self._full:
                    log.warning("spool full: journal files wait on disk until the sink catches up")
                    self._full = True
                break
            if self._full:
                log.info("spool has room again: reading journal files")
                self._full = False
            spooled += n
            self.metrics.events_in.labels(SOURCE_PREDICTOR).inc(n)
            self.metrics.quarantined.inc(len(bad))
            if chunk.torn:
                self.metrics.journal_torn.inc()
                log.warning("journal %s ends in a torn line (%d bytes, its writer died mid-write); quarantined",
                            chunk.stem, len(chunk.torn))
        for stem in finished:
            with self._lock:
                self.reader.remove(stem)
            self.metrics.journal_files_done.inc()
        self.metrics.journal_pending.set(self.reader.pending_bytes)
        if self.spool.seals != seals and self.on_sealed is not None:
            self.on_sealed()
        return spooled

    def drain(self, deadline_s: float) -> bool:
        """Rounds until nothing new is read or ``deadline_s`` passes (shutdown); True when caught up."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            self.tick()
            if self._full:
                return False
            if not self.reader.pending_bytes:  # this round found nothing to read: caught up
                return True
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.tick() > 0 and not self._full
            except Exception:  # a disk hiccup must not stop the tailer for good
                log.exception("journal tailer round failed; retrying")
                busy = False
            if not busy:  # after a round that read something, read on at once
                self._stop.wait(self.poll_interval_s)

    def start(self) -> None:
        """Start the background thread."""
        self._thread = threading.Thread(target=self._run, name="ks-ship-tailer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, drain_timeout_s: float) -> bool:
        """Stop the thread, then read what is left for up to ``drain_timeout_s``; True when caught up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, drain_timeout_s))
        try:
            return self.drain(drain_timeout_s)
        finally:
            self.reader.close()
