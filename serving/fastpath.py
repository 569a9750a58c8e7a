"""Inference straight from the fitted parameters of the TF-IDF + linear pipeline, equal to sklearn's ``predict_proba``.

sklearn spends most of a single-text ``predict_proba`` on validation, sparse-matrix construction and the
FeatureUnion's ``hstack``, and most of a batched one on building every character n-gram as a Python string.
:class:`FastPath` reads everything it needs from the fitted objects (vocabularies, idf, n-gram ranges, analyzers,
``sublinear_tf``, ``binary``, ``norm``, ``coef_``/``intercept_`` or the naive Bayes log probabilities, the
classifier's probability rule) and computes the same numbers with a handful of numpy calls per *batch*; character
(``char_wb``) n-grams are hashed and looked up in numpy for the whole batch (:class:`_HashedCharWb`) instead of
being built as strings. Every configuration it does not reproduce exactly makes :meth:`FastPath.from_pipeline`
return ``None`` with the reason, and the caller falls back to sklearn (:class:`SklearnPath`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline

_WHITE_SPACES = re.compile(r"\s\s+")


class ProbaFn(Protocol):
    """Anything that maps a list of texts to an ``(n, n_classes)`` float64 probability matrix."""

    kind: str

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, rows like ``texts``, columns like the model's classes."""
        ...


class SklearnPath:
    """The fallback: the pipeline's own ``predict_proba``."""

    kind = "sklearn"

    def __init__(self, pipeline: Pipeline) -> None:
        """Wrap a fitted pipeline."""
        self._pipeline = pipeline

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Delegate to sklearn."""
        return np.asarray(self._pipeline.predict_proba(list(texts)), dtype=np.float64)


def _char_wb_analyzer(lowercase: bool, min_n: int, max_n: int) -> Callable[[str], list[str]]:
    """Same n-grams as sklearn's ``char_wb`` analyzer (no accent stripping, no custom preprocessor), faster."""

    def analyze(text: str) -> list[str]:
        if lowercase:
            text = text.lower()
        text = _WHITE_SPACES.sub(" ", text)
        grams: list[str] = []
        extend = grams.extend
        for word in text.split():
            w = " " + word + " "
            size = len(w)
            for n in range(min_n, max_n + 1):
                if size <= n:  # sklearn counts a word shorter than n once, then stops growing n
                    grams.append(w)
                    break
                extend([w[i : i + n] for i in range(size - n + 1)])
        return grams

    return analyze


def _word_analyzer(
    lowercase: bool, token_pattern: str, min_n: int, max_n: int
) -> Callable[[str], list[str]]:
    """Same tokens and word n-grams as sklearn's ``word`` analyzer (no stop words, accents or custom hooks)."""
    findall = re.compile(token_pattern).findall

    def analyze(text: str) -> list[str]:
        if lowercase:
            text = text.lower()
        tokens: list[str] = findall(text)
        grams: list[str] = list(tokens) if min_n == 1 else []
        count = len(tokens)
        for n in range(max(min_n, 2), min(max_n, count) + 1):
            if n == 2:
                grams.extend([a + " " + b for a, b in pairwise(tokens)])
            else:
                grams.extend([" ".join(tokens[i : i + n]) for i in range(count - n + 1)])
        return grams

    return analyze


def _analyzer_for(vec: TfidfVectorizer) -> Callable[[str], list[str]]:
    """Our faster analyzer where it provably matches, otherwise the vectorizer's own ``build_analyzer()``."""
    plain = (
        vec.preprocessor is None
        and vec.strip_accents is None
        and vec.input == "content"
    )
    min_n, max_n = vec.ngram_range
    if plain and vec.analyzer == "char_wb":
        return _char_wb_analyzer(vec.lowercase, min_n, max_n)
    if plain and vec.analyzer == "word" and vec.tokenizer is None and vec.stop_words is None:
        pattern = re.compile(vec.token_pattern)
        if pattern.groups <= 1:
            return _word_analyzer(vec.lowercase, vec.token_pattern, min_n, max_n)
    return vec.build_analyzer()


