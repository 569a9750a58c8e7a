"""The write-ahead spool: append-only segment files on local disk, fsync'ed before the shipper acknowledges.

Layout of ``spool_dir``::

    <segment-id>.open    the segment being appended to (at most one)
    <segment-id>.ready   sealed segments waiting to be shipped, oldest first by name

A segment id is ``<unix-ns, 19 digits>-<shipper id>-<random hex>``: it sorts by creation time and is unique
across restarts and shippers, so the sink object names derived from it never collide. A segment is deleted only
after every object made from it is in the sink.

Each append is one group: a header line ``{"_g": n}`` followed by ``n`` bytes of whole lines, written with one
``write()``. ``kill -9`` can stop a large ``write()`` part way (Linux checks for a fatal signal between pages), so
the ``.open`` segment may end in a partial group: some of its lines complete, the rest and the group's last line
missing. Those lines were never acknowledged, and a group must count all or nothing (the tailer's position line
closes its group: keeping the lines without it would spool them again after the restart), so
:meth:`Spool.recover` cuts the partial group off whole and seals the segment. Readers get the lines without the
headers from :meth:`Segment.lines`.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.eventlog.parquet import safe_partition_value

log = logging.getLogger(__name__)
OPEN, READY = ".open", ".ready"
GROUP_PREFIX = b'{"_g":'


def _header(size: int) -> bytes:
    """The line that starts a group of ``size`` bytes."""
    return b'{"_g":%d}\n' % size


def whole_groups(data: bytes) -> int:
    """How many leading bytes of a segment's ``data`` are whole groups (and lines written before groups existed);
    the rest is an append that ``kill -9`` cut short."""
    pos, end = 0, len(data)
    while pos < end:
        newline = data.find(b"\n", pos)
        if newline < 0:
            return pos  # a torn header or line
        if data.startswith(GROUP_PREFIX, pos):
            try:
                size = int(data[pos + len(GROUP_PREFIX) : newline].rstrip(b"}"))
            except ValueError:
                return pos
            stop = newline + 1 + size
            if size <= 0 or stop > end or data[stop - 1 : stop] != b"\n":
                return pos
            pos = stop
        else:
            pos = newline + 1  # an unframed line (a spool written by an older shipper)
    return pos


class SpoolFull(Exception):
    """The spool reached its disk budget; the caller answers 503 with ``Retry-After``."""


@dataclass(frozen=True)
class Segment:
    """A sealed segment file."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name.removesuffix(READY)

    def lines(self) -> list[bytes]:
        """The segment's lines, without the group headers."""
        return [line for line in self.path.read_bytes().splitlines() if not line.startswith(GROUP_PREFIX)]


