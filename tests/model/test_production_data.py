"""Labelled production data added to the corpus: de-duplicated against everything, never in the frozen holdout, the
newest rows by prediction time held out as the recent holdout; the leakage guard refuses a split that would lie."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from model.data import add_production, check_no_leak, read_production, split
from model.errors import DataError
from model.settings import DataSettings

LABELS = ["negative", "neutral", "positive"]


def corpus(n: int = 300) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"corpus text {i} about {LABELS[i % 3]}" for i in range(n)],
                         "label": [LABELS[i % 3] for i in range(n)]})


def production(n: int, start: int = 0, t0: float = 1000.0) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"production text {i}" for i in range(start, start + n)],
                         "label": [LABELS[i % 3] for i in range(start, start + n)],
                         "ts": [t0 + i for i in range(start, start + n)]})


@pytest.fixture
def base() -> object:
    return split(DataSettings(min_rows=10), corpus())


def test_production_rows_never_enter_the_frozen_holdout_and_duplicates_go(base) -> None:  # type: ignore[no-untyped-def]
    holdout_text = base.holdout["text"].iloc[0]
    train_text = base.train["text"].iloc[0]
    rows = pd.concat([
        production(100),
        pd.DataFrame({"text": [holdout_text.upper(), f"  {train_text}  ", "production text 5", "production text 5"],
                      "label": ["positive", "positive", "negative", "negative"], "ts": [5000.0] * 4}),
    ], ignore_index=True)
    result = add_production(base, rows, recent_share=0.3, recent_min_rows=10)
    assert result.split.holdout is base.holdout and result.split.holdout_fingerprint == base.holdout_fingerprint
    assert result.stats["production_holdout_overlap_dropped"] == 1
    assert result.stats["production_corpus_duplicates_dropped"] == 1
    assert result.stats["production_duplicates_dropped"] == 2
    train_keys = set(result.split.train["key"])
    assert not train_keys & set(base.holdout["key"]) and not train_keys & set(result.recent["key"])
    # the corpus label of a text in the corpus wins; a production text seen twice keeps its first time
    assert (result.split.train["text"] == train_text).sum() == 1
    assert len(result.recent) + result.stats["production_train_rows"] == 100


def test_recent_holdout_is_the_newest_rows_by_prediction_time(base) -> None:  # type: ignore[no-untyped-def]
    rows = production(200).sample(frac=1.0, random_state=3)  # order in the file does not matter
    result = add_production(base, rows, recent_share=0.25, recent_min_rows=10)
    assert len(result.recent) == 50
    assert set(result.recent["text"]) == {f"production text {i}" for i in range(150, 200)}
    older = result.split.train[result.split.train["text"].str.startswith("production")]
    assert len(older) == 150 and (older["weight"] == 1.0).all()
    assert result.recent_fingerprint is not None
    again = add_production(base, rows.iloc[::-1], recent_share=0.25, recent_min_rows=10)
    assert (again.production_fingerprint, again.recent_fingerprint) == (result.production_fingerprint,
                                                                        result.recent_fingerprint)


def test_a_cut_inside_one_prediction_time_keeps_that_time_together(base) -> None:  # type: ignore[no-untyped-def]
    rows = production(100).assign(ts=[1.0] * 60 + [2.0] * 40)
    result = add_production(base, rows, recent_share=0.5, recent_min_rows=10)
    assert len(result.recent) == 40 and (result.recent["ts"] == 2.0).all()
    rows = production(100).assign(ts=[1.0] * 40 + [2.0] * 60)
    assert len(add_production(base, rows, recent_share=0.5, recent_min_rows=10).recent) == 60


def test_too_few_rows_for_a_recent_holdout_all_go_to_training(base) -> None:  # type: ignore[no-untyped-def]
    result = add_production(base, production(20), recent_share=0.3, recent_min_rows=10, weight=2.0)
    assert result.recent.empty and result.recent_fingerprint is None
    added = result.split.train[result.split.train["text"].str.startswith("production")]
    assert len(added) == 20 and (added["weight"] == 2.0).all()


def test_unknown_production_labels_are_bad_data(base) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=r"unknown label\(s\) \['sarcastic'\]"):
        add_production(base, production(10).assign(label="sarcastic"), recent_share=0.3, recent_min_rows=1)


def test_leakage_guard_names_the_leaked_texts() -> None:
    train = pd.DataFrame({"key": ["a", "b", "c"]})
    check_no_leak(train, pd.DataFrame({"key": ["x"]}), pd.DataFrame({"key": ["y"]}))
    with pytest.raises(DataError, match=r"1 training text\(s\) are also in a holdout, e.g. \['b'\]"):
        check_no_leak(train, pd.DataFrame({"key": ["x"]}), pd.DataFrame({"key": ["b"]}))


def test_read_production_needs_text_label_and_time(tmp_path: Path) -> None:
    good = tmp_path / "p.parquet"
    production(5).to_parquet(good)
    assert len(read_production(good)) == 5
    csv = tmp_path / "p.csv"
    production(5).drop(columns="ts").to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"no column\(s\) \['ts'\]"):
        read_production(csv)
    with pytest.raises(DataError, match="production data not found"):
        read_production(tmp_path / "missing.parquet")
