"""``fastpath.npz``: the fast path's tables written into the model directory at training, so a predictor starts
without unpickling the pipeline or importing scikit-learn, and stands aside for anything that does not match."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from model.artifacts import load_model_dir, save_model_dir
from model.data import Split
from serving.errors import ModelLoadError
from serving.fastpath import TABLES_FILE, FastPath, export_tables
from serving.kernels import KIND_LEXICON
from serving.model import SentimentModel
from serving.settings import ServeSettings
from tests.serving.test_fastpath import EDGE_TEXTS, TOLERANCE
from tests.support.models import save_tiny


@pytest.fixture
def model_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny model directory (with its tables) that a test may damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "sentiment"))


def _load(path: Path) -> tuple[FastPath | None, str]:
    bundle = load_model_dir(path, unpickle=False)
    fast, _, reason = FastPath.load(path / TABLES_FILE, bundle.model_file, bundle.classes)
    return fast, reason


def _rewrite(path: Path, **changes: np.ndarray) -> None:
    """Rewrite the tables file with some of its arrays replaced."""
    with np.load(path / TABLES_FILE) as npz:
        arrays = {name: npz[name] for name in npz.files} | changes
    with (path / TABLES_FILE).open("wb") as fh:
        np.savez(fh, **arrays)


def test_the_tables_give_sklearns_probabilities(model_dir: Path, tiny_pipeline: Pipeline, corpus_split: Split) -> None:
    texts = EDGE_TEXTS + corpus_split.holdout["text"].head(300).tolist()
    fast, reason = _load(model_dir)
    assert fast is not None, reason
    expected = tiny_pipeline.predict_proba(texts)
    assert np.abs(fast.predict_proba(texts) - expected).max() <= TOLERANCE
    assert (model_dir / TABLES_FILE).stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: (d / "model.pkl").write_bytes((d / "model.pkl").read_bytes() + b"\0"), "another pickle"),
        (lambda d: _rewrite(d, format=np.array("kube-sentiment.fastpath/v0")), "has format"),
        (lambda d: _rewrite(d, kernels_digest=np.array(12345, dtype=np.int64)), "another version of serving.kernels"),
        (lambda d: _rewrite(d, classes=np.array(["bad", "good", "meh"])), "has classes"),
        (lambda d: _rewrite(d, spec=np.zeros((1, 3), dtype=np.int64)), "does not describe tables"),
        (lambda d: _rewrite(d, warmup_texts=np.array([], dtype=str), warmup_probabilities=np.zeros((0, 3))),
         "no warm-up texts"),
        (lambda d: (d / TABLES_FILE).write_bytes(b"PK\3\4 not a zip"), "cannot be read"),
        (lambda d: (d / TABLES_FILE).write_bytes((d / TABLES_FILE).read_bytes()[:4096]), "cannot be read"),
    ],
    ids=["pickle-changed", "format", "kernels-changed", "classes", "shape", "no-warm-up", "garbage", "truncated"],
)
def test_tables_that_do_not_match_are_refused_with_the_reason(model_dir: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    damage(model_dir)
    fast, why = _load(model_dir)
    assert fast is None and reason in why


def test_a_missing_array_is_refused(model_dir: Path) -> None:
    with np.load(model_dir / TABLES_FILE) as npz:
        arrays = {name: npz[name] for name in npz.files if name != "idf"}
    with (model_dir / TABLES_FILE).open("wb") as fh:
        np.savez(fh, **arrays)
    fast, why = _load(model_dir)
    assert fast is None and "is incomplete" in why and "idf" in why


def _sizes(spec: np.ndarray, *moves: tuple[int, int]) -> np.ndarray:
    """``spec`` with one feature moved from block ``a`` to block ``b`` for every ``(a, b)``, offsets kept tiling."""
    spec = spec.copy()
    for a, b in moves:
        spec[a, -1] -= 1
        spec[b, -1] += 1
    spec[:, -2] = np.cumsum(spec[:, -1]) - spec[:, -1]
    return spec


def _set(array: np.ndarray, index: Any, value: Any) -> np.ndarray:
    array = array.copy()
    array[index] = value
    return array


def _lexicon(spec: np.ndarray) -> int:
    return int(np.flatnonzero(spec[:, 0] == KIND_LEXICON)[0])


# Each array the kernel reads without bounds checks, damaged so that only its own check can refuse it.
UNSAFE = {
    "spec-dtype": (lambda a: {"spec": a["spec"].astype(np.int32)}, "spec is <i4"),
    "spec-byte-order": (lambda a: {"spec": a["spec"].astype(">i8")}, "spec is >i8"),
    "spec-fortran": (lambda a: {"spec": np.asfortranarray(a["spec"])}, "not C-ordered"),
    "spec-columns": (lambda a: {"spec": a["spec"][:, 1:]}, "spec has shape"),
    "spec-kind": (lambda a: {"spec": _set(a["spec"], (0, 0), 0)}, "spec has block kinds [0,"),
    "spec-two-lexicons": (lambda a: {"spec": _set(a["spec"], (0, 0), KIND_LEXICON)}, "spec has block kinds"),
    "spec-min-n": (lambda a: {"spec": _set(a["spec"], (0, 1), 0)}, "parameters out of range"),
    "spec-max-n": (lambda a: {"spec": _set(a["spec"], (0, 2), 0)}, "parameters out of range"),
    "spec-norm": (lambda a: {"spec": _set(a["spec"], (0, 5), 7)}, "parameters out of range"),
    "spec-offsets": (lambda a: {"spec": _set(a["spec"], (-1, -2), 0)}, "do not tile"),
    "spec-lexicon-size": (lambda a: {"spec": _sizes(a["spec"], (_lexicon(a["spec"]), 0))},
                          "the lexicon block has [4] features"),
    "idf-dtype": (lambda a: {"idf": a["idf"].astype(np.float32)}, "idf is <f4"),
    "idf-length": (lambda a: {"idf": a["idf"][:-1]}, "do not tile"),
    "coef-dtype": (lambda a: {"coef_t": a["coef_t"].astype(np.float32)}, "coef_t is <f4"),
    "coef-shape": (lambda a: {"coef_t": a["coef_t"][:, :2].copy()}, "do not give 3 classes"),
    "intercept-shape": (lambda a: {"intercept": a["intercept"][:2]}, "do not give 3 classes"),
    "rule": (lambda a: {"rule": np.array("hinge")}, "rule 'hinge'"),
    "table-dtype": (lambda a: {"table": a["table"].astype(np.int32)}, "table is <i4"),
    "table-not-power-of-two": (lambda a: {"table": a["table"][:-1]}, "table has shape"),
    "table-full": (lambda a: {"table": _set(a["table"], (a["table"][:, 1] == -1, 1), 0)}, "table has no free slot"),
    "table-column": (lambda a: {"table": _set(a["table"], (np.argmax(a["table"][:, 1]), 1), a["idf"].shape[0])},
                     "table points outside its"),
    "lex-table-small": (lambda a: {"lex_table": np.full((8, 2), -1, np.int64)}, "lex_table has shape (8, 2)"),
    "lex-table-column": (lambda a: {"lex_table": _set(a["lex_table"], (np.argmax(a["lex_table"][:, 1]), 1),
                                                      a["lex_kind"].shape[0])}, "lex_table points outside"),
    "lex-kind-dtype": (lambda a: {"lex_kind": a["lex_kind"].astype(np.float64)}, "lex_kind is <f8"),
    "lex-value-length": (lambda a: {"lex_value": a["lex_value"][:-1]}, "lex_value has shape"),
    "word-characters": (lambda a: {"word_characters": a["word_characters"][:0x10000]}, "word_characters is |b1"),
}


@pytest.mark.parametrize(("damage", "reason"), UNSAFE.values(), ids=UNSAFE.keys())
def test_arrays_the_kernel_cannot_use_safely_are_refused_before_it_runs(  # type: ignore[no-untyped-def]
    model_dir: Path, damage, reason: str
) -> None:
    with np.load(model_dir / TABLES_FILE) as npz:
        arrays = {name: npz[name] for name in npz.files}
    _rewrite(model_dir, **damage(arrays))
    fast, why = _load(model_dir)
    assert fast is None and "does not describe tables the kernel can use" in why and reason in why, why


def _model(model_dir: Path) -> SentimentModel:
    return SentimentModel(ServeSettings(model_dir=model_dir, events_dir=None), registry=CollectorRegistry())


def test_the_predictor_serves_from_the_tables(model_dir: Path, tiny_pipeline: Pipeline) -> None:
    model = _model(model_dir)
    model.load()
    assert model.ready and model.inference_path == "fast" and model._from_tables
    assert model._proba is not None
    got = model._proba.predict_proba(EDGE_TEXTS)
    assert np.abs(got - tiny_pipeline.predict_proba(EDGE_TEXTS)).max() <= TOLERANCE


def test_tables_that_disagree_on_the_warm_up_texts_are_not_served(
    model_dir: Path, tiny_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with np.load(model_dir / TABLES_FILE) as npz:
        intercept = npz["intercept"] + 0.5  # right shape, wrong numbers: only the warm-up check can see it
    _rewrite(model_dir, intercept=intercept)
    model = _model(model_dir)
    model.load()
    assert model.ready and model.inference_path == "fast" and not model._from_tables
    assert "disagreed with sklearn on the warm-up texts; reading the pickle instead" in caplog.text
    assert model._proba is not None
    got = model._proba.predict_proba(EDGE_TEXTS)
    assert np.abs(got - tiny_pipeline.predict_proba(EDGE_TEXTS)).max() <= TOLERANCE


def test_a_directory_without_tables_is_served_from_the_pickle(tiny_pipeline: Pipeline, tmp_path: Path) -> None:
    path = save_tiny(tiny_pipeline, tmp_path / "sentiment", tables=False)
    model = _model(path)
    model.load()
    assert model.ready and model.inference_path == "fast" and not model._from_tables


def test_metadata_naming_other_classes_than_the_pickle_fails_the_load(model_dir: Path) -> None:
    meta = json.loads((model_dir / "kube_sentiment.json").read_text())
    (model_dir / "kube_sentiment.json").write_text(json.dumps(meta | {"classes": ["bad", "good", "meh"]}))
    model = _model(model_dir)  # the tables name the pickle's classes: refused; the pickle: refused too
    with pytest.raises(ModelLoadError, match=r"holds a pipeline with classes .* but .* says \['bad', 'good', 'meh'\]"):
        model.load()
    assert not model.ready


def test_a_pipeline_the_kernel_cannot_serve_writes_no_tables(corpus_split: Split, tmp_path: Path) -> None:
    train = corpus_split.train.head(300)
    pipeline = Pipeline([("tfidf", TfidfVectorizer(stop_words="english")), ("clf", LogisticRegression())])
    pipeline.fit(train["text"].tolist(), train["label"].to_numpy())
    path = save_model_dir(tmp_path / "m", pipeline, {}, None)
    assert export_tables(pipeline, path) == "a vectorizer needs sklearn's own analyzer at serving time"
    assert not (path / TABLES_FILE).exists() and not list(path.glob(".fastpath-*"))


@pytest.mark.integration  # a fresh interpreter: ~1.5 s
def test_a_predictor_serving_from_the_tables_never_imports_scikit_learn(model_dir: Path) -> None:
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from serving.model import SentimentModel\n"
        "from serving.settings import ServeSettings\n"
        f"model = SentimentModel(ServeSettings(model_dir=Path({str(model_dir)!r}), events_dir=None))\n"
        "model.load()\n"
        "print(__import__('json').dumps({'ready': model.ready, 'tables': model._from_tables,\n"
        "    'numba': 'numba' in sys.modules,\n"
        "    'imported': sorted(m for m in ('sklearn', 'scipy') if m in sys.modules)}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KS_SERVE_")}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["ready"] and got["tables"]
    # numba (compiling the kernels where the ahead-of-time build is missing, as in a source checkout) imports SciPy
    assert got["imported"] == ([] if not got["numba"] else [m for m in got["imported"] if m != "sklearn"])
    assert "sklearn" not in got["imported"]
