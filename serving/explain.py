"""Explanations of the linear model, exact: which features pushed each class's score, and by how much.

The classifier's score of class ``c`` for a text is ``intercept[c] + sum_j x[j] * coef[c, j]``, ``x`` being the
text's feature row (TF-IDF of word and character n-grams after normalisation, and the lexicon features). Each term
``x[j] * coef[c, j]`` is feature ``j``'s contribution; the answer lists the largest by magnitude, and ``rest`` sums
the others, so ``intercept + sum(contributions) + rest`` equals the score (the "logit" sklearn's ``predict_proba``
turns into probabilities: sigmoid per class then normalised for one-vs-rest, softmax for multinomial). The rows
come from sklearn's own ``transform``; this is the ``:explain`` verb, not the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.fastpath import linear_head

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

TOP_FEATURES = 10
"""Contributions listed per class and text (the rest are summed into ``rest``)."""


def _split_name(name: str) -> tuple[str, str]:
    """``("word", "not bad")`` from the union's ``word__not bad``; ``("features", name)`` without a prefix."""
    kind, _, feature = name.partition("__")
    return (kind, feature.removeprefix("lexicon:")) if feature else ("features", name)


class Explainer:
    """Exact per-feature contributions of a fitted TF-IDF (+ lexicon) + linear pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        """Read the coefficients and feature names; raises ``ValueError`` for a pipeline it cannot explain."""
        features, clf = pipeline.steps[0][1], pipeline.steps[-1][1]
        names = [str(n) for n in features.get_feature_names_out()]
        head = linear_head(clf, len(names))
        if isinstance(head, str):
            raise ValueError(head)
        coef_t, intercept, rule = head
        self._features = features
        self._coef = np.ascontiguousarray(coef_t.T)  # (n_scores, n_features)
        self._intercept = intercept
        self._names = [_split_name(n) for n in names]
        classes = [str(c) for c in clf.classes_]
        # a binary classifier has one score, that of the second class
        self.scored_classes = classes[1:] if self._coef.shape[0] == 1 else classes
        self.rule = rule

    def explain(self, texts: Sequence[str], top: int = TOP_FEATURES) -> list[dict[str, dict[str, Any]]]:
        """Per text and scored class: ``logit``, ``intercept``, the ``top`` contributions and ``rest``."""
        rows = self._features.transform(list(texts)).tocsr()
        out: list[dict[str, dict[str, Any]]] = []
        for r in range(rows.shape[0]):
            columns = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
            values = rows.data[rows.indptr[r] : rows.indptr[r + 1]]
            per_class: dict[str, dict[str, Any]] = {}
            for c, cls in enumerate(self.scored_classes):
                contributions = values * self._coef[c, columns]
                order = np.argsort(-np.abs(contributions), kind="stable")
                shown = order[:top]
                per_class[cls] = {
                    "logit": float(self._intercept[c] + contributions.sum()),
                    "intercept": float(self._intercept[c]),
                    "contributions": [
                        {"feature": self._names[columns[k]][1], "kind": self._names[columns[k]][0],
                         "value": float(values[k]), "weight": float(self._coef[c, columns[k]]),
                         "contribution": float(contributions[k])}
                        for k in shown
                    ],
                    "rest": float(contributions[order[top:]].sum()),
                }
            out.append(per_class)
        return out
