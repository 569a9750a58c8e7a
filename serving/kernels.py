"""Compiled (numba) kernels of the fast path: n-gram extraction, vocabulary lookup, TF-IDF, lexicon features and the
linear head.

The plain Python functions below are compiled by :func:`compiled` on first use (never at import). They work on
texts as arrays of Unicode code points (``str.encode("utf-32-le")``), so no n-gram is ever built as a Python
string, and everything a lookup touches is laid out for few cache misses (the work is memory-bound):

- the hash table: a power-of-two open-addressing table of ``(hash, column)`` rows (column -1 = empty), indexed by
  the top bits of the hash: 64-bit FNV-1a over a salt (the vectorizer's index + 1, as if it were one more code
  point) and the n-gram's code points, finished with murmur3's mixer (:func:`_hash`). :func:`build_table` refuses
  a vocabulary in which two terms share a hash, so a known n-gram always finds its own column; an unseen n-gram is
  taken for a known one only if its 64-bit hash equals that term's (about ``len(vocabulary) / 2**64`` per n-gram,
  i.e. never in practice);
- ``rows``: what :func:`probabilities` reads, the hash table widened so that a slot holds all a feature needs, in
  one 64-byte cache line: ``ROW_KEY``, ``ROW_COLUMN``, ``ROW_COUNT`` (its count in the current text, 0 at rest),
  ``ROW_BLOCK`` (its vectorizer) as int64, and, in the same memory seen as float64 (``values``), ``ROW_IDF`` and
  the coefficient of class ``c`` at ``ROW_COEF + c``. A lookup thus costs one cache miss instead of four (slot,
  count, vectorizer, weights). Columns of ``KIND_EXTRA`` and ``KIND_LEXICON`` blocks get rows after the hash
  table's slots.

``blocks`` is an ``(n_blocks, 7)`` int64 array, one row per step of the union in feature order, columns
``BLOCK_COLUMNS``: ``kind`` (``KIND_EXTRA``: n-grams found by the caller and passed as ``extra_ids``;
``KIND_WORD``: word n-grams of tokens that are maximal runs of at least ``min_token`` word characters;
``KIND_CHAR_WB``: sklearn's ``char_wb``; ``KIND_LEXICON``: :class:`model.lexicon.LexiconFeatures`, whose negation
window is in the ``min_n`` column), ``min_n``, ``max_n``, ``sublinear`` and ``binary`` (0/1), ``norm``
(``NORM_*``) and ``min_token``.

The lexicon block follows :mod:`model.lexicon`'s rules (that module is the reference; the tests compare the two on
random Unicode): its entries are looked up in a second, small table of the same kind (``lex_table``; salt
``LEX_WORD_SALT`` for word tokens, ``LEX_CHUNK_SALT`` for whole chunks such as emoticons) whose column is the
entry's index in ``lex_kind`` / ``lex_value``; its five features enter the scores through their rows
``lex_rows``, whose coefficients already carry the block's ``scale``.

:func:`probabilities` walks the batch and calls one named helper per step; numba compiles the helpers into the
same module and LLVM inlines them, so the split costs nothing at run time (measured in docs/serving.md).

The kernels can also be compiled ahead of time (``serving._kernels_aot``, built by :mod:`serving.aot` from this
source): a predictor that finds that build neither imports numba nor compiles anything. Without it, or when it was
built from another version of this file (:func:`source_digest`), :func:`compiled` compiles them with numba.
"""

from __future__ import annotations

import hashlib
import logging
import types
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from model.lexicon_rules import (
    BOOSTER,
    BOOSTER_DECAY,
    CONTRAST_AFTER,
    CONTRAST_BEFORE,
    CONTRAST_WORD,
    EXCLAMATION,
    MAX_EXCLAMATIONS,
    NEGATION,
    NO_WORD,
    VALENCE,
)

log = logging.getLogger(__name__)

