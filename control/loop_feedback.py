"""``kube-sentiment loop --scenario feedback``: the loop closed by ground-truth labels, on one machine.

1. A topic of the built-in corpus (``--topic``: tweets about Apple, airlines or self-driving cars) is held out: the
   first version is trained and gated on the rest (written to ``base-corpus.csv``, so every training sees the same
   frozen holdout) and deployed (alias ``production``).
2. Traffic from the held-out topic goes through the predictor over V1, V2 REST and V2 gRPC; labels for a share of
   it (``--label-share``, chosen at random) come back through ``POST /v1/feedback`` with the prediction ids the
   predictor returned.
3. The drift job joins the feedback to the predictions: live macro-F1 of that version, with its bootstrap interval,
   against its holdout macro-F1. A ``degraded`` verdict is what the retraining trigger acts on (in a cluster the
   drift job creates the training Job, :mod:`control.retrain`; here the loop runs it).
4. Retraining with production data: ``feedback snapshot`` of the window, then ``train --production-data`` on the same
   base corpus; the gate compares candidate and production on the frozen holdout and on the recent holdout.
5. A promoted candidate is deployed; the rest of the topic's traffic goes to it, with labels, and the drift job
   reports its live quality.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from control.loop import Loop, LoopSettings, deploy, send_feedback, send_traffic

log = logging.getLogger(__name__)

#: Topics of the built-in corpus the scenario can hold out: a pattern over the lower-cased text.
TOPICS = {
    "apple": r"@apple|#apple|\biphone|\bipad",
    "airline": r"@(?:united|americanair|usairways|southwestair|jetblue|virginamerica)\b",
    "cars": r"driverless|autonomous|self.driving|google car|googlecar",
}
SOURCE = "loop-reviewer"


def split_topic(topic: str, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The built-in corpus without ``topic`` (``text``, ``label``, ``weight``) and the topic's rows, shuffled."""
    from model.data import read_table
    from model.settings import DataSettings

    corpus = read_table(DataSettings())
    corpus["label"] = corpus["label"].str.strip().str.lower()
    held_out = corpus["text"].str.lower().str.contains(TOPICS[topic], regex=True)
    base = corpus[~held_out].reset_index(drop=True)
    rows = corpus[held_out].sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return base, rows[["text", "label"]]


def quality_of(outcome: Any, version: str) -> dict[str, Any] | None:
    """The live quality of ``version`` in a drift outcome's report (all tracks are ``stable`` here)."""
    quality = outcome.report.get("quality") or {}
    found = [g for g in quality.get("groups", []) if g["model_version"] == version]
    if not found:
        return None
    g = found[0]
    keys = ("predictions", "labelled", "coverage", "verdict", "macro_f1", "ci_low", "ci_high", "confidence",
            "holdout_macro_f1", "delta", "delta_ci_low", "delta_ci_high", "accuracy")
    return {k: (round(g[k], 4) if isinstance(g[k], float) else g[k]) for k in keys}


def phase(loop: Loop, model_name: str, texts: list[str], labels: list[str], share: float, seed: int,
          ) -> tuple[dict[str, int], int, datetime]:
    """Serve the production version, send ``texts``, label ``share`` of them; ``(sent per protocol, labels
    accepted, start time)``."""
    start = datetime.now(UTC) - timedelta(seconds=1)
    http, grpc, serving = loop.serve(model_name)
    try:
        sent, ids = asyncio.run(send_traffic(http, grpc, texts))
        if len(ids) != len(texts):
            raise RuntimeError(f"{len(texts)} texts sent but {len(ids)} prediction ids returned")
        chosen = np.random.default_rng(seed).random(len(ids)) < share
        items = [{"id": i, "label": lab, "source": SOURCE} for i, lab, c in zip(ids, labels, chosen, strict=True) if c]
        accepted = send_feedback(http, items)
        log.info("sent %d texts of the held-out topic, %d labels fed back", len(texts), accepted)
    finally:
        loop.stop(serving)
    return sent, accepted, start


