"""Settings of ``kube-sentiment feedback import`` and ``kube-sentiment feedback snapshot`` (``KS_FEEDBACK_*``).

Built once in ``main()`` and passed down; nothing here reads the environment at import time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from control.window import Duration, WindowSettings, parse_duration
from model.process import ProcessSettings
from serving.eventlog.feedback import SOURCE_IMPORT


class SinkLocation(ProcessSettings):
    """The sink both subcommands work on (``KS_FEEDBACK_*``)."""

    model_config = SettingsConfigDict(env_prefix="KS_FEEDBACK_")

    sink: str = ".kube-sentiment/predictions"
    """The shipper's sink: a local directory or ``s3://bucket/prefix`` (feedback lives under its ``feedback/``)."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint of an ``s3://`` sink (credentials from the standard AWS variables)."""
    s3_region: str = "us-east-1"
    """Region of an ``s3://`` sink."""


class ImportSettings(SinkLocation):
    """``kube-sentiment feedback import FILE``."""

    file: Path
    """CSV or Parquet file of labels: columns ``id`` (the prediction id) and ``label``, optionally ``source`` and
    ``at`` (when the label was given: Unix seconds or ISO 8601)."""
    environment: str = "local"
    """Environment the labels belong to (the predictions' ``environment``)."""
    source: str = SOURCE_IMPORT
    """Source given to rows without a ``source`` (feedback is idempotent per prediction id and source)."""
    classes: tuple[str, ...] | None = None
    """The model's classes; labels must be among them. Default: the classes of the registry's version behind
    ``alias`` (with ``tracking_uri``), else negative, neutral, positive."""
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("KS_FEEDBACK_TRACKING_URI",
                                                                          "MLFLOW_TRACKING_URI"))
    """MLflow tracking/registry server the classes are read from (``MLFLOW_TRACKING_URI`` is honoured)."""
    registered_model: str = "sentiment"
    """Registered model whose classes the labels must be among."""
    alias: str = "production"
    """Registry alias of the version whose classes count."""
    skip_invalid: bool = False
    """Store the valid rows and report the invalid ones (default: one invalid row stores nothing, exit 65)."""
    max_rows: int = Field(5_000_000, ge=1)
    """Most rows accepted in one file."""


class SnapshotSettings(SinkLocation, WindowSettings):
    """``kube-sentiment feedback snapshot --out FILE``."""

    model_config = SettingsConfigDict(env_prefix="KS_FEEDBACK_")

    out: Path
    """Parquet file to write: ``text``, ``label`` (the true label), ``ts`` (prediction time), ``prediction_id``,
    ``model_version``, ``predicted``, ``label_sources``; the window and the join counts in its metadata."""
    window: Duration = "30d"
    """Length of the window of predictions ending at ``end`` (``24h``, ``30d``); ignored when ``start`` is given."""
    environment: str | None = None
    """Only predictions (and feedback) of this environment (default: all)."""
    lateness: Duration = "7d"
    """Labels given up to this long after their prediction count (the drift job's lateness allowance)."""

    def lateness_delta(self) -> timedelta:
        """The lateness allowance."""
        return parse_duration(self.lateness)
