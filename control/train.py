"""``kube-sentiment train``: the training run of :mod:`model.run`, saving with every model directory the
predictor's tables (:func:`serving.fastpath.export_tables`), so a predictor starts from them without unpickling
the pipeline or importing scikit-learn. model/ does not import serving/: the two meet here."""

from __future__ import annotations

from collections.abc import Sequence

from model import run
from model.run import Exporter, TrainResult
from model.settings import TrainSettings


def exporters() -> tuple[Exporter, ...]:
    """What training adds to every model directory it saves."""
    from serving.fastpath import export_tables

    return (export_tables,)


def train_and_gate(settings: TrainSettings) -> TrainResult:
    """:func:`model.run.train_and_gate` with :func:`exporters`."""
    return run.train_and_gate(settings, exporters())


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment train [flags]``: returns the exit code."""
    return run.main(argv, exporters())
