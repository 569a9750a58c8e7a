"""``kube-sentiment feedback import`` and ``snapshot`` as a user runs them (``main(argv)``): labels from CSV and
Parquet stored once however often imported, bad rows refused naming the row, and a window's labelled production
data written for training with its metadata."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from control.feedback.main import main
from model.data import read_production, snapshot_metadata
from model.errors import ExitCode
from serving.eventlog.parquet import FEEDBACK
from serving.eventlog.reader import read_window
from tests.support.events import events, feedback_events, write_to_sink

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
WIDE = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def stored(sink: Path) -> pd.DataFrame:
    return read_window(str(sink), *WIDE, event_log=FEEDBACK).table.to_pandas()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    """Exit code and printed summary (``{"stderr": ...}`` when nothing was printed)."""
    code = main([*argv, "--json-logs"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {"stderr": captured.err}


def test_csv_import_stores_each_label_once_however_often_imported(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    sink = tmp_path / "sink"
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label,source,at\nr1:0,positive,,\nr2:0,negative,tool,2026-03-01T12:00:00Z\n"
                      "r3:0,neutral,tool,1772366400\n")
    code, summary = run(capsys, "import", str(labels), "--sink", str(sink), "--environment", "prod")
    assert code == 0 and summary["stored"] == 3 and summary["classes"] == ["negative", "neutral", "positive"]
    assert run(capsys, "import", str(labels), "--sink", str(sink), "--environment", "prod")[0] == 0
    window = read_window(str(sink), *WIDE, event_log=FEEDBACK)
    assert window.table.num_rows == 3 and window.duplicates == 3
    rows = stored(sink).set_index("prediction_id")
    assert rows.loc["r1:0", "source"] == "import" and rows.loc["r2:0", "source"] == "tool"
    assert rows.loc["r2:0", "at"] == rows.loc["r3:0", "at"] == datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
    assert set(rows["environment"]) == {"prod"}


def test_a_bad_row_stores_nothing_unless_told_to_skip_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sink = tmp_path / "sink"
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nr1:0,positive\nr2:0,sarcastic\nr3,negative\n")
    code, result = run(capsys, "import", str(labels), "--sink", str(sink))
    assert code == ExitCode.BAD_DATA and not sink.exists()
    message = json.loads(result["stderr"].strip().splitlines()[-1])["msg"]
    assert "row 3: label 'sarcastic' is not one of the model's classes" in message and "nothing was stored" in message
    code, summary = run(capsys, "import", str(labels), "--sink", str(sink), "--skip-invalid", "--classes",
                        "positive", "negative")
    assert code == 0 and summary["stored"] == 1 and summary["invalid"] == 2
    assert "row 4: 'id' 'r3' is not a prediction id" in summary["invalid_examples"][1]


def test_unreadable_files_are_bad_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,label\nr1:0,n\xe9gative\n".encode("latin-1"))
    assert run(capsys, "import", str(latin), "--sink", str(tmp_path / "s"))[0] == ExitCode.BAD_DATA
    no_label = tmp_path / "x.csv"
    no_label.write_text("id,class\nr1:0,positive\n")
    assert run(capsys, "import", str(no_label), "--sink", str(tmp_path / "s"))[0] == ExitCode.BAD_DATA
    assert run(capsys, "import", str(tmp_path / "none.csv"), "--sink", str(tmp_path / "s"))[0] == ExitCode.BAD_DATA


def test_parquet_import_with_timestamps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.parquet"
    pd.DataFrame({"id": ["a:0", "b:1"], "label": ["positive", "neutral"],
                  "at": pd.to_datetime(["2026-03-01 12:00", "2026-03-01 13:00"])}).to_parquet(labels)
    code, summary = run(capsys, "import", str(labels), "--sink", str(tmp_path / "sink"))
    assert code == 0 and summary["stored"] == 2
    assert sorted(stored(tmp_path / "sink")["at"]) == [T0, T0 + 3600]


def test_snapshot_writes_labelled_texts_with_their_prediction_time(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sink = tmp_path / "sink"
    write_to_sink(sink, events(5, ts=T0, prefix="p", texts=[f"text {i}" for i in range(5)]), "s1")
    write_to_sink(sink, feedback_events(["p0:0", "p1:0", "p9:0"], ["negative", "neutral", "positive"],
                                        received=T0 + 60), "s2")
    out = tmp_path / "snap" / "production.parquet"
    code, summary = run(capsys, "snapshot", "--sink", str(sink), "--out", str(out), "--start",
                        "2026-03-01T11:00:00", "--end", "2026-03-01T13:00:00")
    assert code == 0 and summary["rows"] == 2 and summary["join"]["unmatched"] == 1 and summary["predictions"] == 5
    frame = read_production(out)
    assert frame.sort_values("text").to_dict("records") == [{"text": "text 0", "label": "negative", "ts": T0},
                                                            {"text": "text 1", "label": "neutral", "ts": T0}]
    meta = snapshot_metadata(out)
    assert meta["rows"] == 2 and meta["sink"] == str(sink) and meta["start"].startswith("2026-03-01T11:00")
    empty = tmp_path / "empty.parquet"
    assert run(capsys, "snapshot", "--sink", str(sink), "--out", str(empty), "--window", "1h")[0] == 0
    assert read_production(empty).empty
