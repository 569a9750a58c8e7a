"""The journal tailer in process: journal lines become spooled events exactly once, across a restart at any point
(positions recovered from the spool, carried into new segments), a full spool and a writer that died mid-line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.eventlog.events import RequestEncoder
from serving.eventlog.journal import JournalReader, JournalWriter
from serving.shipper.metrics import ShipMetrics
from serving.shipper.spool import Segment, Spool
from serving.shipper.tailer import TORN, Tailer
from serving.shipper.wire import journal_positions
from tests.support.events import shipped_events

ENCODER = RequestEncoder("sentiment", "1", "stable", "test", ("negative", "neutral", "positive"), log_text=True)


def records(n: int, start: int = 0) -> list[bytes]:
    """``n`` single-text request records, ids ``r<i>:0``."""
    probs = np.array([[0.1, 0.2, 0.7]])
    return [ENCODER.line(f"r{i}", 1_700_000_000.0, "v1", [f"text {i}"], probs, 1.0) for i in range(start, start + n)]


def shipper_parts(root: Path, max_bytes: int = 1 << 26) -> tuple[Spool, Tailer]:
    """A spool recovered from disk and a tailer resuming from the positions in it (what ``Shipper.start`` does)."""
    spool = Spool(root / "spool", "t", segment_max_bytes=1 << 20, segment_max_age_s=3600, max_bytes=max_bytes)
    positions: dict[str, int] = {}
    for segment in spool.recover():
        for stem, offset in journal_positions(segment.lines()).items():
            positions[stem] = max(offset, positions.get(stem, 0))
    tailer = Tailer(JournalReader(root / "journal", positions), spool, ShipMetrics(), poll_interval_s=0.01)
    spool.carry_forward = tailer.position_lines
    spool.carry()
    return spool, tailer


def spooled_ids(root: Path, shipped: list[str]) -> list[str]:
    """Ids of events in the spool's segments plus those already shipped (with repeats, if any)."""
    ids = list(shipped)
    for path in sorted((root / "spool").glob("*")):
        if path.suffix in (".ready", ".open"):
            ids += [e["id"] for e in shipped_events(Segment(path).lines())]
    return ids


def test_journal_lines_become_events_and_finished_files_are_deleted(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "journal", 1 << 24, file_bytes=2000)
    writer.append(records(30))
    writer.close()
    _, tailer = shipper_parts(tmp_path)
    assert tailer.drain(10)
    assert sorted(spooled_ids(tmp_path, [])) == sorted(f"r{i}:0" for i in range(30))
    assert list((tmp_path / "journal").iterdir()) == []  # every file read, spooled, deleted
    assert tailer.metrics.events_in.labels("predictor")._value.get() == 30


def test_a_restart_after_a_seal_and_a_shipped_segment_repeats_nothing(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "journal", 1 << 24, file_bytes=1 << 20)
    writer.append(records(10))
    spool, tailer = shipper_parts(tmp_path)
    tailer.tick()
    spool.seal()  # the flusher seals: the positions are carried into the new segment
    shipped: list[str] = []
    for segment in spool.ready_segments():  # ... and ships and deletes the segment that held the lines
        shipped += [e["id"] for e in shipped_events(segment.lines())]
        spool.remove(segment, 0)
    spool.close()  # kill -9: nothing else happens

    writer.append(records(5, 10))  # the predictor goes on meanwhile
    _, again = shipper_parts(tmp_path)
    assert again.reader.positions  # recovered from the carried position lines
    again.drain(10)
    ids = spooled_ids(tmp_path, shipped)
    assert sorted(ids) == sorted(f"r{i}:0" for i in range(15)), "lost or repeated"


def test_a_restart_right_after_the_spool_write_resumes_from_the_segment(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "journal", 1 << 24, file_bytes=1 << 20)
    writer.append(records(7))
    spool, tailer = shipper_parts(tmp_path)
    tailer.tick()
    spool.close()  # crash before any seal: the open segment holds lines and their position
    _, again = shipper_parts(tmp_path)
    again.drain(10)
    assert sorted(spooled_ids(tmp_path, [])) == sorted(f"r{i}:0" for i in range(7))


def test_a_kill_in_the_middle_of_a_spool_write_repeats_nothing(tmp_path: Path) -> None:
    """``kill -9`` can stop a large ``write()`` part way: the spool then holds some lines of a chunk but not the
    position line that closes it. Recovery cuts the whole append, so the restart reads those lines once."""
    writer = JournalWriter(tmp_path / "journal", 1 << 24, file_bytes=1 << 22)
    writer.append(records(20))
    spool, tailer = shipper_parts(tmp_path)
    tailer.tick()
    writer.append(records(400, 20))
    tailer.tick()  # a large chunk: the write the kill cuts
    spool.close()
    segment = next((tmp_path / "spool").glob("*.open"))
    data = segment.read_bytes()
    cut = data.rfind(b"\n", 0, len(data) - 20_000) + 1  # whole lines of the chunk, not its position line
    segment.write_bytes(data[:cut])

    spool, again = shipper_parts(tmp_path)
    assert again.reader.positions == {writer._stem: len(b"".join(r + b"\n" for r in records(20)))}
    writer.append(records(5, 420))
    again.drain(10)
    assert sorted(spooled_ids(tmp_path, [])) == sorted(f"r{i}:0" for i in range(425)), "lost or repeated"


def test_positions_survive_a_second_kill_after_the_recovered_segments_are_shipped(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "journal", 1 << 24, file_bytes=1 << 20)
    writer.append(records(10))
    spool, tailer = shipper_parts(tmp_path)
    tailer.tick()
    spool.close()  # first kill
    spool, _ = shipper_parts(tmp_path)  # restart: the positions are carried into a new segment at once
    shipped: list[str] = []
    for segment in spool.ready_segments():  # the recovered segment is shipped and deleted
        shipped += [e["id"] for e in shipped_events(segment.lines())]
        spool.remove(segment, 0)
    spool.close()  # second kill, before anything new was read
    _, again = shipper_parts(tmp_path)
    again.drain(10)
    assert sorted(spooled_ids(tmp_path, shipped)) == sorted(f"r{i}:0" for i in range(10)), "lost or repeated"


def test_a_full_spool_leaves_lines_in_the_journal_until_there_is_room(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "journal", 1 << 24, file_bytes=1 << 20)
    writer.append(records(50))
    spool, tailer = shipper_parts(tmp_path, max_bytes=1000)  # less than one chunk
    assert not tailer.drain(1)
    assert spooled_ids(tmp_path, []) == [] and tailer.reader.positions == {}
    spool.max_bytes = 1 << 26  # the sink drained the spool
    assert tailer.drain(10)
    assert len(spooled_ids(tmp_path, [])) == 50


def test_a_torn_line_of_a_dead_writer_is_quarantined_and_the_file_deleted(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    dead = journal / "0000000000000000001-1-deadbeef.open"  # nobody holds its lock: its writer is gone
    dead.write_bytes(b"\n".join(records(3)) + b"\n" + records(1, 3)[0][:25])
    spool, tailer = shipper_parts(tmp_path)
    assert tailer.drain(10)
    assert sorted(spooled_ids(tmp_path, [])) == ["r0:0", "r1:0", "r2:0"]
    spool.seal()
    lines = b"\n".join(line for s in spool.ready_segments() for line in s.lines())
    assert TORN.encode() in lines and not dead.exists()
    assert tailer.metrics.journal_torn._value.get() == 1