KIND_EXTRA, KIND_WORD, KIND_CHAR_WB, KIND_LEXICON = 0, 1, 2, 3
NORM_NONE, NORM_L1, NORM_L2 = 0, 1, 2
RULE_OVR, RULE_SOFTMAX, RULE_NB = 0, 1, 2
BLOCK_COLUMNS = ("kind", "min_n", "max_n", "sublinear", "binary", "norm", "min_token")
ROW_KEY, ROW_COLUMN, ROW_COUNT, ROW_BLOCK, ROW_IDF, ROW_COEF = 0, 1, 2, 3, 4, 5
LEX_WORD_SALT, LEX_CHUNK_SALT = 1, 2
N_LEXICON_FEATURES = 5
SPACE, EXCLAMATION_MARK, LOWER_T = 32, 33, 116
APOSTROPHE, RIGHT_QUOTE = 39, 0x2019
COMMA, PERIOD, COLON, SEMICOLON, QUESTION_MARK = 44, 46, 58, 59, 63
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MIX1, _MIX2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53
_DECAY1, _DECAY2, _DECAY3 = BOOSTER_DECAY


# --- hashing and lookup -------------------------------------------------------------------------------------------


def _hash(codes: Any, start: int, length: int, salt: int) -> Any:
    """64-bit FNV-1a of ``salt`` and ``codes[start:start + length]``, finished with murmur3's mixer (uint64)."""
    h = (np.uint64(_FNV_OFFSET) ^ np.uint64(salt)) * np.uint64(_FNV_PRIME)
    for p in range(start, start + length):
        h = (h ^ np.uint64(codes[p])) * np.uint64(_FNV_PRIME)
    h ^= h >> np.uint64(33)  # murmur3's finaliser: FNV's top bits, which pick the slot, are poorly mixed
    h *= np.uint64(_MIX1)
    h ^= h >> np.uint64(33)
    h *= np.uint64(_MIX2)
    h ^= h >> np.uint64(33)
    return h


def _table_bits(n_slots: int) -> int:
    """``log2`` of a power-of-two table size."""
    bits = 0
    while (1 << bits) < n_slots:
        bits += 1
    return bits


def _find(table: Any, codes: Any, start: int, length: int, salt: int, bits: int) -> int:
    """Column of the term ``codes[start:start + length]`` in a ``(hash, column)`` table, -1 when absent."""
    h = _hash(codes, start, length, salt)
    key = np.int64(h)
    mask = (1 << bits) - 1
    slot = np.int64(h >> np.uint64(64 - bits))
    while table[slot, 1] >= 0:
        if table[slot, 0] == key:
            return table[slot, 1]  # type: ignore[no-any-return]
        slot = (slot + 1) & mask
    return -1


def build_table(term_codes: Any, terms: Any, bits: int) -> Any:
    """Open-addressing table of ``2**bits`` ``(hash, column)`` rows; an empty ``(0, 2)`` table if two terms have the
    same hash (one return type, so that the function also compiles ahead of time).

    ``terms[t] = (start, length, column, block)``: term ``t`` is ``term_codes[start:start + length]`` and is hashed
    with salt ``block + 1``.
    """
    size = 1 << bits
    table = np.full((size, 2), -1, np.int64)
    for t in range(terms.shape[0]):
        h = _hash(term_codes, terms[t, 0], terms[t, 1], terms[t, 3] + 1)
        key = np.int64(h)
        slot = np.int64(h >> np.uint64(64 - bits))
        while table[slot, 1] >= 0:
            if table[slot, 0] == key:
                return np.full((0, 2), -1, np.int64)
            slot = (slot + 1) & (size - 1)
        table[slot, 0] = key
        table[slot, 1] = terms[t, 2]
    return table


# --- n-gram spans -------------------------------------------------------------------------------------------------


def _word_spans(
    codes: Any, begin: int, end: int, word_char: Any, min_token: int, min_n: int, max_n: int, buf: Any,
    tok_start: Any, tok_end: Any, span_start: Any, span_len: Any,
) -> int:
    """Word n-grams of ``codes[begin:end]`` as spans of ``buf``; returns their number.

    Tokens are maximal runs of at least ``min_token`` word characters (sklearn's ``token_pattern``), laid out in
    ``buf`` joined by single spaces (``tok1 tok2 tok3``), so that ``n`` consecutive tokens are one span.
    """
    n_tok = 0
    size = 0
    i = begin
    while i < end:
        if not word_char[codes[i]]:
            i += 1
            continue
        j = i
        while j < end and word_char[codes[j]]:
            j += 1
        if j - i >= min_token:
            if n_tok:
                buf[size] = SPACE
                size += 1
            tok_start[n_tok] = size
            for p in range(i, j):
                buf[size] = codes[p]
                size += 1
            tok_end[n_tok] = size
            n_tok += 1
        i = j
    n_spans = 0
    for n in range(min_n, min(max_n, n_tok) + 1):
        for first in range(n_tok - n + 1):
            span_start[n_spans] = tok_start[first]
            span_len[n_spans] = tok_end[first + n - 1] - tok_start[first]
            n_spans += 1
    return n_spans


