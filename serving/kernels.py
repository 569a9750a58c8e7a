"""Compiled (numba) kernels of the fast path: n-gram extraction, vocabulary lookup, TF-IDF and the linear head.

The plain Python functions below are compiled by :func:`compiled` on first use (never at import). They work on
texts as arrays of Unicode code points (``str.encode("utf-32-le")``), so no n-gram is ever built as a Python
string, and everything a lookup touches is laid out for few cache misses (the work is memory-bound):

- the hash table: a power-of-two open-addressing table of ``(hash, column)`` rows (column -1 = empty), indexed by
  the top bits of the hash: 64-bit FNV-1a over the vectorizer's index (as if it were one more code point) and the
  n-gram's code points, finished with murmur3's mixer. :func:`build_table` refuses a vocabulary in which two
  terms share a hash, so a known n-gram always finds its own column; an unseen n-gram is taken for a known one
  only if its 64-bit hash equals that term's (about ``len(vocabulary) / 2**64`` per n-gram, i.e. never in practice);
- ``rows``: what :func:`probabilities` reads, the hash table widened so that a slot holds all a feature needs, in
  one 64-byte cache line: ``ROW_KEY``, ``ROW_COLUMN``, ``ROW_COUNT`` (its count in the current text, 0 at rest),
  ``ROW_BLOCK`` (its vectorizer) as int64, and, in the same memory seen as float64 (``values``), ``ROW_IDF`` and
  the coefficient of class ``c`` at ``ROW_COEF + c``. A lookup thus costs one cache miss instead of four (slot,
  count, vectorizer, weights). Columns of ``KIND_EXTRA`` vectorizers get rows after the hash table's slots.

``blocks`` is an ``(n_blocks, 7)`` int64 array, one row per vectorizer of the union in feature order, columns
``BLOCK_COLUMNS``: ``kind`` (``KIND_EXTRA``: n-grams found by the caller and passed as ``extra_ids``;
``KIND_WORD``: word n-grams of tokens that are maximal runs of at least ``min_token`` word characters;
``KIND_CHAR_WB``: sklearn's ``char_wb``), ``min_n``, ``max_n``, ``sublinear`` and ``binary`` (0/1), ``norm``
(``NORM_*``) and ``min_token``.
"""

from __future__ import annotations

import logging
from functools import cache
from types import SimpleNamespace
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

KIND_EXTRA, KIND_WORD, KIND_CHAR_WB = 0, 1, 2
NORM_NONE, NORM_L1, NORM_L2 = 0, 1, 2
RULE_OVR, RULE_SOFTMAX, RULE_NB = 0, 1, 2
BLOCK_COLUMNS = ("kind", "min_n", "max_n", "sublinear", "binary", "norm", "min_token")
ROW_KEY, ROW_COLUMN, ROW_COUNT, ROW_BLOCK, ROW_IDF, ROW_COEF = 0, 1, 2, 3, 4, 5
SPACE = 32
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MIX1, _MIX2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53


