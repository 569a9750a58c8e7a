"""The fast path equals sklearn's ``predict_proba`` (max abs difference <= 1e-9) and falls back when it cannot.

Besides the fixed cases, a property-based test (hypothesis) draws random Unicode texts built to hit the tokeniser's
and the lexicon's corners (apostrophes, contractions, clause punctuation, emoticons, boosters, negations).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline

from model.data import Split
from model.lexicon import LexiconFeatures
from model.settings import ModelSettings
from model.train import build_pipeline
from serving import fastpath
from serving.fastpath import FastPath, SklearnPath, build_proba_fn
from serving.kernels import (
    KIND_CHAR_WB,
    KIND_EXTRA,
    KIND_LEXICON,
    KIND_WORD,
    ROW_COEF,
    ROW_COLUMN,
    ROW_COUNT,
    ROW_IDF,
)
from tests.support.models import fit_tiny

TOLERANCE = 1e-9
EDGE_TEXTS = [
    "x", "a b", "!!!", "ÉTÉ à Paris", "tab\tand\nnewline   spaces", "ünïcödé wörds", "😀 emoji only 😀",
    "I", "no known n-grams: qzxqzx vvvkkk", "  padded  ", "a" * 300, "don't stop-believing!", "ß ẞ İ \u0131",
    "İstanbul İİİ", "snake_case_word __init__ a_b", "ideographic\u3000space\x1cfile\x1dsep\u2028line\xa0nbsp",
    "digits 2024 ٣٤ ½ x²", "lone \ud800 surrogate", "😀😀😀 astral \U0001d518\U0001d52b", "the the the the the the",
    "not bad at all!!!", "I don't like it :)", "great, but the staff was rude", "won't", "can\u2019t stand it",
    "x't 't",
    "very very good", "barely good", ":D <3 :-(", "https://t.co/x good", "good but bad but great", "NOT. BAD!",
]
# pieces the random texts are built from: what the lexicon rules and the tokenisers branch on
PIECES = [
    "not", "no", "never", "don't", "can\u2019t", "won't", "isn't", "t", "'", "\u2019", "good", "bad", "great", "awful",
    "love", "hate", "very", "so", "barely", "kind", "but", "!", "!!", ".", ",", ";", ":", "?", ":)", ":(", "<3", ":-d",
    " ", "  ", "\t", "\n", "İ", "ß", "_", "1", "😀", "https://t.co/x",
]


@pytest.fixture(scope="module")
def tiny_fast(tiny_pipeline: Pipeline) -> FastPath:
    fast, reason = FastPath.from_pipeline(tiny_pipeline)
    assert fast is not None, reason
    return fast


def assert_equal_to_sklearn(pipeline: Pipeline, texts: list[str]) -> None:
    fast, reason = FastPath.from_pipeline(pipeline)
    assert fast is not None, reason
    expected = pipeline.predict_proba(texts)
    got = fast.predict_proba(texts)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE


@pytest.mark.integration  # the whole holdout through sklearn: seconds; EDGE_TEXTS run in the fast tier below
def test_fast_path_equals_sklearn_on_the_whole_holdout(tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    holdout = corpus_split.holdout["text"].tolist()
    assert len(holdout) > 1000
    assert_equal_to_sklearn(tiny_pipeline, holdout)
    assert_equal_to_sklearn(tiny_pipeline, EDGE_TEXTS)


def test_fast_path_equals_sklearn_on_edge_texts_and_a_holdout_sample(tiny_pipeline: Pipeline,
                                                                    corpus_split: Split) -> None:
    assert_equal_to_sklearn(tiny_pipeline, EDGE_TEXTS + corpus_split.holdout["text"].head(300).tolist())


def test_the_default_pipeline_runs_entirely_in_the_kernel(tiny_pipeline: Pipeline) -> None:
    fast, _ = FastPath.from_pipeline(tiny_pipeline)
    assert fast is not None
    assert list(fast.block_kinds) == [KIND_WORD, KIND_CHAR_WB, KIND_LEXICON]  # nothing in Python


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=3)), max_size=20).map("".join),
        min_size=1, max_size=6,
    )
)
def test_random_unicode_texts_are_exact(tiny_pipeline: Pipeline, tiny_fast: FastPath, texts: list[str]) -> None:
    assert np.abs(tiny_fast.predict_proba(texts) - tiny_pipeline.predict_proba(texts)).max() <= TOLERANCE


def test_every_feature_has_one_cache_line_with_its_parameters(tiny_pipeline: Pipeline) -> None:
    fast, _ = FastPath.from_pipeline(tiny_pipeline)
    assert fast is not None
    features, clf = tiny_pipeline.steps[0][1], tiny_pipeline.steps[1][1]
    idf = np.concatenate([vec.idf_ for _, vec in features.transformer_list if hasattr(vec, "idf_")])
    lexicon = features.transformer_list[-1][1]
    rows, values, row_of = fast._rows, fast._values, fast._row_of
    n_columns = idf.shape[0] + 5
    assert rows.ctypes.data % 64 == 0 and rows.strides[0] == 64  # one aligned cache line per row
    assert (row_of >= 0).all() and len(set(row_of.tolist())) == n_columns
    assert (rows[row_of, ROW_COLUMN] == np.arange(n_columns)).all()
    assert (values[row_of[: idf.shape[0]], ROW_IDF] == idf).all()
    coefficients = clf.coef_.T.copy()
    coefficients[idf.shape[0] :] *= lexicon.scale  # the kernel computes log1p(sum); the scale is in the weights
    assert (values[row_of, ROW_COEF : ROW_COEF + 3] == coefficients).all()
    assert (rows[:, ROW_COUNT] == 0).all()
    fast.predict_proba(["counts are zero again after a call", "the the the"])
    assert (rows[:, ROW_COUNT] == 0).all()


def test_single_text_and_batches_agree(tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    fast, _ = FastPath.from_pipeline(tiny_pipeline)
    assert fast is not None
    texts = corpus_split.holdout["text"].tolist()[:50]
    batched = fast.predict_proba(texts)
    one_by_one = np.vstack([fast.predict_proba([t]) for t in texts])
    assert np.abs(batched - one_by_one).max() <= TOLERANCE
    assert fast.predict_proba([]).shape == (0, 3)


def test_concurrent_callers_get_their_own_answers(tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    fast, _ = FastPath.from_pipeline(tiny_pipeline)
    assert fast is not None
    texts = corpus_split.holdout["text"].tolist()[:400]
    chunks = [texts[i : i + 7] for i in range(0, len(texts), 7)]
    expected = [fast.predict_proba(chunk) for chunk in chunks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(fast.predict_proba, chunks))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_a_hash_collision_in_the_vocabulary_falls_back_to_sklearn(
    tiny_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastpath, "_kernel_table", lambda blocks: None)
    proba, reason = build_proba_fn(tiny_pipeline)
    assert isinstance(proba, SklearnPath)
    assert "same 64-bit hash" in reason


@pytest.mark.parametrize(
    "settings",
    [
        {"word_ngram_max": 1, "char_ngram_min": 3, "char_ngram_max": 3},
        {"word_ngram_max": 3, "char_ngram_min": 1, "char_ngram_max": 6, "sublinear_tf": False},
        {"class_weight": "none", "min_df": 1, "max_features": 500},
        {"char_ngram_min": 4, "char_ngram_max": 6},
    ],
    ids=["narrow-ngrams", "wide-ngrams-linear-tf", "capped-vocabulary", "char-ngrams-longer-than-short-words"],
)
def test_other_training_settings_stay_exact(settings: dict, corpus_split: Split) -> None:
    pipeline = fit_tiny(corpus_split, rows=500, **settings)
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:800] + EDGE_TEXTS)


@pytest.mark.parametrize(
    "clf",
    [lambda: SGDClassifier(loss="log_loss", random_state=0), lambda: MultinomialNB(alpha=0.1)],
    ids=["sgd-log-loss", "multinomial-nb"],
)
def test_other_classifiers_stay_exact(clf, corpus_split: Split) -> None:  # type: ignore[no-untyped-def]
    pipeline = build_pipeline(ModelSettings()).set_params(clf=clf())
    pipeline = _fit(pipeline, corpus_split)
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:800] + EDGE_TEXTS)


def _fit(pipeline: Pipeline, corpus: Split, rows: int = 500, labels: list[str] | None = None) -> Pipeline:
    train = corpus.train.head(rows)
    if labels:
        train = train[train["label"].isin(labels)]
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    return pipeline


@pytest.mark.parametrize(
    "make",
    [
        lambda: Pipeline([("features", TfidfVectorizer()), ("clf", LogisticRegression(max_iter=100))]),
        lambda: Pipeline([("features", TfidfVectorizer(norm="l1", binary=True, analyzer="char", ngram_range=(1, 3))),
                          ("clf", LogisticRegression(max_iter=100))]),
        lambda: Pipeline([("features", TfidfVectorizer(stop_words="english", strip_accents="unicode",
                                                       use_idf=False, norm=None)),
                          ("clf", SGDClassifier(loss="log_loss", random_state=0))]),
        lambda: Pipeline([("features", FeatureUnion([("w", TfidfVectorizer(lowercase=False,
                                                                           token_pattern=r"(?u)\b\w+\b"))])),
                          ("clf", LogisticRegression(max_iter=100, solver="liblinear"))]),
    ],
    ids=["single-vectorizer", "l1-binary-char", "stop-words-no-idf-no-norm", "case-kept-liblinear-ovr"],
)
def test_other_pipeline_shapes_stay_exact(make, corpus_split: Split) -> None:  # type: ignore[no-untyped-def]
    pipeline = _fit(make(), corpus_split)
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:500] + EDGE_TEXTS)


def test_kernel_and_python_blocks_mix_in_one_union(corpus_split: Split) -> None:
    pipeline = _fit(Pipeline([
        ("features", FeatureUnion([
            ("words", TfidfVectorizer(ngram_range=(1, 3), binary=True)),  # kernel
            ("unigrams", TfidfVectorizer(token_pattern=r"(?u)\b\w+\b", norm="l1")),  # kernel, one-letter tokens
            ("stop", TfidfVectorizer(stop_words="english")),  # Python
            ("chars", TfidfVectorizer(analyzer="char", ngram_range=(2, 3), sublinear_tf=True)),  # Python
            ("wb", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 7), norm=None)),  # kernel, long n
        ])),
        ("clf", LogisticRegression(max_iter=200)),
    ]), corpus_split)
    fast, _ = FastPath.from_pipeline(pipeline)
    assert fast is not None
    assert list(fast.block_kinds) == [KIND_WORD, KIND_WORD, KIND_EXTRA, KIND_EXTRA, KIND_CHAR_WB]
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:500] + EDGE_TEXTS)


def test_binary_classifier_stays_exact(corpus_split: Split) -> None:
    pipeline = _fit(
        Pipeline([("features", TfidfVectorizer()), ("clf", LogisticRegression(max_iter=100))]),
        corpus_split, rows=800, labels=["negative", "positive"],
    )
    assert len(pipeline.classes_) == 2
    assert_equal_to_sklearn(pipeline, corpus_split.holdout["text"].tolist()[:500])


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: Pipeline([("features", TfidfVectorizer(dtype=np.float32)), ("clf", LogisticRegression())]),
         "float32"),
        (lambda: Pipeline([("features", TfidfVectorizer()), ("clf", RidgeClassifier())]), "RidgeClassifier"),
        (lambda: Pipeline([("features", TfidfVectorizer(analyzer=str.split)), ("clf", LogisticRegression())]),
         "analyzer"),
        (lambda: Pipeline([("features", TfidfVectorizer()), ("clf", SGDClassifier(loss="modified_huber"))]),
         "modified_huber"),
    ],
    ids=["float32", "unsupported-classifier", "callable-analyzer", "sgd-modified-huber"],
)
def test_unsupported_configurations_fall_back_to_sklearn(make, reason: str, corpus_split: Split) -> None:  # type: ignore[no-untyped-def]
    pipeline = _fit(make(), corpus_split, rows=300)
    fast, why = FastPath.from_pipeline(pipeline)
    assert fast is None
    assert reason in why
    proba, why_again = build_proba_fn(pipeline)
    assert isinstance(proba, SklearnPath)
    assert why_again == why


@pytest.mark.parametrize(
    "lexicon",
    [LexiconFeatures(window=1, scale=2.5), LexiconFeatures(window=10, scale=0.3)],
    ids=["narrow-window-scaled-up", "wide-window-scaled-down"],
)
def test_lexicon_settings_stay_exact(lexicon: LexiconFeatures, corpus_split: Split) -> None:
    alone = _fit(Pipeline([("features", lexicon), ("clf", LogisticRegression(max_iter=200))]), corpus_split)
    assert_equal_to_sklearn(alone, corpus_split.holdout["text"].tolist()[:800] + EDGE_TEXTS)
    mixed = _fit(Pipeline([
        ("features", FeatureUnion([("stop", TfidfVectorizer(stop_words="english")), ("lexicon", lexicon)])),
        ("clf", SGDClassifier(loss="log_loss", random_state=0)),
    ]), corpus_split)
    assert_equal_to_sklearn(mixed, corpus_split.holdout["text"].tolist()[:800] + EDGE_TEXTS)


def test_two_lexicon_steps_fall_back_to_sklearn(corpus_split: Split) -> None:
    pipeline = _fit(Pipeline([
        ("features", FeatureUnion([("a", LexiconFeatures()), ("b", LexiconFeatures(window=2))])),
        ("clf", LogisticRegression(max_iter=200)),
    ]), corpus_split, rows=300)
    fast, why = FastPath.from_pipeline(pipeline)
    assert fast is None and "2 lexicon feature steps" in why


def test_an_unverified_scikit_learn_version_falls_back_to_sklearn(
    tiny_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fastpath, "VERIFIED_SKLEARN", ("0.1.0",))
    proba, reason = build_proba_fn(tiny_pipeline)
    assert isinstance(proba, SklearnPath)
    assert "scikit-learn 1.7.2 is not a version the fast path was verified against (0.1.0)" in reason


def test_fast_path_can_be_switched_off(tiny_pipeline: Pipeline) -> None:
    proba, reason = build_proba_fn(tiny_pipeline, allow_fast=False)
    assert proba.kind == "sklearn"
    assert "disabled" in reason
