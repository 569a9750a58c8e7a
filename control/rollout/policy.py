"""The rollout policy: the steps a candidate version goes through and the thresholds its analyses apply.

One shape, the chart's ``rollout`` values (camelCase keys, ``helm/kube-sentiment/values.yaml``; the chart's JSON
schema checks them at ``helm upgrade``, :class:`RolloutPolicy` checks them again here with the same bounds).
``rollout run`` reads it from the release (``helm get values``); ``rollout analyze`` from ``--policy-file`` (a
values file, or just its ``rollout`` block) or the defaults below.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from control.window import Duration, parse_duration
from model.errors import ConfigError


class _Values(BaseModel):
    """Values as the chart spells them (camelCase), unknown keys refused like the chart's schema does."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Step(_Values):
    """One step: the candidate as ``shadow`` (gets a copy of ``percent`` % of the requests, answers only logged) or
    as ``canary`` (answers ``percent`` % of them)."""

    track: Literal["shadow", "canary"]
    percent: int = Field(ge=1, le=100)
    interval: Duration | None = None
    """Time between two analyses of this step (default: the policy's)."""
    progress_deadline: Duration | None = None
    """Time this step may take to pass its analysis before the candidate is rolled back (default: the policy's)."""

    @model_validator(mode="after")
    def _canary_below_100(self) -> Step:
        if self.track == "canary" and self.percent >= 100:
            raise ValueError("a canary step takes 1-99 % of the traffic; 100 % is the promotion after the last step")
        return self

    @property
    def name(self) -> str:
        """``shadow 100%``, ``canary 5%``."""
        return f"{self.track} {self.percent}%"


class Analysis(_Values):
    """Thresholds and minimum samples of the checks (docs/deploy.md explains each)."""

    alpha: float = Field(0.01, gt=0.0, lt=1.0)
    """Family-wise significance level: a check fails only when its effect is beyond the threshold and its
    Holm-corrected p-value is below alpha."""
    min_requests: int = Field(200, ge=10)
    """Fewest logged predictions per track (candidate and stable) in the window before the checks judge."""
    max_error_rate_delta: float = Field(0.01, ge=0.0, le=1.0)
    """Largest rise of the server-error rate (candidate minus stable)."""
    max_latency_p99_ratio: float = Field(1.5, ge=1.0)
    """Largest ratio of the candidate's p99 request latency to the stable one's."""
    min_latency_requests: int = Field(100, ge=10)
    """Fewest requests per track before the latency check judges (a p99 needs some)."""
    latency_floor_ms: float = Field(25.0, ge=0.0)
    """A candidate p99 below this passes whatever the ratio (sub-millisecond noise is not a regression)."""
    max_class_mix_psi: float = Field(0.1, gt=0.0)
    """Largest population stability index between the predicted-class mixes of candidate and stable."""
    max_confidence_ks: float = Field(0.2, gt=0.0, le=1.0)
    """Largest Kolmogorov-Smirnov distance between the confidence distributions of candidate and stable."""
    min_agreement: float = Field(0.8, gt=0.0, le=1.0)
    """Smallest share of mirrored texts on which shadow and stable predict the same class."""
    min_pairs: int = Field(200, ge=10)
    """Fewest mirrored texts paired with their live answer before the agreement check judges."""
    max_f1_drop: float = Field(0.03, ge=0.0, le=1.0)
    """Largest drop of live macro-F1 (stable minus candidate) on labelled predictions."""
    min_labels: int = Field(200, ge=10)
    """Fewest labelled predictions per track before the F1 check judges (fewer: not judged, never blocks)."""


def _default_steps() -> list[Step]:
    return [Step(track="shadow", percent=100), Step(track="canary", percent=5), Step(track="canary", percent=25),
            Step(track="canary", percent=50)]


class RolloutPolicy(_Values):
    """The steps in order (promotion follows the last one), their timing, and the analysis."""

    steps: list[Step] = Field(default_factory=_default_steps, min_length=1)
    interval: Duration = "1m"
    """Time between two analyses of a step."""
    progress_deadline: Duration = "30m"
    """Time a step may take to pass its analysis; past it, the candidate is rolled back."""
    analysis: Analysis = Field(default_factory=Analysis)

    @model_validator(mode="after")
    def _ordered(self) -> RolloutPolicy:
        canary = [s.percent for s in self.steps if s.track == "canary"]
        if canary != sorted(canary) or len(set(canary)) != len(canary):
            raise ValueError(f"canary steps must raise the traffic share step by step, not {canary}")
        first_canary = next((i for i, s in enumerate(self.steps) if s.track == "canary"), len(self.steps))
        if any(s.track == "shadow" for s in self.steps[first_canary:]):
            raise ValueError("shadow steps come before the canary steps")
        keys = [(s.track, s.percent) for s in self.steps]
        if len(set(keys)) != len(keys):
            raise ValueError("two steps are the same; the release state could not tell them apart")
        return self

    def step_interval(self, step: Step) -> timedelta:
        """Time between analyses of ``step``."""
        return parse_duration(step.interval or self.interval)

    def step_deadline(self, step: Step) -> timedelta:
        """Progress deadline of ``step``."""
        return parse_duration(step.progress_deadline or self.progress_deadline)

    def index_of(self, track: str, percent: int) -> int | None:
        """The step with this track and share, or ``None``."""
        return next((i for i, s in enumerate(self.steps) if (s.track, s.percent) == (track, percent)), None)


def policy_from_values(values: dict[str, Any] | None, where: str) -> RolloutPolicy:
    """The policy of a values mapping: the chart's values (its ``rollout`` key) or the ``rollout`` block itself.
    ``ConfigError`` (exit 78) naming ``where`` and the bad keys."""
    block = (values or {}).get("rollout", values or {})
    block = {k: v for k, v in block.items() if k in RolloutPolicy.model_fields or k in _ALIASES}
    try:
        return RolloutPolicy.model_validate(block)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"rollout policy in {where} is invalid: {problems}") from e


_ALIASES = {to_camel(name) for name in RolloutPolicy.model_fields}


def load_policy(path: Path | None) -> RolloutPolicy:
    """The policy in a YAML/JSON file (``None``: the defaults)."""
    if path is None:
        return RolloutPolicy()
    import yaml  # type: ignore[import-untyped]

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the rollout policy {path}: {e}") from e
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"rollout policy {path} must be a mapping (chart values or their 'rollout' block)")
    return policy_from_values(data, str(path))
