"""Unit tests of the drift statistics, window reading and verdict logic."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from control.drift import stats
from control.drift.main import overall
from control.drift.settings import DriftSettings
from control.drift.window import group_indices
from control.window import parse_duration


def test_psi_is_zero_for_equal_distributions_and_grows_with_shift() -> None:
    assert stats.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    small = stats.psi([0.4, 0.3, 0.3], [0.45, 0.3, 0.25])
    large = stats.psi([0.4, 0.3, 0.3], [0.8, 0.1, 0.1])
    assert 0 < small < 0.1 < 0.25 < large
    assert stats.psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        stats.psi([1, 2], [1, 2, 3])


def test_share_greater_compares_two_estimated_shares() -> None:
    assert stats.share_greater(60, 500, 40, 2000) < 1e-8  # 12 % against 2 %
    assert stats.share_greater(12, 500, 40, 2000) > 0.05  # 2.4 % against 2 %: noise
    assert stats.share_greater(10, 500, 40, 2000) > stats.share_greater(20, 500, 40, 2000)
    assert stats.share_greater(0, 0, 40, 2000) == 1.0


def test_holm_and_bonferroni_corrections() -> None:
    p = [0.01, 0.04, None, 0.03, 0.5]
    assert stats.adjust(p, "bonferroni") == [0.04, 0.16, None, 0.12, 1.0]
    # Holm: sorted 0.01*4, 0.03*3, 0.04*2, 0.5*1, kept monotone
    assert stats.adjust(p, "holm") == pytest.approx([0.04, 0.09, None, 0.09, 0.5])
    assert stats.adjust(p, "none") == p


def test_tests_detect_shift_and_accept_sameness() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=3000), rng.normal(size=3000)
    assert stats.ks(a, b)[1] > 0.01 and stats.ks(a, b + 0.5)[1] < 1e-6
    assert stats.chi2_homogeneity([100, 100, 100], [100, 100, 100])[1] == pytest.approx(1.0)
    assert stats.chi2_homogeneity([100, 100, 100], [300, 10, 10])[1] < 1e-6
    assert stats.share_above(0, 1000, 0.0, 500) == 1.0
    assert stats.share_above(300, 1000, 0.0, 500) < 1e-6


def test_chi2_beyond_tests_a_shift_beyond_the_threshold_not_any_shift() -> None:
    # Two samples of one class mix whose PSI landed above 0.1 by chance (a canary window of the feedback loop that
    # rolled a good version back): homogeneity is rejected, a shift beyond 0.1 is not.
    stable, canary = [240, 194, 86], [58, 60, 50]
    assert stats.psi(stable, canary) > 0.1 and stats.chi2_homogeneity(stable, canary)[1] < 0.001
    assert stats.chi2_beyond(stable, canary, 0.1)[1] > 0.3
    assert stats.chi2_beyond([100, 100, 100], [100, 100, 100], 0.1)[1] == 1.0
    assert stats.chi2_beyond([460, 360, 180], [180, 460, 360], 0.1)[1] < 1e-9  # a permuted class mapping

    # Calibrated at the boundary: a true shift of exactly 0.1 is rejected at about the nominal rate; a true shift
    # of none almost never, where the homogeneity test rejects at its alpha.
    rng = np.random.default_rng(7)
    p, at_threshold = np.array([0.46, 0.36, 0.18]), np.array([0.338, 0.36, 0.302])
    assert stats.psi(p, at_threshold) == pytest.approx(0.1, abs=0.002)
    boundary = [stats.chi2_beyond(rng.multinomial(520, p), rng.multinomial(168, at_threshold), 0.1)[1]
                for _ in range(600)]
    assert 0.02 < np.mean(np.array(boundary) < 0.05) < 0.09
    same = [stats.chi2_beyond(rng.multinomial(520, p), rng.multinomial(168, p), 0.1)[1] for _ in range(600)]
    assert min(same) >= 0.01


def test_window_bounds_and_durations() -> None:
    assert parse_duration("90m").total_seconds() == 5400
    with pytest.raises(ValueError, match="duration"):
        parse_duration("yesterday")
    end = datetime(2026, 1, 2, 3, tzinfo=UTC)
    assert DriftSettings(window="2h", end=end).window_bounds() == (datetime(2026, 1, 2, 1, tzinfo=UTC), end)


def test_overall_verdict_and_exit_codes() -> None:
    assert overall(["ok", "drift", "insufficient_data"]) == ("drift", 3)
    assert overall(["ok", "insufficient_data"]) == ("ok", 0)
    assert overall(["warn"]) == ("warn", 0)
    assert overall(["insufficient_data"]) == ("insufficient_data", 4)
    assert overall([]) == ("insufficient_data", 4)
    assert overall(["error", "ok"]) == ("error", 66)


def test_groups_are_model_version_and_track() -> None:
    table = pa.table({"model_version": ["1", "2", "1", "1"], "track": ["stable", "canary", None, "stable"]})
    groups = {k: v.tolist() for k, v in group_indices(table).items()}
    assert groups == {("1", "stable"): [0, 3], ("2", "canary"): [1], ("1", "unknown"): [2]}
    assert group_indices(table.slice(0, 0)) == {}
