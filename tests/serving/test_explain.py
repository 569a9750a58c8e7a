"""The explainer: exact per-feature contributions (contributions + rest + intercept = the classifier's score)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.pipeline import Pipeline

from model.data import Split
from serving.explain import Explainer

TEXTS = ["my flight is at 5pm", "not bad at all!!!", "I hate driverless cars", "great, but the staff was rude", "x"]


def test_contributions_plus_intercept_are_the_score_to_1e9(tiny_pipeline: Pipeline) -> None:
    explainer = Explainer(tiny_pipeline)
    scores = tiny_pipeline.decision_function(TEXTS)
    for r, per_class in enumerate(explainer.explain(TEXTS, top=100_000)):
        assert list(per_class) == list(tiny_pipeline.classes_)
        for c, (cls, e) in enumerate(per_class.items()):
            total = e["intercept"] + sum(f["contribution"] for f in e["contributions"])
            assert e["rest"] == 0.0, cls
            assert abs(total - e["logit"]) <= 1e-9 and abs(e["logit"] - scores[r, c]) <= 1e-9


def test_the_top_contributions_come_first_and_the_rest_keeps_the_sum(tiny_pipeline: Pipeline) -> None:
    explainer = Explainer(tiny_pipeline)
    scores = tiny_pipeline.decision_function(TEXTS)
    for r, per_class in enumerate(explainer.explain(TEXTS, top=5)):
        for c, e in enumerate(per_class.values()):
            sizes = [abs(f["contribution"]) for f in e["contributions"]]
            assert len(sizes) <= 5 and sizes == sorted(sizes, reverse=True)
            total = e["intercept"] + sum(f["contribution"] for f in e["contributions"]) + e["rest"]
            assert abs(total - scores[r, c]) <= 1e-9
            for f in e["contributions"]:
                assert f["contribution"] == pytest.approx(f["value"] * f["weight"], abs=1e-12)


def test_features_are_named_by_kind(tiny_pipeline: Pipeline) -> None:
    [per_class] = Explainer(tiny_pipeline).explain(["I hate it"], top=100_000)
    features = {(f["kind"], f["feature"]) for f in per_class["negative"]["contributions"]}
    assert ("word", "hate") in features and ("char", "hat") in features
    assert ("lexicon", "negative") in features


def test_a_binary_classifier_explains_its_one_score(corpus_split: Split) -> None:
    train = corpus_split.train[corpus_split.train["label"] != "neutral"].head(400)
    pipeline = Pipeline([("features", TfidfVectorizer()), ("clf", LogisticRegression(max_iter=200))])
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    [per_class] = Explainer(pipeline).explain(["what a great day"])
    assert list(per_class) == ["positive"]
    assert per_class["positive"]["logit"] == pytest.approx(pipeline.decision_function(["what a great day"])[0])
    assert per_class["positive"]["contributions"][0]["kind"] == "features"


def test_an_unsupported_classifier_is_refused_with_the_reason(corpus_split: Split) -> None:
    train = corpus_split.train.head(300)
    pipeline = Pipeline([("features", TfidfVectorizer()), ("clf", RidgeClassifier())])
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    with pytest.raises(ValueError, match="RidgeClassifier"):
        Explainer(pipeline)
    assert np.isfinite(pipeline.decision_function(["x"])).all()
