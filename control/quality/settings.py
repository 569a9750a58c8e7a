"""Settings of live quality (the drift job's ``quality`` section), a group of ``DriftSettings`` (``KS_DRIFT_*``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from control.window import Duration, parse_duration
from model.process import SettingsGroup


class QualitySettings(SettingsGroup):
    """How feedback is joined to predictions and when a version's live quality is judged."""

    model_config = SettingsConfigDict(env_prefix="KS_DRIFT_")

    quality: bool = True
    """Join the window's feedback to its predictions and report live quality per model version and track."""
    lateness: Duration = "7d"
    """Lateness allowance: labels given up to this long after their prediction count (``30m``, ``24h``, ``7d``);
    feedback is read up to this long past the window's end."""
    min_labelled: int = Field(200, ge=10)
    """Fewest labelled predictions a group needs; below it quality is ``insufficient_data``, not a number."""
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Confidence level of the bootstrap interval of live macro-F1."""
    resamples: int = Field(2000, ge=100, le=100_000)
    """Bootstrap resamples of the interval."""
    max_f1_drop: float = Field(0.05, ge=0.0, le=1.0)
    """Drop of live macro-F1 below the version's holdout macro-F1 that matters: ``degraded`` when the whole
    interval lies below the holdout figure minus this, ``warn`` when only the estimate does."""

    def lateness_delta(self) -> timedelta:
        """The lateness allowance as a timedelta."""
        return parse_duration(self.lateness)
