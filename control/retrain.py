"""Retraining that starts itself: a drift or live-quality verdict of the drift job creates a training Job.

The chart renders the training Job (its pod template is the chart's training template, with production data) into
a ConfigMap mounted in the drift pod; on a verdict named in ``retrain_on`` the drift job POSTs it to the Kubernetes
API with its own ServiceAccount token. That ServiceAccount may create Jobs in its namespace and do nothing else
(no get, list or delete), so the guarantees come from the API server, not from reading state:

* **At most one running, and a cooldown.** The Job always has the same name and ``ttlSecondsAfterFinished`` equal to
  the cooldown. While it exists (running, or finished less than the cooldown ago) a create is refused with 409
  AlreadyExists, which is reported as ``cooldown``; the TTL controller deletes it when the cooldown is over.
* **The gate decides.** The Job runs ``kube-sentiment train``, which moves the ``candidate`` alias only when the
  gate passes; the rollout takes a promoted candidate to production.

A failure to create the Job (no permission, API unreachable) is logged and reported, and does not change the drift
job's exit code: the verdict stays what it is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from model.process import SettingsGroup

log = logging.getLogger(__name__)
Trigger = Literal["drift", "quality"]
REASON_ANNOTATION = "kube-sentiment/retrain-reason"
RUN_ANNOTATION = "kube-sentiment/drift-run"


class RetrainSettings(SettingsGroup):
    """When the drift job starts a training Job, and how it reaches the Kubernetes API (``KS_DRIFT_*``)."""

    model_config = SettingsConfigDict(env_prefix="KS_DRIFT_")

    retrain_on: tuple[Trigger, ...] = ()
    """Verdicts that create a training Job: ``drift`` (the drift verdict is drift), ``quality`` (live quality of a
    version is degraded). Empty: never."""
    retrain_job: Path = Path("/etc/kube-sentiment/retrain/job.json")
    """The Job manifest to create (JSON; the chart renders it from the training template)."""
    kube_api_url: str | None = None
    """Kubernetes API server (default: the in-cluster ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``)."""
    kubernetes_service_host: str | None = Field(None, validation_alias=AliasChoices("KUBERNETES_SERVICE_HOST"))
    """In-cluster API server host (set by Kubernetes in every pod)."""
    kubernetes_service_port: str = Field("443", validation_alias=AliasChoices("KUBERNETES_SERVICE_PORT"))
    """In-cluster API server port (set by Kubernetes in every pod)."""
    service_account_dir: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount")
    """Directory with the ServiceAccount's ``token``, ``ca.crt`` and ``namespace``."""
    retrain_namespace: str | None = None
    """Namespace to create the Job in (default: the ServiceAccount's own)."""

    def api_url(self) -> str | None:
        """The API server's URL, or ``None`` outside a cluster when none is configured."""
        if self.kube_api_url:
            return self.kube_api_url.rstrip("/")
        if self.kubernetes_service_host:
            host = self.kubernetes_service_host
            host = f"[{host}]" if ":" in host else host
            return f"https://{host}:{self.kubernetes_service_port}"
        return None


def reasons(on: tuple[str, ...], drift_verdict: str, quality_verdict: str | None) -> list[str]:
    """The verdicts of this run that ``on`` says start a training Job."""
    found = []
    if "drift" in on and drift_verdict == "drift":
        found.append("drift")
    if "quality" in on and quality_verdict == "degraded":
        found.append("quality")
    return found


def create_job(api_url: str, namespace: str, manifest: dict[str, Any], token: str,
               ca_file: Path | None = None) -> tuple[str, str]:
    """POST the Job (TLS verified with ``ca_file``, else the system's CAs); ``(outcome, message)`` with outcome
    ``created``, ``cooldown`` (a Job of that name exists) or ``failed``."""
    import ssl

    import httpx

    url = f"{api_url}/apis/batch/v1/namespaces/{namespace}/jobs"
    name = manifest.get("metadata", {}).get("name", "?")
    try:
        verify = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        response = httpx.post(url, json=manifest, headers={"Authorization": f"Bearer {token}"}, verify=verify,
                              timeout=30)
    except httpx.HTTPError as e:
        return "failed", f"cannot reach the Kubernetes API at {api_url}: {type(e).__name__}: {e}"
    if response.status_code == 201:
        return "created", f"created Job {namespace}/{name}"
    try:
        status = response.json()
        detail = status.get("message", response.text[:300])
    except ValueError:
        status, detail = {}, response.text[:300]
    if response.status_code == 409 and status.get("reason") == "AlreadyExists":
        return "cooldown", (f"Job {namespace}/{name} still exists (running, or finished within the cooldown); "
                            "no second one")
    if response.status_code in (401, 403):
        return "failed", (f"the Kubernetes API refused to create Job {namespace}/{name} (HTTP "
                          f"{response.status_code}): {detail}; the drift job's ServiceAccount needs 'create' on "
                          f"batch/jobs in {namespace}")
    return "failed", f"creating Job {namespace}/{name} failed with HTTP {response.status_code}: {detail}"


def trigger(settings: RetrainSettings, drift_verdict: str, quality_verdict: str | None, run_id: str,
            why: str) -> dict[str, Any]:
    """Create the training Job when a verdict asks for it; what happened, for the report (``retrain``)."""
    found = reasons(settings.retrain_on, drift_verdict, quality_verdict)
    result: dict[str, Any] = {"on": list(settings.retrain_on), "reasons": found, "job": None}
    if not found:
        return result | {"outcome": "not_triggered", "message": "no verdict of this run asks for retraining"}
    try:
        manifest = json.loads(settings.retrain_job.read_text())
        sa = settings.service_account_dir
        token = (sa / "token").read_text().strip()
        namespace = settings.retrain_namespace or (sa / "namespace").read_text().strip()
    except (OSError, ValueError) as e:
        message = f"cannot prepare the training Job: {e}"
        log.error("retraining not started: %s", message)
        return result | {"outcome": "failed", "message": message}
    api = settings.api_url()
    if api is None:
        message = "no Kubernetes API: set kube_api_url (KS_DRIFT_KUBE_API_URL) outside a cluster"
        log.error("retraining not started: %s", message)
        return result | {"outcome": "failed", "message": message}
    metadata = manifest.setdefault("metadata", {})
    metadata.setdefault("annotations", {}).update({REASON_ANNOTATION: why[:1000], RUN_ANNOTATION: run_id})
    ca_file = sa / "ca.crt"
    outcome, message = create_job(api, namespace, manifest, token, ca_file if ca_file.is_file() else None)
    level = logging.ERROR if outcome == "failed" else logging.INFO
    log.log(level, "retraining (%s): %s", ", ".join(found), message,
            extra={"retrain_outcome": outcome, "retrain_reasons": found})
    return result | {"outcome": outcome, "message": message, "job": metadata.get("name"), "namespace": namespace}
