"""The predictor deployable: ``python -m serving [args]`` (also what ``kube-sentiment serve`` runs).

``main(argv)`` parses KServe's model-server arguments plus ours (``model.process``), builds
:class:`~serving.settings.ServeSettings` (flags over ``KS_SERVE_*`` env over defaults), configures logging once,
builds the model, ``load()``s it and starts ``kserve.ModelServer`` (HTTP 8080, gRPC 8081 by default). Nothing
happens at import time.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.errors import ConfigError
from model.process import run_process, settings_parser
from serving.errors import ModelLoadError
from serving.settings import ServeSettings

log = logging.getLogger("serving")


def build_parser() -> argparse.ArgumentParser:
    """KServe's ``model_server.parser`` (its own ``--snake_case`` flags) plus one ``--kebab-case`` flag per
    :class:`ServeSettings` field that KServe does not already offer (``--model_name`` is KServe's)."""
    from kserve.model_server import parser as kserve_parser

    parser = settings_parser(
        ServeSettings,
        prog="kube-sentiment serve",
        parents=[kserve_parser],
        skip=list(vars(kserve_parser.parse_args([]))),
        description="Serve the sentiment model over V1 REST, V2 REST and V2 gRPC (KServe ModelServer). Exit codes: "
        "0 stopped, 66 the model cannot be loaded (not found, corrupt), 69 the registry stayed unreachable until "
        "the load deadline, 78 bad configuration, 2 usage error.",
    )
    # KServe's --model_name defaults to "model"; ours comes from the settings unless the flag is given.
    parser.set_defaults(model_name=None)
    return parser


def _quiet_per_request_logs(request_logs: bool) -> None:
    if not request_logs:  # uvicorn's access line and KServe's two timing lines per request
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)


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


def _serve(settings: ServeSettings, args: argparse.Namespace) -> int:
    """Run the predictor until it is stopped; returns the process exit code. A registry model without a
    ``download_dir`` is downloaded into a temporary directory that lives as long as the server (its files are read
    while serving) and is removed when it stops (forked workers leave with ``os._exit`` and do not remove it)."""
    if settings.model_uri and settings.download_dir is None:
        with tempfile.TemporaryDirectory(prefix="ks-serve-", ignore_cleanup_errors=True) as tmp:  # a load may write
            return _serve_with(settings.model_copy(update={"download_dir": Path(tmp)}), args)
    return _serve_with(settings, args)


def _serve_with(settings: ServeSettings, args: argparse.Namespace) -> int:
    """:func:`_serve` once the model's files have a home."""
    workers = int(args.workers)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    if workers > 1 and settings.load_in_background:
        raise ConfigError("--workers above 1 loads the model once before the workers start: it cannot load in the "
                          "background (unset KS_SERVE_LOAD_IN_BACKGROUND)")
    ports = [args.http_port, *([args.grpc_port] if args.enable_grpc else [])]
    if workers > 1:
        from serving.workers import check_free

        check_free(ports)
    _quiet_per_request_logs(settings.request_logs)
    # KServe's V1 endpoint answers with FastAPI's ORJSONResponse, which FastAPI deprecated: a warning on every
    # pod's first V1 request, about code that is not the predictor's and that no setting changes
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")

    from serving import feedback
    from serving.model import SentimentModel
    from serving.server import install_handlers

    model = SentimentModel(settings)
    if not settings.load_in_background:
        try:
            model.load()
        except ModelLoadError as e:
            log.error("cannot load the model: %s", e)
            return e.exit_code
    _tune_gc(settings.gc_threshold)
    install_handlers(model)
    feedback.install(model)
    if settings.track == "shadow":  # the copies the stable and canary predictors send (kserve mode)
        from serving.mirror import install_mirror_route

        install_mirror_route(model)
    if workers == 1:
        return _run_server(model, args)
    from serving.workers import serve_workers

    return serve_workers(workers, lambda index: _run_server(model, args, worker=True))


def _run_server(model: Any, args: argparse.Namespace, worker: bool = False) -> int:
    """Serve ``model`` with KServe's ModelServer in this process (one of several when ``worker``) until it stops;
    the exit code."""
    from serving.server import PredictorServer, model_aware_dataplane

    options = dict(
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
    if worker:
        from serving.workers import WorkerServer

        server: PredictorServer = WorkerServer(args, **options)
    else:
        server = PredictorServer(args, **options)
    server.dataplane = model_aware_dataplane(server.registered_models)
    if model.settings.load_in_background:
        server.register_model(model)
        _load_in_background(model)
        server.start([])
    else:
        server.start([model])
    if model.emitter is not None:  # the loop has stopped: write what is still queued, seal the journal file
        model.emitter.close()
    if model.load_error:
        return int(model.load_exit_code)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment serve [flags]`` / ``python -m serving``: run the predictor; returns the exit code."""
    return run_process(ServeSettings, argv, _serve, parser=build_parser())


if __name__ == "__main__":
    raise SystemExit(main())
