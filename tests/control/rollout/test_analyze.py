"""``kube-sentiment rollout analyze`` on prediction logs written the shipper's way, with a real (small) model: a
shadow that answers like stable advances, one whose class mapping is permuted is rolled back on the agreement and
class-mix checks, too little data holds, a slow canary is rolled back on latency, a class mix near the threshold
by chance is not; stdout is the JSON alone."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.pipeline import Pipeline

from control.rollout.analyze import main, render_table, summary
from control.rollout.checks import AnalysisInput, TrackSample, decide
from control.rollout.policy import Analysis
from model.data import Split
from model.errors import ExitCode
from tests.support.events import PermutedModel, feedback_events, predicted_events, write_to_sink

N = 300


@pytest.fixture(scope="module")
def texts(corpus_split: Split) -> list[str]:
    return corpus_split.holdout["text"].tolist()[:N]


def write(sink: Path, *batches: list[dict[str, Any]]) -> Path:
    for i, batch in enumerate(batches):
        write_to_sink(sink, batch, f"seg{i}")
    return sink


def run(sink: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["--source", str(sink), "--window", "1h", "--no-json-logs", *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def checks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result["checks"]}


def test_a_shadow_that_answers_like_stable_advances(tmp_path: Path, tiny_pipeline: Pipeline, texts: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts, "1", "stable", prefix="r"),
                 predicted_events(tiny_pipeline, texts, "2", "shadow", prefix="sh", mirror_of_prefix="r"))
    code, result, err = run(sink, capsys, "--track", "shadow", "--environment", "test")
    assert code == ExitCode.OK and result["decision"] == "advance", result["reason"]
    assert (result["stable_version"], result["candidate_version"]) == ("1", "2")  # read from the logs
    by_name = checks(result)
    assert by_name["agreement"]["value"] == 1.0 and by_name["agreement"]["n"] == {"pairs": N}
    assert by_name["class_mix_psi"]["detail"]["basis"] == "mirrored pairs"
    assert by_name["error_rate_delta"]["status"] == "not_available"  # no serving metrics without Prometheus
    assert by_name["f1_delta"]["status"] == "not_available"
    assert {by_name[n]["status"] for n in ("requests", "latency_p99_ratio", "class_mix_psi", "confidence_ks",
                                           "agreement")} == {"pass"}
    assert "decision: ADVANCE (exit 0)" in err and "agreement" in err  # the table, on stderr


def test_a_shadow_with_a_permuted_class_mapping_is_rolled_back_naming_the_checks(
        tmp_path: Path, tiny_pipeline: Pipeline, texts: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts, "1", "stable", prefix="r"),
                 predicted_events(PermutedModel(tiny_pipeline), texts, "2", "shadow", prefix="sh",
                                  mirror_of_prefix="r"))
    code, result, _ = run(sink, capsys, "--track", "shadow")
    assert code == ExitCode.ROLLBACK and result["decision"] == "rollback"
    by_name = checks(result)
    assert by_name["agreement"]["status"] == "fail" and by_name["agreement"]["value"] < 0.5
    assert by_name["agreement"]["p_value_adjusted"] < 0.01
    assert by_name["class_mix_psi"]["status"] == "fail"
    assert by_name["confidence_ks"]["status"] == "pass"  # same probabilities, other labels: only agreement sees it
    assert "agreement" in result["reason"] and "class_mix_psi" in result["reason"]
    moves = by_name["agreement"]["detail"]["disagreements"]
    assert all(" -> " in k for k in moves)


def test_live_macro_f1_from_feedback_joined_by_the_shared_rules(tmp_path: Path, tiny_pipeline: Pipeline,
                                                                  texts: list[str],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    truth = [str(c) for c in tiny_pipeline.predict(texts)]  # the stable version is right by construction
    stable_ids, canary_ids = [f"r{i}:0" for i in range(N)], [f"c{i}:0" for i in range(N)]
    now = time.time()
    wrong = "negative" if truth[0] != "negative" else "positive"
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts, "1", "stable", prefix="r"),
                 predicted_events(PermutedModel(tiny_pipeline), texts, "2", "canary", prefix="c"),
                 feedback_events(stable_ids + canary_ids, truth + truth, at=now),
                 feedback_events(stable_ids[:1], [wrong], at=now - 60))  # corrected later by the same source
    code, result, _ = run(sink, capsys, "--track", "canary")
    assert code == ExitCode.ROLLBACK
    f1 = checks(result)["f1_delta"]
    assert f1["n"] == {"candidate": N, "stable": N}  # one true label per prediction: the correction replaced
    assert f1["detail"]["stable_f1"] == 1.0 and f1["status"] == "fail" and f1["value"] < -0.5
    assert result["sources"]["labels"] == "feedback"


def test_too_little_data_holds(tmp_path: Path, tiny_pipeline: Pipeline, texts: list[str],
                               capsys: pytest.CaptureFixture[str]) -> None:
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts, "1", "stable"),
                 predicted_events(tiny_pipeline, texts[:40], "2", "canary", prefix="c"))
    code, result, _ = run(sink, capsys, "--track", "canary", "--stable-version", "1", "--candidate-version", "2")
    assert code == ExitCode.HOLD and result["decision"] == "hold"
    assert "requests (candidate 40 / stable 300)" in result["reason"]
    assert checks(result)["agreement"]["status"] == "not_available"  # a canary has nothing to pair


def test_a_slow_canary_is_rolled_back_on_latency(tmp_path: Path, tiny_pipeline: Pipeline, texts: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts, "1", "stable", latency_ms=3.0),
                 predicted_events(tiny_pipeline, texts, "2", "canary", prefix="c", latency_ms=90.0))
    code, result, _ = run(sink, capsys)
    assert code == ExitCode.ROLLBACK
    latency = checks(result)["latency_p99_ratio"]
    assert latency["status"] == "fail" and latency["value"] == pytest.approx(30.0)
    assert latency["detail"]["source"] == "logs" and latency["p_value_adjusted"] < 0.01
    assert result["reason"].startswith("failed: latency_p99_ratio 30 > 1.5")


def test_the_policy_file_sets_the_thresholds(tmp_path: Path, tiny_pipeline: Pipeline, texts: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts, "1", "stable", latency_ms=3.0),
                 predicted_events(tiny_pipeline, texts, "2", "canary", prefix="c", latency_ms=90.0))
    values = tmp_path / "values.yaml"  # chart values: the rollout block is read, the rest ignored
    values.write_text(yaml.safe_dump({"serving": {"mode": "kserve"},
                                      "rollout": {"analysis": {"latencyFloorMs": 100, "minRequests": 50}}}))
    code, result, _ = run(sink, capsys, "--policy-file", str(values))
    assert code == ExitCode.OK, result["reason"]
    assert result["policy"]["latencyFloorMs"] == 100 and checks(result)["requests"]["threshold"] == 50
    values.write_text(yaml.safe_dump({"rollout": {"analysis": {"minAgreement": 2}}}))
    assert main(["--source", str(sink), "--policy-file", str(values), "--json-logs"]) == ExitCode.BAD_CONFIG
    assert "analysis.minAgreement" in capsys.readouterr().err


def test_two_versions_on_one_track_must_be_named(tmp_path: Path, tiny_pipeline: Pipeline, texts: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts[:50], "1", "stable"),
                 predicted_events(tiny_pipeline, texts[:50], "3", "stable", prefix="x"),
                 predicted_events(tiny_pipeline, texts[:50], "2", "canary", prefix="c"))
    assert main(["--source", str(sink), "--window", "1h", "--json-logs"]) == ExitCode.BAD_DATA
    assert "--stable-version" in capsys.readouterr().err
    code, result, _ = run(sink, capsys, "--stable-version", "3")
    assert code == ExitCode.HOLD and result["stable_version"] == "3"


def test_stdout_is_the_json_alone_and_the_summary_fits_a_termination_message(
        tmp_path: Path, tiny_pipeline: Pipeline, texts: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    sink = write(tmp_path / "sink", predicted_events(tiny_pipeline, texts, "1", "stable", ts=time.time() - 5),
                 predicted_events(PermutedModel(tiny_pipeline), texts, "2", "shadow", prefix="s",
                                  mirror_of_prefix="r", ts=time.time() - 5))
    out = tmp_path / "termination-log"
    code = main(["--source", str(sink), "--track", "shadow", "--json-logs", "--summary-file", str(out)])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert code == ExitCode.ROLLBACK == result["exit_code"]
    records = [json.loads(line) for line in captured.err.splitlines()]  # JSON-log mode: only JSON on stderr
    table = next(r for r in records if r.get("decision") == "rollback")["table"]
    assert table == render_table(result)
    short = json.loads(out.read_text())
    assert len(out.read_bytes()) <= 4096 and short["decision"] == "rollback"
    assert {c["name"] for c in short["checks"]} == {c["name"] for c in result["checks"]}
    assert len(summary({**result, "reason": "x" * 10000}).encode()) <= 4096


def test_a_class_mix_near_the_threshold_by_chance_does_not_roll_back() -> None:
    """The canary window that rolled a good retrain back in the feedback loop: PSI 0.11 between two samples of one
    class mix, "different" at p < 0.001. Rolled back only for a shift beyond the threshold, the good version
    advances; the stable mix with its classes permuted, at the same sample sizes, still fails."""
    def sample(counts: list[int]) -> TrackSample:
        labels = np.repeat(np.array(["negative", "neutral", "positive"], dtype=object), counts)
        return TrackSample(labels, np.full(len(labels), 0.8), np.full(len(labels) // 4, 5.0))

    policy = Analysis.model_validate({"minRequests": 150, "minLatencyRequests": 25})
    classes = ["negative", "neutral", "positive"]
    chance = decide(AnalysisInput("canary", classes, sample([240, 194, 86]), sample([58, 60, 50])), policy)
    mix = {c.name: c for c in chance.checks}["class_mix_psi"]
    assert mix.value is not None and mix.value > 0.1 and mix.test == "chi2_beyond_threshold"
    assert mix.status == "pass" and chance.decision == "advance", chance.reason
    permuted = decide(AnalysisInput("canary", classes, sample([240, 194, 86]), sample([28, 78, 62])), policy)
    assert permuted.decision == "rollback" and "class_mix_psi" in permuted.reason
