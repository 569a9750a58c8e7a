"""Train stage: build and fit the TF-IDF (word + character n-grams) + lexicon + linear classifier pipeline."""

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

from model.behaviour import LABELS as SENTIMENT_LABELS
from model.lexicon import LexiconFeatures, negation_counterfactuals
from model.progress import stage
from model.settings import ModelSettings

log = logging.getLogger(__name__)


def build_features(settings: ModelSettings) -> FeatureUnion:
    """Word (1..``word_ngram_max``) and character (``char_wb``) TF-IDF, L2-normalised each, and (``lexicon``) the
    lexicon features of :mod:`model.lexicon`, concatenated."""
    common: dict[str, Any] = {
        "min_df": settings.min_df,
        "sublinear_tf": settings.sublinear_tf,
        "max_features": settings.max_features,
        "lowercase": True,
        "dtype": np.float64,
    }
    steps: list[tuple[str, Any]] = [
        ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, settings.word_ngram_max), **common)),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(settings.char_ngram_min, settings.char_ngram_max),
                                 **common)),
    ]
    if settings.lexicon:
        steps.append(("lexicon", LexiconFeatures(window=settings.negation_window, scale=settings.lexicon_scale)))
    return FeatureUnion(steps)


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


def with_counterfactuals(settings: ModelSettings, train: pd.DataFrame) -> pd.DataFrame:
    """``train`` plus its negation counterfactuals (:func:`model.lexicon.negation_counterfactuals`), weighted
    ``negation_counterfactuals`` times their source row; ``train`` itself when they are off or do not apply (the
    labels are not the three sentiment classes)."""
    labels = set(train["label"])
    if not (settings.lexicon and settings.negation_counterfactuals > 0) or labels != set(SENTIMENT_LABELS):
        return train
    lexicon = LexiconFeatures(window=settings.negation_window).fit([])
    made = negation_counterfactuals(train["text"].tolist(), train["label"].tolist(), lexicon)
    if not made:
        return train
    rows, texts, new_labels = zip(*made, strict=True)
    source = train.iloc[list(rows)]
    weight = source["weight"].to_numpy() if "weight" in source else np.ones(len(rows))
    extra = pd.DataFrame({"text": texts, "label": new_labels, "weight": weight * settings.negation_counterfactuals})
    base = train if "weight" in train else train.assign(weight=1.0)
    log.info("added %d negation counterfactuals", len(extra), extra={"counterfactuals": len(extra)})
    return pd.concat([base[["text", "label", "weight"]], extra], ignore_index=True)


def fit(settings: ModelSettings, train: pd.DataFrame) -> Pipeline:
    """Fit a fresh pipeline on the ``text``/``label`` columns of ``train`` (``weight``, when present, raised to
    ``confidence_power``, weighs rows), with the negation counterfactuals of :func:`with_counterfactuals` added
    (each weighted relative to its source row's weight)."""
    pipeline = build_pipeline(settings)
    if "weight" in train and settings.confidence_power != 1.0:
        train = train.assign(weight=train["weight"] ** settings.confidence_power)
    train = with_counterfactuals(settings, train)
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
