"""The fast path equals sklearn's ``predict_proba`` (max abs difference <= 1e-9) and falls back when it cannot."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline

from model.data import Split
from model.settings import ModelSettings
from model.train import build_pipeline
from serving.fastpath import FastPath, SklearnPath, _analyzer_for, build_proba_fn
from tests.serving.conftest import fit_tiny

TOLERANCE = 1e-9
EDGE_TEXTS = [
    "x", "a b", "!!!", "ÉTÉ à Paris", "tab\tand\nnewline   spaces", "ünïcödé wörds", "😀 emoji only 😀",
    "I", "no known n-grams: qzxqzx vvvkkk", "  padded  ", "a" * 300, "don't stop-believing!", "ß ẞ İ \u0131",
]


def assert_equal_to_sklearn(pipeline: Pipeline, texts: list[str]) -> None:
    fast, reason = FastPath.from_pipeline(pipeline)
    assert fast is not None, reason
    expected = pipeline.predict_proba(texts)
    got = fast.predict_proba(texts)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE


def test_fast_path_equals_sklearn_on_the_whole_holdout(tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    holdout = corpus_split.holdout["text"].tolist()
    assert len(holdout) > 1000
    assert_equal_to_sklearn(tiny_pipeline, holdout)
    assert_equal_to_sklearn(tiny_pipeline, EDGE_TEXTS)


def test_char_ngrams_are_looked_up_by_hash_for_the_default_pipeline(tiny_pipeline: Pipeline) -> None:
    fast, _ = FastPath.from_pipeline(tiny_pipeline)
    assert fast is not None
    assert [b.hashed is not None for b in fast._blocks] == [False, True]  # word: strings, char_wb: hashes


def test_single_text_and_batches_agree(tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    fast, _ = FastPath.from_pipeline(tiny_pipeline)
    assert fast is not None
    texts = corpus_split.holdout["text"].tolist()[:50]
    batched = fast.predict_proba(texts)
    one_by_one = np.vstack([fast.predict_proba([t]) for t in texts])
    assert np.abs(batched - one_by_one).max() <= TOLERANCE
    assert fast.predict_proba([]).shape == (0, 3)


def test_our_analyzers_produce_sklearns_ngrams(tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    texts = corpus_split.holdout["text"].tolist()[:2000] + EDGE_TEXTS
    for _, vec in tiny_pipeline.named_steps["features"].transformer_list:
        ours, theirs = _analyzer_for(vec), vec.build_analyzer()
        for text in texts:
            assert sorted(ours(text)) == sorted(theirs(text)), (vec.analyzer, text)


@pytest.mark.parametrize(
    "settings",
    [
        {"word_ngram_max": 1, "char_ngram_min": 3, "char_ngram_max": 3},
        {"word_ngram_max": 3, "char_ngram_min": 1, "char_ngram_max": 6, "sublinear_tf": False},
        {"class_weight": "none", "min_df": 1, "max_features": 500},
        {"char_ngram_min": 4, "char_ngram_max": 6},
    ],
    ids=["narrow-ngrams", "wide-ngrams-linear-tf", "capped-vocabulary", "char-ngrams-longer-than-short-words"],
)
def test_other_training_settings_stay_exact(settings: dict, corpus_split: Split) -> None:
    pipeline = fit_tiny(corpus_split, rows=500, **settings)
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:800] + EDGE_TEXTS)


@pytest.mark.parametrize(
    "clf",
    [lambda: SGDClassifier(loss="log_loss", random_state=0), lambda: MultinomialNB(alpha=0.1)],
    ids=["sgd-log-loss", "multinomial-nb"],
)
def test_other_classifiers_stay_exact(clf, corpus_split: Split) -> None:  # type: ignore[no-untyped-def]
    pipeline = build_pipeline(ModelSettings()).set_params(clf=clf())
    pipeline = _fit(pipeline, corpus_split)
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:800] + EDGE_TEXTS)


def _fit(pipeline: Pipeline, corpus: Split, rows: int = 500, labels: list[str] | None = None) -> Pipeline:
    train = corpus.train.head(rows)
    if labels:
        train = train[train["label"].isin(labels)]
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    return pipeline


@pytest.mark.parametrize(
    "make",
    [
        lambda: Pipeline([("features", TfidfVectorizer()), ("clf", LogisticRegression(max_iter=100))]),
        lambda: Pipeline([("features", TfidfVectorizer(norm="l1", binary=True, analyzer="char", ngram_range=(1, 3))),
                          ("clf", LogisticRegression(max_iter=100))]),
        lambda: Pipeline([("features", TfidfVectorizer(stop_words="english", strip_accents="unicode",
                                                       use_idf=False, norm=None)),
                          ("clf", SGDClassifier(loss="log_loss", random_state=0))]),
        lambda: Pipeline([("features", FeatureUnion([("w", TfidfVectorizer(lowercase=False,
                                                                           token_pattern=r"(?u)\b\w+\b"))])),
                          ("clf", LogisticRegression(max_iter=100, solver="liblinear"))]),
    ],
    ids=["single-vectorizer", "l1-binary-char", "stop-words-no-idf-no-norm", "case-kept-liblinear-ovr"],
)
def test_other_pipeline_shapes_stay_exact(make, corpus_split: Split) -> None:  # type: ignore[no-untyped-def]
    pipeline = _fit(make(), corpus_split)
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:500] + EDGE_TEXTS)


def test_binary_classifier_stays_exact(corpus_split: Split) -> None:
    pipeline = _fit(
        Pipeline([("features", TfidfVectorizer()), ("clf", LogisticRegression(max_iter=100))]),
        corpus_split, rows=800, labels=["negative", "positive"],
    )
    assert len(pipeline.classes_) == 2
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:500])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: Pipeline([("features", TfidfVectorizer(dtype=np.float32)), ("clf", LogisticRegression())]),
         "float32"),
        (lambda: Pipeline([("features", TfidfVectorizer()), ("clf", RidgeClassifier())]), "RidgeClassifier"),
        (lambda: Pipeline([("features", TfidfVectorizer(analyzer=str.split)), ("clf", LogisticRegression())]),
         "analyzer"),
        (lambda: Pipeline([("features", TfidfVectorizer()), ("clf", SGDClassifier(loss="modified_huber"))]),
         "modified_huber"),
    ],
    ids=["float32", "unsupported-classifier", "callable-analyzer", "sgd-modified-huber"],
)
def test_unsupported_configurations_fall_back_to_sklearn(make, reason: str, corpus_split: Split) -> None:  # type: ignore[no-untyped-def]
    pipeline = _fit(make(), corpus_split, rows=300)
    fast, why = FastPath.from_pipeline(pipeline)
    assert fast is None
    assert reason in why
    proba, why_again = build_proba_fn(pipeline)
    assert isinstance(proba, SklearnPath)
    assert why_again == why


def test_fast_path_can_be_switched_off(tiny_pipeline: Pipeline) -> None:
    proba, reason = build_proba_fn(tiny_pipeline, allow_fast=False)
    assert proba.kind == "sklearn"
    assert "disabled" in reason
