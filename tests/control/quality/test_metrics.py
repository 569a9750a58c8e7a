"""Scores of a labelled sample: macro-F1 as scikit-learn computes it, a bootstrap interval that covers the true
value about as often as it claims, and verdicts against the holdout figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from control.quality.live import DEGRADED, INSUFFICIENT, OK, WARN, assess
from control.quality.metrics import bootstrap_interval, confusion, macro_f1, score

CLASSES = ("negative", "neutral", "positive")


def sample(n: int, accuracy: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    true = rng.choice(CLASSES, n, p=[0.5, 0.3, 0.2])
    wrong = rng.random(n) > accuracy
    predicted = np.where(wrong, rng.choice(CLASSES, n), true)
    return true.tolist(), predicted.tolist()


def test_macro_f1_and_accuracy_agree_with_scikit_learn() -> None:
    true, predicted = sample(500, 0.7, seed=1)
    s = score(true, predicted, CLASSES, resamples=200)
    assert s.macro_f1 == pytest.approx(f1_score(true, predicted, average="macro"))
    assert s.accuracy == pytest.approx(accuracy_score(true, predicted))
    assert s.confusion == confusion_matrix(true, predicted, labels=list(CLASSES)).tolist()
    assert s.ci_low < s.macro_f1 < s.ci_high
    # a class absent from the sample (neither true nor predicted) does not count as a zero
    two = [t for t in true if t != "positive"][:50]
    assert macro_f1(confusion(two, two, CLASSES)) == 1.0


def test_bootstrap_interval_covers_the_population_value_about_95_percent_of_the_time() -> None:
    # population: a fixed confusion distribution; its macro-F1 is the value every sample estimates
    population = np.array([[400, 60, 40], [50, 180, 70], [20, 30, 150]], float)
    truth = float(macro_f1(population))
    rng = np.random.default_rng(7)
    covered = 0
    runs = 300
    for run in range(runs):
        drawn = rng.multinomial(300, population.ravel() / population.sum()).reshape(3, 3)
        low, high = bootstrap_interval(drawn, resamples=1000, confidence=0.95, seed=run)
        covered += low <= truth <= high
    assert 0.90 <= covered / runs <= 0.99, covered / runs
    narrow = bootstrap_interval((population * 10).astype(int), resamples=1000, confidence=0.95, seed=0)
    wide = bootstrap_interval((population / 5).astype(int), resamples=1000, confidence=0.95, seed=0)
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3  # more labels, a tighter interval


def labelled(n: int, accuracy: float, seed: int = 0) -> pd.DataFrame:
    true, predicted = sample(n, accuracy, seed)
    return pd.DataFrame({"true_label": true, "label": predicted})


def test_verdicts_against_the_holdout_figure() -> None:
    kw = {"min_labelled": 100, "max_f1_drop": 0.05, "resamples": 500}
    few = assess("3", "stable", 1000, labelled(50, 0.9), CLASSES, 0.75, **kw)
    assert few.verdict == INSUFFICIENT and few.macro_f1 is None and few.coverage == 0.05
    good = assess("3", "stable", 1000, labelled(800, 0.75), CLASSES, 0.72, **kw)
    assert good.verdict == OK and good.delta == pytest.approx(good.macro_f1 - 0.72)
    bad = assess("3", "stable", 1000, labelled(800, 0.45), CLASSES, 0.75, **kw)
    assert bad.verdict == DEGRADED and bad.delta_ci_high < -0.05 and bad.confusion is not None
    few_labels = labelled(150, 0.6, seed=3)
    estimate = f1_score(few_labels["true_label"], few_labels["label"], average="macro")
    unsure = assess("3", "stable", 150, few_labels, CLASSES, estimate + 0.07, **kw)
    assert unsure.verdict == WARN and unsure.delta_ci_high > -0.05 > unsure.delta  # estimate below, interval not
    unknown = assess("3", "stable", 1000, labelled(800, 0.3), CLASSES, None, **kw)
    assert unknown.verdict == OK and unknown.delta is None
