"""Settings of ``kube-sentiment console`` (flags and ``KS_CONSOLE_*``), built once in ``main()``.

Where the data comes from is configured here and nowhere else: the registry (MLflow), the drift reports (a
directory), the prediction log (the shipper's sink), the serving tracks (the Kubernetes API, or predictors listed
by URL for the local loop), request metrics (Prometheus, or the predictors' own ``/metrics``), and the token that
unlocks actions (a file, mounted from a Secret).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from model.process import ProcessSettings

#: ``environment/track=url`` (a predictor of the local source).
_PREDICTOR = re.compile(r"^(?P<env>[a-z0-9][a-z0-9-]*)/(?P<track>stable|canary|shadow)=(?P<url>https?://\S+)$")
#: ``environment/track=percent``.
_WEIGHT = re.compile(r"^(?P<env>[a-z0-9][a-z0-9-]*)/(?P<track>stable|canary|shadow)=(?P<percent>\d{1,3})$")


def _split(value: Any) -> Any:
    """A list given as one string (an environment variable): comma- or whitespace-separated."""
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[,\s]+", value) if part)
    return value


#: A tuple setting that is a comma-separated list in its environment variable (``a,b``) and ``--flag a b``.
Listed = Annotated[tuple[str, ...], NoDecode]
ListedPaths = Annotated[tuple[Path, ...], NoDecode]


def parse_predictor(entry: str) -> tuple[str, str, str]:
    """``"local/stable=http://127.0.0.1:8080"`` -> ``("local", "stable", "http://127.0.0.1:8080")``."""
    match = _PREDICTOR.match(entry.strip())
    if not match:
        raise ValueError(f"predictor {entry!r} is not environment/track=URL, e.g. local/stable=http://127.0.0.1:8080 "
                         "(track: stable, canary or shadow)")
    return match["env"], match["track"], match["url"].rstrip("/")


def parse_weight(entry: str) -> tuple[str, str, int]:
    """``"local/canary=10"`` -> ``("local", "canary", 10)``."""
    match = _WEIGHT.match(entry.strip())
    if not match or int(match["percent"]) > 100:
        raise ValueError(f"weight {entry!r} is not environment/track=percent (0-100), e.g. local/canary=10")
    return match["env"], match["track"], int(match["percent"])


class ConsoleSettings(ProcessSettings):
    """Everything ``kube-sentiment console`` needs (env ``KS_CONSOLE_*``)."""

    model_config = SettingsConfigDict(env_prefix="KS_CONSOLE_")

    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in a container)."""
    port: int = Field(8070, ge=0, le=65535)
    """HTTP port (0: any free port, logged at start)."""
    source: Literal["local", "kubernetes"] = "local"
    """Where the serving tracks are read: ``local`` (the predictors listed in ``predictors``, no cluster) or
    ``kubernetes`` (pods, InferenceServices, Deployments, routes and Events of the chart in ``namespaces``)."""
    predictors: Listed = ()
    """Local source: the predictors as ``environment/track=URL`` (``local/stable=http://127.0.0.1:8080``)."""
    weights: Listed = ()
    """Local source: traffic share of a track as ``environment/track=percent`` (default: stable 100 % when alone)."""
    namespaces: Listed = ()
    """Kubernetes source: the namespaces of the environments (one release of the chart each; the environment is the
    namespace's ``kube-sentiment/environment`` label of its objects, else the namespace name). Default: the
    console's own namespace."""
    kubeconfig: Path | None = None
    """Kubernetes source: a kubeconfig file (a workstation); default: the in-cluster ServiceAccount."""
    serving_port: int = Field(8080, ge=1, le=65535)
    """Kubernetes source: the predictors' HTTP port (``/metrics`` and V1 on the pod IPs)."""
    model_name: str = Field("sentiment", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Name the predictors serve the model under (``/v1/models/<name>:predict``)."""
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("KS_CONSOLE_TRACKING_URI",
                                                                          "MLFLOW_TRACKING_URI"))
    """MLflow tracking and registry server (``MLFLOW_TRACKING_URI`` is honoured). Unset: no Models page data."""
    mlflow_ui_url: str | None = None
    """MLflow UI address for links to runs and versions as a browser reaches it (default: ``tracking_uri``)."""
    registered_model: str = "sentiment"
    """Registered model whose versions are shown."""
    drift_dirs: ListedPaths = ()
    """Directories of drift reports (``<dir>/<run id>/report.json``: the drift job's ``output_dir``)."""
    events_source: str | None = None
    """The shipper's sink (directory or ``s3://bucket/prefix``) for the class mix over time. Unset: not shown."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint of an ``s3://`` ``events_source``."""
    s3_region: str = "us-east-1"
    """Region of an ``s3://`` ``events_source``."""
    class_mix_hours: int = Field(24, ge=1, le=24 * 14)
    """Hours of prediction log behind the class mix chart (hourly buckets)."""
    prometheus_url: str | None = None
    """Prometheus server for req/s, error rate and latency; unset: the console scrapes the predictors' ``/metrics``."""
    scrape_interval_s: float = Field(10.0, gt=0.0, le=3600.0)
    """Seconds between two scrapes of the predictors' ``/metrics`` (and points of the sparklines)."""
    history_points: int = Field(60, ge=2, le=10_000)
    """Points kept per sparkline."""
    rollout_logs: ListedPaths = ()
    """JSON log files of ``kube-sentiment rollout run`` (local): every decision, not only the latest one per version."""
    token_file: Path | None = None
    """File holding the token that unlocks actions (mount it from a Secret). Unset: every action is refused (403)."""
    read_requires_token: bool = False
    """Require the token for the read pages and data endpoints too (default: they are open)."""
    secure_cookies: bool = False
    """Mark the session cookie ``Secure`` (set it when the console is reached over HTTPS)."""
    session_hours: float = Field(8.0, gt=0.0, le=24 * 30)
    """Lifetime of a signed-in session."""
    start_command: str | None = None
    """Command that starts a rollout (placeholders ``{environment}``, ``{version}``), e.g. ``kube-sentiment rollout
    run {environment} {version}``. Unset: the action is not offered."""
    promote_command: str | None = None
    """Command that promotes the candidate of ``{environment}`` (e.g. ``scripts/canary.sh {environment} promote``)."""
    rollback_command: str | None = None
    """Command that rolls ``{environment}`` back (e.g. ``scripts/canary.sh {environment} rollback``)."""
    action_log_dir: Path = Path("/tmp/kube-sentiment-console")
    """Where the output of each action command is written."""
    upstream_timeout_s: float = Field(5.0, gt=0.0, le=120.0)
    """Timeout of one call to a predictor, MLflow, Prometheus or the Kubernetes API."""

    @field_validator("predictors", "weights", "namespaces", "drift_dirs", "rollout_logs", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        """Comma-separated in an environment variable."""
        return _split(value)

    @field_validator("predictors")
    @classmethod
    def _predictors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each entry parses."""
        for entry in value:
            parse_predictor(entry)
        return value

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each entry parses."""
        for entry in value:
            parse_weight(entry)
        return value

    @field_validator("start_command", "promote_command", "rollback_command")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        """Only the known placeholders."""
        if value is not None:
            unknown = set(re.findall(r"\{(\w*)\}", value)) - {"environment", "version"}
            if unknown:
                raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {{environment}} and {{version}}")
        return value

    @model_validator(mode="after")
    def _token_needed(self) -> ConsoleSettings:
        """Locking the read pages needs a token to unlock them with."""
        if self.read_requires_token and self.token_file is None:
            raise ValueError("read_requires_token needs token_file (the token that unlocks the pages)")
        return self

    def predictor_table(self) -> list[tuple[str, str, str]]:
        """The local predictors as ``(environment, track, url)``."""
        return [parse_predictor(entry) for entry in self.predictors]

    def weight_table(self) -> dict[tuple[str, str], int]:
        """The configured traffic shares, by ``(environment, track)``."""
        return {(env, track): percent for env, track, percent in map(parse_weight, self.weights)}
