"""What the scripts need of the KServe controller, on the local control plane (which runs none): for every
InferenceService, the Deployments KServe's Standard mode creates (``<isvc>-predictor``, and
``<isvc>-<name>-predictor`` for each ``spec.canary[].predictor.name``) and a ``Ready`` condition.
``scripts/lib.sh``'s ``wait_kserve`` waits for exactly these; kwok runs their pods. A stand-in for a controller
that cannot run here, implementing that contract only."""

from __future__ import annotations

import json
import threading
from typing import Any

from localcluster import Cluster

LABEL = "kube-sentiment-test/kserve-standin"


def _deployment(namespace: str, name: str) -> dict[str, Any]:
    labels = {"app": name, LABEL: "true"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": labels},
            "spec": {"automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "kserve-container", "image": "kube-sentiment:standin",
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}},
    }


class KServeStandIn:
    """Reconciles the InferenceServices of one namespace every ``interval_s`` in a thread, until stopped."""

    def __init__(self, cluster: Cluster, namespace: str, interval_s: float = 0.5) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kserve-standin", daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> KServeStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as e:  # keep reconciling; the test sees the errors if it fails
                self.errors.append(repr(e))
            self._stop.wait(self.interval_s)

    def reconcile(self) -> None:
        """Create the Deployments each InferenceService needs, delete the others, mark them Ready."""
        ns = self.namespace
        isvcs = json.loads(self.cluster.kubectl("-n", ns, "get", "inferenceservices.serving.kserve.io", "-o",
                                                "json").stdout)["items"]
        wanted: set[str] = set()
        for isvc in isvcs:
            if isvc["metadata"].get("deletionTimestamp"):
                continue
            name = isvc["metadata"]["name"]
            wanted.add(f"{name}-predictor")
            for canary in isvc["spec"].get("canary") or []:
                wanted.add(f"{name}-{canary['predictor']['name']}-predictor")
            conditions = (isvc.get("status") or {}).get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                status = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                                     "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
                self.cluster.kubectl("-n", ns, "patch", "inferenceservices.serving.kserve.io", name,
                                     "--subresource=status", "--type=merge", "-p", json.dumps(status))
        existing = json.loads(self.cluster.kubectl("-n", ns, "get", "deployments", "-l", LABEL, "-o",
                                                   "json").stdout)["items"]
        have = {d["metadata"]["name"] for d in existing}
        for name in sorted(wanted - have):
            self.cluster.kubectl("-n", ns, "apply", "-f", "-", stdin=json.dumps(_deployment(ns, name)))
        for name in sorted(have - wanted):
            self.cluster.kubectl("-n", ns, "delete", "deployment", name, "--wait=false")
