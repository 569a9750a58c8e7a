"""Settings of the predictor process (``kube-sentiment serve`` / ``python -m serving``), from flags and ``KS_SERVE_*``.

Built once in ``main()`` and passed into the model's constructor; nothing here reads the environment at import time
and ``predict()`` never reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from model.process import ProcessSettings
from serving.kernels import KernelsMode


class ServeSettings(ProcessSettings):
    """What the predictor serves, under which name, how it guards its inputs, batches and emits events."""

    model_config = SettingsConfigDict(env_prefix="KS_SERVE_")

    model_uri: str | None = None
    """Registry URI of the model, ``models:/sentiment@production`` or ``models:/sentiment/7``. Exclusive with
    ``model_dir``."""
    model_dir: Path | None = None
    """Local model directory (what KServe's storage initializer leaves at ``/mnt/models``). Exclusive with
    ``model_uri``. When neither is set, ``/mnt/models`` is used."""
    model_name: str = Field("sentiment", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Name the model is served under (``/v1/models/<name>:predict``, ``/v2/models/<name>/infer``)."""
    model_version: str | None = None
    """Version label reported in metadata, metrics and events. Default: the registry version that was loaded, or
    the version recorded in the model directory's ``kube_sentiment.json``, else ``local``."""
    track: Literal["stable", "canary", "shadow"] = "stable"
    """Deployment track this predictor serves, copied into every prediction event and metric."""
    environment: str = "local"
    """Deployment environment label copied into every prediction event (``local``, ``staging``, ``production``)."""
    max_texts: int = Field(256, ge=1, le=100_000)
    """Most texts accepted in one request; more is a 400 / INVALID_ARGUMENT."""
    max_text_chars: int = Field(5000, ge=1)
    """Longest text accepted, in characters; longer is a 400 / INVALID_ARGUMENT."""
    log_text: bool = False
    """Put the text itself into prediction events (otherwise only its SHA-256 and length)."""
    events_dir: Path | None = Path(".kube-sentiment/spool/journal")
    """Directory where this process appends its prediction records for the ``kube-sentiment ship`` sidecar (the
    journal on the volume both share; the sidecar's ``journal_dir``). Empty: no events."""
    events_max_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024)
    """Most bytes of this process's journal files on disk, read by the sidecar or not yet; while the sidecar reads
    nothing (down for a long time), events beyond it are dropped and counted (``dropped_journal_full``). Per process:
    the volume must hold it for every predictor process plus the sidecar's spool."""
    events_file_bytes: int = Field(8 * 1024 * 1024, ge=4096)
    """A journal file is sealed (and a new one started) once it holds this many bytes; the sidecar deletes sealed
    files it has read, so this is also about how much read data stays on disk per process."""
    events_queue_size: int = Field(10_000, ge=1)
    """Most events held in memory waiting to be written; newer events are dropped (and counted) beyond it. Each
    holds its text until written, so this bounds the memory that waiting events take (sized in docs/serving.md)."""
    events_batch_size: int = Field(5_000, ge=1)
    """Most events written to the journal in one ``write()`` (whole requests; at most 1 MiB)."""
    events_flush_interval_s: float = Field(0.2, gt=0.0, le=60.0)
    """Longest an event waits in memory before being written when fewer than a batch are queued (what a crash of
    the predictor process can lose)."""
    feedback_max_items: int = Field(1000, ge=1, le=100_000)
    """Most labels accepted in one ``POST /v1/feedback`` (more is a 413 asking for smaller batches)."""
    feedback_max_bytes: int = Field(1024 * 1024, ge=1024)
    """Largest ``POST /v1/feedback`` body accepted, in bytes (413 above it)."""
    max_batch_texts: int = Field(64, ge=1)
    """Micro-batching: most texts computed in one step on the event loop (bounds the added latency)."""
    max_queued_texts: int = Field(4096, ge=1)
    """Micro-batching: most texts waiting for computation; beyond it a request is refused with 503."""
    gc_threshold: int = Field(100_000, ge=0)
    """Net new container objects between two collections of the garbage collector's youngest generation (Python's
    default: 700). Requests create no reference cycles, so the default's frequent collections on a busy server find
    nothing and cost CPU plus a pause of every request in flight (measured in docs/benchmarks.md). 0 keeps Python's
    default."""
    fast_path: bool = True
    """Compute probabilities from the fitted parameters when that is exact for the model (else sklearn)."""
    kernels: KernelsMode = "auto"
    """The fast path's compiled kernels: ``auto`` uses the ahead-of-time build the image carries
    (``serving._kernels_aot``, built by ``python -m serving.aot``) when it matches this version, else compiles them
    with numba at start-up (seconds, and numba and LLVM stay resident); ``aot`` refuses to start without that build
    (exit 66), so an image that lost it cannot quietly start slower and larger; ``jit`` always compiles."""
    tracking_uri: str | None = Field(
        None, validation_alias=AliasChoices("KS_SERVE_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    """MLflow tracking server used to resolve ``models:/`` URIs (``MLFLOW_TRACKING_URI`` is honoured)."""
    load_deadline_s: float = Field(60.0, ge=0.0)
    """How long a registry model is retried while the tracking server is unreachable or the version/alias does not
    exist yet (0: try once)."""
    load_in_background: bool = False
    """Start answering liveness at once and load the model in the background (readiness and inference answer 503
    until it is loaded; a load failure stops the server with exit code 66)."""
    request_logs: bool = False
    """Log one line per HTTP request (uvicorn's access log)."""
    download_dir: Path | None = None
    """Where a registry model is downloaded (default: a temporary directory the server removes when it stops)."""
    mirror_url: str = ""
    """Base URL of a shadow predictor to send copies of answered requests to (kserve mode, ``serving.mirror``);
    empty: no copies."""
    mirror_percent: int = Field(100, ge=0, le=100)
    """Share of the answered requests copied to the shadow, percent."""
    mirror_queue_size: int = Field(1000, ge=1)
    """Most copies waiting to be sent; beyond it a copy is dropped (and counted), never the answer delayed."""
    mirror_concurrency: int = Field(8, ge=1, le=256)
    """Most POSTs of copies in flight at once."""
    mirror_timeout_s: float = Field(2.0, gt=0.0, le=60.0)
    """Timeout of one POST of copies; a failed POST drops its copies (counted)."""
    mirror_flush_interval_s: float = Field(0.1, gt=0.0, le=10.0)
    """Longest a copy waits before being sent when fewer than a batch wait: copies go in batches, since a POST per
    request would cost the predictor more than answering the request."""

    @field_validator("events_dir", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        """An empty value turns events off."""
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_source(self) -> ServeSettings:
        if self.mirror_url and self.track == "shadow":
            raise ValueError("a shadow predictor sends no copies: mirror_url is for the stable and canary tracks")
        if self.mirror_url and not self.mirror_url.startswith(("http://", "https://")):
            raise ValueError(f"mirror_url {self.mirror_url!r} must be an http:// or https:// base URL")
        if self.model_uri and self.model_dir is not None:
            raise ValueError(
                f"set either model_uri ({self.model_uri!r}) or model_dir ({str(self.model_dir)!r}), not both"
            )
        if self.model_uri is not None and not self.model_uri.startswith("models:/"):
            raise ValueError(
                f"model_uri {self.model_uri!r} must look like models:/<name>/<version> or models:/<name>@<alias>; "
                "use model_dir for a local directory"
            )
        if self.events_max_bytes < 2 * self.events_file_bytes:
            raise ValueError(f"events_max_bytes ({self.events_max_bytes}) must be at least twice events_file_bytes "
                             f"({self.events_file_bytes}): a file being written plus one sealed")
        if self.model_uri is not None and not self.tracking_uri:
            raise ValueError(
                f"model_uri {self.model_uri!r} needs the MLflow tracking server: set KS_SERVE_TRACKING_URI or "
                "MLFLOW_TRACKING_URI (or --tracking-uri)"
            )
        return self

    def resolved_model_dir(self) -> Path:
        """The local directory to load when no registry URI is set."""
        return self.model_dir if self.model_dir is not None else Path("/mnt/models")
