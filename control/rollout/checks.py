"""The rollout analysis as a pure function: samples of the candidate and the stable track in, checks and a decision
out. Nothing here reads a file or a clock.

Every check pairs an effect (compared with its threshold from the policy) with a p-value where a test exists
(Holm-corrected over the checks judged, the statistics of :mod:`control.drift.stats`). A check **fails** when its
effect is beyond the threshold *and* its corrected p-value is below ``alpha`` (a check without a test fails on the
effect alone); it is **insufficient** below its minimum sample and **not available** when its input does not exist
(no serving metrics, no mirrored requests, no labels). The decision: ``rollback`` when any check fails, else
``hold`` while a required check lacks data, else ``advance``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats as scipy_stats

from control.drift import stats
from control.rollout.policy import Analysis
from model.errors import ExitCode

PASS, FAIL, INSUFFICIENT, NOT_AVAILABLE = "pass", "fail", "insufficient_data", "not_available"
#: A check whose value is computed and waits for the corrected p-values to be judged.
PENDING = "pending"
ADVANCE, HOLD, ROLLBACK = "advance", "hold", "rollback"
EXIT_CODES = {ADVANCE: ExitCode.OK, HOLD: ExitCode.HOLD, ROLLBACK: ExitCode.ROLLBACK}
Direction = Literal["max", "min"]
#: Bootstrap resamples of the live macro-F1 delta.
F1_BOOTSTRAP = 1000


@dataclass(frozen=True)
class TrackSample:
    """One track over the window: per text its predicted class and confidence, per request its latency, and the
    server's own counts when serving metrics are available."""

    labels: np.ndarray
    confidence: np.ndarray
    latency_ms: np.ndarray
    served: int | None = None
    """Requests the server counted (serving metrics), ``None`` without metrics."""
    errors: int | None = None
    """Of those, requests that failed on the server side."""
    p99_ms: float | None = None
    """p99 request latency from the serving metrics (else computed from ``latency_ms``)."""

    @property
    def n(self) -> int:
        """Predictions (texts) logged."""
        return len(self.labels)


@dataclass(frozen=True)
class Labelled:
    """Predictions of one track with their true label (live feedback)."""

    true: np.ndarray
    predicted: np.ndarray


@dataclass(frozen=True)
class AnalysisInput:
    """Everything one analysis judges."""

    track: Literal["canary", "shadow"]
    classes: list[str]
    stable: TrackSample
    candidate: TrackSample
    pairs: tuple[np.ndarray, np.ndarray] | None = None
    """Shadow: the stable and the candidate class of each mirrored text (same inputs), aligned."""
    labelled: tuple[Labelled, Labelled] | None = None
    """Stable's and candidate's labelled predictions, when labels exist."""


@dataclass
class Check:
    """One check (the JSON output's ``checks[]``)."""

    name: str
    description: str
    value: float | None
    threshold: float
    direction: Direction
    """``max``: the value must not exceed the threshold; ``min``: it must not fall below it."""
    p_value: float | None
    test: str | None
    n: dict[str, int]
    required: bool = True
    status: str = INSUFFICIENT
    p_value_adjusted: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def beyond(self) -> bool:
        """Whether the value is on the wrong side of the threshold."""
        assert self.value is not None
        return self.value > self.threshold if self.direction == "max" else self.value < self.threshold

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass
class Decision:
    """The outcome: ``advance`` (exit 0), ``hold`` (4) or ``rollback`` (3), why, and every check."""

    decision: str
    reason: str
    checks: list[Check]

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code of the decision."""
        return EXIT_CODES[self.decision]

    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [c for c in self.checks if c.status == FAIL]


def _counts(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Counts per class, plus one bin for labels outside ``classes``."""
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros(len(classes) + 1)
    for label, n in zip(*np.unique(labels.astype(str), return_counts=True), strict=True):
        counts[index.get(str(label), len(classes))] += n
    return counts


def _p99(latencies: np.ndarray) -> float:
    return float(np.percentile(latencies, 99))


def requests_check(data: AnalysisInput, a: Analysis) -> Check:
    """Both tracks logged enough predictions in the window."""
    n = {"candidate": data.candidate.n, "stable": data.stable.n}
    check = Check("requests", "predictions logged per track (the smaller of the two)", float(min(n.values())),
                  float(a.min_requests), "min", None, None, n)
    check.status = PASS if min(n.values()) >= a.min_requests else INSUFFICIENT
    return check


def error_rate_check(data: AnalysisInput, a: Analysis) -> Check:
    """Server-error rate of the candidate minus the stable one's (serving metrics); one-sided Fisher exact test."""
    c, s = data.candidate, data.stable
    check = Check("error_rate_delta", "server-error rate, candidate minus stable", None, a.max_error_rate_delta,
                  "max", None, "fisher_exact_greater", {"candidate": c.served or 0, "stable": s.served or 0})
    if c.served is None or s.served is None or c.errors is None or s.errors is None:
        check.status = NOT_AVAILABLE
        check.detail["why"] = "no serving metrics: the prediction logs hold answered requests only (--prometheus-url)"
        return check
    if min(c.served, s.served) < a.min_requests:
        return check
    rate_c, rate_s = c.errors / c.served, s.errors / s.served
    check.value = rate_c - rate_s
    table = [[c.errors, c.served - c.errors], [s.errors, s.served - s.errors]]
    check.p_value = float(scipy_stats.fisher_exact(table, alternative="greater").pvalue)
    check.detail = {"candidate_rate": rate_c, "stable_rate": rate_s, "candidate_errors": c.errors,
                    "stable_errors": s.errors}
    check.status = PENDING
    return check


