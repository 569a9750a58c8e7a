"""The behaviour suite itself: its size and shape, and the runner's verdicts on hand-made probability tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from model import behaviour
from model.behaviour import CAPABILITIES, DIR_TOLERANCE, LABELS, cases, run

CLASSES = list(LABELS)


def test_the_suite_has_at_least_300_cases_in_every_capability_and_kind() -> None:
    suite = cases()
    assert len(suite) >= 300
    per_capability = Counter(c.capability for c in suite)
    assert set(per_capability) == set(CAPABILITIES)
    assert min(per_capability.values()) >= 30, per_capability
    assert {c.kind for c in suite} == {"mft", "inv", "dir"}


def test_every_case_is_well_formed() -> None:
    for case in cases():
        assert all(isinstance(t, str) and t.strip() for t in case.texts), case
        assert set(case.labels) <= set(LABELS), case
        if case.kind == "mft":
            assert len(case.texts) == 1 and case.labels, case
        elif case.kind == "inv":
            assert len(case.texts) >= 2 and len(set(case.texts)) == len(case.texts) and not case.labels, case
        else:
            assert len(case.texts) == 2 and case.texts[0] != case.texts[1] and len(case.labels) == 1, case


def test_mft_cases_have_one_answer_per_text() -> None:
    seen: dict[str, tuple[str, ...]] = {}
    for case in cases():
        if case.kind == "mft":
            assert seen.setdefault(case.texts[0], case.labels) == case.labels, case


def test_the_fingerprint_is_stable_and_names_the_cases() -> None:
    assert behaviour.fingerprint() == behaviour.fingerprint()
    assert len(behaviour.fingerprint()) == 64


def constant(label: str):  # type: ignore[no-untyped-def]
    def predict(texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), 3), 0.1)
        out[:, CLASSES.index(label)] = 0.8
        return out

    return predict


def test_a_model_that_always_says_neutral_passes_invariance_and_direction_only() -> None:
    report = run(constant("neutral"), CLASSES)
    assert report.applicable
    rates = report.pass_rates
    assert rates["invariance_entity"] == rates["invariance_noise"] == 1.0
    assert rates["direction_complaint"] == rates["direction_praise"] == rates["direction_intensifier"] == 1.0
    assert rates["neutral_facts"] == 1.0
    assert rates["sentiment_corpus_topics"] == rates["sentiment_other_topics"] == 0.0
    assert 0.0 < rates["negation"] < 1.0  # negated negatives may be neutral
    assert sum(report.counts.values()) == len(cases())
    assert report.overall == pytest.approx(
        sum(report.pass_rates[c] * n for c, n in report.counts.items()) / len(cases())
    )


def test_columns_are_read_in_the_models_class_order() -> None:
    reordered = ["positive", "negative", "neutral"]

    def predict(texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), 3), 0.1)
        out[:, reordered.index("neutral")] = 0.8
        return out

    assert run(predict, reordered).pass_rates == run(constant("neutral"), CLASSES).pass_rates


def test_directional_cases_fail_only_beyond_the_tolerance() -> None:
    suite = [c for c in cases() if c.capability == "direction_complaint"]
    edited = {c.texts[1] for c in suite}

    def predict(drop: float):  # type: ignore[no-untyped-def]
        def proba(texts: Sequence[str]) -> np.ndarray:
            p_neg = np.array([0.5 - drop if t in edited else 0.5 for t in texts])
            return np.column_stack([p_neg, 1.0 - p_neg - 0.1, np.full(len(texts), 0.1)])

        return proba

    assert run(predict(DIR_TOLERANCE * 0.9), CLASSES).pass_rates["direction_complaint"] == 1.0
    failing = run(predict(DIR_TOLERANCE * 1.5), CLASSES)
    assert failing.pass_rates["direction_complaint"] == 0.0
    failure = next(f for f in failing.failures if f.capability == "direction_complaint")
    assert failure.probabilities[1] == pytest.approx(failure.probabilities[0] - DIR_TOLERANCE * 1.5)


def test_metrics_and_report_name_every_capability_and_failure() -> None:
    report = run(constant("positive"), CLASSES)
    metrics = report.metrics(prefix="production.")
    assert set(metrics) == {"production.behaviour.overall"} | {f"production.behaviour.{c}" for c in CAPABILITIES}
    body = report.report()
    assert body["fingerprint"] == behaviour.fingerprint()
    assert len(body["failures"]) == len(report.failures) > 0
    assert {"capability", "texts", "expected", "got"} <= set(body["failures"][0])


def test_a_model_without_the_three_sentiment_classes_is_not_scored() -> None:
    report = run(lambda texts: np.full((len(texts), 2), 0.5), ["ham", "spam"])
    assert not report.applicable and "negative" in report.reason
    assert report.metrics() == {}
