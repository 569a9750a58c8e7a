"""Inference straight from the fitted parameters of the TF-IDF + linear pipeline, equal to sklearn's ``predict_proba``.

sklearn spends most of a single-text ``predict_proba`` on validation, sparse-matrix construction and the
FeatureUnion's ``hstack``, and most of a batched one on building every n-gram as a Python string.
:class:`FastPath` reads everything it needs from the fitted objects (vocabularies, idf, n-gram ranges, analyzers,
``sublinear_tf``, ``binary``, ``norm``, ``coef_``/``intercept_`` or the naive Bayes log probabilities, the
classifier's probability rule, the lexicon of :class:`model.lexicon.LexiconFeatures`) and computes the same numbers
in one compiled call per *batch* (:mod:`serving.kernels`): word and ``char_wb`` n-grams and lexicon tokens are
extracted from code points and looked up exactly in hash tables, never built as Python strings. Every
configuration it does not reproduce exactly (including a scikit-learn version it was not verified against) makes
:meth:`FastPath.from_pipeline` return ``None`` with the reason, and the caller falls back to sklearn
(:class:`SklearnPath`).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from serving import kernels
from serving.kernels import (
    KIND_CHAR_WB,
    KIND_EXTRA,
    KIND_LEXICON,
    KIND_WORD,
    LEX_CHUNK_SALT,
    LEX_WORD_SALT,
    NORM_L1,
    NORM_L2,
    NORM_NONE,
    RULE_NB,
    RULE_OVR,
    RULE_SOFTMAX,
)

if TYPE_CHECKING:  # scikit-learn is imported only where a pipeline is read: serving from the tables needs none
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    from model.lexicon import LexiconFeatures

VERIFIED_SKLEARN = ("1.7.2",)
"""scikit-learn versions whose fitted objects the fast path was verified to reproduce (their attributes and
``predict_proba`` rules); on any other version it stands aside and sklearn answers."""
_NORMS = {"l2": NORM_L2, "l1": NORM_L1, None: NORM_NONE}
_RULES = {"ovr": RULE_OVR, "softmax": RULE_SOFTMAX, "nb": RULE_NB}
TABLES_FILE = "fastpath.npz"
"""The tables in a model directory, beside the pickle they were derived from (:func:`export_tables`)."""
TABLES_FORMAT = "kube-sentiment.fastpath/v1"
WARMUP_TEXTS = (
    "what a great day",
    "this is terrible",
    "the meeting is at noon",
    "I LOVE it!!! :)",
    "nothing to see here, nothing at all",
    "x",
)
"""What the predictor checks the fast path on before it becomes ready (against sklearn's answers, or the answers
sklearn gave when the tables were written)."""


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


# token patterns the word kernel reproduces: maximal runs of word characters (str.isalnum() or "_") of this length
_KERNEL_TOKEN_PATTERNS = {r"(?u)\b\w\w+\b": 2, r"(?u)\b\w+\b": 1}


@dataclass(frozen=True)
class _Block:
    """One vectorizer of the union: where its n-grams come from, its columns in the joint space and its tf rules."""

    kind: int
    """``KIND_WORD``/``KIND_CHAR_WB``/``KIND_LEXICON``: computed by the compiled kernel; ``KIND_EXTRA``: extracted by
    ``analyze``/``lookup`` in Python."""
    vocabulary: dict[str, int]
    offset: int
    min_n: int
    max_n: int
    min_token: int
    sublinear: bool
    binary: bool
    norm: int
    analyze: Callable[[str], list[str]] | None = None
    lookup: Callable[[str], int | None] | None = None
    """Term -> 0-based column in the joint feature space (``None`` for an unknown term); ``KIND_EXTRA`` only."""
    lexicon: LexiconFeatures | None = None
    """The fitted lexicon transformer; ``KIND_LEXICON`` only."""

    @property
    def size(self) -> int:
        """Number of columns (terms) of this block."""
        return len(self.vocabulary)

    def row(self) -> list[int]:
        """This block's row of the kernel's ``blocks`` parameter array (see :mod:`serving.kernels`)."""
        return [self.kind, self.min_n, self.max_n, int(self.sublinear), int(self.binary), self.norm, self.min_token]


def _kernel_kind(vec: TfidfVectorizer) -> tuple[int, int]:
    """``(kind, min_token)``: which compiled extraction reproduces this vectorizer's n-grams, if any."""
    plain = vec.preprocessor is None and vec.strip_accents is None and vec.lowercase
    if plain and vec.analyzer == "char_wb":
        return KIND_CHAR_WB, 0
    if plain and vec.analyzer == "word" and vec.tokenizer is None and vec.stop_words is None:
        min_token = _KERNEL_TOKEN_PATTERNS.get(vec.token_pattern)
        if min_token:
            return KIND_WORD, min_token
    return KIND_EXTRA, 0


