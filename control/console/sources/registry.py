"""The MLflow registry as the console shows it: versions of the registered model with their aliases, the gate's
decision (``gate.*`` tags), holdout metrics of their run, drift and rollout tags, and links into the MLflow UI."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from model.errors import UnavailableError

log = logging.getLogger(__name__)

#: Run metrics shown per version (the training run's holdout evaluation, ``model.evaluate``).
HOLDOUT_METRICS = ("macro_f1", "accuracy", "brier", "ece", "us_per_text_single")


@dataclass
class Registry:
    """Reads one registered model; results are cached for ``ttl_s`` (the pages poll)."""

    tracking_uri: str
    registered_model: str
    ui_url: str
    ttl_s: float = 5.0
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[float, list[dict[str, Any]]] | None = None
        self._client: Any = None

    def client(self) -> Any:
        """An MLflow client for the tracking and registry server."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def versions(self) -> list[dict[str, Any]]:
        """Every version, newest first (cached)."""
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl_s:
                return self._cached[1]
        rows = self._read()
        with self._lock:
            self._cached = (time.monotonic(), rows)
        return rows

    def _read(self) -> list[dict[str, Any]]:
        from mlflow.exceptions import MlflowException

        from model.registry import wait_for_tracking_server

        wait_for_tracking_server(self.tracking_uri, self.timeout_s)
        client = self.client()
        try:
            model = client.get_registered_model(self.registered_model)
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise UnavailableError(f"MLflow registry {self.tracking_uri}: {e}") from e
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        rows = []
        for v in client.search_model_versions(f"name='{self.registered_model}'"):
            run: dict[str, Any] = {"metrics": {}, "experiment_id": None}
            if v.run_id:
                try:
                    r = client.get_run(v.run_id)
                    run = {"metrics": r.data.metrics, "experiment_id": r.info.experiment_id}
                except MlflowException as e:
                    log.warning("run %s of version %s: %s", v.run_id, v.version, e)
            rows.append(self._row(v, sorted(aliases.get(str(v.version), [])), run))
        rows.sort(key=lambda row: int(row["version"]), reverse=True)
        return rows

    def _row(self, v: Any, aliases: list[str], run: dict[str, Any]) -> dict[str, Any]:
        tags: dict[str, str] = dict(v.tags or {})
        gate = {k.removeprefix("gate."): val for k, val in tags.items() if k.startswith("gate.")}
        drift = {k.removeprefix("drift."): val for k, val in tags.items() if k.startswith("drift.")}
        ui = self.ui_url.rstrip("/")
        experiment = run["experiment_id"]
        return {
            "version": str(v.version),
            "aliases": aliases,
            "created_at": (v.creation_timestamp or 0) / 1000.0,
            "status": v.status,
            "run_id": v.run_id,
            "gate": gate,
            "metrics": {k: run["metrics"][k] for k in HOLDOUT_METRICS if k in run["metrics"]},
            "drift_tags": drift,
            "rollouts": rollout_tags(tags),
            "links": {
                "version": f"{ui}/#/models/{self.registered_model}/versions/{v.version}",
                "run": f"{ui}/#/experiments/{experiment}/runs/{v.run_id}" if v.run_id and experiment else None,
            },
        }


def rollout_tags(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The latest rollout decision per environment from a version's ``rollout.<env>.*`` tags (the rollout
    command's record: decision, step, step_index, reason, checks as JSON, stable_version, at)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in tags.items():
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "rollout":
            continue
        _, environment, field = parts
        entry = out.setdefault(environment, {})
        if field == "checks":
            try:
                entry["checks"] = json.loads(value)
            except ValueError:
                entry["checks"] = {}
        else:
            entry[field] = value
    return out
