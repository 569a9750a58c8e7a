"""The kernels compiled ahead of time (what the image carries): built from this source, used only when they match
it, and exact on the whole holdout."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numba
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.pipeline import Pipeline

from model.data import Split
from serving import aot, kernels
from serving.errors import ModelLoadError
from serving.fastpath import FastPath
from serving.model import SentimentModel
from serving.settings import ServeSettings


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"serving.{kernels.AOT_MODULE}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration  # compiles the kernels with numba.pycc and a C compiler (about a minute)
def test_the_ahead_of_time_build_is_exact_and_knows_its_source(tmp_path: Path, tiny_pipeline: Pipeline,
                                                                corpus_split: Split,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    built = _import(aot.build(tmp_path, "generic"))
    assert built.source_digest() == kernels.source_digest()
    monkeypatch.setattr(kernels, "compiled", lambda: SimpleNamespace(
        kind="aot", build_table=built.build_table, probabilities=built.probabilities))
    fast, reason = FastPath.from_pipeline(tiny_pipeline)  # the hash tables too are built by the AOT build
    assert fast is not None, reason
    texts = corpus_split.holdout["text"].tolist()
    assert np.abs(fast.predict_proba(texts) - tiny_pipeline.predict_proba(texts)).max() <= 1e-9


def test_a_build_from_other_kernels_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = kernels.source_digest()
    stale = SimpleNamespace(__file__="/image/serving/_kernels_aot.so", source_digest=lambda: digest + 1)
    monkeypatch.setattr(importlib, "import_module", lambda name: stale)
    module, reason = kernels.ahead_of_time()
    assert module is None and "was built from another version of serving.kernels" in reason

    def missing(name: str) -> ModuleType:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert kernels.ahead_of_time() == (None, "no ahead-of-time build (No module named 'serving._kernels_aot')")


def test_the_source_digest_covers_the_lexicon_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    digest = kernels.source_digest()
    monkeypatch.setattr(kernels, "EXCLAMATION", kernels.EXCLAMATION + 0.001)
    assert kernels.source_digest() != digest


@pytest.fixture
def chosen_kernels() -> Iterator[None]:
    """Whatever a test chooses, the process's kernels are ``auto`` again afterwards; what an earlier test compiled
    is not reused."""
    kernels.compiled.cache_clear()
    yield
    kernels.choose("auto")


def test_the_chosen_kernels_decide_between_the_build_and_numba(monkeypatch: pytest.MonkeyPatch,
                                                               chosen_kernels: None) -> None:
    build = SimpleNamespace(__file__="/image/serving/_kernels_aot.so", source_digest=kernels.source_digest,
                            build_table="aot build_table", probabilities="aot probabilities")
    monkeypatch.setattr(importlib, "import_module", lambda name: build)
    monkeypatch.setattr(numba, "njit", lambda **options: lambda func: func)  # no compiling in the fast tier
    for mode, kind in [("auto", "aot"), ("aot", "aot"), ("jit", "jit")]:
        kernels.choose(mode)
        assert kernels.compiled().kind == kind, mode
    assert kernels.compiled().probabilities != "aot probabilities"


def test_aot_kernels_without_a_build_refuse_to_start(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                     chosen_kernels: None) -> None:
    def missing(name: str) -> ModuleType:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    model = SentimentModel(ServeSettings(model_dir=tiny_model_dir, events_dir=None, kernels="aot"),
                           registry=CollectorRegistry())
    with pytest.raises(ModelLoadError, match=r"kernels=aot, but no ahead-of-time build \(No module named "
                                             r"'serving._kernels_aot'\); build it with python -m serving.aot"):
        model.load()
    assert not model.ready
