"""Resolving the one model artefact: a local directory (or one level below), registry URI forms,
load errors that name what is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from serving.errors import ModelLoadError
from serving.loader import find_model_dir, load_local, parse_model_uri
from serving.model import SentimentModel
from serving.settings import ServeSettings


def test_local_directory_and_one_level_below(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert find_model_dir(tiny_model_dir) == tiny_model_dir
    parent = tmp_path / "mnt-models"
    shutil.copytree(tiny_model_dir, parent / "model")
    assert find_model_dir(parent) == parent / "model"
    loaded = load_local(parent, None)
    assert loaded.version == "3" and loaded.bundle.classes == ("negative", "neutral", "positive")
    assert load_local(parent, "v-override").version == "v-override"
    shutil.copytree(tiny_model_dir, parent / "other")
    with pytest.raises(ModelLoadError, match="holds 2 models"):
        find_model_dir(parent)


def test_load_errors_name_what_is_missing(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"model directory {tmp_path / 'none'} does not exist"):
        load_local(tmp_path / "none", None)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README").write_text("x")
    with pytest.raises(ModelLoadError, match=r"holds no model: no MLmodel file .* \['README'\]"):
        load_local(tmp_path / "empty", None)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.pkl").write_bytes(b"garbage")  # unpickled when served: the tables no longer match it
    model = SentimentModel(ServeSettings(model_dir=broken, events_dir=None), registry=CollectorRegistry())
    with pytest.raises(ModelLoadError, match=r"model\.pkl cannot be unpickled"):
        model.load()
    assert not model.ready and "cannot be unpickled" in (model.load_error or "")
    (broken / "model.pkl").unlink()
    with pytest.raises(ModelLoadError, match=r"names 'model\.pkl' but .* does not exist"):
        load_local(broken, None)


def test_model_uri_forms() -> None:
    assert parse_model_uri("models:/sentiment/7") == ("sentiment", "7", None)
    assert parse_model_uri("models:/sentiment@production") == ("sentiment", None, "production")
    with pytest.raises(ModelLoadError, match="is not models:/<name>/<version>"):
        parse_model_uri("models:/sentiment")
