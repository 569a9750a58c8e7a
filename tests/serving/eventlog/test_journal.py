"""The hand-off journal: whole lines, one file per process, sealing and rotation, the disk budget, a reader that
resumes from positions, deletes only finished files and tells a dead writer (torn line) from a live one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.eventlog.journal import DONE, NEW, OPEN, STALE_NEW_S, JournalFull, JournalReader, JournalWriter
from tests.support import REPO


def lines(n: int, start: int = 0, width: int = 20) -> list[bytes]:
    return [f'{{"n": {i}, "pad": "{"x" * width}"}}'.encode() for i in range(start, start + n)]


def read_all(reader: JournalReader) -> list[bytes]:
    """Poll until nothing new; advance as a consumer would; return every complete line."""
    got: list[bytes] = []
    while chunks := reader.poll():
        for chunk in chunks:
            got += chunk.data.splitlines()
            reader.advance(chunk.stem, chunk.end)
    return got


def test_lines_are_read_back_whole_and_sealed_files_are_finished_then_removed(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, max_bytes=1 << 20, file_bytes=500)
    written = lines(30)  # ~40 bytes a line: the second append seals the first file, the third opens another
    assert [writer.append(written[i:i + 10]) for i in (0, 10, 20)] == [10, 10, 10]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [DONE, OPEN]

    reader = JournalReader(tmp_path)
    assert read_all(reader) == written
    assert reader.finished and all((tmp_path / f"{s}{DONE}").exists() for s in reader.finished)
    for stem in reader.finished:
        reader.remove(stem)
    writer.close()  # the open file is sealed: finished on the next poll, then removed
    assert reader.poll() == [] and reader.finished
    for stem in reader.finished:
        reader.remove(stem)
    assert list(tmp_path.iterdir()) == [] and reader.positions == {}


def test_a_reader_resumes_from_positions_without_repeating_a_line(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, max_bytes=1 << 20, file_bytes=1 << 20)
    writer.append(lines(5))
    first = JournalReader(tmp_path)
    assert len(read_all(first)) == 5
    positions = dict(first.positions)
    first.close()
    writer.append(lines(3, 5))
    second = JournalReader(tmp_path, positions)  # a restarted consumer
    assert read_all(second) == lines(3, 5)


def test_a_partial_line_is_not_read_until_complete(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, max_bytes=1 << 20, file_bytes=1 << 20)
    writer.append(lines(1))
    path = next(tmp_path.glob(f"*{OPEN}"))
    with path.open("ab") as fh:  # what a reader may see in the middle of a write
        fh.write(b'{"n": 99, "pa')
    reader = JournalReader(tmp_path)
    assert read_all(reader) == lines(1)
    assert reader.finished == []  # the writer is alive: the file is not finished
    with path.open("ab") as fh:
        fh.write(b'd": 1}\n')
    assert read_all(reader) == [b'{"n": 99, "pad": 1}']


def test_a_dead_writers_file_is_read_to_its_torn_tail_and_finished(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, 1 << 20, 1 << 20)
    writer.append([b'{"a": 1}', b'{"a": 2}'])
    assert writer._fd is not None
    os.write(writer._fd, b'{"a": 3, "cut')
    os.close(writer._fd)  # what the kernel does when the writer dies: the file stays .open, its lock goes
    reader = JournalReader(tmp_path)
    chunks = reader.poll()
    assert [c.data for c in chunks] == [b'{"a": 1}\n{"a": 2}\n'] and not chunks[0].torn
    reader.advance(chunks[0].stem, chunks[0].end)
    torn = reader.poll()
    assert len(torn) == 1 and torn[0].torn == b'{"a": 3, "cut' and torn[0].data == b""
    reader.advance(torn[0].stem, torn[0].end)
    assert reader.poll() == [] and reader.finished == [torn[0].stem]
    reader.remove(torn[0].stem)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.integration
def test_writers_of_two_processes_never_share_a_file(tmp_path: Path) -> None:
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "from pathlib import Path\nfrom serving.eventlog.journal import JournalWriter\n"
              f"w = JournalWriter(Path({str(tmp_path)!r}), 1 << 20, 1 << 20)\n"
              "for i in range(200):\n    w.append([('{\"p\": \"%s\", \"i\": %d}' % (sys.argv[1], i)).encode()])\n"
              "w.close()\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    assert len(list(tmp_path.glob(f"*{DONE}"))) == 2
    got = read_all(JournalReader(tmp_path))
    assert sorted(got) == sorted(f'{{"p": "{p}", "i": {i}}}'.encode() for p in "ab" for i in range(200))


def test_the_budget_drops_what_does_not_fit_until_the_reader_deletes_files(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path, max_bytes=4096, file_bytes=1024)
    batch = lines(10, width=60)  # ~80 bytes a line
    total = 0
    with pytest.raises(JournalFull, match="4096"):
        for _ in range(100):
            total += writer.append(batch)
    assert 0 < total * 80 <= 4096 and writer.bytes_on_disk <= 4096
    reader = JournalReader(tmp_path)
    assert len(read_all(reader)) == total
    for stem in reader.finished:
        reader.remove(stem)
    assert writer.append(batch) == len(batch)  # room again once the sealed files are read and deleted


def test_a_stale_new_file_of_a_dead_writer_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / f"0000000000000000001-1-deadbeef{NEW}"
    stale.write_bytes(b"")
    os.utime(stale, (time.time() - STALE_NEW_S - 1,) * 2)
    fresh = tmp_path / f"0000000000000000002-1-deadbeef{NEW}"
    fresh.write_bytes(b"")
    assert JournalReader(tmp_path).poll() == []
    assert not stale.exists() and fresh.exists()
