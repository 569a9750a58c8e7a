"""The goal of a partial shift, on data the model never saw: windows where 10 % or 20 % of the texts come from a
domain the tweet corpus does not contain (sentences of Python's language reference, ``pydoc_data`` in the standard
library) are drift on ``ood_share``, and random held-out tweet windows of 500, 2,000 and 20,000 records stay ok
(20 windows of each size), with every signal Holm-corrected together."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from control.drift.main import run
from control.drift.reference import Reference, ReferenceStore
from control.drift.settings import DriftSettings
from control.drift.signals import GroupResult, evaluate_group
from tests.support.events import predicted_events, python_doc_sentences, write_to_sink
from tests.support.models import SmallModel

pytestmark = pytest.mark.integration

SIZES = (500, 2_000, 20_000)
WINDOWS_PER_SIZE = 20


def window(model: SmallModel, texts: list[str]) -> pa.Table:
    """The columns the drift job reads, as the predictor's events would carry them."""
    probs = model.pipeline.predict_proba(texts)
    labels = np.asarray(model.classes)[probs.argmax(axis=1)]
    return pa.table({"label": labels.tolist(), "confidence": probs.max(axis=1), "text": texts,
                     "text_length": [len(t) for t in texts]})


def judge(model: SmallModel, reference: Reference, texts: list[str]) -> GroupResult:
    settings = DriftSettings(reference_dir=model.model_dir)
    return evaluate_group(window(model, texts), reference, settings, "1", "stable")


def mixed(model: SmallModel, rng: random.Random, size: int, share: float) -> tuple[list[str], set[str]]:
    """A window of ``size`` texts, ``share`` of them foreign (drawn with replacement: traffic repeats itself)."""
    foreign = python_doc_sentences()
    k = int(size * share)
    texts = rng.sample(model.unseen_texts, size - k) + [rng.choice(foreign) for _ in range(k)]
    rng.shuffle(texts)
    return texts, set(foreign)


@pytest.fixture(scope="module")
def reference(small_model: SmallModel) -> Reference:
    return ReferenceStore(small_model.model_dir, None, "sentiment").get("1")


@pytest.mark.parametrize("size", SIZES)
def test_held_out_windows_stay_ok(small_model: SmallModel, reference: Reference, size: int) -> None:
    assert len(small_model.unseen_texts) >= size
    rng = random.Random(size)
    alarms = []
    for i in range(WINDOWS_PER_SIZE):
        result = judge(small_model, reference, rng.sample(small_model.unseen_texts, size))
        fired = {s.name: s.verdict for s in result.signals if s.verdict not in ("ok", "insufficient_data")}
        if result.verdict != "ok":
            alarms.append((i, result.verdict, fired))
    assert alarms == [], f"false alarms on held-out windows of {size}: {alarms}"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("share", [0.1, 0.2])
def test_a_partial_foreign_share_is_drift_on_ood_share(small_model: SmallModel, reference: Reference, size: int,
                                                      share: float) -> None:
    texts, foreign = mixed(small_model, random.Random(size), size, share)
    result = judge(small_model, reference, texts)
    signals = {s.name: s for s in result.signals}
    ood = signals["ood_share"]
    values = {s.name: (s.value, s.verdict) for s in signals.values()}
    assert result.verdict == "drift" and ood.verdict == "drift", values
    assert ood.p_value_adjusted is not None and ood.p_value_adjusted < 1e-6
    # the texts named behind the share are the foreign ones, and so are the words that characterise them
    named = result.domain["ood_texts"]
    assert named and sum(t["text"] in foreign for t in named) >= 0.9 * len(named)
    foreign_words = {w for text in foreign for w in re.findall(r"\w\w+", text.lower())}
    terms = {t["term"] for t in result.domain["top_terms_window"]}
    assert terms and terms <= foreign_words, terms - foreign_words


def test_the_report_names_the_ood_texts_titles_plots_by_signal_and_ends_with_next_steps(
    tmp_path: Path, small_model: SmallModel
) -> None:
    texts, foreign = mixed(small_model, random.Random(3), 2_000, 0.2)
    write_to_sink(tmp_path / "sink", predicted_events(small_model.pipeline, texts), "seg")
    outcome = run(DriftSettings(source=str(tmp_path / "sink"), reference_dir=small_model.model_dir,
                                output_dir=tmp_path / "out"))
    assert outcome.verdict == "drift" and outcome.exit_code == 3
    report = json.loads(outcome.json_path.read_text())
    group = report["groups"][0]
    ood = next(s for s in group["signals"] if s["name"] == "ood_share")
    assert ood["verdict"] == "drift" and ood["details"]["window_share"] > ood["details"]["reference_share"] + 0.1
    assert all(t["text"] in foreign for t in group["domain_classifier"]["ood_texts"][:10])
    assert report["next_steps"][0].startswith("1/stable: ood_share: ") and "label some and retrain" in \
        report["next_steps"][0]
    html = outcome.html_path.read_text()
    for title in ("class_shares_psi", "confidence_psi · confidence_ks", "text_length_ks",
                  "oov_rate · no_known_term_share", "domain_classifier_auc · ood_share"):
        assert f"<figcaption>{title}</figcaption>" in html  # each plot is titled by the signal(s) it shows
    assert "Texts behind the out-of-distribution share" in html
    assert html.rstrip().endswith("</ul></body></html>") and html.rfind("Next steps") > html.rfind("least like")
