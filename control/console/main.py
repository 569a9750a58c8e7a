"""``kube-sentiment console``: the control room (settings, logging, uvicorn)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from control.console.settings import ConsoleSettings
from model.errors import ExitCode
from model.process import run_process, settings_parser

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment console``: one per :class:`ConsoleSettings` field."""
    return settings_parser(
        ConsoleSettings,
        prog="kube-sentiment console",
        description="The control room: a web app (Overview, Models, Rollouts, Drift, Try it) over the registry, the "
        "drift reports, the predictors and the cluster. Read-only unless a token file is given. Exit codes: 0 "
        "stopped, 78 bad configuration, 2 usage error, 1 the server could not start.",
    )


def serve(settings: ConsoleSettings, _: argparse.Namespace | None = None) -> int:
    """Run until SIGTERM/SIGINT; return the exit code."""
    import uvicorn

    from control.console.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            lifespan="on", server_header=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    log.info("console on http://%s:%d (source %s, actions %s)", settings.host, settings.port, settings.source,
             "enabled" if settings.token_file else "disabled")
    server.run()
    return ExitCode.OK if server.started else ExitCode.ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment console [flags]``: returns the exit code (0 after a clean shutdown)."""
    return run_process(ConsoleSettings, argv, serve, parser=build_parser())
