"""Settings of the drift job (``kube-sentiment drift``), read from flags and ``KS_DRIFT_*`` env vars.

Built once in ``main()`` and passed down; nothing here reads the environment at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from control.quality.settings import QualitySettings
from control.retrain import RetrainSettings
from control.window import WindowSettings
from model.process import SettingsGroup


class Thresholds(SettingsGroup):
    """Warn / drift thresholds of each signal's effect size, and the significance level."""

    model_config = SettingsConfigDict(env_prefix="KS_DRIFT_")

    psi_warn: float = Field(0.1, gt=0.0)
    """Population stability index of class shares and confidence bins at which a signal warns."""
    psi_drift: float = Field(0.25, gt=0.0)
    """... and at which it reports drift."""
    ks_warn: float = Field(0.1, gt=0.0, le=1.0)
    """Kolmogorov-Smirnov distance (confidence, text length) at which a signal warns."""
    ks_drift: float = Field(0.2, gt=0.0, le=1.0)
    """... and at which it reports drift."""
    oov_warn: float = Field(0.05, gt=0.0, le=1.0)
    """Increase of the mean out-of-vocabulary rate over the reference at which the signal warns."""
    oov_drift: float = Field(0.15, gt=0.0, le=1.0)
    """... and at which it reports drift."""
    no_known_warn: float = Field(0.05, gt=0.0, le=1.0)
    """Increase of the share of texts without any known term at which the signal warns."""
    no_known_drift: float = Field(0.15, gt=0.0, le=1.0)
    """... and at which it reports drift."""
    auc_warn: float = Field(0.7, gt=0.5, le=1.0)
    """Cross-validated AUC of the reference-vs-window domain classifier at which it warns."""
    auc_drift: float = Field(0.8, gt=0.5, le=1.0)
    """... and at which it reports drift."""
    ood_quantile: float = Field(0.02, gt=0.0, lt=0.5)
    """A text is out of distribution when the domain classifier scores it above all but this share of the
    reference texts (or it has no known term); the reference texts' own share, so calibrated, is the expected
    share under no drift."""
    ood_warn: float = Field(0.02, gt=0.0, le=1.0)
    """Increase of the share of out-of-distribution texts over the reference's at which the signal warns."""
    ood_drift: float = Field(0.04, gt=0.0, le=1.0)
    """... and at which it reports drift."""
    alpha: float = Field(0.01, gt=0.0, lt=1.0)
    """Family-wise significance level: a signal warns or drifts only if its corrected p-value is below it."""
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    """Multiple-testing correction over the signals of one group."""


class DriftSettings(WindowSettings):
    """Everything ``kube-sentiment drift`` needs."""

    model_config = SettingsConfigDict(env_prefix="KS_DRIFT_")

    source: str = ".kube-sentiment/predictions"
    """The shipper's sink: a local directory, or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint for an ``s3://`` source (credentials from the standard AWS variables)."""
    s3_region: str = "us-east-1"
    """Region of the ``s3://`` source."""
    environment: str | None = None
    """Only records of this environment (default: all in the source)."""
    reference_dir: Path | None = None
    """A local model directory used as the reference of every version, or a directory of ``<version>/``
    model directories. When unset, references come from the MLflow registry."""
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("KS_DRIFT_TRACKING_URI",
                                                                          "MLFLOW_TRACKING_URI"))
    """MLflow tracking/registry server (``MLFLOW_TRACKING_URI`` is honoured)."""
    registered_model: str = "sentiment"
    """Registered model whose versions served the predictions."""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    """Signal thresholds (each also settable as ``KS_DRIFT_<NAME>``)."""
    min_samples: int = Field(500, ge=10)
    """Fewest records (or texts, for the text signals) a group needs; below it the verdict is
    ``insufficient_data``, never drift."""
    text_sample_size: int = Field(20_000, ge=100)
    """Texts sampled per group for the out-of-vocabulary signals."""
    domain_sample_size: int = Field(2000, ge=50)
    """Window texts sampled per group for the domain classifier (against up to as many reference texts)."""
    cv_folds: int = Field(5, ge=2, le=20)
    """Folds of the domain classifier's cross-validation."""
    seed: int = 0
    """Seed of every sample and of the cross-validation split."""
    output_dir: Path = Path(".kube-sentiment/drift")
    """Reports go to ``<output_dir>/<run id>/`` (``report.json``, ``report.html``, ``metrics.prom``)."""
    pushgateway_url: str | None = None
    """Prometheus Pushgateway to push the run's metrics to (``host:port`` or URL); unset: no push."""
    pushgateway_job: str = "kube-sentiment-drift"
    """Job label of the pushed metrics."""
    log_to_mlflow: bool = False
    """Log metrics and the reports to the run of each model version (MLflow references only)."""
    live_quality: QualitySettings = Field(default_factory=QualitySettings)
    """Live quality from feedback (each also settable as ``KS_DRIFT_<NAME>``)."""
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    """Which verdicts start a training Job (each also settable as ``KS_DRIFT_<NAME>``)."""
