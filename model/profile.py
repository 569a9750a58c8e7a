"""The training reference profile: what the model's inputs and outputs looked like on the frozen holdout.

The drift job compares windows of production predictions with it. Saved as ``reference_profile.json`` in the
model directory (``model.artifacts``) and logged to MLflow with the run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

SCHEMA = "kube-sentiment.reference-profile/v1"
CONFIDENCE_BINS = [round(x, 2) for x in np.linspace(0.0, 1.0, 21)]
LENGTH_BINS = [0, 10, 20, 40, 60, 80, 100, 120, 140, 160, 200, 280, 400, 1000, 10_000]
SAMPLE_SIZE = 2000
#: Holdout texts kept in the profile: the drift job's domain classifier compares windows with them, and calibrates
#: its out-of-distribution share on them (the share of these held-out texts it flags is the share expected under no
#: drift).
REFERENCE_TEXTS = 2000
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


def word_vocabulary(pipeline: Pipeline) -> frozenset[str]:
    """Unigram vocabulary of the pipeline's word vectorizer (the model's own notion of a known term)."""
    word = pipeline.named_steps["features"].transformer_list[0][1]
    return frozenset(t for t in word.vocabulary_ if " " not in t)


def oov_rates(texts: Sequence[str], vocabulary: frozenset[str]) -> np.ndarray:
    """Per text, the share of word tokens not in ``vocabulary`` (1.0 for a text with no token)."""
    rates = np.empty(len(texts), dtype=np.float64)
    for i, text in enumerate(texts):
        tokens = _TOKEN.findall(text.lower())
        rates[i] = 1.0 if not tokens else sum(t not in vocabulary for t in tokens) / len(tokens)
    return rates


REQUIRED_KEYS = ("classes", "n", "predicted_class_shares", "confidence", "text_length", "oov", "reference_texts")


def check_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """Return ``profile`` if it is a reference profile the drift job can use; ``ModelArtifactError`` otherwise."""
    from model.errors import ModelArtifactError

    if profile.get("schema") != SCHEMA:
        raise ModelArtifactError(f"reference profile schema {profile.get('schema')!r} is not {SCHEMA!r}")
    missing = [k for k in REQUIRED_KEYS if k not in profile]
    if missing:
        raise ModelArtifactError(f"reference profile lacks {missing}")
    return profile


def _histogram(values: np.ndarray, bins: list[float] | list[int]) -> dict[str, Any]:
    """Counts of ``values`` in ``bins`` (clipped into the outer bins) with the bin edges."""
    counts, _ = np.histogram(np.clip(values, bins[0], bins[-1]), bins=bins)
    return {"bins": list(bins), "counts": counts.astype(int).tolist()}


def build_profile(
    pipeline: Pipeline,
    texts: Sequence[str],
    probabilities: np.ndarray,
    labels: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile the model on ``texts`` (the holdout) given its ``probabilities`` (rows indexed like classes_)."""
    classes = [str(c) for c in pipeline.classes_]
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    vocabulary = word_vocabulary(pipeline)
    oov = oov_rates(texts, vocabulary)
    rng = np.random.default_rng(seed)
    sample = rng.choice(len(texts), size=min(SAMPLE_SIZE, len(texts)), replace=False)
    shares = np.bincount(predicted, minlength=len(classes)) / max(len(texts), 1)
    profile: dict[str, Any] = {
        "schema": SCHEMA,
        "n": len(texts),
        "classes": classes,
        "predicted_class_shares": dict(zip(classes, shares.round(6).tolist(), strict=True)),
        "confidence": _histogram(confidence, CONFIDENCE_BINS)
        | {"mean": float(confidence.mean()), "sample": confidence[sample].round(6).tolist()},
        "text_length": _histogram(lengths, LENGTH_BINS)
        | {"mean": float(lengths.mean()), "sample": lengths[sample].tolist()},
        "oov": {
            "vocabulary_size": len(vocabulary),
            "mean_rate": float(oov.mean()),
            "no_known_term_share": float((oov >= 1.0).mean()),
            "sample": oov[sample].round(6).tolist(),
        },
        "reference_texts": [texts[i] for i in sample[:REFERENCE_TEXTS]],
    }
    if labels is not None:
        true = np.asarray(labels)
        profile["label_shares"] = {c: float((true == c).mean()) for c in classes}
    return profile
