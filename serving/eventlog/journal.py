"""The hand-off journal: how a predictor process hands its records to the monitoring sidecar, through files on the
volume they share, so that the sidecar being down (crashed, restarting, upgraded) costs nothing.

One directory (``<spool volume>/journal`` in the pod) holds files named ``<stem><state>``::

    <stem>.new    being created by its writer (empty, locked); readers ignore it
    <stem>.open   being appended to by its writer, which holds an exclusive ``flock`` on it while it lives
    <stem>.done   sealed by its writer: complete, never written again

``stem`` is ``<unix-ns, 19 digits>-<pid>-<random hex>``: one writer (one file at a time) per process, so any number
of predictor processes share the directory without coordinating, and stems sort by creation time. A file holds
NDJSON, one record per line, exactly the lines the sidecar's ``POST /v1/events`` accepts (request records of
:mod:`serving.eventlog.events`, events, and any record kind the sidecar learns later); every append is a whole
number of lines in one ``write()``.

Who does what:

* :class:`JournalWriter` (the predictor) appends without ``fsync``: a write is in the kernel's page cache when
  ``write()`` returns, which survives a crash of the writer or of the sidecar (not of the node). It seals its file
  at ``file_bytes`` (rename ``.open`` → ``.done``) and on close, and refuses to write (the caller drops and counts)
  while its own files on disk, read or not, would exceed ``max_bytes``.
* :class:`JournalReader` (the sidecar) reads complete lines from where it stopped, is told (:meth:`advance`) once
  a chunk is durably its own, and deletes a file (:meth:`remove`) once everything in it is: a ``.done`` file read
  to its end, or an ``.open`` file whose lock is free (its writer died) read to its last newline — the bytes after
  it (a line torn by the writer's death) are handed over as :attr:`Chunk.torn` to be quarantined.

The reader keeps its positions in memory and gets them back after a restart from its own durable store (the
sidecar journals them in its spool, see :mod:`serving.shipper.tailer`). This module imports nothing heavy: the
predictor loads it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

NEW, OPEN, DONE = ".new", ".open", ".done"
#: Name of the journal directory inside the shared spool volume (the chart mounts the volume in both containers).
DIRECTORY_NAME = "journal"
#: Largest chunk read from one file in one :meth:`JournalReader.poll` (a longer single line is read whole).
READ_BYTES = 1024 * 1024
#: A ``.new`` file whose writer is gone is removed once it is this old (its writer died while creating it).
STALE_NEW_S = 60.0


class JournalFull(Exception):
    """The writer's files on disk reached ``max_bytes``: the sidecar is not reading them (yet)."""


def _make_stem() -> str:
    return f"{time.time_ns():019d}-{os.getpid()}-{secrets.token_hex(4)}"