def _char_wb_spans(codes: Any, begin: int, end: int, min_n: int, max_n: int, buf: Any, span_start: Any,
                   span_len: Any) -> int:
    """sklearn's ``char_wb`` n-grams of ``codes[begin:end]`` as spans of ``buf``; returns their number.

    Every word is laid out padded with one space each side (`` w1  w2 ``); the windows of ``min_n..max_n`` inside
    a padded word are the n-grams, and a padded word not longer than ``n`` is counted once, whole
    (sklearn's ``_char_wb_ngrams``).
    """
    n_spans = 0
    size = 0
    i = begin
    while i < end:
        if codes[i] == SPACE:
            i += 1
            continue
        j = i
        while j < end and codes[j] != SPACE:
            j += 1
        word = size
        buf[size] = SPACE
        for p in range(i, j):
            buf[size + 1 + p - i] = codes[p]
        size += j - i + 2
        buf[size - 1] = SPACE
        width = j - i + 2
        for n in range(min_n, max_n + 1):
            if width <= n:
                span_start[n_spans] = word
                span_len[n_spans] = width
                n_spans += 1
                break
            for o in range(width - n + 1):
                span_start[n_spans] = word + o
                span_len[n_spans] = n
                n_spans += 1
        i = j
    return n_spans


def _count_spans(
    buf: Any, n_spans: int, salt: int, bits: int, rows: Any, span_start: Any, span_len: Any, keys: Any,
    home_key: Any, home_column: Any, touched: Any, n_touched: int,
) -> int:
    """Look every span up in ``rows`` and count the terms found; returns the new number of touched rows.

    Three passes so that the cache misses of many spans overlap instead of queueing one after the other (the work
    is memory-bound): hash every span, then load every home slot with no branch in the way, then resolve hits,
    misses and the rare longer probe.
    """
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    for s in range(n_spans):
        h = _hash(buf, span_start[s], span_len[s], salt)
        keys[s] = np.int64(h)
        span_start[s] = np.int64(h >> shift)  # the home slot, reusing the array
    for s in range(n_spans):
        home_key[s] = rows[span_start[s], ROW_KEY]
        home_column[s] = rows[span_start[s], ROW_COLUMN]
    for s in range(n_spans):
        f = -1  # the row of the span's term
        if home_column[s] >= 0 and home_key[s] == keys[s]:
            f = span_start[s]
        elif home_column[s] >= 0:  # occupied by another term: probe on
            slot = (span_start[s] + 1) & mask
            while rows[slot, ROW_COLUMN] >= 0:
                if rows[slot, ROW_KEY] == keys[s]:
                    f = slot
                    break
                slot = (slot + 1) & mask
        if f >= 0:
            touched[n_touched] = f
            n_touched += rows[f, ROW_COUNT] == 0
            rows[f, ROW_COUNT] += 1
    return n_touched


# --- lexicon ------------------------------------------------------------------------------------------------------


def _is_apostrophe(code: int) -> bool:
    return code in (APOSTROPHE, RIGHT_QUOTE)


def _is_clause_end(code: int) -> bool:
    return code in (PERIOD, COMMA, SEMICOLON, COLON, EXCLAMATION_MARK, QUESTION_MARK)


