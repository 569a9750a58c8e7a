"""Resolve the one model artefact the predictor serves: a registry URI through the tracking server's REST API and
artefact proxy (:mod:`serving.registry`; the MLflow client where those cannot serve it), or a local directory laid
out the way KServe's storage initializer leaves it (``/mnt/models``)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from model.artifacts import ModelBundle, load_model_dir
from model.errors import ModelArtifactError
from serving.errors import ModelLoadError, RegistryUnreachable
from serving.registry import RestRegistry, Version, why_not_usable
from serving.settings import ServeSettings

log = logging.getLogger(__name__)

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))/?$")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model directory and the identity it is served under."""

    bundle: ModelBundle
    version: str
    source: str
    registered_name: str | None


#: MLflow error codes that mean "the registry answered: no such model, version or alias" (anything else the
#: client raises means the server or its artifact store could not be reached, or failed).
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"})
#: Error codes of a registry that refused the predictor's credentials.
REFUSED_CODES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})


class _NotFoundYet(ModelLoadError):
    """The registry answered that the version or alias does not exist (yet): retried until the deadline, then
    exit 66."""


class _Unreachable(RegistryUnreachable):
    """The tracking server or its artifact store did not answer (or failed): retried until the deadline, then
    exit 69."""


@contextlib.contextmanager
def _one_http_attempt(timeout_s: float) -> Iterator[None]:
    """While the MLflow client runs one attempt: no retries of its own (MLflow retries 7 times with backoff by
    default, minutes inside one attempt) and a request timeout within the time left, so the load deadline holds."""
    wanted = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s)))}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failure(e: Exception, not_found: str, unreachable: str, refused: str) -> ModelLoadError:
    """The error for a registry failure: not found (the registry said so), refused credentials (which no retry
    mends: the load fails at once) or unreachable (anything else)."""
    code = getattr(e, "error_code", None)
    detail = getattr(e, "message", None) or str(e)
    if code in NOT_FOUND_CODES:
        return _NotFoundYet(f"{not_found}: {detail}")
    if code in REFUSED_CODES:
        return ModelLoadError(f"{refused}: {detail}; set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
                              "MLFLOW_TRACKING_PASSWORD, to credentials the tracking server accepts")
    return _Unreachable(f"{unreachable}: {detail}")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name/7`` -> ``(name, "7", None)``; ``models:/name@alias`` -> ``(name, None, alias)``."""
    match = _URI.match(uri)
    if match is None:
        raise ModelLoadError(
            f"model_uri {uri!r} is not models:/<name>/<version> or models:/<name>@<alias> "
            "(for example models:/sentiment@production)"
        )
    return match["name"], match["version"], match["alias"]


def find_model_dir(root: Path) -> Path:
    """The one model directory at ``root``: ``root`` itself when it holds ``MLmodel``, else its only child that does."""
    if not root.is_dir():
        raise ModelLoadError(f"model directory {root} does not exist (set KS_SERVE_MODEL_DIR or KS_SERVE_MODEL_URI)")
    if (root / "MLmodel").is_file():
        return root
    candidates = sorted(p.parent for p in root.glob("*/MLmodel"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        present = sorted(p.name for p in root.iterdir())[:20]
        raise ModelLoadError(f"{root} holds no model: no MLmodel file in it or one level below (it has {present})")
    raise ModelLoadError(f"{root} holds {len(candidates)} models {[str(c) for c in candidates]}; expected exactly one")


def _local_version(bundle: ModelBundle) -> str:
    meta = bundle.metadata
    for key in ("registered_version", "model_version", "version"):
        value = meta.get(key)
        if value not in (None, ""):
            return str(value)
    return "local"


def load_local(root: Path, version_override: str | None) -> LoadedModel:
    """Load the model directory at (or one level below) ``root`` (its pipeline is unpickled on first use)."""
    path = find_model_dir(root)
    try:
        bundle = load_model_dir(path, unpickle=False)
    except ModelArtifactError as e:
        raise ModelLoadError(str(e)) from e
    name = bundle.metadata.get("registered_model")
    return LoadedModel(bundle, version_override or _local_version(bundle), str(path), name if name else None)


def _resolve_once(settings: ServeSettings, dest: Path, timeout_s: float) -> LoadedModel:
    """One attempt: resolve the URI to a version, download it, load it. Through :mod:`serving.registry` (the REST API
    and the artefact proxy, no MLflow import) where it can; through the MLflow client otherwise."""
    assert settings.model_uri is not None
    name, version, alias = parse_model_uri(settings.model_uri)
    where = settings.tracking_uri or ""
    why_not = why_not_usable(where)
    rest = RestRegistry(where, timeout_s) if why_not is None else None
    try:
        if rest is None:
            mv = _mlflow_version(where, name, version, alias)
        elif version is not None:
            mv = rest.version(name, version)
        else:
            mv = rest.version_by_alias(name, alias or "")
    except Exception as e:  # RegistryError, MlflowException, or the HTTP library's own error
        raise _failure(e, f"{settings.model_uri} not found in the registry at {where}",
                       f"the MLflow registry at {where} is unreachable (resolving {settings.model_uri})",
                       f"the MLflow registry at {where} refused the credentials (resolving {settings.model_uri})"
                       ) from e
    pinned = f"models:/{name}/{mv.version}"  # the resolved version, not an alias that may move meanwhile
    target = dest / f"{name}-v{mv.version}"
    target.mkdir(parents=True, exist_ok=True)
    try:
        # the registry's own download location for that version, fetched through the same tracking server
        local = rest.download(rest.download_uri(mv), target) if rest is not None else None
        if local is None:
            why_not = why_not or "its files are not behind the tracking server's artefact proxy"
            log.info("downloading %s with the MLflow client: %s", pinned, why_not)
            local = _mlflow_download(where, name, str(mv.version), target)
    except Exception as e:  # the artifact store can fail in many ways (HTTP, S3, permissions)
        raise _failure(e, f"the files of {pinned} (source {mv.source}) are not in the artifact store",
                       f"cannot download {pinned} (source {mv.source}): the artifact store is unreachable",
                       f"cannot download {pinned} (source {mv.source}): the artifact store refused the credentials"
                       ) from e
    loaded = load_local(Path(local), settings.model_version or str(mv.version))
    log.info(
        "resolved %s to version %s", settings.model_uri, mv.version,
        extra={"model_uri": settings.model_uri, "model_version": mv.version, "source": mv.source},
    )
    return LoadedModel(loaded.bundle, loaded.version, pinned, name)


def _mlflow_version(where: str, name: str, version: str | None, alias: str | None) -> Version:
    """The version through the MLflow client (tracking URIs and settings :mod:`serving.registry` does not handle)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=where, registry_uri=where)
    mv = client.get_model_version(name, version) if version is not None else client.get_model_version_by_alias(
        name, alias or "")
    return Version(mv.name, str(mv.version), mv.source or "")


