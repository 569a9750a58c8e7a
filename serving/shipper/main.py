"""Process entry point of ``kube-sentiment ship``: flags over ``KS_SHIP_*`` settings, logging, uvicorn."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.errors import KubeSentimentError
from model.logs import configure_logging
from serving.shipper.settings import ShipSettings

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Flags for the most-used settings; every setting is also read from ``KS_SHIP_<NAME>``."""
    parser = argparse.ArgumentParser(prog="kube-sentiment ship", description="Monitoring sidecar: spool prediction "
                                     "events durably and write them to a sink.")
    parser.add_argument("--host", help="listen address (KS_SHIP_HOST)")
    parser.add_argument("--port", type=int, help="listen port, 0 for a free one (KS_SHIP_PORT, default 9090)")
    parser.add_argument("--spool-dir", type=Path, help="write-ahead spool directory (KS_SHIP_SPOOL_DIR)")
    parser.add_argument("--sink", choices=["local", "s3"], help="sink kind (KS_SHIP_SINK)")
    parser.add_argument("--sink-dir", type=Path, help="root of the local sink (KS_SHIP_SINK_DIR)")
    parser.add_argument("--s3-bucket", help="bucket of the s3 sink (KS_SHIP_S3_BUCKET)")
    parser.add_argument("--s3-prefix", help="key prefix in the bucket (KS_SHIP_S3_PREFIX)")
    parser.add_argument("--s3-endpoint-url", help="S3-compatible endpoint (KS_SHIP_S3_ENDPOINT_URL)")
    parser.add_argument("--environment", help="environment label for KServe logger records (KS_SHIP_ENVIRONMENT)")
    parser.add_argument("--log-level", help="root log level (KS_SHIP_LOG_LEVEL)")
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> ShipSettings:
    """``ShipSettings`` from env vars, overridden by the flags given in ``argv``."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    return ShipSettings(**overrides)


def serve(settings: ShipSettings) -> int:
    """Run the shipper until SIGTERM/SIGINT, then drain the spool; return the process exit code."""
    import uvicorn

    from serving.shipper.app import create_app

    configure_logging(settings.log_level, settings.json_logs)
    try:
        app = create_app(settings)
    except KubeSentimentError as e:
        log.error("%s", e)
        return e.exit_code
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
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment ship [flags]``: returns the exit code (0 after a clean shutdown)."""
    return serve(settings_from_args(argv))
