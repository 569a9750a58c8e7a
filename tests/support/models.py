"""Small real models fitted on the real corpus (no mocks, small sizes so the fast tier stays fast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline

from model.artifacts import save_model_dir
from model.data import Split
from model.profile import build_profile
from model.settings import ModelSettings
from model.train import build_pipeline, fit

#: Training rows of the tiny model the serving tests use.
TINY_ROWS = 1200


def fit_tiny(corpus: Split, rows: int = TINY_ROWS, **settings: object) -> Pipeline:
    """The project's pipeline (any ``ModelSettings`` overrides) fitted on the first ``rows`` training rows."""
    train = corpus.train.head(rows)
    pipeline = build_pipeline(ModelSettings(**{"max_iter": 100, **settings}))  # type: ignore[arg-type]
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    return pipeline


def save_tiny(pipeline: Pipeline, path: Path, tables: bool = True) -> Path:
    """``pipeline`` as a model directory registered as ``sentiment`` version 3 (what KServe's storage initializer
    leaves at ``/mnt/models``), with the predictor's tables as ``kube-sentiment train`` writes them unless
    ``tables`` is false."""
    save_model_dir(path, pipeline, {"registered_version": "3", "registered_model": "sentiment"}, None)
    if tables:
        from serving.fastpath import export_tables

        why_not = export_tables(pipeline, path)
        assert not why_not, why_not
    return path


@dataclass(frozen=True)
class SmallModel:
    """A small real model, its model directory with a reference profile (and macro-F1) from one half of the frozen
    holdout, and the other half of the holdout (never seen by the profile) with its labels."""

    model_dir: Path
    pipeline: Pipeline
    classes: tuple[str, ...]
    fresh_texts: list[str]
    train_texts: list[str]
    unseen_texts: list[str]
    """In-domain texts neither the model nor its profile saw: the other half of the holdout, then the training rows
    it was not fitted on."""
    fresh_labels: list[str]
    """The true labels of ``fresh_texts``."""
    holdout_macro_f1: float
    """Macro-F1 on the profiled half of the holdout (recorded in the model directory's metrics)."""


def fit_small_model(corpus: Split, directory: Path, rows: int = 3000) -> SmallModel:
    """Fit on ``rows`` training rows (logistic loss by SGD, capped vocabularies) and save with a profile: enough
    for the drift signals to tell held-out texts from other domains."""
    train = corpus.train.iloc[:rows]
    pipeline = fit(ModelSettings(classifier="logreg-sgd", max_features=20000, char_ngram_max=4), train)
    holdout = corpus.holdout.sample(frac=1.0, random_state=1).reset_index(drop=True)
    half = len(holdout) // 2
    profiled = holdout.iloc[:half]
    texts = profiled["text"].tolist()
    probabilities = pipeline.predict_proba(texts)
    profile = build_profile(pipeline, texts, probabilities, profiled["label"].tolist())
    predicted = pipeline.classes_[probabilities.argmax(axis=1)]
    holdout_f1 = float(f1_score(profiled["label"], predicted, average="macro"))
    model_dir = save_model_dir(directory / "model", pipeline, {"registered_model": "sentiment", "version": "1",
                                                               "metrics": {"macro_f1": holdout_f1}}, profile)
    fresh = holdout.iloc[half:]["text"].tolist()
    return SmallModel(model_dir, pipeline, tuple(str(c) for c in pipeline.classes_), fresh, train["text"].tolist(),
                      fresh + corpus.train.iloc[rows:]["text"].tolist(), holdout.iloc[half:]["label"].tolist(),
                      holdout_f1)
