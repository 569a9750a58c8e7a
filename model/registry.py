"""MLflow tracking and registry: reach the server, log a run, register a version, read and move aliases."""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from model.artifacts import ModelBundle, load_model_dir
from model.errors import ModelArtifactError, TrackingUnavailableError
from model.settings import TrackingSettings

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

MODEL_ARTIFACT_PATH = "model"


def wait_for_tracking_server(uri: str, deadline_s: float) -> None:
    """Poll ``<uri>/health`` until it answers 200, retrying with backoff up to ``deadline_s`` seconds.

    Non-HTTP tracking URIs (``file:``, ``sqlite:``) need no server and return at once.
    """
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    give_up = time.monotonic() + deadline_s
    delay, attempt, last_error = 0.25, 0, ""
    while True:
        attempt += 1
        try:
            with urllib.request.urlopen(url, timeout=min(5.0, deadline_s)) as response:
                if response.status == 200:
                    if attempt > 1:
                        log.info("tracking server %s reachable after %d attempts", uri, attempt)
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            last_error = str(getattr(e, "reason", e))
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            raise TrackingUnavailableError(
                f"MLflow tracking server {uri} unreachable for {deadline_s:.0f}s ({attempt} attempts, "
                f"last error: {last_error}); nothing was logged and no alias moved"
            )
        log.warning("tracking server %s not reachable (%s); retrying", uri, last_error)
        time.sleep(min(delay, remaining))  # backoff between connection attempts, bounded by the deadline
        delay = min(delay * 2, 5.0)


@contextmanager
def tracking_at(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``mlflow.start_run`` and the rest) pointed at ``uri`` inside the block only.

    ``mlflow.set_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` in ``os.environ``: left there, it would follow the
    process (a loop that trains in-process, a test run) into every later command, which reads that variable as its
    own setting. Both are put back as they were.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")  # set_tracking_uri keeps it equal to mlflow's own setting
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # type: ignore[arg-type]  # None unsets both: mlflow's default again


def client(settings: TrackingSettings) -> MlflowClient:
    """An MLflow client bound to the configured tracking (and registry) URI."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def version_by_alias(mlflow_client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or ``None`` when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as e:
        if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def download_version(tracking_uri: str, version: ModelVersion, dest: Path) -> ModelBundle:
    """Download a registered version's model directory (its ``source``) into ``dest`` and load it; the pipeline
    is read into memory, so the caller may delete ``dest`` afterwards."""
    import mlflow.artifacts

    uri = f"models:/{version.name}/{version.version}"
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=version.source, dst_path=str(dest), tracking_uri=tracking_uri
        )
    except Exception as e:
        raise ModelArtifactError(f"cannot download {uri}: {e}") from e
    return load_model_dir(Path(local))


def register(mlflow_client: MlflowClient, run_id: str, name: str, tags: dict[str, str]) -> ModelVersion:
    """Register the run's ``model`` artefact directory as a new version of ``name`` and wait until READY."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    run = mlflow_client.get_run(run_id)
    source = f"{run.info.artifact_uri}/{MODEL_ARTIFACT_PATH}"
    version = mlflow_client.create_model_version(name, source, run_id=run_id, tags=tags)
    deadline = time.monotonic() + 60
    while version.status == "PENDING_REGISTRATION" and time.monotonic() < deadline:
        time.sleep(0.2)  # registry-side status poll
        version = mlflow_client.get_model_version(name, version.version)
    if version.status != "READY":
        raise ModelArtifactError(f"model version {name}/{version.version} is {version.status}, not READY")
    return version
