"""The promotion gate's decision rule."""

from __future__ import annotations

from model.gate import decide

KW = {"margin": 0.01, "floor": 0.7, "holdout_fingerprint": "abc"}


def test_first_model_must_clear_the_floor() -> None:
    assert decide(0.75, None, None, **KW).decision == "promoted"
    refused = decide(0.65, None, None, **KW)
    assert not refused.passed and "below the floor 0.7000" in refused.reason


def test_candidate_must_beat_production_by_more_than_the_margin() -> None:
    assert decide(0.80, 0.78, "3", **KW).passed
    equal = decide(0.785, 0.78, "3", **KW)
    assert not equal.passed and "does not exceed the margin" in equal.reason and "production v3" in equal.reason


def test_force_passes_and_records_who_and_why_while_keeping_the_honest_reason() -> None:
    forced = decide(0.5, 0.78, "3", force=True, actor="alice", force_reason="hotfix for label drift", **KW)
    assert forced.passed and forced.decision == "forced"
    tags = forced.tags()
    assert tags["gate.forced_by"] == "alice" and tags["gate.forced_reason"] == "hotfix for label drift"
    assert "does not exceed" in tags["gate.reason"]


def test_tags_are_strings() -> None:
    assert all(isinstance(v, str) for v in decide(0.8, None, None, **KW).tags().values())


PRODUCTION = {"negation": 0.9, "neutral_facts": 0.7, "invariance_entity": 0.8}


def test_a_candidate_that_reads_sentiment_worse_on_one_capability_is_refused_despite_its_f1() -> None:
    worse = {"negation": 0.8, "neutral_facts": 0.9, "invariance_entity": 0.8}
    refused = decide(0.80, 0.78, "3", candidate_behaviour=worse, production_behaviour=PRODUCTION,
                     behaviour_margin=0.05, **KW)
    assert not refused.passed and refused.decision == "refused"
    assert refused.behaviour_losses == {"negation": 0.1}
    assert "exceeds the margin" in refused.reason and "negation 0.800 vs 0.900" in refused.reason
    tags = refused.tags()
    assert tags["gate.behaviour.negation"] == "0.8000 vs 0.9000"
    assert tags["gate.behaviour_losses"] == "negation -0.1000"
    assert all(isinstance(v, str) for v in tags.values())


def test_a_loss_within_the_behaviour_margin_passes_and_gains_are_welcome() -> None:
    close = {"negation": 0.86, "neutral_facts": 0.95, "invariance_entity": 0.75}
    decision = decide(0.80, 0.78, "3", candidate_behaviour=close, production_behaviour=PRODUCTION,
                      behaviour_margin=0.05, **KW)
    assert decision.passed and decision.behaviour_losses == {}
    assert decision.tags()["gate.behaviour.neutral_facts"] == "0.9500 vs 0.7000"


def test_behaviour_alone_never_promotes_and_a_first_model_is_recorded_not_compared() -> None:
    better = {"negation": 1.0, "neutral_facts": 1.0, "invariance_entity": 1.0}
    assert not decide(0.78, 0.78, "3", candidate_behaviour=better, production_behaviour=PRODUCTION, **KW).passed
    first = decide(0.75, None, None, candidate_behaviour=better, **KW)
    assert first.passed and first.tags()["gate.behaviour.negation"] == "1.0000"


def test_forcing_past_a_behaviour_loss_keeps_the_loss_on_record() -> None:
    forced = decide(0.80, 0.78, "3", candidate_behaviour={"negation": 0.5}, production_behaviour=PRODUCTION,
                    force=True, actor="alice", force_reason="known regression, hotfix", **KW)
    assert forced.decision == "forced" and forced.behaviour_losses == {"negation": 0.4}
RECENT = {**KW, "tolerance": 0.005, "recent_fingerprint": "rec"}


def test_with_a_recent_holdout_a_gain_on_it_passes_when_the_frozen_one_holds() -> None:
    passed = decide(0.7385, 0.7400, "3", candidate_recent_macro_f1=0.66, production_recent_macro_f1=0.46, **RECENT)
    assert passed.passed and "gains on the recent holdout and holds the frozen one" in passed.reason
    assert passed.tags()["gate.recent_fingerprint"] == "rec" and passed.tags()["gate.tolerance"] == "0.005"


def test_with_a_recent_holdout_losing_beyond_the_tolerance_on_the_other_refuses() -> None:
    worse_frozen = decide(0.72, 0.74, "3", candidate_recent_macro_f1=0.70, production_recent_macro_f1=0.46, **RECENT)
    assert not worse_frozen.passed and "loses more than the tolerance 0.0050" in worse_frozen.reason
    worse_recent = decide(0.80, 0.74, "3", candidate_recent_macro_f1=0.40, production_recent_macro_f1=0.46, **RECENT)
    assert not worse_recent.passed
    neither = decide(0.741, 0.74, "3", candidate_recent_macro_f1=0.461, production_recent_macro_f1=0.46, **RECENT)
    assert not neither.passed and "on neither holdout" in neither.reason


def test_a_gain_on_the_frozen_holdout_passes_when_the_recent_one_holds() -> None:
    passed = decide(0.76, 0.74, "3", candidate_recent_macro_f1=0.458, production_recent_macro_f1=0.46, **RECENT)
    assert passed.passed and "gains on the frozen holdout" in passed.reason


def test_recent_scores_do_not_count_without_a_production_model() -> None:
    first = decide(0.75, None, None, candidate_recent_macro_f1=0.2, production_recent_macro_f1=None, **RECENT)
    assert first.passed and first.tolerance is None
