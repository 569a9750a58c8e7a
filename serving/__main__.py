"""The predictor deployable: ``python -m serving [args]`` (also what ``kube-sentiment serve`` runs).

``main(argv)`` parses KServe's model-server arguments plus ours, builds :class:`~serving.settings.ServeSettings`
(flags over ``KS_SERVE_*`` env over defaults), configures logging once, builds the model, ``load()``s it and starts
``kserve.ModelServer`` (HTTP 8080, gRPC 8081 by default). Nothing happens at import time.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from model.logs import configure_logging
from serving.errors import ModelLoadError
from serving.settings import ServeSettings

log = logging.getLogger("serving")

EX_CONFIG = 78


def _truthy(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on", "y", "t"):
        return True
    if lowered in ("0", "false", "no", "off", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _arg_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """argparse ``type`` and ``choices`` for a settings field's annotation (``X | None`` unwrapped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        annotation, origin = args[0], typing.get_origin(args[0])
    if origin is typing.Literal:
        return str, [str(a) for a in typing.get_args(annotation)]
    if annotation is bool:
        return _truthy, None
    if annotation in (int, float, Path):
        return annotation, None
    return str, None


def build_parser() -> argparse.ArgumentParser:
    """KServe's ``model_server.parser`` plus one ``--<field>`` per :class:`ServeSettings` field."""
    from kserve.model_server import parser as kserve_parser

    parser = argparse.ArgumentParser(
        prog="kube-sentiment serve",
        parents=[kserve_parser],
        description="Serve the sentiment model over V1 REST, V2 REST and V2 gRPC (KServe ModelServer).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    taken = set(vars(kserve_parser.parse_args([])))
    for name, field in ServeSettings.model_fields.items():
        if name in taken:
            continue
        kind, choices = _arg_type(field.annotation)
        parser.add_argument(
            f"--{name}", type=kind, choices=choices, default=None,
            help=(field.description or "") + f" [env KS_SERVE_{name.upper()}]",
        )
    # KServe parses sys.argv when kserve.model_server is imported, with argparse's prefix matching: none of our
    # flags may be a prefix of one of KServe's (an ``--access_log`` would be read as ``--access_log_format``).
    # KServe's --model_name defaults to "model"; ours comes from the settings unless the flag is given.
    parser.set_defaults(model_name=None)
    return parser


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """Flags that were given override ``KS_SERVE_*`` env vars, which override the defaults."""
    given = {
        name: getattr(args, name)
        for name in ServeSettings.model_fields
        if getattr(args, name, None) is not None
    }
    return ServeSettings(**given)


class _DropPerRequestLines(logging.Filter):
    """Drops KServe's per-call ``grpc method: ...`` info line (one log line per gRPC request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and str(record.msg).startswith("grpc method:"))


def _quiet_per_request_logs(request_logs: bool) -> None:
    if not request_logs:  # uvicorn's access line and KServe's two timing lines per request
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    logging.getLogger("kserve").addFilter(_DropPerRequestLines())


def _tune_gc(threshold: int) -> None:
    """Move everything alive after start-up (modules, the model, its vocabularies) out of the garbage collector's
    sight, so the collections that request and event objects trigger do not walk millions of long-lived objects,
    and collect the youngest generation every ``threshold`` net allocations (0: Python's default)."""
    gc.collect()
    gc.freeze()
    if threshold:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])


def _load_in_background(model: Any) -> None:
    """Load in a thread while the server answers liveness; a failure stops the server (exit code 66)."""

    def run() -> None:
        try:
            model.load()
        except Exception as e:  # any failure must stop the process, not leave it live and never ready
            model.load_error = model.load_error or f"{type(e).__name__}: {e}"
            log.error("cannot load the model: %s; stopping", model.load_error)
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=run, name="kube-sentiment-load", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """Run the predictor until it is stopped; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as e:
        print(f"kube-sentiment serve: invalid settings:\n{e}", file=sys.stderr)
        return EX_CONFIG
    if args.workers != 1:
        print("kube-sentiment serve: --workers must be 1 (scale with replicas)", file=sys.stderr)
        return EX_CONFIG
    configure_logging(settings.log_level, settings.json_logs)
    _quiet_per_request_logs(settings.request_logs)

    from kserve import ModelServer

    from serving.model import SentimentModel
    from serving.server import install_handlers, model_aware_dataplane

    model = SentimentModel(settings)
    if not settings.load_in_background:
        try:
            model.load()
        except ModelLoadError as e:
            log.error("cannot load the model: %s", e)
            return e.exit_code
    _tune_gc(settings.gc_threshold)
    server = ModelServer(
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        workers=1,
        max_threads=args.max_threads,
        max_asyncio_workers=args.max_asyncio_workers,
        enable_grpc=args.enable_grpc,
        enable_docs_url=args.enable_docs_url,
        enable_latency_logging=args.enable_latency_logging,
        access_log_format=args.access_log_format,
        event_loop=args.event_loop,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    server.dataplane = model_aware_dataplane(server.registered_models)
    install_handlers(model)
    if settings.load_in_background:
        server.register_model(model)
        _load_in_background(model)
        server.start([])
    else:
        server.start([model])
    if model.emitter is not None:  # the loop has stopped: hand the sidecar what is still queued
        model.emitter.drain(deadline_s=settings.events_timeout_s * 2)
    if model.load_error:
        return ModelLoadError.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
