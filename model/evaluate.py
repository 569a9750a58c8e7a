"""Evaluate stage: score a fitted pipeline on the frozen holdout."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.pipeline import Pipeline

from model.progress import stage


@dataclass(frozen=True)
class Evaluation:
    """Scores of one model on one holdout. ``macro_f1`` is the gate metric."""

    macro_f1: float
    accuracy: float
    brier: float
    ece: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    classes: tuple[str, ...]
    us_per_text_batch: float
    us_per_text_single: float
    probabilities: np.ndarray = field(repr=False, compare=False)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat numeric metrics for MLflow (``prefix`` namespaces them, e.g. ``production.``)."""
        out = {
            "macro_f1": self.macro_f1,
            "accuracy": self.accuracy,
            "brier": self.brier,
            "ece": self.ece,
            "us_per_text_batch": self.us_per_text_batch,
            "us_per_text_single": self.us_per_text_single,
        }
        for cls, scores in self.per_class.items():
            for name, value in scores.items():
                out[f"{cls}.{name}"] = value
        return {f"{prefix}{k}": float(v) for k, v in out.items()}

    def report(self) -> dict[str, Any]:
        """JSON-able report including the confusion matrix (rows: true class, columns: predicted)."""
        return self.metrics() | {"classes": list(self.classes), "confusion_matrix": self.confusion}


def expected_calibration_error(probabilities: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class confidence over ``bins`` equal-width bins."""
    confidence = probabilities.max(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def evaluate(pipeline: Pipeline, texts: Sequence[str], labels: Sequence[str], name: str = "model") -> Evaluation:
    """Score ``pipeline`` on the holdout ``texts``/``labels``; also time batch and single-text inference."""
    classes = tuple(str(c) for c in pipeline.classes_)
    y_true = np.asarray(labels)
    with stage(f"score {name}", rows=len(texts)):
        started = time.perf_counter()
        probabilities = pipeline.predict_proba(list(texts))
        batch_us = (time.perf_counter() - started) / max(len(texts), 1) * 1e6
        single = list(texts[: min(100, len(texts))])
        started = time.perf_counter()
        for text in single:
            pipeline.predict_proba([text])
        single_us = (time.perf_counter() - started) / max(len(single), 1) * 1e6
    y_pred = np.asarray(classes)[probabilities.argmax(axis=1)]
    onehot = (y_true[:, None] == np.asarray(classes)[None, :]).astype(np.float64)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(classes), zero_division=0
    )
    per_class = {
        c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": float(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }
    return Evaluation(
        macro_f1=float(f1_score(y_true, y_pred, labels=list(classes), average="macro", zero_division=0)),
        accuracy=float(accuracy_score(y_true, y_pred)),
        brier=float(((probabilities - onehot) ** 2).sum(axis=1).mean()),
        ece=expected_calibration_error(probabilities, y_pred == y_true),
        per_class=per_class,
        confusion=confusion_matrix(y_true, y_pred, labels=list(classes)).astype(int).tolist(),
        classes=classes,
        us_per_text_batch=batch_us,
        us_per_text_single=single_us,
        probabilities=probabilities,
    )
