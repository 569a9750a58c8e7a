"""Scores of a labelled sample: accuracy, macro-F1 and its bootstrap confidence interval, the confusion matrix.
Pure numpy.

The interval is the percentile bootstrap over the labelled predictions: resampling ``n`` rows with replacement and
counting them into the confusion matrix is the same as drawing the matrix from a multinomial over its cells with
the observed cell shares, which is how it is drawn here (thousands of resamples in milliseconds). Macro-F1 averages
the F1 of the classes that occur in the sample (as a true label or a prediction), like scikit-learn's default, so a
class nobody labelled yet does not count as a zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Scores of one labelled sample (rows of ``confusion``: true class; columns: predicted class)."""

    n: int
    accuracy: float
    macro_f1: float
    ci_low: float
    ci_high: float
    per_class_f1: dict[str, float]
    confusion: list[list[int]]
    classes: tuple[str, ...]


def confusion(true: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """``k x k`` counts (rows: true class, columns: predicted); labels outside ``classes`` are not counted."""
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    t = np.fromiter((index.get(x, -1) for x in true), np.int64, len(true))
    p = np.fromiter((index.get(x, -1) for x in predicted), np.int64, len(predicted))
    keep = (t >= 0) & (p >= 0)
    return np.bincount(t[keep] * k + p[keep], minlength=k * k).reshape(k, k)


def f1_per_class(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 of each class and whether it occurs, for one matrix ``(k, k)`` or a stack ``(..., k, k)``."""
    tp = np.diagonal(matrices, axis1=-2, axis2=-1).astype(np.float64)
    support = matrices.sum(axis=-1)
    predicted = matrices.sum(axis=-2)
    denominator = support + predicted
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return f1, denominator > 0


def macro_f1(matrices: np.ndarray) -> np.ndarray:
    """Macro-F1 over the classes that occur, of one matrix or of each matrix of a stack."""
    f1, present = f1_per_class(matrices)
    count = present.sum(axis=-1)
    total = (f1 * present).sum(axis=-1)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def bootstrap_interval(matrix: np.ndarray, *, resamples: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of macro-F1 for the sample whose confusion matrix is ``matrix``."""
    n = int(matrix.sum())
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    k = matrix.shape[0]
    draws = rng.multinomial(n, matrix.ravel() / n, size=resamples).reshape(resamples, k, k)
    scores = macro_f1(draws)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(scores, [tail, 1.0 - tail])
    return float(low), float(high)


def score(true: Sequence[str], predicted: Sequence[str], classes: Sequence[str], *, resamples: int = 2000,
          confidence: float = 0.95, seed: int = 0) -> Scores:
    """All scores of a labelled sample."""
    matrix = confusion(true, predicted, classes)
    n = int(matrix.sum())
    f1, _ = f1_per_class(matrix)
    low, high = bootstrap_interval(matrix, resamples=resamples, confidence=confidence, seed=seed)
    return Scores(n=n, accuracy=float(np.trace(matrix) / n) if n else 0.0, macro_f1=float(macro_f1(matrix)),
                  ci_low=low, ci_high=high, per_class_f1=dict(zip(classes, f1.round(6).tolist(), strict=True)),
                  confusion=matrix.astype(int).tolist(), classes=tuple(classes))