def _lexicon_tokens(
    codes: Any, begin: int, end: int, word_char: Any, lex_table: Any, lex_bits: int, lex_kind: Any, lex_value: Any,
    tok_kind: Any, tok_value: Any, tok_clause_end: Any,
) -> int:
    """The tokens of ``model.lexicon.LexiconFeatures.tokens`` (rules 1 and 2) of ``codes[begin:end]``; returns
    their number, their kinds, values and clause ends in the ``tok_*`` arrays."""
    n_tok = 0
    last_end = begin
    i = begin
    while i < end:
        if codes[i] == SPACE:
            i += 1
            continue
        j = i
        words_only = True
        while j < end and codes[j] != SPACE:
            words_only = words_only and word_char[codes[j]]
            j += 1
        entry = -1  # a whole chunk that is an entry: an emoticon (those entries all have a non-word character)
        if not words_only:
            entry = _find(lex_table, codes, i, j - i, LEX_CHUNK_SALT, lex_bits)
        p = i
        while p < j:
            start, stop, kind, value = i, j, VALENCE, 0.0
            if entry >= 0:
                value = lex_value[entry]
                p = j
            else:
                if not word_char[codes[p]]:
                    p += 1
                    continue
                q = p
                while q < j and word_char[codes[q]]:
                    q += 1
                start, stop = p, q
                p = q
                if (stop - start == 1 and codes[start] == LOWER_T and start - 2 >= i
                        and _is_apostrophe(codes[start - 1]) and word_char[codes[start - 2]]):
                    continue  # the t of n't
                if (stop + 1 < j and _is_apostrophe(codes[stop]) and codes[stop + 1] == LOWER_T
                        and (stop + 2 == j or not word_char[codes[stop + 2]])):
                    kind = NEGATION  # don't, can't, won't
                else:
                    found = _find(lex_table, codes, start, stop - start, LEX_WORD_SALT, lex_bits)
                    kind = lex_kind[found] if found >= 0 else 0
                    value = lex_value[found] if found >= 0 else 0.0
            if n_tok:
                for g in range(last_end, start):
                    if _is_clause_end(codes[g]):
                        tok_clause_end[n_tok - 1] = True
                        break
            tok_kind[n_tok] = kind
            tok_value[n_tok] = value
            tok_clause_end[n_tok] = False
            n_tok += 1
            last_end = stop
        i = j
    return n_tok


def _lexicon_features(
    codes: Any, begin: int, end: int, window: int, word_char: Any, lex_table: Any, lex_bits: int, lex_kind: Any,
    lex_value: Any, tok_kind: Any, tok_value: Any, tok_clause_end: Any, features: Any,
) -> None:
    """The five features of ``model.lexicon.LexiconFeatures`` (rules 3 to 6, ``scale`` left to the coefficients)
    of ``codes[begin:end]``, written into ``features``."""
    n_tok = _lexicon_tokens(codes, begin, end, word_char, lex_table, lex_bits, lex_kind, lex_value, tok_kind,
                            tok_value, tok_clause_end)
    contrast_at = -1
    for k in range(n_tok):
        if tok_kind[k] == CONTRAST_WORD:
            contrast_at = k
            break
    reach = max(window, 3)
    s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
    for k in range(n_tok):
        if tok_kind[k] == NO_WORD and not (tok_clause_end[k] or k + 1 == n_tok or tok_kind[k + 1] != VALENCE):
            continue  # "no" before a valence token only negates it
        if tok_kind[k] != VALENCE and tok_kind[k] != NO_WORD:
            continue
        valence = tok_value[k]
        negated = False
        for d in range(1, reach + 1):
            if k - d < 0 or tok_clause_end[k - d]:
                break
            if (tok_kind[k - d] == NEGATION or tok_kind[k - d] == NO_WORD) and d <= window:
                negated = True
            elif tok_kind[k - d] == BOOSTER and d <= 3:
                step = tok_value[k - d] * (_DECAY1 if d == 1 else (_DECAY2 if d == 2 else _DECAY3))
                valence = valence + step if valence > 0 else valence - step
        if contrast_at >= 0:
            valence *= CONTRAST_BEFORE if k < contrast_at else CONTRAST_AFTER
        if negated:
            if valence > 0:
                s2 += abs(valence)
            else:
                s3 += abs(valence)
        elif valence > 0:
            s0 += abs(valence)
        else:
            s1 += abs(valence)
    exclamations = 0
    for p in range(begin, end):
        exclamations += codes[p] == EXCLAMATION_MARK
    exclamations = min(exclamations, MAX_EXCLAMATIONS)
    if exclamations:
        if s0 > s1:
            s0 += exclamations * EXCLAMATION
        elif s1 > s0:
            s1 += exclamations * EXCLAMATION
    features[0] = np.log1p(s0)
    features[1] = np.log1p(s1)
    features[2] = np.log1p(s2)
    features[3] = np.log1p(s3)
    features[4] = 1.0 if s0 == 0.0 and s1 == 0.0 and s2 == 0.0 and s3 == 0.0 else 0.0


