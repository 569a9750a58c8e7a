"""Train stage: build and fit the TF-IDF (word + character n-grams) + linear classifier pipeline."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline

from model.progress import stage
from model.settings import ModelSettings

log = logging.getLogger(__name__)


def build_features(settings: ModelSettings) -> FeatureUnion:
    """Word (1..``word_ngram_max``) and character (``char_wb``) TF-IDF, L2-normalised each, concatenated."""
    common: dict[str, Any] = {
        "min_df": settings.min_df,
        "sublinear_tf": settings.sublinear_tf,
        "max_features": settings.max_features,
        "lowercase": True,
        "dtype": np.float64,
    }
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, settings.word_ngram_max), **common)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(settings.char_ngram_min, settings.char_ngram_max), **common
                ),
            ),
        ]
    )


def build_classifier(settings: ModelSettings) -> LogisticRegression | SGDClassifier | MultinomialNB:
    """The classifier named by ``settings.classifier``; every choice exposes ``predict_proba``."""
    class_weight = None if settings.class_weight == "none" else settings.class_weight
    if settings.classifier == "logreg":
        return LogisticRegression(C=settings.c, solver="liblinear", max_iter=max(settings.max_iter, 100),
                                  class_weight=class_weight)
    if settings.classifier == "logreg-sgd":
        return SGDClassifier(
            loss="log_loss", alpha=settings.alpha, class_weight=class_weight, max_iter=settings.max_iter,
            tol=None, random_state=0,
        )
    return MultinomialNB(alpha=max(settings.alpha, 1e-3))


def build_pipeline(settings: ModelSettings) -> Pipeline:
    """The untrained pipeline: ``features`` (FeatureUnion ``word`` + ``char``) then ``clf``."""
    return Pipeline([("features", build_features(settings)), ("clf", build_classifier(settings))])


def fit(settings: ModelSettings, train: pd.DataFrame) -> Pipeline:
    """Fit a fresh pipeline on the ``text``/``label`` columns of ``train`` (``weight``, when present, weighs rows)."""
    pipeline = build_pipeline(settings)
    fit_params = {"clf__sample_weight": train["weight"].to_numpy()} if "weight" in train else {}
    with stage("fit", rows=len(train), classifier=settings.classifier), warnings.catch_warnings():
        # liblinear on >2 classes is one-vs-rest by design here; sklearn 1.7 warns that it will want an explicit
        # OneVsRestClassifier in 1.8 (the lock pins 1.7.2).
        warnings.filterwarnings("ignore", message=".*liblinear.*", category=FutureWarning)
        pipeline.fit(train["text"].tolist(), train["label"].to_numpy(), **fit_params)
    return pipeline


def flat_params(settings: ModelSettings) -> dict[str, Any]:
    """Hyper-parameters as a flat dict for MLflow."""
    return {f"model.{k}": v for k, v in settings.model_dump().items()}
