"""Process entry point of ``kube-sentiment ship`` (also ``python -m serving.shipper``): settings, logging, uvicorn."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from model.errors import ExitCode
from model.process import run_process, settings_parser
from serving.shipper.settings import ShipSettings

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment ship``: one per :class:`~serving.shipper.settings.ShipSettings` field."""
    return settings_parser(
        ShipSettings,
        prog="kube-sentiment ship",
        description="Monitoring sidecar: spool prediction events durably and write them to a sink. Exit codes: 0 "
        "stopped (the spool drained or kept for the next start), 78 bad configuration, 2 usage error, 1 the server "
        "could not start.",
    )


def serve(settings: ShipSettings, _: argparse.Namespace | None = None) -> int:
    """Run the shipper until SIGTERM/SIGINT, then drain the spool; return the process exit code."""
    import uvicorn

    from serving.shipper.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.drain_timeout_s)),
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    return ExitCode.OK if server.started else ExitCode.ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment ship [flags]``: returns the exit code (0 after a clean shutdown)."""
    return run_process(ShipSettings, argv, serve, parser=build_parser())