def _mlflow_download(where: str, name: str, version: str, target: Path) -> Path:
    """Download a version's files with the MLflow client (every artefact store it knows)."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    location = MlflowClient(tracking_uri=where, registry_uri=where).get_model_version_download_uri(name, version)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(target), tracking_uri=where))


def load_registry(settings: ServeSettings) -> LoadedModel:
    """Resolve ``settings.model_uri`` in the registry, download that version and load it.

    Retries (with backoff) until ``settings.load_deadline_s`` while the tracking server is unreachable or the
    version/alias does not exist yet; each attempt makes one HTTP request per call (no MLflow retries) with a
    timeout within the time left, so a dead server ends the load within a few seconds of the deadline. Raises
    :class:`~serving.errors.RegistryUnreachable` (exit 69) when the server never answered, ``ModelLoadError``
    (exit 66) when it answered that the model is not there; a directory that downloads but does not load fails at
    once. Without ``settings.download_dir`` the files go to a new temporary directory, the caller's to remove
    after a load (the predictor gives one it removes when it stops) and removed here after a failure.
    """
    if settings.download_dir is None:
        dest = Path(tempfile.mkdtemp(prefix="ks-serve-"))
        try:
            return load_registry(settings.model_copy(update={"download_dir": dest}))
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    dest = settings.download_dir
    give_up = time.monotonic() + settings.load_deadline_s
    delay = 0.2
    while True:
        try:
            timeout_s = min(30.0, max(give_up - time.monotonic(), 2.0))
            with _one_http_attempt(timeout_s):
                return _resolve_once(settings, dest, timeout_s)
        except (_NotFoundYet, _Unreachable) as e:
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise
            log.warning("cannot load %s yet (%s); retrying for %.0fs more", settings.model_uri, e, remaining)
            time.sleep(min(delay, remaining))  # backoff between registry attempts, bounded by the deadline
            delay = min(delay * 2, 5.0)


def load(settings: ServeSettings) -> LoadedModel:
    """Load exactly the one artefact the settings name."""
    if settings.model_uri:
        return load_registry(settings)
    return load_local(settings.resolved_model_dir(), settings.model_version)