def latency_check(data: AnalysisInput, a: Analysis) -> Check:
    """p99 request latency of the candidate over the stable one's; one-sided Mann-Whitney on the logged latencies
    (no test on serving metrics' quantiles)."""
    c, s = data.candidate, data.stable
    from_metrics = c.p99_ms is not None and s.p99_ms is not None
    n_c = (c.served or 0) if from_metrics else len(c.latency_ms)
    n_s = (s.served or 0) if from_metrics else len(s.latency_ms)
    check = Check("latency_p99_ratio", "p99 request latency, candidate over stable", None, a.max_latency_p99_ratio,
                  "max", None, None if from_metrics else "mannwhitney_greater", {"candidate": n_c, "stable": n_s},
                  detail={"source": "metrics" if from_metrics else "logs"})
    if min(n_c, n_s) < a.min_latency_requests:
        return check
    p99_c = c.p99_ms if from_metrics else _p99(c.latency_ms)
    p99_s = s.p99_ms if from_metrics else _p99(s.latency_ms)
    assert p99_c is not None and p99_s is not None
    check.value = p99_c / max(p99_s, 1e-6)
    check.detail |= {"candidate_p99_ms": p99_c, "stable_p99_ms": p99_s, "floor_ms": a.latency_floor_ms}
    if not from_metrics:
        check.p_value = stats.greater(c.latency_ms, s.latency_ms)
    check.status = PENDING
    return check


def _class_samples(data: AnalysisInput, a: Analysis) -> tuple[np.ndarray, np.ndarray, str]:
    """Shadow with enough pairs: the paired answers (same inputs, so any difference is the model's); else each
    track's own predictions over the window."""
    if data.pairs is not None and len(data.pairs[0]) >= a.min_pairs:
        return data.pairs[0], data.pairs[1], "mirrored pairs"
    return data.stable.labels, data.candidate.labels, "each track's predictions"


def class_mix_check(data: AnalysisInput, a: Analysis) -> Check:
    """PSI between the predicted-class mixes; chi-square test that the shift is beyond the threshold
    (:func:`control.drift.stats.chi2_beyond`): noise that puts the PSI near the threshold rolls nothing back."""
    stable, candidate, basis = _class_samples(data, a)
    check = Check("class_mix_psi", "predicted-class mix, candidate against stable (PSI)", None, a.max_class_mix_psi,
                  "max", None, "chi2_beyond_threshold", {"candidate": len(candidate), "stable": len(stable)},
                  detail={"basis": basis})
    if min(len(stable), len(candidate)) < a.min_requests:
        return check
    s_counts, c_counts = _counts(stable, data.classes), _counts(candidate, data.classes)
    check.value = stats.psi(s_counts, c_counts)
    chi2, check.p_value = stats.chi2_beyond(s_counts, c_counts, a.max_class_mix_psi)
    names = [*data.classes, "(other)"]
    check.detail |= {"chi2": chi2,
                     "stable": {k: round(v / s_counts.sum(), 4) for k, v in zip(names, s_counts, strict=True) if v},
                     "candidate": {k: round(v / c_counts.sum(), 4) for k, v in zip(names, c_counts, strict=True) if v}}
    check.status = PENDING
    return check


def confidence_check(data: AnalysisInput, a: Analysis) -> Check:
    """Kolmogorov-Smirnov distance between the confidence distributions (two-sample KS test)."""
    c, s = data.candidate.confidence, data.stable.confidence
    c, s = c[np.isfinite(c)], s[np.isfinite(s)]
    check = Check("confidence_ks", "confidence distribution, candidate against stable (KS distance)", None,
                  a.max_confidence_ks, "max", None, "ks_2samp", {"candidate": len(c), "stable": len(s)})
    if min(len(c), len(s)) < a.min_requests:
        return check
    check.value, check.p_value = stats.ks(s, c)
    check.detail = {"candidate_mean": float(c.mean()), "stable_mean": float(s.mean())}
    check.status = PENDING
    return check