def build_table(term_codes: Any, terms: Any, bits: int) -> Any:
    """Open-addressing table of ``2**bits`` ``(hash, column)`` rows; ``None`` if two terms have the same hash."""
    size = 1 << bits
    table = np.full((size, 2), -1, np.int64)
    for t in range(terms.shape[0]):
        start, length, column, block = terms[t, 0], terms[t, 1], terms[t, 2], terms[t, 3]
        h = (np.uint64(_FNV_OFFSET) ^ np.uint64(block + 1)) * np.uint64(_FNV_PRIME)
        for i in range(start, start + length):
            h = (h ^ np.uint64(term_codes[i])) * np.uint64(_FNV_PRIME)
        h ^= h >> np.uint64(33)  # murmur3's finaliser: FNV's top bits, which pick the slot, are poorly mixed
        h *= np.uint64(_MIX1)
        h ^= h >> np.uint64(33)
        h *= np.uint64(_MIX2)
        h ^= h >> np.uint64(33)
        key = np.int64(h)
        slot = np.int64(h >> np.uint64(64 - bits))
        while table[slot, 1] >= 0:
            if table[slot, 0] == key:
                return None
            slot = (slot + 1) & (size - 1)
        table[slot, 0] = key
        table[slot, 1] = column
    return table


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
) -> Any:
    """Class probabilities of every text by the classifier's ``rule`` (``RULE_*``) from the decision scores
    ``X @ coef.T + intercept``, ``X`` being the TF-IDF rows sklearn would build.

    ``codes[text_start[r]:text_start[r + 1]]`` is text ``r``, lowercased with runs of whitespace turned into one
    space (kernel blocks only see this form; it gives them the same n-grams as sklearn's analyzers).
    ``extra_ids[extra_start[r]:extra_start[r + 1]]`` are the rows of the columns found for text ``r`` by the caller
    for ``KIND_EXTRA`` blocks (one entry per occurrence). ``rows`` / ``values`` are described in the module's
    docstring, their first ``n_slots`` rows the hash table; the counts are written during the call and zeroed again
    before it returns (the caller serialises calls). ``touched`` is an int64 array of ``n_features + 1`` entries.

    Per text and block the n-grams are laid out in ``buf`` so that each is one contiguous span: ``char_wb`` as the
    padded words one after the other (`` w1  w2 ``; every window inside a padded word is one of sklearn's), word
    n-grams as the tokens joined by single spaces (``tok1 tok2 tok3``; n consecutive tokens are one span). Every
    span is then hashed and looked up the same way.
    """
    n_texts = len(text_start) - 1
    n_scores = intercept.shape[0]
    mask = n_slots - 1
    bits = 0
    while (1 << bits) < n_slots:
        bits += 1
    shift = np.uint64(64 - bits)
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
        for b in range(blocks.shape[0]):
            kind, min_n, max_n = blocks[b, 0], blocks[b, 1], blocks[b, 2]
            n_spans = 0
            if kind == KIND_WORD:
                # tokens: maximal runs of at least min_token word characters (sklearn's token_pattern)
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
                    if j - i >= blocks[b, 6]:
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
                for n in range(min_n, min(max_n, n_tok) + 1):
                    for first in range(n_tok - n + 1):
                        span_start[n_spans] = tok_start[first]
                        span_len[n_spans] = tok_end[first + n - 1] - tok_start[first]
                        n_spans += 1
            elif kind == KIND_CHAR_WB:
                # every word padded with one space each side; windows of min_n..max_n inside it, and a padded word
                # not longer than n counted once, whole (sklearn's _char_wb_ngrams)
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
            # three passes so that the cache misses of many spans overlap instead of queueing one after the other
            # (the work is memory-bound): hash every span, then load every home slot with no branch in the way,
            # then resolve hits, misses and the rare longer probe, and count the columns found
            for s in range(n_spans):
                h = (np.uint64(_FNV_OFFSET) ^ np.uint64(b + 1)) * np.uint64(_FNV_PRIME)
                for p in range(span_start[s], span_start[s] + span_len[s]):
                    h = (h ^ np.uint64(buf[p])) * np.uint64(_FNV_PRIME)
                h ^= h >> np.uint64(33)
                h *= np.uint64(_MIX1)
                h ^= h >> np.uint64(33)
                h *= np.uint64(_MIX2)
                h ^= h >> np.uint64(33)
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
        # TF-IDF with each block's tf rules and normalisation, then the linear head
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
        out[r, :n_scores] = intercept
        for q in range(n_touched):
            f = touched[q]
            value = tf_idf[q] / norms[rows[f, ROW_BLOCK]]
            for c in range(n_scores):
                out[r, c] += value * values[f, ROW_COEF + c]
            rows[f, ROW_COUNT] = 0
        # probabilities as sklearn's predict_proba computes them from the scores
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
    return out


@cache
def compiled() -> SimpleNamespace:
    """The kernels compiled with numba (once per process; cached on disk where numba can write its cache)."""
    import numba

    def jit(func: Any) -> Any:
        try:
            return numba.njit(cache=True, nogil=True)(func)
        except RuntimeError as e:  # no writable cache location: compile in memory on each start instead
            log.info("numba cache unavailable (%s); compiling in memory", e)
            return numba.njit(nogil=True)(func)

    return SimpleNamespace(build_table=jit(build_table), probabilities=jit(probabilities))
