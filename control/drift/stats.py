"""Statistics of the drift signals: PSI, two-sample tests, multiple-testing correction. Pure numpy/scipy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

PSI_EPSILON = 1e-4


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray,
        epsilon: float = PSI_EPSILON) -> float:
    """Population stability index between two distributions over the same bins (counts or shares).

    ``sum((c - r) * ln(c / r))`` over bins, with both normalised and empty bins floored at ``epsilon``.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape or r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("PSI needs two non-empty distributions over the same bins")
    r = np.maximum(r / r.sum(), epsilon)
    c = np.maximum(c / c.sum(), epsilon)
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def chi2_homogeneity(reference_counts: Sequence[float] | np.ndarray,
                     current_counts: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Chi-square test that two count vectors come from one distribution: ``(statistic, p_value)``.

    Bins empty in both are dropped; with fewer than two bins left there is nothing to test (p = 1).
    """
    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def chi2_beyond(reference_counts: Sequence[float] | np.ndarray, current_counts: Sequence[float] | np.ndarray,
                max_psi: float) -> tuple[float, float]:
    """Test that two count vectors differ by **more** than a PSI of ``max_psi``: ``(statistic, p_value)``.

    The null hypothesis is a shift of exactly ``max_psi`` in the direction observed. Under it the homogeneity
    statistic ``X`` (:func:`chi2_homogeneity`) follows a non-central chi-square whose non-centrality is
    ``max_psi * X / PSI``: the effective sample size ``n1 n2 / (n1 + n2)`` times the chi-square divergence of that
    shift. A small p-value says the shift is beyond the threshold, not merely that there is one, so two samples of
    one distribution whose PSI lands near the threshold by chance do not reach it.
    """
    statistic, _ = chi2_homogeneity(reference_counts, current_counts)
    if statistic <= 0:  # identical mixes, or nothing to test
        return statistic, 1.0
    bins = int((np.asarray(reference_counts, float) + np.asarray(current_counts, float) > 0).sum())
    noncentrality = max_psi * statistic / psi(reference_counts, current_counts)  # the PSI is > 0 where X is
    return statistic, float(stats.ncx2.sf(statistic, bins - 1, noncentrality))


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: ``(distance, p_value)``."""
    result = stats.ks_2samp(np.asarray(reference, float), np.asarray(current, float), method="asymp")
    return float(result.statistic), float(result.pvalue)


def greater(current: np.ndarray, reference: np.ndarray) -> float:
    """One-sided Mann-Whitney p-value that ``current`` tends to be larger than ``reference``."""
    if len(current) == 0 or len(reference) == 0:
        return 1.0
    return float(stats.mannwhitneyu(current, reference, alternative="greater").pvalue)


def share_above(successes: int, n: int, reference_share: float, reference_n: int) -> float:
    """One-sided binomial p-value that a share ``successes / n`` exceeds ``reference_share`` (floored at half a
    count of the reference, so a reference share of zero does not make any occurrence significant)."""
    if n == 0:
        return 1.0
    p0 = min(max(reference_share, 0.5 / max(reference_n, 1)), 1.0)
    return float(stats.binomtest(successes, n, p0, alternative="greater").pvalue)


def share_greater(successes: int, n: int, reference_successes: int, reference_n: int) -> float:
    """One-sided Fisher exact p-value that the share ``successes / n`` exceeds ``reference_successes /
    reference_n`` (two samples: the reference share is estimated too, not known)."""
    if n == 0 or reference_n == 0:
        return 1.0
    table = [[successes, n - successes], [reference_successes, reference_n - reference_successes]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def adjust(p_values: Sequence[float | None], method: str) -> list[float | None]:
    """Holm, Bonferroni or no correction over the given p-values (``None`` entries are skipped and kept)."""
    present = [(i, p) for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = list(p_values)
    m = len(present)
    if method == "none" or m == 0:
        return out
    if method == "bonferroni":
        for i, p in present:
            out[i] = min(1.0, p * m)
        return out
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}; choose holm, bonferroni or none")
    running = 0.0
    for rank, (i, p) in enumerate(sorted(present, key=lambda x: x[1])):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def histogram(values: np.ndarray, bins: Sequence[float]) -> np.ndarray:
    """Counts of ``values`` in ``bins`` (values clipped into the outer bins, like the reference profile)."""
    counts, _ = np.histogram(np.clip(values, bins[0], bins[-1]), bins=np.asarray(bins, float))
    return counts