def _fsync_dir(path: Path) -> None:
    """fsync a directory so a create or rename in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only, fsync'ed segments with a disk budget. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        shipper_id: str,
        segment_max_bytes: int,
        segment_max_age_s: float,
        max_bytes: int,
    ) -> None:
        self.directory = Path(directory)
        self.shipper_id = safe_partition_value(shipper_id)
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_s = segment_max_age_s
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()  # taken before _lock, never after it
        self._written = 0  # writes made
        self._synced = 0  # writes known to be on disk
        self._fd: int | None = None
        self._open_path: Path | None = None
        self._open_size = 0
        self._open_since = 0.0
        self._open_records = 0
        self._sealed_bytes = 0
        self._sealed_records = 0
        self.seals = 0
        """Segments sealed since start (the app wakes the flusher when it grows)."""
        self.carry_forward: Callable[[], list[bytes]] = list
        """Called when a segment is sealed; its lines start the next segment (the joiner's waiting halves)."""

    @property
    def bytes_used(self) -> int:
        """Bytes on disk in open and sealed segments."""
        return self._sealed_bytes + self._open_size

    @property
    def pending_records(self) -> int:
        """Records spooled and not yet shipped (counted since start, including recovered segments)."""
        return self._sealed_records + self._open_records

    def recover(self) -> list[Segment]:
        """Seal what a previous process left open (cutting an append it did not finish) and return the sealed
        segments."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.directory.glob(f"*{OPEN}")):
            data = path.read_bytes()
            cut = whole_groups(data)
            if cut != len(data):
                log.warning("cutting an unfinished append off %s (%d bytes, never acknowledged)", path.name,
                            len(data) - cut)
                with path.open("r+b") as fh:
                    fh.truncate(cut)
                    fh.flush()
                    os.fsync(fh.fileno())
            if cut == 0:
                path.unlink()
            else:
                path.rename(path.with_suffix(READY))
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink()
        _fsync_dir(self.directory)
        segments = self.ready_segments()
        self._sealed_bytes = sum(s.path.stat().st_size for s in segments)
        self._sealed_records = sum(len(s.lines()) for s in segments)
        return segments

    def ready_segments(self) -> list[Segment]:
        """Sealed segments, oldest first."""
        return [Segment(p) for p in sorted(self.directory.glob(f"*{READY}"))]

    def _new_segment(self) -> None:
        """Open a new ``.open`` segment with a fresh id (spool lock held)."""
        seg_id = f"{time.time_ns():019d}-{self.shipper_id}-{secrets.token_hex(4)}"
        self._open_path = self.directory / f"{seg_id}{OPEN}"
        self._fd = os.open(self._open_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _fsync_dir(self.directory)
        self._open_size = 0
        self._open_records = 0
        self._open_since = time.monotonic()

    def _write(self, payload: bytes, n: int) -> None:
        """Append ``payload`` (``n`` whole lines) to the open segment as one group, without fsync (spool lock
        held)."""
        if self._fd is None:
            self._new_segment()
        assert self._fd is not None
        payload = _header(len(payload)) + payload
        view = memoryview(payload)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._written += 1
        self._open_size += len(payload)
        self._open_records += n

    def append(self, lines: list[bytes], force: bool = False, on_written: Callable[[], None] | None = None) -> None:
        """Write ``lines`` (without newlines) durably. Raises ``SpoolFull`` past the budget unless ``force``.

        Group commit: the write happens under the spool lock, the fsync outside it, and one fsync covers every
        write made before it, so concurrent appenders share fsyncs instead of queueing for one each.
        ``on_written`` runs under the spool lock right after the write: a segment is sealed (and fsync'ed) only under
        that lock, so state it records is carried (``carry_forward``) into the next segment only together with the
        lines it describes.
        """
        if not lines:
            return
        payload = b"\n".join(lines) + b"\n"
        with self._lock:
            if not force and self.bytes_used + len(payload) > self.max_bytes:
                raise SpoolFull(f"spool holds {self.bytes_used} bytes of its {self.max_bytes} budget")
            self._write(payload, len(lines))
            if on_written is not None:
                on_written()
            mine = self._written
            rotate = self._open_size >= self.segment_max_bytes
        self._sync(mine)
        if rotate:
            self.seal()

    def _sync(self, upto: int) -> None:
        """Make every write up to number ``upto`` durable, sharing one fsync with concurrent appenders."""
        with self._sync_lock:
            if self._synced >= upto:
                return
            with self._lock:
                fd, target = self._fd, self._written
            if fd is not None:
                os.fsync(fd)
            self._synced = target

    def is_full(self, margin: int = 0) -> bool:
        """Whether the spool is at its budget (less ``margin`` bytes)."""
        return self.bytes_used + margin >= self.max_bytes

    def _seal_locked(self) -> None:
        """fsync, close and rename the open segment to ``.ready``; start the next with the carried lines."""
        if self._fd is None or self._open_path is None:
            return
        os.fsync(self._fd)
        self._synced = self._written
        os.close(self._fd)
        self._fd = None
        ready = self._open_path.with_suffix(READY)
        self._open_path.rename(ready)
        _fsync_dir(self.directory)
        self._sealed_bytes += self._open_size
        self._sealed_records += self._open_records
        self.seals += 1
        self._open_path, self._open_size, self._open_records = None, 0, 0
        self._carry_locked()

    def _carry_locked(self) -> None:
        """Start a new segment with the carried lines, fsync'ed (both locks held)."""
        carried = self.carry_forward()
        if carried:
            self._write(b"\n".join(carried) + b"\n", len(carried))
            assert self._fd is not None
            os.fsync(self._fd)
            self._synced = self._written

    def carry(self) -> None:
        """Open a segment holding the carried lines now, unless one is open. Called after :meth:`recover` once
        :attr:`carry_forward` is set: the recovered segments that hold those lines may be shipped and deleted
        before anything else is appended, and a second crash must still find them."""
        with self._sync_lock, self._lock:
            if self._fd is None:
                self._carry_locked()

    def seal(self, only_if_due: bool = False) -> None:
        """Seal the open segment (when ``only_if_due``: only if it is older than ``segment_max_age_s``)."""
        with self._sync_lock, self._lock:
            if self._fd is None:
                return
            if only_if_due and time.monotonic() - self._open_since < self.segment_max_age_s:
                return
            self._seal_locked()

    def remove(self, segment: Segment, records: int) -> None:
        """Delete a segment whose records are all in the sink."""
        size = segment.path.stat().st_size
        segment.path.unlink()
        with self._lock:
            self._sealed_bytes = max(0, self._sealed_bytes - size)
            self._sealed_records = max(0, self._sealed_records - records)

    def set_aside(self, segment: Segment) -> Path:
        """Rename a segment that cannot be shipped to ``<id>.poison`` (kept, no longer shipped or counted)."""
        size = segment.path.stat().st_size
        target = segment.path.with_suffix(".poison")
        segment.path.rename(target)
        with self._lock:
            self._sealed_bytes = max(0, self._sealed_bytes - size)
        return target

    def close(self) -> None:
        """Close the open segment without sealing it (it is recovered at the next start)."""
        with self._sync_lock, self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
