"""Sentiment-lexicon features: VADER's lexicon read with negation, boosters, "but" and exclamation marks.

:class:`LexiconFeatures` is a scikit-learn transformer that turns each text into five numbers, the evidence a
sentiment lexicon gives whatever the topic: ``log1p`` of the summed positive valence, of the summed negative
valence, and of each of these under a negation, and an indicator of "no sentiment word at all". The linear
classifier weighs them beside the n-grams, so a sentence about a topic the corpus lacks, or about one whose label
mix the corpus skews, still has its sentiment words counted. :func:`negation_counterfactuals` makes the training
rows that teach what a negation does (the corpus alone teaches that "not" means negative). The lexicon and word
lists are VADER's (Hutto & Gilbert, 2014), read from the ``vaderSentiment`` package at ``fit`` and kept in the
fitted object (a pickled model needs no lexicon file to predict).

The rules are VADER's, simplified so that the serving kernel (:mod:`serving.kernels`) reproduces them exactly on
code points; this module is their reference and the kernel is tested against it:

1. The text is lowercased and split at whitespace into chunks. A chunk that is a lexicon entry with non-word
   characters (an emoticon such as ``:)`` or ``<3``) is one token. Otherwise each maximal run of word characters
   (``\\w``) in it is a token, except that a run followed by an apostrophe (``'`` or U+2019) and a lone ``t``
   (``don't``, ``can't``, ``won't``) is a negation and that ``t`` is no token.
2. Tokens in VADER's negation list (``not``, ``never``, ``without``, ``dont``, ...) are negations; ``no`` is a
   negation when a valence token follows it in its clause and otherwise a valence token of its own (VADER's
   special case: "no complaints" vs "no response"); tokens
   in its booster list are boosters (``very``: +0.293, ``barely``: -0.293); ``but`` is the contrast; other tokens
   in the lexicon carry its valence (-4..4). Any other token carries nothing.
3. A clause ends at ``. , ; : ! ?`` between two tokens. A valence token is *negated* when a negation is among the
   ``window`` tokens before it in its clause; each booster among the three tokens before it in its clause moves
   its valence away from zero by the booster's value times 1, 0.95, 0.9 (by distance).
4. With a ``but`` in the text, valences before the first one count half and after it one and a half times.
5. Positive and negative valences are summed apart, negated ones apart again (as magnitudes); then each ``!``
   (at most four) adds 0.292 to the larger of the two plain sums.
6. The features are ``scale * log1p(sum)`` of the four sums, and ``scale`` when all four are zero (else 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from model.lexicon_rules import (
    APOSTROPHES,
    BOOSTER,
    BOOSTER_DECAY,
    CLAUSE_PUNCTUATION,
    CONTRAST,
    CONTRAST_AFTER,
    CONTRAST_BEFORE,
    CONTRAST_WORD,
    EXCLAMATION,
    FEATURES,
    MAX_EXCLAMATIONS,
    NEGATION,
    NO,
    NO_WORD,
    VALENCE,
)

__all__ = [
    "APOSTROPHES", "BOOSTER", "BOOSTER_DECAY", "CLAUSE_PUNCTUATION", "CONTRAST", "CONTRAST_AFTER", "CONTRAST_BEFORE",
    "CONTRAST_WORD", "EXCLAMATION", "FEATURES", "MAX_EXCLAMATIONS", "NEGATION", "NO", "NO_WORD", "VALENCE",
    "LexiconFeatures", "Token", "negation_counterfactuals", "vader_lexicon",
]

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Token:
    """One token of a text: its kind (``VALENCE``... or 0), value, and whether a clause ends after it."""

    kind: int
    value: float
    clause_end: bool


def vader_lexicon() -> tuple[dict[str, float], dict[str, float], frozenset[str]]:
    """``(valences, boosters, negations)`` as shipped by the ``vaderSentiment`` package (single tokens only)."""
    from vaderSentiment import vaderSentiment as vader

    text = resources.files("vaderSentiment").joinpath("vader_lexicon.txt").read_text(encoding="utf-8")
    valences: dict[str, float] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0].strip() and not any(ch.isspace() for ch in fields[0]):
            valences[fields[0].lower()] = float(fields[1])
    boosters = {w: float(v) for w, v in vader.BOOSTER_DICT.items() if _WORD.fullmatch(w)}
    negations = frozenset(w for w in vader.NEGATE if _WORD.fullmatch(w))
    return valences, boosters, negations


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class LexiconFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Five lexicon features per text (see the module's docstring), as a sparse float64 matrix.

    ``window``: how many tokens before a valence token a negation reaches. ``scale`` multiplies every feature
    (they are unnormalised, unlike the TF-IDF blocks beside them).
    """

    def __init__(self, window: int = 3, scale: float = 1.0) -> None:
        """Parameters as scikit-learn estimators take them (stored as given)."""
        self.window = window
        self.scale = scale

    def fit(self, X: Iterable[str], y: Any = None) -> LexiconFeatures:
        """Read the lexicon; the texts are not used (the features do not depend on the training data)."""
        valences, boosters, negations = vader_lexicon()
        entries: dict[str, tuple[int, float]] = {}
        chunks: dict[str, float] = {}
        for term, value in valences.items():
            if _WORD.fullmatch(term):
                entries[term] = (VALENCE, value)
            else:
                chunks[term] = value
        entries |= {term: (BOOSTER, value) for term, value in boosters.items()}
        entries |= dict.fromkeys(negations, (NEGATION, 0.0))
        entries[CONTRAST] = (CONTRAST_WORD, 0.0)
        entries[NO] = (NO_WORD, valences.get(NO, 0.0))
        self.entries_ = entries
        """word token -> (kind, value)"""
        self.chunks_ = chunks
        """whole chunk with non-word characters (an emoticon) -> valence"""
        self.n_features_out_ = len(FEATURES)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``lexicon:<name>`` of every feature, in :data:`FEATURES` order."""
        return np.asarray([f"lexicon:{name}" for name in FEATURES], dtype=object)

    def tokens(self, text: str) -> list[Token]:
        """The tokens of ``text`` that the rules look at, in order (rule 1 and 2)."""
        normalised = " ".join(text.lower().split())
        out: list[Token] = []
        spans: list[tuple[int, int]] = []
        position = 0
        for chunk in normalised.split(" ") if normalised else ():
            start = position
            position += len(chunk) + 1
            if chunk in self.chunks_:
                out.append(Token(VALENCE, self.chunks_[chunk], False))
                spans.append((start, start + len(chunk)))
                continue
            for match in _WORD.finditer(chunk):
                i, j = match.span()
                if j - i == 1 and chunk[i] == "t" and i >= 2 and chunk[i - 1] in APOSTROPHES and _is_word(chunk[i - 2]):
                    continue  # the t of n't
                contraction = (
                    j + 1 < len(chunk) and chunk[j] in APOSTROPHES and chunk[j + 1] == "t"
                    and (j + 2 == len(chunk) or not _is_word(chunk[j + 2]))
                )
                kind, value = (NEGATION, 0.0) if contraction else self.entries_.get(match.group(), (0, 0.0))
                out.append(Token(kind, value, False))
                spans.append((start + i, start + j))
        for k in range(len(out) - 1):
            gap = normalised[spans[k][1] : spans[k + 1][0]]
            if any(ch in CLAUSE_PUNCTUATION for ch in gap):
                out[k] = Token(out[k].kind, out[k].value, True)
        return out

    def score(self, text: str) -> tuple[float, float, float, float]:
        """The four sums of ``text`` before ``log1p`` and ``scale`` (rules 3 to 5)."""
        tokens = self.tokens(text)
        contrast_at = next((k for k, t in enumerate(tokens) if t.kind == CONTRAST_WORD), -1)
        sums = [0.0, 0.0, 0.0, 0.0]
        for k, token in enumerate(tokens):
            followed = not token.clause_end and k + 1 < len(tokens) and tokens[k + 1].kind == VALENCE
            if token.kind == NO_WORD and followed:
                continue  # "no" before a valence token only negates it
            if token.kind not in (VALENCE, NO_WORD):
                continue
            valence, negated = token.value, False
            for d in range(1, max(self.window, len(BOOSTER_DECAY)) + 1):
                if k - d < 0 or tokens[k - d].clause_end:
                    break
                before = tokens[k - d]
                if before.kind in (NEGATION, NO_WORD) and d <= self.window:
                    negated = True
                elif before.kind == BOOSTER and d <= len(BOOSTER_DECAY):
                    step = before.value * BOOSTER_DECAY[d - 1]
                    valence = valence + step if valence > 0 else valence - step
            if contrast_at >= 0:
                valence *= CONTRAST_BEFORE if k < contrast_at else CONTRAST_AFTER
            slot = (2 if negated else 0) + (0 if valence > 0 else 1)
            sums[slot] += abs(valence)
        exclamations = min(text.count("!"), MAX_EXCLAMATIONS)
        if exclamations:
            if sums[0] > sums[1]:
                sums[0] += exclamations * EXCLAMATION
            elif sums[1] > sums[0]:
                sums[1] += exclamations * EXCLAMATION
        return sums[0], sums[1], sums[2], sums[3]

    def features(self, text: str) -> list[float]:
        """The five features of ``text`` (rule 6)."""
        sums = self.score(text)
        none = self.scale if sums == (0.0, 0.0, 0.0, 0.0) else 0.0
        return [self.scale * math.log1p(v) for v in sums] + [none]

    def transform(self, X: Iterable[str]) -> sp.csr_matrix:
        """The features of every text, one row each."""
        rows = [self.features(text) for text in X]
        return sp.csr_matrix(np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES)))


def negation_counterfactuals(
    texts: Sequence[str], labels: Sequence[str], lexicon: LexiconFeatures, min_valence: float = 1.0
) -> list[tuple[int, str, str]]:
    """``(row, text, label)`` of a negated copy of every text whose sentiment rests on one word.

    A text qualifies when it has exactly one valence token, of magnitude at least ``min_valence``, no negation,
    and a label that agrees with the word (``positive`` for a positive word, ``negative`` for a negative one).
    The copy (lowercased, whitespace collapsed) has ``not`` before that word and the label a negation gives it:
    a negated positive is ``negative``, a negated negative ``neutral`` ("not bad" is not praise).
    """
    out: list[tuple[int, str, str]] = []
    for row, (text, label) in enumerate(zip(texts, labels, strict=True)):
        tokens = lexicon.tokens(text)
        valued = [t for t in tokens if t.kind == VALENCE]
        negations = any(t.kind in (NEGATION, NO_WORD) for t in tokens)
        if len(valued) != 1 or negations or abs(valued[0].value) < min_valence:
            continue
        value = valued[0].value
        if label != ("positive" if value > 0 else "negative"):
            continue
        normalised = " ".join(text.lower().split())
        for match in _WORD.finditer(normalised):
            if lexicon.entries_.get(match.group()) == (VALENCE, value):
                negated = f"{normalised[: match.start()]}not {normalised[match.start() :]}"
                out.append((row, negated, "negative" if value > 0 else "neutral"))
                break
    return out