@dataclass(frozen=True)
class _Block:
    """One vectorizer of the union: its analyzer, vocabulary, offset in the joint feature space and tf rules."""

    analyze: Callable[[str], list[str]]
    lookup: Callable[[str], int | None]
    """Term -> 1-based id in the joint feature space (``None`` for an unknown term)."""
    offset: int
    size: int
    sublinear: bool
    binary: bool
    norm: str | None
    hashed: _HashedCharWb | None = None
    """Set when this block's n-grams are looked up by hash for the whole batch (plain ``char_wb``)."""


def _block(vec: Any, offset: int) -> tuple[_Block | None, str]:
    """Describe one fitted vectorizer, or say why the fast path cannot reproduce it."""
    if type(vec) is not TfidfVectorizer:
        return None, f"feature step {type(vec).__name__} is not a TfidfVectorizer"
    if not hasattr(vec, "vocabulary_"):
        return None, "a vectorizer is not fitted"
    if np.dtype(vec.dtype) != np.float64:
        return None, f"vectorizer dtype {np.dtype(vec.dtype)} is not float64"
    if vec.norm not in ("l2", "l1", None):
        return None, f"unsupported norm {vec.norm!r}"
    if callable(vec.analyzer) or vec.analyzer not in ("word", "char", "char_wb"):
        return None, f"unsupported analyzer {vec.analyzer!r}"
    if vec.input != "content":
        return None, f"vectorizer input {vec.input!r} (only 'content')"
    vocab: dict[str, int] = vec.vocabulary_
    joint = {term: offset + int(j) + 1 for term, j in vocab.items()}  # 1-based so that 0/None means unknown
    hashed = None
    if vec.analyzer == "char_wb" and vec.preprocessor is None and vec.strip_accents is None:
        try:
            hashed = _HashedCharWb(vocab, offset, bool(vec.lowercase), *vec.ngram_range)
        except ValueError:  # colliding vocabulary hashes: keep the string path
            hashed = None
    block = _Block(
        analyze=_analyzer_for(vec),
        lookup=joint.get,
        offset=offset,
        size=len(vocab),
        sublinear=bool(vec.sublinear_tf),
        binary=bool(vec.binary),
        norm=vec.norm,
        hashed=hashed,
    )
    return block, ""


def _linear_head(clf: Any, n_features: int) -> tuple[np.ndarray, np.ndarray, str] | str:
    """``(coef.T, intercept, rule)`` of a supported classifier, or the reason it is not supported."""
    n_classes = len(clf.classes_)
    if type(clf) is LogisticRegression:
        multi = getattr(clf, "multi_class", "deprecated")
        ovr = multi in ("ovr", "warn") or (
            multi in ("auto", "deprecated") and (n_classes <= 2 or clf.solver == "liblinear")
        )
        rule = "ovr" if ovr else "softmax"
        coef, intercept = clf.coef_, clf.intercept_
    elif type(clf) is SGDClassifier:
        if clf.loss != "log_loss":
            return f"SGDClassifier loss {clf.loss!r} (only log_loss)"
        rule, coef, intercept = "ovr", clf.coef_, clf.intercept_
    elif type(clf) is MultinomialNB:
        rule, coef, intercept = "nb", clf.feature_log_prob_, clf.class_log_prior_
    else:
        return f"classifier {type(clf).__name__} is not LogisticRegression, SGDClassifier(log_loss) or MultinomialNB"
    coef = np.asarray(coef.toarray() if hasattr(coef, "toarray") else coef, dtype=np.float64)
    if coef.shape[1] != n_features:
        return f"classifier has {coef.shape[1]} features but the vectorizers produce {n_features}"
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (coef.shape[0],)).copy()
    return np.ascontiguousarray(coef.T), intercept, rule


