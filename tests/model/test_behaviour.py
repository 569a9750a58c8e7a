"""Model tests on the real corpus with the default settings: the quality target and the behaviour suite.

One fit of the shipped defaults on the built-in corpus (the same the training Job does), then: macro-F1 on the
de-duplicated frozen holdout, and the behaviour suite of ``model.behaviour`` per capability. The suite's floors
below are what the shipped model reaches (docs/model.md), so a change that reads sentiment worse fails here; the
issue's goals (90% overall, 80% per capability) are not reached yet by a model that keeps the F1 target.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from model import behaviour
from model.data import Split, split
from model.evaluate import evaluate
from model.settings import DataSettings, ModelSettings
from model.train import fit

pytestmark = pytest.mark.integration

# what the default model reaches, rounded down (docs/model.md); the model before the lexicon: 77.1% overall, the
# lexicon without negation counterfactuals: 80.9%
OVERALL_FLOOR = 0.85
FLOORS = {
    "sentiment_corpus_topics": 0.85, "sentiment_other_topics": 0.90, "neutral_facts": 0.65, "negation": 0.90,
    "invariance_entity": 0.65, "invariance_noise": 0.90, "direction_intensifier": 0.85, "direction_complaint": 0.95,
    "direction_praise": 0.95,
}


@pytest.fixture(scope="module")
def data() -> Split:
    return split(DataSettings())


@pytest.fixture(scope="module")
def model(data: Split) -> Pipeline:
    return fit(ModelSettings(), data.train)


def test_default_model_reaches_the_macro_f1_target_on_the_frozen_holdout(model: Pipeline, data: Split) -> None:
    scores = evaluate(model, data.holdout["text"].tolist(), data.holdout["label"].tolist())
    assert scores.macro_f1 >= 0.76, scores.metrics()
    assert all(c["recall"] > 0.6 for c in scores.per_class.values()), scores.per_class
    assert scores.ece < 0.1


def test_default_model_keeps_its_behaviour_suite_pass_rates(model: Pipeline) -> None:
    report = behaviour.run(model.predict_proba, model.classes_)
    assert report.overall >= OVERALL_FLOOR, report.pass_rates
    below = {c: r for c, r in report.pass_rates.items() if r < FLOORS[c]}
    assert not below, below


def test_probabilities_are_a_distribution(model: Pipeline, data: Split) -> None:
    probabilities = model.predict_proba(data.holdout["text"].tolist()[:500])
    assert np.allclose(probabilities.sum(axis=1), 1.0) and (probabilities >= 0).all()
