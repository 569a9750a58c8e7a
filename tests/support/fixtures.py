"""The shared pytest fixtures, registered for every test by ``tests/conftest.py``. Chains: corpus split → tiny
fitted pipeline → model directory in a temporary directory; real servers started on free ports, stopped after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sklearn.pipeline import Pipeline

from model.data import Split, split
from model.settings import DataSettings
from tests.support import free_port, stop
from tests.support.models import SmallModel, fit_small_model, fit_tiny, save_tiny
from tests.support.servers import (
    MlflowServer,
    MotoServer,
    ShipperProcess,
    start_mlflow_server,
)


@pytest.fixture(scope="session")
def corpus_split() -> Split:
    """The real built-in corpus cut into train and the frozen holdout."""
    return split(DataSettings())


@pytest.fixture(scope="session")
def tiny_pipeline(corpus_split: Split) -> Pipeline:
    """The default pipeline (word + char TF-IDF, logistic regression), fitted on a few training rows."""
    return fit_tiny(corpus_split)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline saved as a model directory (the layout KServe's storage initializer leaves)."""
    return save_tiny(tiny_pipeline, tmp_path_factory.mktemp("models") / "sentiment")


@pytest.fixture(scope="session")
def small_model(corpus_split: Split, tmp_path_factory: pytest.TempPathFactory) -> SmallModel:
    """A small model with a reference profile (what the drift job compares with), fitted once per session."""
    return fit_small_model(corpus_split, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real tracking server for the session (tests use distinct registered-model names)."""
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield server
    stop(server.process)


@pytest.fixture
def shipper_factory(tmp_path: Path) -> Iterator[Callable[..., ShipperProcess]]:
    """Makes shipper processes (``make(workdir=None, **env)``); kills leftovers at the end."""
    made: list[ShipperProcess] = []

    def make(workdir: Path | None = None, **env: str) -> ShipperProcess:
        proc = ShipperProcess(workdir or tmp_path / "shipper", env)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(timeout=10)


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Dummy AWS credentials (moto accepts any) in this process and for child processes."""
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    """A started ``moto_server``; stopped at the end."""
    server = MotoServer(free_port()).start()
    yield server
    server.stop()