_B1, _B2 = np.uint64(0x100000001B3), np.uint64(0x9E3779B97F4A7C15)
_C1, _C2 = 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_MASK = (1 << 64) - 1


def _mix(n: int, constant: int) -> np.uint64:
    """``n * constant`` modulo 2**64 (computed on Python ints: numpy scalars warn on wrap-around)."""
    return np.uint64((int(n) * constant) & _MASK)


def _terms_hashes(terms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit polynomial hashes of each term's code points, with its length mixed in."""
    h1 = np.zeros(len(terms), dtype=np.uint64)
    h2 = np.zeros(len(terms), dtype=np.uint64)
    lengths = np.fromiter((len(t) for t in terms), dtype=np.int64, count=len(terms))
    for n in np.unique(lengths):
        idx = np.flatnonzero(lengths == n)
        codes = np.frombuffer("".join(terms[i] for i in idx).encode("utf-32-le"), dtype=np.uint32)
        codes = codes.reshape(len(idx), int(n)).astype(np.uint64) + np.uint64(1)
        a = np.zeros(len(idx), dtype=np.uint64)
        b = np.zeros(len(idx), dtype=np.uint64)
        for k in range(int(n)):
            a = a * _B1 + codes[:, k]
            b = b * _B2 + codes[:, k]
        h1[idx] = a + _mix(n, _C1)
        h2[idx] = b + _mix(n, _C2)
    return h1, h2


class _HashedCharWb:
    """sklearn's ``char_wb`` n-grams looked up by 128-bit hash for a whole batch at once, in numpy.

    The n-grams of every word of every text are never built as Python strings: the batch becomes one array of
    code points, every window is hashed with two independent 64-bit polynomial hashes (length mixed in), and the
    pair is looked up in the vocabulary's hashes. Used only when the vocabulary's hashes are collision-free; an
    unseen n-gram matching a vocabulary pair would need a 128-bit collision.
    """

    def __init__(self, vocab: dict[str, int], offset: int, lowercase: bool, min_n: int, max_n: int) -> None:
        """Hash the vocabulary (``ValueError`` if two terms collide)."""
        terms = list(vocab)
        h1, h2 = _terms_hashes(terms)
        order = np.argsort(h1, kind="stable")
        self._h1 = h1[order]
        if len(self._h1) > 1 and (np.diff(self._h1) == 0).any():
            raise ValueError("vocabulary hashes collide")
        self._h2 = h2[order]
        ids = np.fromiter((vocab[t] for t in terms), dtype=np.int64, count=len(terms))
        self._ids = ids[order] + offset + 1
        self.lowercase = lowercase
        self.min_n = min_n
        self.max_n = max_n
        self._mix1 = np.array([_mix(n, _C1) for n in range(1, max_n + 1)], dtype=np.uint64)
        self._mix2 = np.array([_mix(n, _C2) for n in range(1, max_n + 1)], dtype=np.uint64)

    def lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """1-based joint ids of the known n-grams of every text, and the text index of each id."""
        padded: list[str] = []
        word_rows: list[int] = []
        for row, text in enumerate(texts):
            if self.lowercase:
                text = text.lower()
            words = _WHITE_SPACES.sub(" ", text).split()
            padded.extend(words)
            word_rows.extend([row] * len(words))
        if not padded:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        lengths = np.fromiter((len(w) + 2 for w in padded), dtype=np.int64, count=len(padded))
        codes = np.frombuffer((" " + "  ".join(padded) + " ").encode("utf-32-le"), dtype=np.uint32)
        codes = codes.astype(np.uint64) + np.uint64(1)
        total = codes.shape[0]
        word = np.repeat(np.arange(len(padded)), lengths)
        starts = np.cumsum(lengths) - lengths
        offset_in_word = np.arange(total) - starts[word]
        room = lengths[word] - offset_in_word  # characters from this position to the end of its padded word
        word_len = lengths[word]
        rows = np.asarray(word_rows, dtype=np.int64)[word]
        max_n = self.max_n
        # rolling hashes of every window length 1..max_n at every position: row n-1 holds length n
        padded_codes = np.zeros(total + max_n, dtype=np.uint64)
        padded_codes[:total] = codes
        h1 = np.empty((max_n, total), dtype=np.uint64)
        h2 = np.empty((max_n, total), dtype=np.uint64)
        a = np.zeros(total, dtype=np.uint64)
        b = np.zeros(total, dtype=np.uint64)
        for n in range(1, max_n + 1):
            nxt = padded_codes[n - 1 : n - 1 + total]
            a = a * _B1 + nxt
            b = b * _B2 + nxt
            h1[n - 1] = a
            h2[n - 1] = b
        # sklearn: every window of length n (min_n <= n < L) inside its word, and the whole padded word once when
        # L <= max_n; one mask over all (length, position) pairs
        n_col = np.arange(1, max_n + 1, dtype=np.int64)[:, None]
        take = (room >= n_col) & (
            ((n_col >= self.min_n) & (n_col < word_len)) | ((n_col == word_len) & (offset_in_word == 0))
        )
        n_idx, p_idx = np.nonzero(take)
        k1 = h1[n_idx, p_idx] + self._mix1[n_idx]
        k2 = h2[n_idx, p_idx] + self._mix2[n_idx]
        pos = np.searchsorted(self._h1, k1)
        pos[pos == len(self._h1)] = 0
        hit = (self._h1[pos] == k1) & (self._h2[pos] == k2)
        return self._ids[pos[hit]], rows[p_idx[hit]]


class FastPath:
    """``predict_proba`` of a TF-IDF (one vectorizer or a FeatureUnion of them) + linear classifier pipeline."""

    kind = "fast"

    def __init__(
        self,
        blocks: list[_Block],
        idf: np.ndarray,
        coef_t: np.ndarray,
        intercept: np.ndarray,
        rule: str,
        n_classes: int,
    ) -> None:
        """Use :meth:`from_pipeline`; this takes the already extracted parameters."""
        self._blocks = blocks
        self._n_blocks = len(blocks)
        self._n_features = int(idf.shape[0])
        self._idf = idf
        self._coef_t = coef_t
        self._intercept = intercept
        self._rule = rule
        self._n_classes = n_classes
        block_of = np.empty(self._n_features, dtype=np.int64)
        for i, b in enumerate(blocks):
            block_of[b.offset : b.offset + b.size] = i
        self._block_of = block_of
        self._sublinear = np.array([b.sublinear for b in blocks])
        self._binary = np.array([b.binary for b in blocks])
        self._norms = [b.norm for b in blocks]

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> tuple[FastPath | None, str]:
        """Build the fast path from a fitted pipeline, or return ``(None, reason)`` when it cannot be exact."""
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None, "pipeline is not exactly (features, classifier)"
        features, clf = pipeline.steps[0][1], pipeline.steps[1][1]
        if isinstance(features, FeatureUnion):
            if features.transformer_weights:
                return None, "FeatureUnion has transformer_weights"
            vecs = [t for _, t in features.transformer_list if t not in ("drop", None)]
            if any(t == "passthrough" for t in vecs):
                return None, "FeatureUnion has a passthrough step"
        else:
            vecs = [features]
        blocks: list[_Block] = []
        idfs: list[np.ndarray] = []
        offset = 0
        for vec in vecs:
            block, reason = _block(vec, offset)
            if block is None:
                return None, reason
            tfidf = getattr(vec, "_tfidf", None)
            idf = getattr(tfidf, "idf_", None) if vec.use_idf else None
            idfs.append(np.ones(block.size) if idf is None else np.asarray(idf, dtype=np.float64))
            if idfs[-1].shape[0] != block.size:
                return None, "idf_ and vocabulary_ sizes differ"
            blocks.append(block)
            offset += block.size
        if not hasattr(clf, "classes_"):
            return None, "classifier is not fitted"
        head = _linear_head(clf, offset)
        if isinstance(head, str):
            return None, head
        coef_t, intercept, rule = head
        return cls(blocks, np.concatenate(idfs), coef_t, intercept, rule, len(clf.classes_)), ""

    def _feature_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Joint (1-based) feature ids of every known n-gram of every text, and the text index of each id."""
        ids: list[int] = []
        extend = ids.extend
        lengths: list[int] = []
        string_blocks = [b for b in self._blocks if b.hashed is None]
        if string_blocks:
            for text in texts:
                start = len(ids)
                for b in string_blocks:
                    extend(filter(None, map(b.lookup, b.analyze(text))))
                lengths.append(len(ids) - start)
        id_parts = [np.array(ids, dtype=np.int64)]
        row_parts = [np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)]
        for b in self._blocks:
            if b.hashed is not None:
                found, rows = b.hashed.lookup(texts)
                id_parts.append(found)
                row_parts.append(rows)
        if len(id_parts) == 1:
            return id_parts[0], row_parts[0]
        return np.concatenate(id_parts), np.concatenate(row_parts)

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """Raw class scores ``X @ coef.T + intercept`` (``(n, k)``; ``k`` is 1 for binary ovr models)."""
        n = len(texts)
        ids, rows = self._feature_ids(texts)
        n_features = self._n_features
        keys = rows * n_features + (ids - 1)
        uniq, counts = np.unique(keys, return_counts=True)
        row = uniq // n_features
        feat = uniq - row * n_features
        block = self._block_of[feat]
        tf = counts.astype(np.float64)
        if self._binary.any():
            tf = np.where(self._binary[block], 1.0, tf)
        if self._sublinear.any():
            tf = np.where(self._sublinear[block], np.log(tf) + 1.0, tf)
        values = tf * self._idf[feat]
        segment = row * self._n_blocks + block
        n_segments = n * self._n_blocks
        scale = np.ones(n_segments)
        for i, norm in enumerate(self._norms):
            if norm is None:
                continue
            weights = values * values if norm == "l2" else np.abs(values)
            sums = np.bincount(segment, weights=weights, minlength=n_segments)[i :: self._n_blocks]
            if norm == "l2":
                sums = np.sqrt(sums)
            sums[sums == 0.0] = 1.0
            scale[i :: self._n_blocks] = sums
        values = values / scale[segment]
        contrib = self._coef_t[feat] * values[:, None]
        k = self._coef_t.shape[1]
        scores = np.empty((n, k))
        for c in range(k):
            scores[:, c] = np.bincount(row, weights=contrib[:, c], minlength=n)
        scores += self._intercept
        return scores

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities equal to the pipeline's ``predict_proba`` (float64, ``(n, n_classes)``)."""
        if len(texts) == 0:
            return np.empty((0, self._n_classes))
        scores = self.decision(texts)
        if self._rule == "softmax":
            if scores.shape[1] == 1:
                scores = np.hstack([-scores, scores])
            scores -= scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=1, keepdims=True)
            return scores
        if self._rule == "nb":
            top = scores.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(scores - top).sum(axis=1, keepdims=True)) + top
            return np.exp(scores - log_norm)
        prob = expit(scores)
        if prob.shape[1] == 1:
            return np.hstack([1.0 - prob, prob])
        prob /= prob.sum(axis=1, keepdims=True)
        return prob


def build_proba_fn(pipeline: Pipeline, allow_fast: bool = True) -> tuple[ProbaFn, str]:
    """The fast path when it is exact for this pipeline, else sklearn; with the reason for a fallback."""
    if not allow_fast:
        return SklearnPath(pipeline), "fast path disabled by configuration"
    fast, reason = FastPath.from_pipeline(pipeline)
    if fast is None:
        return SklearnPath(pipeline), reason
    return fast, ""