# --- scores and probabilities -------------------------------------------------------------------------------------


def _add_tfidf(blocks: Any, rows: Any, values: Any, touched: Any, n_touched: int, norms: Any, tf_idf: Any,
               scores: Any) -> None:
    """Add ``tf-idf @ coef`` of the touched rows to ``scores`` with each block's tf rules and normalisation, and
    zero their counts again."""
    norms[:] = 0.0
    for q in range(n_touched):
        f = touched[q]
        b = rows[f, ROW_BLOCK]
        tf = 1.0 if blocks[b, 4] else float(rows[f, ROW_COUNT])
        if blocks[b, 3]:
            tf = np.log(tf) + 1.0
        value = tf * values[f, ROW_IDF]
        tf_idf[q] = value
        if blocks[b, 5] == NORM_L2:
            norms[b] += value * value
        elif blocks[b, 5] == NORM_L1:
            norms[b] += abs(value)
    for b in range(blocks.shape[0]):
        if blocks[b, 5] == NORM_L2:
            norms[b] = np.sqrt(norms[b])
        if norms[b] == 0.0 or blocks[b, 5] == NORM_NONE:
            norms[b] = 1.0
    for q in range(n_touched):
        f = touched[q]
        value = tf_idf[q] / norms[rows[f, ROW_BLOCK]]
        for c in range(scores.shape[0]):
            scores[c] += value * values[f, ROW_COEF + c]
        rows[f, ROW_COUNT] = 0


def _to_probabilities(out: Any, r: int, n_scores: int, rule: int) -> None:
    """Turn the decision scores in ``out[r, :n_scores]`` into probabilities as sklearn's ``predict_proba`` does."""
    if rule == RULE_OVR and n_scores == 1:  # binary one-vs-rest: [1 - p, p]
        p1 = 1.0 / (1.0 + np.exp(-out[r, 0]))
        out[r, 0] = 1.0 - p1
        out[r, 1] = p1
    elif rule == RULE_OVR:  # sigmoid per class, then the row normalised
        total = 0.0
        for c in range(n_scores):
            out[r, c] = 1.0 / (1.0 + np.exp(-out[r, c]))
            total += out[r, c]
        for c in range(n_scores):
            out[r, c] /= total
    else:  # softmax of the scores (binary multinomial: of [-s, s]); naive Bayes normalises the same way
        n_out = n_scores
        if n_scores == 1:
            out[r, 1] = out[r, 0]
            out[r, 0] = -out[r, 0]
            n_out = 2
        top = out[r, 0]
        for c in range(n_out):
            top = max(top, out[r, c])
        total = 0.0
        for c in range(n_out):
            out[r, c] = np.exp(out[r, c] - top)
            total += out[r, c]
        for c in range(n_out):
            out[r, c] /= total