def run_feedback(settings: LoopSettings) -> dict[str, Any]:
    """Run the feedback scenario; the summary ``main`` prints."""
    from control.drift.main import run as run_drift
    from control.drift.settings import DriftSettings
    from control.feedback.settings import SnapshotSettings
    from control.feedback.snapshot import run_snapshot
    from control.retrain import reasons
    from control.train import train_and_gate
    from model.settings import DataSettings, TrackingSettings, TrainSettings

    loop = Loop(settings)
    try:
        tracking = loop.start_mlflow()
        base, topic = split_topic(settings.topic)
        base_csv = loop.state / "base-corpus.csv"
        base.to_csv(base_csv, index=False)
        data = DataSettings(data_path=base_csv, label_column="label", weight_column="weight")
        train = TrainSettings(data=data, tracking=TrackingSettings(tracking_uri=tracking),
                              output_dir=loop.state / "train")
        log.info("held out %d tweets of topic %r; training on the other %d", len(topic), settings.topic, len(base))
        first = train_and_gate(train)
        served = deploy(tracking, first)

        n1 = min(settings.traffic, len(topic) * 2 // 3)
        sent1, labels1, start1 = phase(loop, first.model_name, topic["text"][:n1].tolist(),
                                       topic["label"][:n1].tolist(), settings.label_share, seed=1)
        drift = DriftSettings(source=str(loop.sink), tracking_uri=tracking, registered_model=first.model_name,
                              output_dir=loop.state / "drift", start=start1)
        first_report = run_drift(drift)
        summary: dict[str, Any] = {
            "scenario": "feedback", "topic": settings.topic, "mlflow_ui": tracking, "held_out_rows": len(topic),
            "first_training": first.summary(),
            "phase1": {"served_version": served, "traffic": sent1, "labels": labels1,
                       "drift_verdict": first_report.verdict, "quality_verdict": first_report.quality_verdict,
                       "live_quality": quality_of(first_report, served),
                       "report_html": str(first_report.html_path)},
            "logs": str(loop.logs), "reopen_mlflow_ui": loop.reopen_command(),
        }
        triggered = reasons(("quality",), first_report.verdict, first_report.quality_verdict)
        summary["retrain"] = {"triggered_by": triggered}
        if not triggered:
            log.warning("live quality is %s: no retraining", first_report.quality_verdict)
            return summary

        snapshot = run_snapshot(SnapshotSettings(sink=str(loop.sink), out=loop.state / "production.parquet",
                                                 start=start1))
        second = train_and_gate(train.model_copy(update={"data": data.model_copy(
            update={"production_data": loop.state / "production.parquet"})}))
        summary["retrain"] |= {"snapshot_rows": snapshot["rows"], "snapshot_join": snapshot["join"],
                               "training": second.summary(), "served_version": served}
        if not second.decision.passed:
            return summary
        if settings.rollout:  # the promoted version goes to production the way rollout run takes it there
            from control.loop_rollout import roll_out

            summary["rollout"] = roll_out(settings, tracking, second.model_name, served, second.model_version,
                                          first.holdout_texts)
            if summary["rollout"]["result"] != "promoted":
                return summary
        now_served = deploy(tracking, second)
        summary["retrain"]["served_version"] = now_served

        rest = topic.iloc[n1:n1 + max(n1 // 2, 1)]
        sent2, labels2, start2 = phase(loop, second.model_name, rest["text"].tolist(), rest["label"].tolist(),
                                       settings.label_share, seed=2)
        second_report = run_drift(drift.model_copy(update={"start": start2}))
        summary["phase2"] = {"served_version": now_served, "traffic": sent2, "labels": labels2,
                             "drift_verdict": second_report.verdict,
                             "quality_verdict": second_report.quality_verdict,
                             "live_quality": quality_of(second_report, now_served),
                             "report_html": str(second_report.html_path)}
        return summary
    finally:
        loop.close()
