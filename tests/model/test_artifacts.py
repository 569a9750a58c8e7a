"""The model directory: the classes it records are the pipeline's, and reading it lazily keeps them honest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from model.artifacts import METADATA_FILE, load_model_dir, save_model_dir
from model.errors import ModelArtifactError


def test_copied_metadata_does_not_override_the_pipelines_classes(tiny_pipeline: Pipeline, tmp_path: Path) -> None:
    first = load_model_dir(save_model_dir(tmp_path / "a", tiny_pipeline, {}, None))
    pipeline = first.pipeline
    pipeline.steps[-1][1].classes_ = np.roll(pipeline.steps[-1][1].classes_, 1)  # what the loop's bad release does
    second = save_model_dir(tmp_path / "b", pipeline, first.metadata, None)  # metadata still says the old order
    rolled = [str(c) for c in pipeline.classes_]
    assert json.loads((second / METADATA_FILE).read_text())["classes"] == rolled
    assert list(load_model_dir(second, unpickle=False).classes) == rolled


def test_a_lazy_bundle_refuses_a_pickle_whose_classes_the_metadata_does_not_name(
    tiny_pipeline: Pipeline, tmp_path: Path
) -> None:
    path = save_model_dir(tmp_path / "m", tiny_pipeline, {}, None)
    meta = json.loads((path / METADATA_FILE).read_text())
    (path / METADATA_FILE).write_text(json.dumps(meta | {"classes": ["bad", "good", "meh"]}))
    bundle = load_model_dir(path, unpickle=False)
    assert bundle.classes == ("bad", "good", "meh")
    with pytest.raises(ModelArtifactError, match=r"a pipeline with classes \['negative', 'neutral', 'positive'\]"):
        _ = bundle.pipeline
    assert load_model_dir(path).classes == ("negative", "neutral", "positive")  # read at once: the pickle's
