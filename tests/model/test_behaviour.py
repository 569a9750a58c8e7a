"""Model tests on the real corpus with the default settings: the quality target and behaviour checks.

One fit of the shipped defaults on the built-in corpus (the same the training Job does), then: macro-F1 on the
de-duplicated frozen holdout, minimum functionality, invariance to irrelevant edits, directional expectations.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from model.data import Split, split
from model.evaluate import evaluate
from model.settings import DataSettings, ModelSettings
from model.train import fit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data() -> Split:
    return split(DataSettings())


@pytest.fixture(scope="module")
def model(data: Split) -> Pipeline:
    return fit(ModelSettings(), data.train)


def proba(model: Pipeline, text: str) -> dict[str, float]:
    return dict(zip(model.classes_, model.predict_proba([text])[0], strict=True))


def test_default_model_reaches_the_macro_f1_target_on_the_frozen_holdout(model: Pipeline, data: Split) -> None:
    scores = evaluate(model, data.holdout["text"].tolist(), data.holdout["label"].tolist())
    assert scores.macro_f1 >= 0.76, scores.metrics()
    assert all(c["recall"] > 0.6 for c in scores.per_class.values()), scores.per_class
    assert scores.ece < 0.1


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love my new self-driving car, best decision ever", "positive"),
        ("worst idea ever, total waste of money", "negative"),
        ("Driverless cars are awesome and I can't wait to ride one", "positive"),
        ("I hate this so much", "negative"),
    ],
)
def test_minimum_functionality(model: Pipeline, text: str, label: str) -> None:
    assert model.predict([text])[0] == label


@pytest.mark.parametrize(
    ("text", "edited"),
    [
        ("I love my new self-driving car", "I love my new self-driving car http://t.co/abc123"),
        ("Google's driverless car is amazing", "Tesla's driverless car is amazing"),
        ("self-driving cars scare me", "Self-driving cars scare me   "),
    ],
)
def test_invariance_to_irrelevant_edits(model: Pipeline, text: str, edited: str) -> None:
    assert model.predict([text])[0] == model.predict([edited])[0]


def test_directional_expectations(model: Pipeline) -> None:
    base = "the self-driving car demo today"
    assert proba(model, base + " was great, I loved it")["positive"] > proba(model, base)["positive"]
    assert proba(model, base + " was awful and scary")["negative"] > proba(model, base)["negative"]


def test_probabilities_are_a_distribution(model: Pipeline, data: Split) -> None:
    probabilities = model.predict_proba(data.holdout["text"].tolist()[:500])
    assert np.allclose(probabilities.sum(axis=1), 1.0) and (probabilities >= 0).all()
