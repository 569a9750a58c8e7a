"""Live quality in the drift job, on a small real model: held-out tweets labelled with their true labels match
the holdout figure; labels that disagree with the model make the version ``degraded`` (exit 3) in the JSON and HTML
reports and the Prometheus metrics; too few labels give no figure."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from control.drift.main import run
from control.drift.settings import DriftSettings
from control.quality.report import evaluate
from control.quality.settings import QualitySettings
from serving.eventlog.reader import read_window
from tests.support.events import feedback_events, predicted_events, write_to_sink
from tests.support.models import SmallModel


@pytest.fixture
def sink(tmp_path: Path, small_model: SmallModel) -> Path:
    root = tmp_path / "sink"
    texts = small_model.fresh_texts[:1500]
    write_to_sink(root, predicted_events(small_model.pipeline, texts, prefix="r"), "predictions")
    return root


def quality_of(sink: Path, small_model: SmallModel, **settings: object):  # type: ignore[no-untyped-def]
    end = datetime.now(UTC)
    start = datetime.fromtimestamp(end.timestamp() - 3600, UTC)
    window = read_window(str(sink), start, end)
    return evaluate(QualitySettings(**{"resamples": 500, **settings}), window.table, str(sink), start, end,  # type: ignore[arg-type]
                    environment=None, reference=lambda v: (small_model.classes, small_model.holdout_macro_f1))


def test_true_labels_give_the_holdout_figure_within_its_interval(sink: Path, small_model: SmallModel) -> None:
    write_to_sink(sink, feedback_events([f"r{i}:0" for i in range(800)], small_model.fresh_labels[:800]), "fb")
    quality = quality_of(sink, small_model)
    [group] = quality.groups
    assert (group.predictions, group.labelled, group.coverage) == (1500, 800, 800 / 1500)
    assert group.verdict == "ok" and quality.verdict == "ok"
    assert group.ci_low <= small_model.holdout_macro_f1 + 0.02 and group.ci_high >= small_model.holdout_macro_f1 - 0.02
    assert sum(map(sum, group.confusion)) == 800 and quality.counts.labelled == 800


def test_too_few_labels_give_no_figure(sink: Path, small_model: SmallModel) -> None:
    write_to_sink(sink, feedback_events([f"r{i}:0" for i in range(50)], small_model.fresh_labels[:50]), "fb")
    [group] = quality_of(sink, small_model, min_labelled=100).groups
    assert group.verdict == "insufficient_data" and group.macro_f1 is None and group.labelled == 50


def test_degraded_quality_is_reported_everywhere_and_exits_3(tmp_path: Path, sink: Path,
                                                             small_model: SmallModel) -> None:
    predicted = small_model.pipeline.predict(small_model.fresh_texts[:600])
    wrong = {"negative": "positive", "neutral": "negative", "positive": "neutral"}
    labels = [wrong[p] if i % 3 else p for i, p in enumerate(predicted)]  # a third agrees with the model
    write_to_sink(sink, feedback_events([f"r{i}:0" for i in range(600)], labels, received=time.time()), "fb")
    other = next(c for c in small_model.classes if c != labels[0])
    write_to_sink(sink, feedback_events(["r0:0", "nope:0"], [other, "neutral"], source="b"), "fb2")
    outcome = run(DriftSettings(source=str(sink), reference_dir=small_model.model_dir, output_dir=tmp_path / "out",
                                min_samples=2000, resamples=500))
    assert outcome.verdict == "insufficient_data" and outcome.quality_verdict == "degraded"
    assert outcome.exit_code == 3
    quality = outcome.report["quality"]
    [group] = quality["groups"]
    assert group["verdict"] == "degraded" and group["labelled"] == 599  # r0:0 got two different labels: a tie
    assert group["macro_f1"] < 0.45 and group["delta_ci_high"] < -0.05
    assert group["holdout_macro_f1"] == pytest.approx(small_model.holdout_macro_f1)
    assert quality["join"] == {"feedback": 602, "repeats": 0, "unmatched": 1, "late": 0, "superseded": 0,
                               "conflicting": 1, "labelled": 599}
    html = outcome.html_path.read_text()
    assert "Live quality" in html and "Confusion matrix, version 1" in html
    prom = (outcome.report_dir / "metrics.prom").read_text()
    assert 'ks_quality_verdict{model_version="1",track="stable"} 2.0' in prom
    assert 'ks_quality_feedback{outcome="unmatched"} 1.0' in prom and "ks_quality_macro_f1_ci_high{" in prom
