"""Settings of the monitoring sidecar (``kube-sentiment ship``), read from flags and ``KS_SHIP_*`` env vars.

Built once in ``main()`` and passed down; nothing here reads the environment at import time.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from model.process import ProcessSettings


def _default_shipper_id() -> str:
    """The host name (the pod name in Kubernetes)."""
    return socket.gethostname() or "shipper"


class ShipSettings(ProcessSettings):
    """Where the shipper listens, where it spools, and where it writes."""

    model_config = SettingsConfigDict(env_prefix="KS_SHIP_")

    host: str = "0.0.0.0"
    """Address to listen on (the predictor reaches the sidecar over the pod's loopback)."""
    port: int = Field(9090, ge=0, le=65535)
    """Port to listen on (0 picks a free one; the chosen port is logged)."""
    spool_dir: Path = Path(".kube-sentiment/spool")
    """Write-ahead spool on local disk (an ``emptyDir`` in the pod). Must survive a process restart."""
    journal_dir: Path | None = None
    """Where predictor processes append their records (their ``events_dir``); read, spooled and deleted here.
    Default: ``<spool_dir>/journal``."""
    sink: Literal["local", "s3"] = "local"
    """``local`` writes objects under ``sink_dir``; ``s3`` writes them to ``s3_bucket`` (S3-compatible)."""
    sink_dir: Path = Path(".kube-sentiment/predictions")
    """Root directory of the ``local`` sink."""
    s3_bucket: str | None = None
    """Bucket of the ``s3`` sink."""
    s3_prefix: str = ""
    """Key prefix inside the bucket (for example ``predictions/``)."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, Ceph, ...); ``None`` means AWS. Credentials come from the standard AWS
    environment variables or the pod's identity."""
    s3_region: str = "us-east-1"
    """Region name handed to the S3 client."""
    environment: str = "local"
    """Environment label given to KServe logger records (predictor events carry their own)."""
    model_name: str = "sentiment"
    """Model name given to KServe logger records when the CloudEvent does not name the inference service."""
    model_version: str = "unknown"
    """Model version given to KServe logger records whose response does not carry ``model_version``."""
    track: str = "stable"
    """Track given to KServe logger records (``stable``, ``canary`` or ``shadow``)."""
    classes: tuple[str, ...] = ("negative", "neutral", "positive")
    """Class order used to read probability rows without class names out of KServe responses."""
    shipper_id: str = Field(default_factory=_default_shipper_id)
    """Unique name of this shipper (default: host name, which is the pod name); part of every object name."""
    segment_max_bytes: int = Field(8 * 1024 * 1024, ge=4096)
    """A spool segment is sealed and shipped once it holds this many bytes ..."""
    segment_max_age_s: float = Field(10.0, gt=0.0)
    """... or once its first record is this old."""
    spool_max_bytes: int = Field(1024 * 1024 * 1024, ge=65536)
    """Disk the spool may use. Above it new events are refused with 503 + Retry-After (backpressure)."""
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    """Largest request body accepted (413 above it); bounds memory per request."""
    retry_after_s: int = Field(5, ge=1)
    """``Retry-After`` sent with a 503 when the spool is full."""
    sink_backoff_max_s: float = Field(30.0, gt=0.0)
    """Longest wait between two attempts to write to a failing sink (exponential backoff up to it)."""
    join_ttl_s: float = Field(120.0, gt=0.0)
    """How long a KServe request CloudEvent waits for its response (and vice versa) before being quarantined."""
    max_pending_halves: int = Field(100_000, ge=1)
    """Most unjoined CloudEvent halves held in memory; beyond it the oldest is quarantined."""
    drain_timeout_s: float = Field(20.0, ge=0.0)
    """On SIGTERM, how long to keep flushing the spool to the sink before exiting (what is left stays spooled)."""
    poll_interval_s: float = Field(0.2, gt=0.0)
    """How often the flusher looks for sealed segments."""
    journal_poll_interval_s: float = Field(0.1, gt=0.0)
    """How often the predictors' journal files are read."""

    @property
    def resolved_journal_dir(self) -> Path:
        """``journal_dir``, or its default under the spool."""
        from serving.eventlog.journal import DIRECTORY_NAME

        return self.journal_dir if self.journal_dir is not None else self.spool_dir / DIRECTORY_NAME

    @field_validator("s3_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        """Normalise the key prefix to ``''`` or ``'something/'``."""
        value = value.strip("/")
        return f"{value}/" if value else ""

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> ShipSettings:
        if self.sink == "s3" and not self.s3_bucket:
            raise ValueError("sink=s3 needs s3_bucket (KS_SHIP_S3_BUCKET or --s3-bucket)")
        return self
