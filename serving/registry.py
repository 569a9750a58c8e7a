"""The predictor's registry client: resolve a ``models:/`` URI and download that version through the MLflow tracking
server's REST API and its artefact proxy (``mlflow server --serve-artifacts``, which the mlflow chart runs), with
the standard library alone.

Importing the MLflow client costs a predictor more than a second of start-up and tens of MB resident
(docs/benchmarks.md), for three GET requests and a few file downloads. The requests are MLflow's documented REST
API (``model-versions/get``, ``registered-models/alias``, ``model-versions/get-download-uri``,
``mlflow-artifacts/artifacts``) with the client's own settings for authentication and TLS
(``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``,
``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``). What this client does not do,
:func:`why_not_usable` names, and the loader uses the MLflow client for it instead: client certificates, an auth
plugin (``MLFLOW_TRACKING_AUTH``), a tracking URI that is not HTTP(S), and (see :meth:`RestRegistry.download`)
artefacts the server does not proxy (``s3://``, ``gs://``, ...).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REST = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PROXIED_SCHEME = "mlflow-artifacts"
#: Settings of the MLflow client this client does not implement (the loader then uses the MLflow client).
UNSUPPORTED_SETTINGS = ("MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AUTH")
#: MLflow's error codes for an HTTP refusal whose body does not name one (the MLflow client maps them the same way).
HTTP_ERROR_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}


class RegistryError(Exception):
    """A failed registry call, with MLflow's ``error_code`` when the server answered one (None: no answer)."""

    def __init__(self, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


@dataclass(frozen=True)
class Version:
    """A registered model version, as the registry describes it."""

    name: str
    version: str
    source: str


def why_not_usable(tracking_uri: str, env: Mapping[str, str] = os.environ) -> str | None:
    """Why this client cannot talk to ``tracking_uri`` with these settings (None: it can)."""
    if urllib.parse.urlsplit(tracking_uri).scheme not in ("http", "https"):
        return f"tracking URI {tracking_uri!r} is not HTTP(S)"
    for name in UNSUPPORTED_SETTINGS:
        if env.get(name):
            return f"{name} is set"
    return None


class RestRegistry:
    """One tracking server's registry and artefact proxy, over HTTP(S) with a timeout per request."""

    def __init__(self, tracking_uri: str, timeout_s: float, env: Mapping[str, str] = os.environ) -> None:
        self.base = tracking_uri.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"User-Agent": "kube-sentiment-predictor"}
        if token := env.get("MLFLOW_TRACKING_TOKEN"):
            self._headers["Authorization"] = f"Bearer {token}"
        elif (user := env.get("MLFLOW_TRACKING_USERNAME")) and (password := env.get("MLFLOW_TRACKING_PASSWORD")):
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._tls: ssl.SSLContext | None = None
        if self.base.startswith("https:"):
            if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
                self._tls = ssl._create_unverified_context()
            else:
                self._tls = ssl.create_default_context(cafile=env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)

    def version(self, name: str, number: str) -> Version:
        """``models:/<name>/<number>``."""
        return _version(self._json(f"{REST}/model-versions/get", name=name, version=number))

    def version_by_alias(self, name: str, alias: str) -> Version:
        """``models:/<name>@<alias>``."""
        return _version(self._json(f"{REST}/registered-models/alias", name=name, alias=alias))

    def download_uri(self, version: Version) -> str:
        """Where the registry keeps that version's files; a ``runs:/<run id>/<path>`` location (the server leaves
        those to the client) resolved against that run's artefact root."""
        answer = self._json(f"{REST}/model-versions/get-download-uri", name=version.name, version=version.version)
        location = str(answer.get("artifact_uri", ""))
        if location.startswith("runs:/"):
            run_id, _, path = location.removeprefix("runs:/").strip("/").partition("/")
            run = self._json(f"{REST}/runs/get", run_id=run_id).get("run", {})
            root = str(run.get("info", {}).get("artifact_uri", ""))
            if not root:
                raise RegistryError(f"run {run_id} of {location} has no artefact root")
            location = f"{root.rstrip('/')}/{path}" if path else root
        return location

    def download(self, artifact_uri: str, dest: Path) -> Path | None:
        """Download the directory at ``artifact_uri`` into ``dest`` and return ``dest``; None when the URI is not one
        the server proxies (``mlflow-artifacts:``): the MLflow client knows the other stores."""
        parts = urllib.parse.urlsplit(artifact_uri)
        if parts.scheme != PROXIED_SCHEME:
            return None
        if parts.netloc:  # mlflow-artifacts://host:port/path: that server, reached like the tracking server
            scheme = urllib.parse.urlsplit(self.base).scheme
            base = f"{scheme}://{parts.netloc}"
        else:
            base = self.base
        self._download_dir(base, parts.path.strip("/"), dest)
        return dest

    def _download_dir(self, base: str, path: str, dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        listing = self._json(ARTIFACTS, base=base, path=path)
        for entry in listing.get("files", []):
            name = str(entry["path"]).rsplit("/", 1)[-1]
            if name in ("", ".", ".."):
                raise RegistryError(f"the artefact listing of {path!r} names a file {entry['path']!r}")
            if entry.get("is_dir"):
                self._download_dir(base, f"{path}/{name}", dest / name)
                continue
            url = f"{base}{ARTIFACTS}/{urllib.parse.quote(f'{path}/{name}')}"
            with self._open(url) as response, (dest / name).open("wb") as out:
                shutil.copyfileobj(response, out)

    def _json(self, endpoint: str, base: str | None = None, **params: str) -> dict[str, Any]:
        url = f"{base or self.base}{endpoint}?{urllib.parse.urlencode(params)}"
        with self._open(url) as response:
            answer = json.loads(response.read())
        if not isinstance(answer, dict):
            raise RegistryError(f"GET {url} answered {type(answer).__name__}, not a JSON object")
        return answer

    def _open(self, url: str) -> Any:
        """``urlopen``, with MLflow's error body (``error_code``, ``message``) turned into a :class:`RegistryError`;
        no answer at all (refused, timed out, TLS) is a :class:`RegistryError` without a code."""
        request = urllib.request.Request(url, headers=self._headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s, context=self._tls)
        except urllib.error.HTTPError as e:
            body = e.read()[:4000]
            try:
                error = json.loads(body)
                code, message = error.get("error_code"), error.get("message")
            except (ValueError, AttributeError):
                code, message = None, None
            detail = message or body.decode(errors="replace").strip()
            raise RegistryError(f"{detail} (HTTP {e.code})", code or HTTP_ERROR_CODES.get(e.code)) from e
        except (urllib.error.URLError, OSError) as e:  # refused, reset, timed out, name not resolved, TLS
            raise RegistryError(f"{url}: {getattr(e, 'reason', None) or e}") from e


def _version(answer: dict[str, Any]) -> Version:
    mv = answer.get("model_version") or {}
    try:
        return Version(str(mv["name"]), str(mv["version"]), str(mv.get("source", "")))
    except KeyError as e:
        raise RegistryError(f"the registry's answer has no model version {e}: {answer!r:.300}") from e
