"""The fsync'ed write-ahead spool: a torn last line is cut on recovery, the disk budget is enforced."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.shipper.spool import Spool, SpoolFull


def test_spool_recovery_cuts_a_torn_line_and_enforces_its_budget(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=4096)
    spool.append([b'{"a":1}', b'{"a":2}'])
    open_file = next(tmp_path.glob("*.open"))
    with open_file.open("ab") as fh:
        fh.write(b'{"a":3, "torn')
    spool.close()
    again = Spool(tmp_path, "t", segment_max_bytes=1 << 20, segment_max_age_s=60, max_bytes=4096)
    segments = again.recover()
    assert len(segments) == 1 and segments[0].path.read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert again.pending_records == 2
    with pytest.raises(SpoolFull):
        again.append([b"x" * 5000])