def _lexicon_block(lexicon: LexiconFeatures, offset: int) -> tuple[_Block | None, str]:
    """Describe a fitted :class:`LexiconFeatures`, or say why the kernel cannot reproduce it."""
    if not hasattr(lexicon, "entries_"):
        return None, "the lexicon features are not fitted"
    if type(lexicon.window) is not int or lexicon.window < 1:
        return None, f"lexicon window {lexicon.window!r} is not a positive integer"
    from model.lexicon import FEATURES as LEXICON_FEATURES

    names = {name: j for j, name in enumerate(LEXICON_FEATURES)}
    return _Block(kind=KIND_LEXICON, vocabulary=names, offset=offset, min_n=lexicon.window, max_n=lexicon.window,
                  min_token=0, sublinear=False, binary=False, norm=NORM_NONE, lexicon=lexicon), ""


def _block(vec: Any, offset: int) -> tuple[_Block | None, str]:
    """Describe one fitted feature step, or say why the fast path cannot reproduce it."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from model.lexicon import LexiconFeatures

    if type(vec) is LexiconFeatures:
        return _lexicon_block(vec, offset)
    if type(vec) is not TfidfVectorizer:
        return None, f"feature step {type(vec).__name__} is not a TfidfVectorizer or LexiconFeatures"
    if not hasattr(vec, "vocabulary_"):
        return None, "a vectorizer is not fitted"
    if np.dtype(vec.dtype) != np.float64:
        return None, f"vectorizer dtype {np.dtype(vec.dtype)} is not float64"
    if vec.norm not in _NORMS:
        return None, f"unsupported norm {vec.norm!r}"
    if callable(vec.analyzer) or vec.analyzer not in ("word", "char", "char_wb"):
        return None, f"unsupported analyzer {vec.analyzer!r}"
    if vec.input != "content":
        return None, f"vectorizer input {vec.input!r} (only 'content')"
    vocabulary: dict[str, int] = vec.vocabulary_
    kind, min_token = _kernel_kind(vec)
    analyze = lookup = None
    if kind == KIND_EXTRA:  # sklearn's own analyzer, looked up in Python
        analyze = vec.build_analyzer()
        lookup = {term: offset + int(j) for term, j in vocabulary.items()}.get
    min_n, max_n = vec.ngram_range
    block = _Block(
        kind=kind, vocabulary=vocabulary, offset=offset, min_n=int(min_n), max_n=int(max_n), min_token=min_token,
        sublinear=bool(vec.sublinear_tf), binary=bool(vec.binary), norm=_NORMS[vec.norm],
        analyze=analyze, lookup=lookup,
    )
    return block, ""


def linear_head(clf: Any, n_features: int) -> tuple[np.ndarray, np.ndarray, str] | str:
    """``(coef.T, intercept, rule)`` of a supported classifier, or the reason it is not supported."""
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.naive_bayes import MultinomialNB

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


@cache
def _word_characters() -> np.ndarray:
    """``is_word[code_point]``: what ``\\w`` of Python's ``re`` matches (``str.isalnum()`` or ``_``)."""
    table = np.fromiter((chr(c).isalnum() for c in range(sys.maxunicode + 1)), dtype=np.bool_,
                        count=sys.maxunicode + 1)
    table[ord("_")] = True
    return table