def agreement_check(data: AnalysisInput, a: Analysis) -> Check:
    """Shadow: share of mirrored texts on which both predict the same class; one-sided binomial test against
    ``min_agreement``. The strongest signal: same inputs, so only the model differs."""
    n = len(data.pairs[0]) if data.pairs is not None else 0
    check = Check("agreement", "same class as stable on mirrored texts (share)", None, a.min_agreement, "min", None,
                  "binomial_less", {"pairs": n}, required=data.track == "shadow")
    if data.track != "shadow":
        check.status = NOT_AVAILABLE
        check.detail["why"] = "a canary answers other requests than stable: nothing to pair"
        return check
    if data.pairs is None or n < a.min_pairs:
        return check
    stable, candidate = data.pairs
    same = stable.astype(str) == candidate.astype(str)
    k = int(same.sum())
    check.value = k / n
    check.p_value = float(scipy_stats.binomtest(k, n, a.min_agreement, alternative="less").pvalue)
    moves: dict[str, int] = {}
    for s, c in zip(stable[~same].astype(str), candidate[~same].astype(str), strict=True):
        moves[f"{s} -> {c}"] = moves.get(f"{s} -> {c}", 0) + 1
    check.detail = {"agreeing": k, "disagreements": dict(sorted(moves.items(), key=lambda kv: -kv[1])[:6])}
    check.status = PENDING
    return check


def _codes(values: np.ndarray, classes: list[str]) -> np.ndarray:
    """Class index of each value (``len(classes)`` for anything else)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(str(v), len(classes)) for v in values], dtype=np.int64)


def _macro_f1(true: np.ndarray, predicted: np.ndarray, k: int) -> float:
    """Macro-F1 over the ``k`` classes of integer-coded labels (sklearn's definition, zero_division=0)."""
    confusion = np.bincount(true * (k + 1) + predicted, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
    tp = np.diag(confusion)[:k].astype(float)
    denominator = (confusion.sum(axis=0) + confusion.sum(axis=1))[:k]  # predicted + actual per class
    f1 = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
    return float(f1.mean())


def f1_check(data: AnalysisInput, a: Analysis, seed: int = 0) -> Check:
    """Live macro-F1 of the candidate minus the stable one's on labelled predictions; bootstrap p-value that the
    drop is no larger than ``max_f1_drop``. Never required: without enough labels it does not block."""
    labelled = data.labelled
    n = {"candidate": len(labelled[1].true), "stable": len(labelled[0].true)} if labelled else {}
    check = Check("f1_delta", "live macro-F1 on labelled predictions, candidate minus stable", None, -a.max_f1_drop,
                  "min", None, "bootstrap", n, required=False)
    if labelled is None:
        check.status = NOT_AVAILABLE
        check.detail["why"] = "no labels for these predictions (feedback)"
        return check
    if min(n.values()) < a.min_labels:
        return check
    k = len(data.classes)
    (s_true, s_pred), (c_true, c_pred) = ((_codes(t.true, data.classes), _codes(t.predicted, data.classes))
                                          for t in labelled)
    f1_s, f1_c = _macro_f1(s_true, s_pred, k), _macro_f1(c_true, c_pred, k)
    check.value = f1_c - f1_s
    rng = np.random.default_rng(seed)
    deltas = np.empty(F1_BOOTSTRAP)
    for b in range(F1_BOOTSTRAP):
        i = rng.integers(0, len(c_true), len(c_true))
        j = rng.integers(0, len(s_true), len(s_true))
        deltas[b] = _macro_f1(c_true[i], c_pred[i], k) - _macro_f1(s_true[j], s_pred[j], k)
    check.p_value = float((1 + (deltas >= -a.max_f1_drop).sum()) / (F1_BOOTSTRAP + 1))
    check.detail = {"candidate_f1": f1_c, "stable_f1": f1_s,
                    "delta_ci95": [float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))]}
    check.status = PENDING
    return check


def _describe(check: Check) -> str:
    sign = ">" if check.direction == "max" else "<"
    p = f", p={check.p_value_adjusted:.2g}" if check.p_value_adjusted is not None else ""
    return f"{check.name} {check.value:.4g} {sign} {check.threshold:g}{p}"


def decide(data: AnalysisInput, a: Analysis) -> Decision:
    """Run every check, correct the p-values, judge each, and decide."""
    checks = [requests_check(data, a), error_rate_check(data, a), latency_check(data, a), class_mix_check(data, a),
              confidence_check(data, a), agreement_check(data, a), f1_check(data, a)]
    judged = [c for c in checks if c.status == PENDING]
    for check, p_adj in zip(judged, stats.adjust([c.p_value for c in judged], "holm"), strict=True):
        check.p_value_adjusted = p_adj
        significant = p_adj is None or p_adj < a.alpha
        exempt = check.name == "latency_p99_ratio" and check.detail["candidate_p99_ms"] <= a.latency_floor_ms
        check.status = FAIL if check.beyond() and significant and not exempt else PASS
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        return Decision(ROLLBACK, "failed: " + "; ".join(_describe(c) for c in failed), checks)
    waiting = [c for c in checks if c.required and c.status == INSUFFICIENT]
    if waiting:
        what = ", ".join(f"{c.name} ({' / '.join(f'{k} {v}' for k, v in c.n.items())})" for c in waiting)
        return Decision(HOLD, f"not enough data yet: {what}", checks)
    passed = [c.name for c in checks if c.status == PASS]
    return Decision(ADVANCE, f"{len(passed)} checks passed: {', '.join(passed)}", checks)
