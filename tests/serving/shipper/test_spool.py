"""The fsync'ed write-ahead spool: an append cut short by ``kill -9`` is cut whole on recovery, the disk budget is
enforced."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.shipper.spool import Spool, SpoolFull, whole_groups


def test_spool_recovery_cuts_a_torn_line_and_enforces_its_budget(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=4096)
    spool.append([b'{"a":1}', b'{"a":2}'])
    open_file = next(tmp_path.glob("*.open"))
    with open_file.open("ab") as fh:
        fh.write(b'{"a":3, "torn')
    spool.close()
    again = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=4096)
    segments = again.recover()
    assert len(segments) == 1 and segments[0].lines() == [b'{"a":1}', b'{"a":2}']
    assert again.pending_records == 2
    with pytest.raises(SpoolFull):
        again.append([b"x" * 5000])


def test_an_append_cut_part_way_is_cut_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=1 << 20)
    spool.append([b'{"a":1}'])
    spool.append([b'{"b":1}', b'{"b":2}', b'{"_j":"f","_o":9}'])
    spool.close()
    open_file = next(tmp_path.glob("*.open"))
    data = open_file.read_bytes()
    open_file.write_bytes(data[: data.index(b'{"b":2}')])  # the kill stopped the write after a whole line
    again = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=1 << 20)
    assert [s.lines() for s in again.recover()] == [[b'{"a":1}']]


@pytest.mark.parametrize(("data", "whole"), [
    (b"", 0),
    (b'{"a":1}\n{"a":2}\n', 16),  # lines of an older shipper, without group headers
    (b'{"a":1}\n{"a', 8),
    (b'{"_g":8}\n{"a":1}\n', 17),
    (b'{"_g":8}\n{"a":1}\n{"_g":16}\n{"b":1}\n', 17),
    (b'{"_g":8}\n{"a":1}\n{"_g', 17),
    (b'{"_g":8}\n{"a":1}\n{"_g":x}\n', 17),
    (b'{"_g":7}\n{"a":1}\n', 0),  # the group does not end with a newline
])
def test_whole_groups(data: bytes, whole: int) -> None:
    assert whole_groups(data) == whole
