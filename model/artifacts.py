"""The model directory: what training writes, MLflow stores, KServe's storage initializer puts at /mnt/models,
and the predictor and the drift job load.

Layout (an MLflow ``sklearn`` flavour model plus three kube-sentiment files)::

    MLmodel                  MLflow model spec (flavour, signature, input example)
    model.pkl                the fitted sklearn Pipeline: features (word + char TF-IDF, lexicon) -> clf
    requirements.txt ...     MLflow's environment files
    kube_sentiment.json      metadata: format, classes, registered name/version when known, data and holdout
                             fingerprints, git commit, parameters, metrics
    reference_profile.json   the training reference profile for drift detection (see ``model.profile``)
    MODEL_CARD.md            what this model can and cannot do: holdout and behaviour-suite scores (``model.card``)
    fastpath.npz             optional: the predictor's inference tables, derived from model.pkl (written by
                             ``serving.fastpath.export_tables`` when ``kube-sentiment train`` saves the model)
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped]

from model.errors import ModelArtifactError

if TYPE_CHECKING:  # scikit-learn is imported where a pipeline is unpickled, not by reading a directory
    from sklearn.pipeline import Pipeline

FORMAT = "kube-sentiment.model/v1"
METADATA_FILE = "kube_sentiment.json"
PROFILE_FILE = "reference_profile.json"


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model directory. The pipeline is unpickled on first use of :attr:`pipeline` (at once by
    :func:`load_model_dir` unless asked not to)."""

    classes: tuple[str, ...]
    metadata: dict[str, Any]
    profile: dict[str, Any] | None
    path: Path
    model_file: Path
    """The pickled pipeline (the file the MLmodel spec names)."""

    @cached_property
    def pipeline(self) -> Pipeline:
        """The fitted sklearn pipeline; ``ModelArtifactError`` when the file does not hold one, or one whose classes
        are not :attr:`classes` (read from the metadata before it was unpickled)."""
        pipeline = _unpickle(self.model_file)
        found = tuple(str(c) for c in pipeline.classes_)
        if found != self.classes:
            raise ModelArtifactError(f"{self.model_file} holds a pipeline with classes {list(found)}, but "
                                     f"{self.path / METADATA_FILE} says {list(self.classes)}")
        return pipeline


def save_model_dir(
    path: Path,
    pipeline: Pipeline,
    metadata: dict[str, Any],
    profile: dict[str, Any] | None,
    input_example: list[str] | None = None,
) -> Path:
    """Write ``pipeline`` as an MLflow sklearn model at ``path`` (must not exist) with our metadata and profile."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    import scipy
    import sklearn
    from mlflow.models import infer_signature

    classes = [str(c) for c in pipeline.classes_]
    example = input_example or ["what a great day", "this is terrible"]
    frame = pd.DataFrame({"text": example})
    signature = infer_signature(frame, pipeline.predict(frame["text"]))
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        signature=signature,
        input_example=frame,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_PICKLE,
        pyfunc_predict_fn="predict_proba",
        # what unpickling the pipeline needs; stated, not inferred (inference is slow and environment-dependent)
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}",
                          f"scipy=={scipy.__version__}"],
    )
    meta = {**metadata, "format": FORMAT, "classes": classes}  # the pipeline's, not those of a copied metadata
    (path / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    if profile is not None:
        (path / PROFILE_FILE).write_text(json.dumps(profile, sort_keys=True))
    return path


def _pickle_path(path: Path) -> Path:
    spec_file = path / "MLmodel"
    if not spec_file.is_file():
        raise ModelArtifactError(f"{path} is not a model directory: it has no MLmodel file")
    try:
        spec = yaml.safe_load(spec_file.read_text())
        pickled = spec["flavors"]["sklearn"]["pickled_model"]
    except (yaml.YAMLError, KeyError, TypeError) as e:
        raise ModelArtifactError(f"{spec_file} has no sklearn flavour with a pickled_model entry") from e
    model_file = path / pickled
    if not model_file.is_file():
        raise ModelArtifactError(f"{spec_file} names {pickled!r} but {model_file} does not exist")
    return model_file


def _unpickle(model_file: Path) -> Pipeline:
    from sklearn.pipeline import Pipeline

    try:
        with model_file.open("rb") as fh:
            pipeline = pickle.load(fh)
    except Exception as e:  # unpickling can raise nearly anything on a corrupt file
        raise ModelArtifactError(f"{model_file} cannot be unpickled ({type(e).__name__}: {e})") from e
    if not isinstance(pipeline, Pipeline) or not hasattr(pipeline, "classes_"):
        raise ModelArtifactError(f"{model_file} does not hold a fitted sklearn Pipeline")
    return pipeline


def load_model_dir(path: Path, unpickle: bool = True) -> ModelBundle:
    """Load a model directory written by :func:`save_model_dir`; errors name the missing or broken part.

    ``unpickle=False`` leaves the pipeline in its file until :attr:`ModelBundle.pipeline` is first read (the
    predictor serving from ``fastpath.npz`` never reads it); the classes then come from the metadata."""
    path = Path(path)
    if not path.is_dir():
        raise ModelArtifactError(f"model directory {path} does not exist")
    model_file = _pickle_path(path)
    meta_file = path / METADATA_FILE
    try:
        metadata = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    except json.JSONDecodeError as e:
        raise ModelArtifactError(f"{meta_file} is not valid JSON: {e}") from e
    profile_file = path / PROFILE_FILE
    try:
        profile = json.loads(profile_file.read_text()) if profile_file.is_file() else None
    except json.JSONDecodeError as e:
        raise ModelArtifactError(f"{profile_file} is not valid JSON: {e}") from e
    classes = metadata.get("classes") if isinstance(metadata, dict) else None
    pipeline = None
    if unpickle or not (isinstance(classes, list) and classes):
        pipeline = _unpickle(model_file)
        classes = list(pipeline.classes_)
    bundle = ModelBundle(classes=tuple(str(c) for c in classes), metadata=metadata, profile=profile, path=path,
                         model_file=model_file)
    if pipeline is not None:
        bundle.__dict__["pipeline"] = pipeline  # the cached_property's slot: not unpickled twice
    return bundle