def _locked_by_another(fd: int) -> bool:
    """Whether another open file description holds a ``flock`` on the file (its writer is alive)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


class JournalWriter:
    """Appends whole lines to this process's journal file; not thread-safe (one event loop writes)."""

    def __init__(self, directory: Path, max_bytes: int, file_bytes: int) -> None:
        """Nothing is created until the first :meth:`append`."""
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.file_bytes = file_bytes
        self._fd: int | None = None
        self._stem = ""
        self._pid = 0
        self._size = 0  # bytes in the open file
        self._sealed: dict[Path, int] = {}  # this writer's sealed files not yet known to be deleted, and their size

    @property
    def bytes_on_disk(self) -> int:
        """Bytes of this writer's files that were on disk when last looked at (read by the sidecar or not)."""
        return self._size + sum(self._sealed.values())

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = _make_stem()
        new = self.directory / f"{stem}{NEW}"
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until close: readers see a live writer
            os.rename(new, self.directory / f"{stem}{OPEN}")
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                new.unlink()
            raise
        self._fd, self._stem, self._pid, self._size = fd, stem, os.getpid(), 0

    def seal(self) -> None:
        """Seal the open file (rename to ``.done``, then close: the lock goes last). The next append opens a new
        one."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        done = self.directory / f"{self._stem}{DONE}"
        try:
            if self._pid == os.getpid():
                os.rename(self.directory / f"{self._stem}{OPEN}", done)
                if self._size:
                    self._sealed[done] = self._size
                else:
                    done.unlink()  # nothing in it: nothing for the sidecar to read
        finally:
            os.close(fd)
            self._size = 0

    def _refresh(self) -> None:
        """Forget sealed files the sidecar has deleted (only looked at when the budget is reached)."""
        self._sealed = {path: size for path, size in self._sealed.items() if path.exists()}

    def append(self, lines: list[bytes]) -> int:
        """Append the longest prefix of ``lines`` (each without its newline) that fits the budget, in one write;
        return how many lines were written. ``JournalFull`` when not even the first fits; ``OSError`` when the
        directory or the write fails (nothing of this call was written then, or the file is sealed and a new one
        is used next time)."""
        if not lines:
            return 0
        if self._fd is not None and self._pid != os.getpid():  # a forked child: never share the parent's file
            self._fd, self._sealed, self._size = None, {}, 0
        sizes = [len(line) + 1 for line in lines]
        total = sum(sizes)
        if self.bytes_on_disk + total > self.max_bytes:
            self._refresh()
        room = self.max_bytes - self.bytes_on_disk
        count = len(lines)
        if total > room:
            count, used = 0, 0
            for size in sizes:
                if used + size > room:
                    break
                used, count = used + size, count + 1
            if count == 0:
                raise JournalFull(f"{self.bytes_on_disk} bytes of this process's journal are on disk (limit "
                                  f"{self.max_bytes}); the sidecar is not reading {self.directory}")
        if self._fd is None:
            self._open()
        assert self._fd is not None
        payload = b"\n".join(lines[:count]) + b"\n"
        try:
            view = memoryview(payload)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self._size += len(payload) - len(view)
            self.seal()  # a partial write may have left a torn line: nothing more goes after it
            raise
        self._size += len(payload)
        if self._size >= self.file_bytes:
            self.seal()
        return count

    def close(self) -> None:
        """Seal the open file (graceful shutdown)."""
        self.seal()


@dataclass(frozen=True)
class Chunk:
    """Complete lines read from one journal file: bytes ``[start, end)`` of file ``stem``."""

    stem: str
    start: int
    end: int
    data: bytes
    torn: bytes = b""
    """Bytes after the last newline of a file whose writer died (a line cut short); ``end`` covers them."""


@dataclass
class _Open:
    fd: int
    path: Path
    sealed: bool


class JournalReader:
    """Reads the journal directory from remembered positions; single-threaded (the sidecar's tailer thread)."""

    def __init__(self, directory: Path, positions: dict[str, int] | None = None, read_bytes: int = READ_BYTES) -> None:
        """``positions``: per stem, the offset up to which lines are already durably the reader's own."""
        self.directory = Path(directory)
        self.positions: dict[str, int] = dict(positions or {})
        self.read_bytes = read_bytes
        self._files: dict[str, _Open] = {}
        self.finished: list[str] = []
        """Stems read to their end whose writer is done (sealed) or dead: :meth:`remove` them once durable."""
        self.pending_bytes = 0
        """Bytes in journal files beyond the positions, as of the last :meth:`poll`."""

    def _scan(self) -> list[tuple[str, Path, bool]]:
        """``(stem, path, sealed)`` of the ``.open`` and ``.done`` files, oldest first; stale ``.new`` files are
        removed on the way."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            stem, dot, state = name.rpartition(".")
            state = dot + state
            if state in (OPEN, DONE):
                found.append((stem, self.directory / name, state == DONE))
            elif state == NEW:
                self._remove_stale_new(self.directory / name)
        found.sort()
        return found

    @staticmethod
    def _remove_stale_new(path: Path) -> None:
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime < STALE_NEW_S:
                return
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if not _locked_by_another(fd):
                    path.unlink()
            finally:
                os.close(fd)

    def _file(self, stem: str, path: Path, sealed: bool) -> _Open | None:
        known = self._files.get(stem)
        if known is not None:
            known.path, known.sealed = path, sealed
            return known
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # renamed (sealed) between the listing and now: seen next time
        self._files[stem] = _Open(fd, path, sealed)
        return self._files[stem]

    def _read(self, fd: int, start: int, size: int) -> bytes:
        """Complete lines from ``start``: up to ``read_bytes``, or more when one line is longer."""
        want = min(size - start, self.read_bytes)
        data = os.pread(fd, want, start)
        cut = data.rfind(b"\n") + 1
        while cut == 0 and start + len(data) < size:  # one line longer than read_bytes
            more = os.pread(fd, min(size - start - len(data), self.read_bytes), start + len(data))
            if not more:
                break
            data += more
            cut = data.rfind(b"\n") + 1
        return data[:cut]

    def poll(self) -> list[Chunk]:
        """New complete lines of every file (at most one chunk per file per call), and the torn tail of a file
        whose writer died. Files read to the end whose writer is done or dead are listed in :attr:`finished`."""
        chunks: list[Chunk] = []
        self.finished = []
        pending = 0
        present = set()
        for stem, path, sealed in self._scan():
            present.add(stem)
            entry = self._file(stem, path, sealed)
            if entry is None:
                continue
            start = self.positions.get(stem, 0)
            size = os.fstat(entry.fd).st_size
            pending += max(0, size - start)
            data = self._read(entry.fd, start, size) if size > start else b""
            if data:
                chunks.append(Chunk(stem, start, start + len(data), data))
                continue
            if entry.sealed or not _locked_by_another(entry.fd):
                # re-read the size: the writer may have appended (and died, or sealed) since the first look
                size = os.fstat(entry.fd).st_size
                if size > start:
                    data = self._read(entry.fd, start, size)
                    if data:
                        chunks.append(Chunk(stem, start, start + len(data), data))
                        continue
                    tail = os.pread(entry.fd, size - start, start)
                    chunks.append(Chunk(stem, start, size, b"", torn=tail))
                    continue
                self.finished.append(stem)
        for stem in [s for s in self._files if s not in present]:
            os.close(self._files.pop(stem).fd)
        self.positions = {s: p for s, p in self.positions.items() if s in present}
        self.pending_bytes = pending
        return chunks

    def advance(self, stem: str, end: int) -> None:
        """Everything of ``stem`` before ``end`` is durably the reader's own."""
        if end > self.positions.get(stem, 0):
            self.positions[stem] = end

    def remove(self, stem: str) -> None:
        """Delete a finished file (every line of it durably read) and forget it."""
        entry = self._files.pop(stem, None)
        if entry is not None:
            os.close(entry.fd)
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
        self.positions.pop(stem, None)

    def close(self) -> None:
        """Close every file descriptor."""
        for entry in self._files.values():
            os.close(entry.fd)
        self._files.clear()