def _kernel_table(blocks: list[_Block]) -> np.ndarray | None:
    """The hash table of every term of the kernel blocks (see :mod:`serving.kernels`); ``None`` on a collision."""
    words: list[str] = []
    rows: list[tuple[int, int]] = []  # (column, block) of each term
    for index, b in enumerate(blocks):
        if b.kind in (KIND_WORD, KIND_CHAR_WB):
            words.extend(b.vocabulary)
            rows.extend((b.offset + j, index) for j in b.vocabulary.values())
    codes = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    terms = np.empty((len(words), 4), dtype=np.int64)
    terms[:, 0] = np.cumsum(lengths) - lengths
    terms[:, 1] = lengths
    terms[:, 2:] = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
    bits = max(4, (3 * len(words) // 2).bit_length())  # load factor between 1/3 and 2/3
    table = kernels.compiled().build_table(codes, terms, bits)
    return table if table.shape[0] else None


def _lexicon_table(lexicon: LexiconFeatures | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(table, kind, value)`` of a lexicon's entries for the kernel (see :mod:`serving.kernels`): word tokens
    hashed with ``LEX_WORD_SALT``, whole chunks with ``LEX_CHUNK_SALT``; ``None`` on a hash collision."""
    if lexicon is None:
        return np.full((1, 2), -1, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    entries = [(term, kind, value, LEX_WORD_SALT) for term, (kind, value) in lexicon.entries_.items()]
    entries += [(term, kernels.VALENCE, value, LEX_CHUNK_SALT) for term, value in lexicon.chunks_.items()]
    codes = np.frombuffer("".join(e[0] for e in entries).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter((len(e[0]) for e in entries), dtype=np.int64, count=len(entries))
    terms = np.empty((len(entries), 4), dtype=np.int64)
    terms[:, 0] = np.cumsum(lengths) - lengths
    terms[:, 1] = lengths
    terms[:, 2] = np.arange(len(entries))
    terms[:, 3] = [e[3] - 1 for e in entries]  # build_table salts with block + 1
    bits = max(4, (3 * len(entries) // 2).bit_length())
    table = kernels.compiled().build_table(codes, terms, bits)
    if not table.shape[0]:
        return None
    kinds = np.asarray([e[1] for e in entries], dtype=np.int64)
    values = np.asarray([e[2] for e in entries], dtype=np.float64)
    return table, kinds, values


def _feature_rows(
    table: np.ndarray, extra_columns: list[np.ndarray], block_of: np.ndarray, idf: np.ndarray, coef_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's ``rows`` (int64) and ``values`` (the same memory as float64), one 64-byte-aligned cache line per
    slot for up to three classes (see :mod:`serving.kernels`), and the row of every column."""
    n_slots, n_scores = table.shape[0], coef_t.shape[1]
    extra = np.concatenate(extra_columns) if extra_columns else np.empty(0, dtype=np.int64)
    n_rows, width = n_slots + extra.shape[0], -(-(kernels.ROW_COEF + n_scores) // 8) * 8
    memory = np.zeros(n_rows * width + 8, dtype=np.int64)
    first = (-memory.ctypes.data // 8) % 8  # rows start on a cache line
    rows = memory[first : first + n_rows * width].reshape(n_rows, width)
    rows[:n_slots, kernels.ROW_KEY] = table[:, 0]
    rows[:n_slots, kernels.ROW_COLUMN] = table[:, 1]
    rows[n_slots:, kernels.ROW_COLUMN] = extra
    used = np.flatnonzero(rows[:, kernels.ROW_COLUMN] >= 0)
    columns = rows[used, kernels.ROW_COLUMN]
    rows[used, kernels.ROW_BLOCK] = block_of[columns]
    values = rows.view(np.float64)
    values[used, kernels.ROW_IDF] = idf[columns]
    values[used, kernels.ROW_COEF : kernels.ROW_COEF + n_scores] = coef_t[columns]
    row_of = np.full(block_of.shape[0], -1, dtype=np.int64)
    row_of[columns] = used
    return rows, values, row_of


@dataclass(frozen=True)
class Tables:
    """Everything the compiled call needs, read from a fitted pipeline: what ``fastpath.npz`` holds."""

    spec: np.ndarray
    """One row per vectorizer of the union: :data:`serving.kernels.BLOCK_COLUMNS`, then its first column and its
    number of columns in the joint feature space."""
    table: np.ndarray
    """The hash table of the kernel blocks' terms (:func:`serving.kernels.build_table`)."""
    idf: np.ndarray
    coef_t: np.ndarray
    """``(n_features, n_scores)``; the lexicon's rows already multiplied by its scale."""
    intercept: np.ndarray
    rule: str
    lex_table: np.ndarray
    lex_kind: np.ndarray
    lex_value: np.ndarray
    extra: tuple[_Block, ...] = ()
    """Vectorizers served by sklearn's own analyzer (such tables are not written to a file)."""


_ARRAYS = ("spec", "table", "idf", "coef_t", "intercept", "lex_table", "lex_kind", "lex_value")


def _tables(pipeline: Pipeline) -> tuple[Tables | None, str]:
    """The tables of a fitted pipeline, or ``(None, reason)`` when the fast path cannot be exact for it."""
    import sklearn
    from sklearn.pipeline import FeatureUnion, Pipeline

    if sklearn.__version__ not in VERIFIED_SKLEARN:
        return None, (f"scikit-learn {sklearn.__version__} is not a version the fast path was verified against "
                      f"({', '.join(VERIFIED_SKLEARN)})")
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
        idf = getattr(tfidf, "idf_", None) if block.kind != KIND_LEXICON and vec.use_idf else None
        idfs.append(np.ones(block.size) if idf is None else np.asarray(idf, dtype=np.float64))
        if idfs[-1].shape[0] != block.size:
            return None, "idf_ and vocabulary_ sizes differ"
        blocks.append(block)
        offset += block.size
    if not hasattr(clf, "classes_"):
        return None, "classifier is not fitted"
    head = linear_head(clf, offset)
    if isinstance(head, str):
        return None, head
    coef_t, intercept, rule = head
    if len(blocks) > 127:
        return None, f"{len(blocks)} vectorizers (at most 127)"
    lexicons = [b for b in blocks if b.kind == KIND_LEXICON]
    if len(lexicons) > 1:
        return None, f"{len(lexicons)} lexicon feature steps (at most one)"
    if lexicons:  # the kernel computes log1p(sum); the step's scale goes into the coefficients
        coef_t = coef_t.copy()
    for b in lexicons:
        coef_t[b.offset : b.offset + b.size] *= b.lexicon.scale  # type: ignore[union-attr]
    table = _kernel_table(blocks)
    if table is None:
        return None, "two vocabulary terms have the same 64-bit hash"
    lexicon_table = _lexicon_table(lexicons[0].lexicon if lexicons else None)
    if lexicon_table is None:
        return None, "two lexicon entries have the same 64-bit hash"
    spec = np.array([[*b.row(), b.offset, b.size] for b in blocks], dtype=np.int64)
    return Tables(spec, table, np.concatenate(idfs), coef_t, intercept, rule, *lexicon_table,
                  extra=tuple(b for b in blocks if b.kind == KIND_EXTRA)), ""


def _unsafe(tables: Tables, words: np.ndarray | None, n_classes: int) -> str:
    """What in tables read from a file the compiled kernel could not use safely ("" when nothing): it checks no
    bounds, so every dtype, shape and index it relies on is checked here, before the warm-up texts run it."""
    ints, floats = np.dtype(np.int64), np.dtype(np.float64)
    for name, dtype, ndim in (("spec", ints, 2), ("table", ints, 2), ("idf", floats, 1), ("coef_t", floats, 2),
                              ("intercept", floats, 1), ("lex_table", ints, 2), ("lex_kind", ints, 1),
                              ("lex_value", floats, 1)):
        array = getattr(tables, name)
        if array.dtype != dtype or array.ndim != ndim or not array.flags.c_contiguous:
            return f"{name} is {array.dtype.str} with shape {array.shape}, not C-ordered {dtype.str} of {ndim} axes"
    if words is not None and (words.dtype != np.bool_ or words.shape != (sys.maxunicode + 1,)):
        return f"word_characters is {words.dtype.str} with shape {words.shape}, not {sys.maxunicode + 1} booleans"
    spec, n_features = tables.spec, tables.idf.shape[0]
    if spec.shape[1] != len(kernels.BLOCK_COLUMNS) + 2 or not 1 <= spec.shape[0] <= 127:
        return f"spec has shape {spec.shape}"
    kind, min_n, max_n, sublinear, binary, norm, min_token, offset, size = spec.T
    lexicon = kind == KIND_LEXICON
    if not np.isin(kind, (KIND_WORD, KIND_CHAR_WB, KIND_LEXICON)).all() or lexicon.sum() > 1:
        return f"spec has block kinds {kind.tolist()}"
    if ((min_n < 1) | (max_n < min_n) | ~np.isin(sublinear, (0, 1)) | ~np.isin(binary, (0, 1))
            | ~np.isin(norm, (NORM_NONE, NORM_L1, NORM_L2)) | (min_token < 0) | (size < 0)).any():
        return "spec has a block with parameters out of range"
    if (offset != np.cumsum(size) - size).any() or int(size.sum()) != n_features:
        return f"spec's blocks do not tile the {n_features} features"
    if (size[lexicon] != kernels.N_LEXICON_FEATURES).any():
        return f"the lexicon block has {size[lexicon].tolist()} features, not {kernels.N_LEXICON_FEATURES}"
    n_scores = tables.intercept.shape[0]
    if tables.coef_t.shape != (n_features, n_scores) or max(n_scores, 2) != n_classes or tables.rule not in _RULES:
        return (f"coef_t {tables.coef_t.shape}, intercept {tables.intercept.shape} and rule {tables.rule!r} do not "
                f"give {n_classes} classes from {n_features} features")
    for name, table, n_columns, used in (("table", tables.table, n_features, True),
                                         ("lex_table", tables.lex_table, tables.lex_kind.shape[0], lexicon.any())):
        n_slots = table.shape[0]  # a power of two, at least 16 when looked up (a hash keeps its top bits)
        if table.shape[1] != 2 or n_slots & (n_slots - 1) or n_slots < (16 if used else 1):
            return f"{name} has shape {table.shape}"
        if not (table[:, 1] == -1).any():
            return f"{name} has no free slot (a lookup of a missing term would never end)"
        if ((table[:, 1] < -1) | (table[:, 1] >= n_columns)).any():
            return f"{name} points outside its {n_columns} columns"
    if tables.lex_value.shape != tables.lex_kind.shape:
        return f"lex_value has shape {tables.lex_value.shape}, lex_kind {tables.lex_kind.shape}"
    return ""


@dataclass(frozen=True)
class Warmup:
    """Texts the predictor checks the fast path on before it becomes ready, and sklearn's probabilities for them."""

    texts: tuple[str, ...]
    probabilities: np.ndarray

    def problem(self, proba: ProbaFn) -> str:
        """What is wrong with ``proba`` on these texts ("" when it equals sklearn within 1e-9)."""
        try:
            got = proba.predict_proba(list(self.texts))
        except Exception as e:  # any failure means: do not serve with it
            return f"failed on the warm-up texts ({type(e).__name__}: {e})"
        expected = self.probabilities
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=0.0, atol=1e-9):
            return "disagreed with sklearn on the warm-up texts"
        return ""


def _file_digest(path: Path) -> str:
    """SHA-256 of a file (the pickle the tables were derived from)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class FastPath:
    """``predict_proba`` of a TF-IDF (one vectorizer or a FeatureUnion of them) + linear classifier pipeline.

    One compiled call per batch (:func:`serving.kernels.probabilities`); vectorizers the kernel does not reproduce
    (custom token patterns, stop words, accents, case kept, ``char``) run sklearn's own analyzer in Python and
    hand their columns to the same call. A lock serialises the calls (the kernel counts n-grams in its rows), so
    concurrent callers are safe.
    """

    kind = "fast"

    def __init__(self, tables: Tables, word_characters: np.ndarray | None = None) -> None:
        """Use :meth:`from_pipeline` or :meth:`load`; ``word_characters`` is :func:`_word_characters`' table when
        the caller has it."""
        spec, idf = tables.spec, tables.idf
        kinds, offsets, sizes = (spec[:, i].tolist() for i in (0, -2, -1))
        block_of = np.repeat(np.arange(len(kinds), dtype=np.int64), sizes)
        self.block_kinds = tuple(kinds)
        """Which extraction serves each vectorizer of the union, in order (the vocabularies are not kept)."""
        self._blocks_param = np.ascontiguousarray(spec[:, : len(kernels.BLOCK_COLUMNS)], dtype=np.int64)
        self._extra = list(tables.extra)
        self._kernel_text = any(k != KIND_EXTRA for k in kinds)
        self._n_slots = int(tables.table.shape[0])
        extra_columns = [np.arange(o, o + n) for k, o, n in zip(kinds, offsets, sizes, strict=True)
                         if k in (KIND_EXTRA, KIND_LEXICON)]
        self._rows, self._values, self._row_of = _feature_rows(tables.table, extra_columns, block_of, idf,
                                                               tables.coef_t)
        needs_words = any(k in (KIND_WORD, KIND_LEXICON) for k in kinds)
        if not needs_words:
            word_characters = np.zeros(1, np.bool_)
        self._word_char = _word_characters() if word_characters is None else word_characters
        self._lex_table, self._lex_kind, self._lex_value = tables.lex_table, tables.lex_kind, tables.lex_value
        lexicon = next(((o, n) for k, o, n in zip(kinds, offsets, sizes, strict=True) if k == KIND_LEXICON), None)
        self._lex_rows = (self._row_of[lexicon[0] : lexicon[0] + lexicon[1]] if lexicon is not None
                          else np.empty(0, np.int64))
        self._intercept = np.ascontiguousarray(tables.intercept, dtype=np.float64)
        self._rule = _RULES[tables.rule]
        self._touched = np.zeros(int(idf.shape[0]) + 1, dtype=np.int64)
        self._lock = threading.Lock()
        self._no_ids = np.empty(0, dtype=np.int64)
        self._no_codes = np.empty(0, dtype=np.uint32)

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> tuple[FastPath | None, str]:
        """Build the fast path from a fitted pipeline, or return ``(None, reason)`` when it cannot be exact."""
        tables, reason = _tables(pipeline)
        return (None, reason) if tables is None else (cls(tables), "")

    @classmethod
    def load(cls, path: Path, model_file: Path, classes: Sequence[str]) -> tuple[FastPath | None, Warmup | None, str]:
        """The fast path from a tables file written by :func:`export_tables`, with the warm-up texts and sklearn's
        answers to them stored beside it; ``(None, None, reason)`` when the file cannot be used (another format or
        kernel source, derived from another pickle or for other classes, unreadable): the caller reads the
        pickle instead."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                data = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            return None, None, f"{path} cannot be read ({type(e).__name__}: {e})"
        try:
            if str(data["format"]) != TABLES_FORMAT:
                return None, None, f"{path} has format {data['format']}, not {TABLES_FORMAT}"
            if int(data["kernels_digest"]) != kernels.source_digest():
                return None, None, f"{path} was written for another version of {kernels.__name__}"
            if str(data["model_sha256"]) != _file_digest(model_file):
                return None, None, f"{path} was derived from another pickle than {model_file}"
            if [str(c) for c in data["classes"]] != list(classes):
                return None, None, f"{path} has classes {data['classes'].tolist()}, the model {list(classes)}"
            tables = Tables(rule=str(data["rule"]), **{name: data[name] for name in _ARRAYS})
            words = None
            if str(data["unidata_version"]) == unicodedata.unidata_version:
                words = data["word_characters"]
            warmup = Warmup(tuple(str(t) for t in data["warmup_texts"]), data["warmup_probabilities"])
            if not warmup.texts:
                return None, None, f"{path} has no warm-up texts to check the tables on"
            problem = _unsafe(tables, words, len(classes))
            if problem:
                return None, None, f"{path} does not describe tables the kernel can use: {problem}"
            return cls(tables, words), warmup, ""
        except (KeyError, ValueError, TypeError, IndexError) as e:
            return None, None, f"{path} is incomplete ({type(e).__name__}: {e})"

    def _extra_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Columns found by the Python analyzers (``KIND_EXTRA`` blocks) for every text, and each text's start."""
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        if not self._extra:
            return self._no_ids, starts
        ids: list[int] = []
        for r, text in enumerate(texts):
            for b in self._extra:
                ids.extend(i for i in map(b.lookup, b.analyze(text)) if i is not None)  # type: ignore[arg-type,misc]
            starts[r + 1] = len(ids)
        return self._row_of[np.asarray(ids, dtype=np.int64)], starts

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities equal to the pipeline's ``predict_proba`` (float64, ``(n, n_classes)``)."""
        if self._kernel_text:
            # what every kernel block sees: lowercased, whitespace runs as one space (same n-grams as sklearn)
            normalised = [" ".join(text.lower().split()) for text in texts]
            starts = np.fromiter(accumulate(map(len, normalised), initial=0), np.int64, len(texts) + 1)
            codes = np.frombuffer("".join(normalised).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        else:
            starts = np.zeros(len(texts) + 1, dtype=np.int64)
            codes = self._no_codes
        extra_ids, extra_start = self._extra_ids(texts)
        with self._lock:
            return kernels.compiled().probabilities(  # type: ignore[no-any-return]
                codes, starts, extra_ids, extra_start, self._blocks_param, self._word_char, self._rows, self._values,
                self._n_slots, self._intercept, self._rule, self._touched, self._lex_table, self._lex_kind,
                self._lex_value, self._lex_rows,
            )


def export_tables(pipeline: Pipeline, model_dir: Path) -> str:
    """Write the fast path's tables into a saved model directory whose pickle holds ``pipeline`` (``fastpath.npz``,
    with sklearn's answers to the warm-up texts), so that a predictor starts without unpickling the pipeline or
    importing scikit-learn. Returns "" when written, else why not (the predictor then reads the pickle)."""
    import os
    import tempfile

    import sklearn

    from model.artifacts import load_model_dir

    model_file = load_model_dir(model_dir, unpickle=False).model_file
    tables, reason = _tables(pipeline)
    if tables is None:
        return reason
    if tables.extra:
        return "a vectorizer needs sklearn's own analyzer at serving time"
    warmup = Warmup(WARMUP_TEXTS, np.asarray(pipeline.predict_proba(list(WARMUP_TEXTS)), dtype=np.float64))
    problem = warmup.problem(FastPath(tables))
    if problem:
        return f"the fast path {problem}"
    fields = {name: getattr(tables, name) for name in _ARRAYS} | {
        "rule": np.array(tables.rule), "format": np.array(TABLES_FORMAT),
        "kernels_digest": np.array(kernels.source_digest(), dtype=np.int64),
        "model_sha256": np.array(_file_digest(model_file)),
        "classes": np.array([str(c) for c in pipeline.classes_]),
        "sklearn_version": np.array(sklearn.__version__),
        "unidata_version": np.array(unicodedata.unidata_version), "word_characters": _word_characters(),
        "warmup_texts": np.array(warmup.texts), "warmup_probabilities": warmup.probabilities,
    }
    fd, tmp = tempfile.mkstemp(prefix=".fastpath-", suffix=".npz", dir=model_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **fields)
        os.chmod(tmp, 0o644)  # like the directory's other files (mkstemp makes it private)
        os.replace(tmp, Path(model_dir) / TABLES_FILE)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return ""


def build_proba_fn(pipeline: Pipeline, allow_fast: bool = True) -> tuple[ProbaFn, str]:
    """The fast path when it is exact for this pipeline, else sklearn; with the reason for a fallback."""
    if not allow_fast:
        return SklearnPath(pipeline), "fast path disabled by configuration"
    fast, reason = FastPath.from_pipeline(pipeline)
    if fast is None:
        return SklearnPath(pipeline), reason
    return fast, ""
