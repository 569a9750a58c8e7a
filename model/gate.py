"""The promotion gate: does the candidate beat production on the same holdouts, without reading sentiment worse on
any behaviour capability (:mod:`model.behaviour`)?

Two holdouts can count. The *frozen* holdout is cut from the corpus once and never changes (its fingerprint is
recorded with every decision). The *recent* holdout exists when training added labelled production data: the
newest of it by prediction time (``model.data.add_production``), what the model meets today. The rule:

* no production model yet: the candidate's frozen macro-F1 must reach ``floor``;
* no recent holdout: the candidate must beat production on the frozen holdout by more than ``margin``;
* with a recent holdout: the candidate must beat production by more than ``margin`` on one holdout **and** lose no
  more than ``tolerance`` on the other. So a model retrained on a new kind of traffic passes by gaining on the
  recent holdout without getting worse (beyond noise) on the frozen one, and a model that gains on the frozen
  holdout cannot pass by giving up today's traffic;
* in every case, it must lose no more than ``behaviour_margin`` on any behaviour capability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and the numbers behind it. ``passed`` means the candidate alias moves."""

    passed: bool
    reason: str
    candidate_macro_f1: float
    production_macro_f1: float | None
    production_version: str | None
    margin: float
    floor: float
    holdout_fingerprint: str
    forced: bool = False
    forced_by: str | None = None
    forced_reason: str | None = None
    behaviour_margin: float = 0.0
    candidate_behaviour: dict[str, float] = field(default_factory=dict)
    """Behaviour pass rate per capability of the candidate (empty when the suite does not apply)."""
    production_behaviour: dict[str, float] | None = None
    """The same for production, re-scored in this run (``None`` without a production model)."""
    behaviour_losses: dict[str, float] = field(default_factory=dict)
    """Capabilities on which the candidate loses more than ``behaviour_margin``, with the loss."""
    candidate_recent_macro_f1: float | None = None
    production_recent_macro_f1: float | None = None
    recent_fingerprint: str | None = None
    tolerance: float | None = None
    """Macro-F1 the candidate may lose on one holdout while it gains on the other (only with a recent holdout)."""

    @property
    def decision(self) -> str:
        """``promoted``, ``forced`` or ``refused``."""
        if self.forced:
            return "forced"
        return "promoted" if self.passed else "refused"

    def tags(self) -> dict[str, str]:
        """The decision as registry/run tags (``gate.*``, behaviour per capability as
        ``gate.behaviour.<capability>`` = ``candidate`` or ``candidate vs production``), strings only."""
        nested = ("candidate_behaviour", "production_behaviour", "behaviour_losses")
        tags = {f"gate.{k}": "" if v is None else str(v) for k, v in asdict(self).items() if k not in nested}
        production = self.production_behaviour or {}
        for capability, rate in self.candidate_behaviour.items():
            versus = f" vs {production[capability]:.4f}" if capability in production else ""
            tags[f"gate.behaviour.{capability}"] = f"{rate:.4f}{versus}"
        tags["gate.behaviour_losses"] = ", ".join(f"{c} {-loss:+.4f}" for c, loss in self.behaviour_losses.items())
        return tags | {"gate.decision": self.decision}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def decide(
    candidate_macro_f1: float,
    production_macro_f1: float | None,
    production_version: str | None,
    *,
    margin: float,
    floor: float,
    holdout_fingerprint: str,
    force: bool = False,
    actor: str = "unknown",
    force_reason: str | None = None,
    candidate_behaviour: dict[str, float] | None = None,
    production_behaviour: dict[str, float] | None = None,
    behaviour_margin: float = 0.05,
    candidate_recent_macro_f1: float | None = None,
    production_recent_macro_f1: float | None = None,
    recent_fingerprint: str | None = None,
    tolerance: float = 0.0,
) -> GateDecision:
    """Apply the rule of the module docstring (the recent scores count only when both are given); behaviour counts
    on the capabilities production was scored on.

    ``force`` passes whatever the numbers say and records who forced it and why; the honest verdict stays in
    ``reason``.
    """
    common: dict[str, Any] = {
        "candidate_macro_f1": round(candidate_macro_f1, 6),
        "production_macro_f1": None if production_macro_f1 is None else round(production_macro_f1, 6),
        "production_version": production_version,
        "margin": margin,
        "floor": floor,
        "holdout_fingerprint": holdout_fingerprint,
        "behaviour_margin": behaviour_margin,
        "candidate_behaviour": {k: round(v, 6) for k, v in (candidate_behaviour or {}).items()},
        "production_behaviour": None if production_behaviour is None else {
            k: round(v, 6) for k, v in production_behaviour.items()
        },
        "candidate_recent_macro_f1": _round(candidate_recent_macro_f1),
        "production_recent_macro_f1": _round(production_recent_macro_f1),
        "recent_fingerprint": recent_fingerprint,
    }
    recent = candidate_recent_macro_f1 is not None and production_recent_macro_f1 is not None
    common["tolerance"] = tolerance if recent and production_macro_f1 is not None else None
    losses = {
        capability: round(production_behaviour[capability] - rate, 6)
        for capability, rate in (candidate_behaviour or {}).items()
        if production_behaviour is not None and capability in production_behaviour
        and production_behaviour[capability] - rate > behaviour_margin + 1e-12
    }
    if production_macro_f1 is None:
        passed = candidate_macro_f1 >= floor
        reason = (
            f"no production model yet; candidate macro-F1 {candidate_macro_f1:.4f} "
            f"{'clears' if passed else 'is below'} the floor {floor:.4f}"
        )
    elif not recent:
        gain = candidate_macro_f1 - production_macro_f1
        passed = gain > margin
        reason = (
            f"candidate macro-F1 {candidate_macro_f1:.4f} vs production v{production_version} "
            f"{production_macro_f1:.4f} on the same holdout: gain {gain:+.4f} "
            f"{'exceeds' if passed else 'does not exceed'} the margin {margin:.4f}"
        )
    else:
        assert candidate_recent_macro_f1 is not None and production_recent_macro_f1 is not None
        frozen = candidate_macro_f1 - production_macro_f1
        latest = candidate_recent_macro_f1 - production_recent_macro_f1
        gains = (frozen > margin and latest >= -tolerance, latest > margin and frozen >= -tolerance)
        passed = any(gains)
        if passed:
            verdict = ("gains on the recent holdout and holds the frozen one" if gains[1]
                       else "gains on the frozen holdout and holds the recent one")
        elif max(frozen, latest) > margin:
            verdict = f"gains on one holdout but loses more than the tolerance {tolerance:.4f} on the other"
        else:
            verdict = f"gains more than the margin {margin:.4f} on neither holdout"
        reason = (
            f"candidate vs production v{production_version}: frozen holdout {candidate_macro_f1:.4f} vs "
            f"{production_macro_f1:.4f} ({frozen:+.4f}), recent holdout {candidate_recent_macro_f1:.4f} vs "
            f"{production_recent_macro_f1:.4f} ({latest:+.4f}): {verdict}"
        )
    if losses:
        passed = False
        worst = ", ".join(
            f"{c} {candidate_behaviour[c]:.3f} vs {production_behaviour[c]:.3f}"  # type: ignore[index]
            for c in losses
        )
        reason += f"; but it reads sentiment worse than production beyond the margin {behaviour_margin:.3f} on: {worst}"
    if force and not passed:
        return GateDecision(
            passed=True, reason=reason, forced=True, forced_by=actor, forced_reason=force_reason,
            behaviour_losses=losses, **common,
        )
    return GateDecision(passed=passed, reason=reason, behaviour_losses=losses, **common)