def probabilities(
    codes: Any,
    text_start: Any,
    extra_ids: Any,
    extra_start: Any,
    blocks: Any,
    word_char: Any,
    rows: Any,
    values: Any,
    n_slots: int,
    intercept: Any,
    rule: int,
    touched: Any,
    lex_table: Any,
    lex_kind: Any,
    lex_value: Any,
    lex_rows: Any,
) -> Any:
    """Class probabilities of every text by the classifier's ``rule`` (``RULE_*``) from the decision scores
    ``X @ coef.T + intercept``, ``X`` being the feature rows sklearn would build.

    ``codes[text_start[r]:text_start[r + 1]]`` is text ``r``, lowercased with runs of whitespace turned into one
    space (kernel blocks only see this form; it gives them the same n-grams and tokens as sklearn and
    ``model.lexicon``). ``extra_ids[extra_start[r]:extra_start[r + 1]]`` are the rows of the columns found for
    text ``r`` by the caller for ``KIND_EXTRA`` blocks (one entry per occurrence). ``rows`` / ``values`` are
    described in the module's docstring, their first ``n_slots`` rows the hash table; the counts are written
    during the call and zeroed again before it returns (the caller serialises calls). ``touched`` is an int64
    array of ``n_features + 1`` entries. ``lex_*`` describe the lexicon block (empty arrays without one).
    """
    n_texts = len(text_start) - 1
    n_scores = intercept.shape[0]
    bits = _table_bits(n_slots)
    lex_bits = _table_bits(lex_table.shape[0])
    longest = 1
    widest = 1
    for b in range(blocks.shape[0]):
        widest = max(widest, blocks[b, 2] - blocks[b, 1] + 1)
    for r in range(n_texts):
        longest = max(longest, text_start[r + 1] - text_start[r])
    buf = np.empty(3 * longest + 3, np.uint32)
    tok_start = np.empty(longest + 1, np.int64)
    tok_end = np.empty(longest + 1, np.int64)
    span_start = np.empty(widest * (3 * longest + 3), np.int64)
    span_len = np.empty(widest * (3 * longest + 3), np.int64)
    keys = np.empty(widest * (3 * longest + 3), np.int64)
    home_key = np.empty(widest * (3 * longest + 3), np.int64)
    home_column = np.empty(widest * (3 * longest + 3), np.int64)
    tok_kind = np.empty(longest + 1, np.int64)
    tok_value = np.empty(longest + 1, np.float64)
    tok_clause_end = np.empty(longest + 1, np.bool_)
    lexicon = np.zeros(N_LEXICON_FEATURES)
    norms = np.empty(blocks.shape[0])
    tf_idf = np.empty(len(extra_ids) + blocks.shape[0] * len(span_start))  # of each touched row
    out = np.empty((n_texts, max(n_scores, 2)))
    for r in range(n_texts):
        n_touched = 0
        begin, end = text_start[r], text_start[r + 1]
        for q in range(extra_start[r], extra_start[r + 1]):
            f = extra_ids[q]
            touched[n_touched] = f
            n_touched += rows[f, ROW_COUNT] == 0
            rows[f, ROW_COUNT] += 1
        with_lexicon = False
        for b in range(blocks.shape[0]):
            kind, min_n, max_n = blocks[b, 0], blocks[b, 1], blocks[b, 2]
            n_spans = 0
            if kind == KIND_WORD:
                n_spans = _word_spans(codes, begin, end, word_char, blocks[b, 6], min_n, max_n, buf, tok_start,
                                      tok_end, span_start, span_len)
            elif kind == KIND_CHAR_WB:
                n_spans = _char_wb_spans(codes, begin, end, min_n, max_n, buf, span_start, span_len)
            elif kind == KIND_LEXICON:
                _lexicon_features(codes, begin, end, min_n, word_char, lex_table, lex_bits, lex_kind, lex_value,
                                  tok_kind, tok_value, tok_clause_end, lexicon)
                with_lexicon = True
            if n_spans:
                n_touched = _count_spans(buf, n_spans, b + 1, bits, rows, span_start, span_len, keys, home_key,
                                         home_column, touched, n_touched)
        scores = out[r, :n_scores]
        scores[:] = intercept
        _add_tfidf(blocks, rows, values, touched, n_touched, norms, tf_idf, scores)
        if with_lexicon:
            for k in range(N_LEXICON_FEATURES):
                if lexicon[k] != 0.0:
                    for c in range(n_scores):
                        scores[c] += lexicon[k] * values[lex_rows[k], ROW_COEF + c]
        _to_probabilities(out, r, n_scores, rule)
    return out


_HELPERS = (
    "_hash", "_table_bits", "_find", "_word_spans", "_char_wb_spans", "_count_spans", "_is_apostrophe",
    "_is_clause_end", "_lexicon_tokens", "_lexicon_features", "_add_tfidf", "_to_probabilities",
)
#: The exported kernels and their signatures when compiled ahead of time (:mod:`serving.aot`): every array
#: C-contiguous, as :class:`serving.fastpath.FastPath` allocates them.
EXPORTS = {
    "probabilities": "f8[:,::1](u4[::1], i8[::1], i8[::1], i8[::1], i8[:,::1], b1[::1], i8[:,::1], f8[:,::1], i8, "
                     "f8[::1], i8, i8[::1], i8[:,::1], i8[::1], f8[::1], i8[::1])",
    "build_table": "i8[:,::1](u4[::1], i8[:,::1], i8)",
}
#: Name of the extension module :mod:`serving.aot` builds inside this package.
AOT_MODULE = "_kernels_aot"


