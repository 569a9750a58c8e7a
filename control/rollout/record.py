"""Every rollout decision in the model registry: MLflow tags ``rollout.<environment>.*`` on the candidate's version.

Tags (overwritten by each decision; the history is in the Kubernetes Events and the JSON log lines):
``rollout.<env>.decision`` (started, resumed, advance, hold, rollback, promoted, rolled_back), ``.step``
(``canary 25%``), ``.step_index`` (``3/4``), ``.reason``, ``.checks`` (JSON: each check's status, value,
threshold and corrected p-value), ``.stable_version``, ``.at`` (ISO time). A registry that cannot be reached does
not stop a rollout: the failure is logged and the decision is still an Event and a log line.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

#: Longest tag value written (MLflow refuses longer ones).
MAX_TAG = 5000


class MlflowJournal:
    """Writes the decision tags; a no-op without a tracking URI."""

    def __init__(self, tracking_uri: str | None, registered_model: str) -> None:
        """Nothing is contacted until the first record."""
        self.tracking_uri = tracking_uri
        self.registered_model = registered_model
        self._client: Any = None

    def tags(self, environment: str, record: dict[str, Any]) -> dict[str, str]:
        """The tags of one decision."""
        prefix = f"rollout.{environment}."
        values = {"decision": record["decision"], "reason": record["reason"], "at": record["at"],
                  "step": record.get("step"), "step_index": record.get("step_index"),
                  "stable_version": record.get("stable_version")}
        if "checks" in record:
            values["checks"] = json.dumps(record["checks"], separators=(",", ":"), default=str)
        return {prefix + k: str(v)[:MAX_TAG] for k, v in values.items() if v is not None}

    def record(self, environment: str, version: str, record: dict[str, Any]) -> None:
        """Tag the version; log (not raise) when the registry cannot be written."""
        if not self.tracking_uri:
            return
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        try:
            for key, value in self.tags(environment, record).items():
                self._client.set_model_version_tag(self.registered_model, version, key, value)
        except (MlflowException, OSError) as e:
            log.warning("cannot tag %s version %s in MLflow (%s); the decision is in the Events and this log",
                        self.registered_model, version, e)
