"""Training-time settings that change how rows are weighed, on a small sample of the real corpus."""

from __future__ import annotations

import numpy as np

from model.data import Split
from model.settings import ModelSettings
from model.train import fit

SMALL = {"max_features": 2000, "char_ngram_max": 3, "lexicon": False, "max_iter": 5}


def test_confidence_power_raises_each_rows_confidence_before_it_weighs_the_row(corpus_split: Split) -> None:
    train = corpus_split.train.head(400)
    assert train["weight"].nunique() > 1  # the built-in corpus carries per-row label confidence

    def coef(power: float, weight: object) -> np.ndarray:
        return fit(ModelSettings(confidence_power=power, **SMALL), train.assign(weight=weight))["clf"].coef_

    given = train["weight"].to_numpy()
    assert np.allclose(coef(0.0, given), coef(1.0, 1.0))  # 0: every row counts the same
    assert np.allclose(coef(3.0, given), coef(1.0, given**3))
    assert not np.allclose(coef(3.0, given), coef(1.0, given))