def source_digest() -> int:
    """What the compiled kernels depend on, as a signed 64-bit number: this file's source and the constants it
    reads (its own and :mod:`model.lexicon_rules`'). An ahead-of-time build records it; a build whose digest differs
    is stale and not used."""
    constants = sorted((name, repr(value)) for name, value in globals().items()
                       if not name.startswith("__") and type(value) in (int, float, tuple))
    digest = hashlib.sha256(Path(__file__).read_bytes() + repr(constants).encode()).digest()
    return int.from_bytes(digest[:8], "little", signed=True)


def jit_namespace(jit: Callable[[Any], Any]) -> Callable[[str], Any]:
    """``compile(name)`` for one of this module's functions: the function is re-created in a namespace of its own
    in which every helper name is bound to ``jit(helper)``, so the functions calling a helper see the compiled one
    (nothing is compiled at import time); ``compile`` returns the re-created function, not yet compiled."""
    namespace = dict(globals())

    def rebind(name: str) -> Any:
        func = globals()[name]
        rebound = types.FunctionType(func.__code__, namespace, name, func.__defaults__, func.__closure__)
        rebound.__qualname__ = func.__qualname__
        rebound.__module__ = func.__module__
        return rebound

    for helper in _HELPERS:
        namespace[helper] = jit(rebind(helper))
    return rebind


def ahead_of_time() -> tuple[Any, str]:
    """The ahead-of-time build of the kernels (``serving._kernels_aot``) if present and built from this source, else
    ``None`` and why not."""
    import importlib

    try:
        module = importlib.import_module(f"{__package__}.{AOT_MODULE}")
    except ImportError as e:
        return None, f"no ahead-of-time build ({e})"
    if module.source_digest() != source_digest():
        return None, f"the ahead-of-time build {module.__file__} was built from another version of {__name__}"
    return module, ""


KernelsMode = Literal["auto", "aot", "jit"]
_chosen: list[KernelsMode] = ["auto"]  # this process's choice (:func:`choose`)


class KernelsUnavailable(RuntimeError):
    """``aot`` was chosen and there is no usable ahead-of-time build; the message says why."""


def choose(mode: KernelsMode) -> None:
    """Which kernels :func:`compiled` gives in this process from now on: ``auto`` (the ahead-of-time build when it
    matches this source, else numba), ``aot`` (that build or :class:`KernelsUnavailable`: a pod that must not
    compile at start-up fails instead of paying for it) or ``jit`` (numba even where the build exists)."""
    if _chosen[0] != mode:
        _chosen[0] = mode
        compiled.cache_clear()


@cache
def compiled() -> SimpleNamespace:
    """The kernels: the ahead-of-time build when it matches this source (no numba in the process, nothing to
    compile), else compiled with numba (once per process; cached on disk where numba can write its cache), as
    :func:`choose` decided. ``kind`` says which (``aot`` or ``jit``)."""
    mode = _chosen[0]
    aot, reason = (None, "kernels=jit") if mode == "jit" else ahead_of_time()
    if aot is not None:
        return SimpleNamespace(kind="aot", build_table=aot.build_table, probabilities=aot.probabilities)
    if mode == "aot":
        raise KernelsUnavailable(f"kernels=aot, but {reason}; build it with python -m serving.aot")
    log.info("compiling the kernels with numba: %s", reason)
    import numba

    def jit(func: Any) -> Any:
        try:
            return numba.njit(cache=True, nogil=True)(func)
        except RuntimeError as e:  # no writable cache location: compile in memory on each start instead
            log.info("numba cache unavailable (%s); compiling in memory", e)
            return numba.njit(nogil=True)(func)

    rebind = jit_namespace(jit)
    return SimpleNamespace(kind="jit", build_table=jit(rebind("build_table")),
                           probabilities=jit(rebind("probabilities")))
