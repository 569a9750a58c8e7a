"""Settings of the predictor process (``kube-sentiment serve`` / ``python -m serving``), from flags and ``KS_SERVE_*``.

Built once in ``main()`` and passed into the model's constructor; nothing here reads the environment at import time
and ``predict()`` never reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import SettingsConfigDict

from model.process import ProcessSettings


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
    track: Literal["stable", "canary"] = "stable"
    """Deployment track this predictor serves, copied into every prediction event and metric."""
    environment: str = "local"
    """Deployment environment label copied into every prediction event (``local``, ``staging``, ``production``)."""
    max_texts: int = Field(256, ge=1, le=100_000)
    """Most texts accepted in one request; more is a 400 / INVALID_ARGUMENT."""
    max_text_chars: int = Field(5000, ge=1)
    """Longest text accepted, in characters; longer is a 400 / INVALID_ARGUMENT."""
    log_text: bool = False
    """Put the text itself into prediction events (otherwise only its SHA-256 and length)."""
    events_url: str = "http://127.0.0.1:9090/v1/events"
    """Where prediction events are POSTed as NDJSON (the ``kube-sentiment ship`` sidecar). Empty: no events."""
    events_queue_size: int = Field(10_000, ge=1)
    """Most events held in memory waiting for the sidecar; newer events are dropped (and counted) beyond it. Each
    holds its text until sent, so this bounds the memory that waiting events take (sized in docs/serving.md)."""
    events_batch_size: int = Field(5_000, ge=1)
    """Events sent in one POST (whole requests, so up to one request's texts more). A POST costs the predictor the
    same CPU whatever its size (docs/benchmarks.md), so batches are large; ``events_flush_interval_s`` bounds the
    wait."""
    events_flush_interval_s: float = Field(0.5, gt=0.0, le=60.0)
    """Longest an event waits in memory before being sent when fewer than a batch are queued."""
    events_timeout_s: float = Field(2.0, gt=0.0)
    """Timeout of one POST to the sidecar; a failed POST drops its batch (counted)."""
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
    """Where a registry model is downloaded (default: a fresh temporary directory)."""

    @model_validator(mode="after")
    def _one_source(self) -> ServeSettings:
        if self.model_uri and self.model_dir is not None:
            raise ValueError(
                f"set either model_uri ({self.model_uri!r}) or model_dir ({str(self.model_dir)!r}), not both"
            )
        if self.model_uri is not None and not self.model_uri.startswith("models:/"):
            raise ValueError(
                f"model_uri {self.model_uri!r} must look like models:/<name>/<version> or models:/<name>@<alias>; "
                "use model_dir for a local directory"
            )
        if self.model_uri is not None and not self.tracking_uri:
            raise ValueError(
                f"model_uri {self.model_uri!r} needs the MLflow tracking server: set KS_SERVE_TRACKING_URI or "
                "MLFLOW_TRACKING_URI (or --tracking-uri)"
            )
        return self

    def resolved_model_dir(self) -> Path:
        """The local directory to load when no registry URI is set."""
        return self.model_dir if self.model_dir is not None else Path("/mnt/models")
