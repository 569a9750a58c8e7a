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
