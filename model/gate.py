"""The promotion gate: does the candidate beat production on the same frozen holdout?"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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

    @property
    def decision(self) -> str:
        """``promoted``, ``forced`` or ``refused``."""
        if self.forced:
            return "forced"
        return "promoted" if self.passed else "refused"

    def tags(self) -> dict[str, str]:
        """The decision as registry/run tags (``gate.*``), strings only."""
        return {f"gate.{k}": "" if v is None else str(v) for k, v in asdict(self).items()} | {
            "gate.decision": self.decision
        }


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
) -> GateDecision:
    """Pass when the candidate beats production by more than ``margin`` (or clears ``floor`` without one).

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
    }
    if production_macro_f1 is None:
        passed = candidate_macro_f1 >= floor
        reason = (
            f"no production model yet; candidate macro-F1 {candidate_macro_f1:.4f} "
            f"{'clears' if passed else 'is below'} the floor {floor:.4f}"
        )
    else:
        gain = candidate_macro_f1 - production_macro_f1
        passed = gain > margin
        reason = (
            f"candidate macro-F1 {candidate_macro_f1:.4f} vs production v{production_version} "
            f"{production_macro_f1:.4f} on the same holdout: gain {gain:+.4f} "
            f"{'exceeds' if passed else 'does not exceed'} the margin {margin:.4f}"
        )
    if force and not passed:
        return GateDecision(
            passed=True, reason=reason, forced=True, forced_by=actor, forced_reason=force_reason, **common
        )
    return GateDecision(passed=passed, reason=reason, **common)
