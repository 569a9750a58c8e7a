"""The predictor as a real process serving the tiny model from a local directory, writing its events to a journal
directory (fixtures chain: corpus split → tiny pipeline → model directory → ``python -m serving``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import stop
from tests.support.servers import Predictor, start_predictor


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Predictor]:
    """The predictor serving the tiny model from a local directory, writing events to ``<tmp>/journal``."""
    tmp = tmp_path_factory.mktemp("predictor")
    running = start_predictor(
        tmp,
        ["--model-dir", str(tiny_model_dir), "--max-texts", "16", "--max-text-chars", "200"],
        env={"KS_SERVE_EVENTS_DIR": str(tmp / "journal"), "KS_SERVE_EVENTS_FLUSH_INTERVAL_S": "0.05",
             "KS_SERVE_TRACK": "canary", "KS_SERVE_ENVIRONMENT": "test"},
    )
    yield running
    stop(running.process)
