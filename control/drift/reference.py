"""Reference profiles by model version: from a local model directory (or a directory of them) or the MLflow
registry (the version's ``runs:/<run_id>/model`` directory, which holds ``reference_profile.json``)."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.artifacts import ModelBundle, load_model_dir
from model.errors import ConfigError, ModelArtifactError
from model.profile import check_profile, word_vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """What a group is compared with: the training profile and the model's own word vocabulary."""

    version: str
    profile: dict[str, Any]
    vocabulary: frozenset[str]
    source: str
    run_id: str | None = None
    classes: tuple[str, ...] = ()
    """The model's classes, in output order."""
    holdout_macro_f1: float | None = None
    """The version's macro-F1 on the frozen holdout (its model directory's metadata), for live quality."""


def _from_bundle(version: str, bundle: ModelBundle, source: str, run_id: str | None) -> Reference:
    """A reference from a loaded model directory; it must carry a valid profile."""
    if bundle.profile is None:
        raise ModelArtifactError(f"{source} has no reference_profile.json; retrain or re-log the model with one")
    metrics = bundle.metadata.get("metrics") or {}
    holdout = metrics.get("macro_f1") if isinstance(metrics, dict) else None
    return Reference(version, check_profile(bundle.profile), word_vocabulary(bundle.pipeline), source, run_id,
                     bundle.classes, float(holdout) if isinstance(holdout, int | float) else None)


class ReferenceStore:
    """Loads and caches the reference of each model version."""

    def __init__(self, reference_dir: Path | None, tracking_uri: str | None, registered_model: str) -> None:
        if reference_dir is None and not tracking_uri:
            raise ConfigError("no reference: set KS_DRIFT_REFERENCE_DIR (a model directory) or "
                                     "KS_DRIFT_TRACKING_URI / MLFLOW_TRACKING_URI (the registry)")
        self.reference_dir = reference_dir
        self.tracking_uri = tracking_uri
        self.registered_model = registered_model
        self._cache: dict[str, Reference] = {}

    def get(self, version: str) -> Reference:
        """The reference of ``version``; ``ModelArtifactError`` names what is missing."""
        if version not in self._cache:
            self._cache[version] = self._load(version)
        return self._cache[version]

    def _load(self, version: str) -> Reference:
        """Load the reference of ``version`` from the local directory or the registry."""
        if self.reference_dir is not None:
            root = Path(self.reference_dir)
            path = root if (root / "MLmodel").is_file() else root / version
            if not path.is_dir():
                raise ModelArtifactError(f"no model directory for version {version!r}: {root} is neither a model "
                                         f"directory nor holds {version}/")
            return _from_bundle(version, load_model_dir(path), str(path), None)
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from model.registry import download_version

        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            mv = client.get_model_version(self.registered_model, version)
        except MlflowException as e:
            raise ModelArtifactError(f"registered model {self.registered_model!r} has no version {version!r} at "
                                     f"{self.tracking_uri}: {e.message}") from e
        with tempfile.TemporaryDirectory(prefix="ks-drift-ref-") as tmp:  # the reference is read into memory
            bundle = download_version(self.tracking_uri or "", mv, Path(tmp) / version)
            return _from_bundle(version, bundle, f"models:/{self.registered_model}/{version}", mv.run_id)
