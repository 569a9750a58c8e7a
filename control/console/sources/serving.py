"""What serves where: the tracks (stable, canary, shadow) of each environment with model version, traffic share,
ready replicas, the rollout lock, and rollout Events. Two adapters with one interface:

* :class:`LocalServing`: predictors listed by URL (the local loop's processes); version and readiness from their V2
  metadata, shares from the settings.
* :class:`KubernetesServing`: the chart's objects read with the ``kubernetes`` client (get/list only, in the
  configured namespaces): serving pods (track and model version labels, readiness, pod IPs), Deployments (desired
  replicas), the InferenceService (canary share, KServe mode) or the HTTPRoute (backend weights and mirror,
  deployment mode), the lock annotation ``kube-sentiment/rollout`` and the ``Rollout*`` Events.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from control.console.sources.metrics import ScrapeTarget

log = logging.getLogger(__name__)

TRACK_ORDER = {"stable": 0, "canary": 1, "shadow": 2}
#: The serving pods of the chart (``helm/kube-sentiment``: component and part-of labels).
SERVING_SELECTOR = "app.kubernetes.io/part-of=kube-sentiment,app.kubernetes.io/component=serving"
PART_OF = "app.kubernetes.io/part-of=kube-sentiment"
TRACK_LABEL, VERSION_LABEL, ENV_LABEL = "kube-sentiment/track", "kube-sentiment/model-version", \
    "kube-sentiment/environment"
#: The rollout command's lock on the serving object (control/rollout/helm.py).
LOCK_ANNOTATION = "kube-sentiment/rollout"


@dataclass
class Track:
    """One track of one environment."""

    track: str
    model_version: str | None
    weight: int | None
    """Percent of the requests it answers (a shadow: percent mirrored to it); ``None`` when unknown."""
    ready: int
    desired: int | None
    endpoints: list[str]
    """Base URLs of its ready instances (V1 and ``/metrics``)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON form (no endpoints: pod addresses stay inside)."""
        out = asdict(self)
        out.pop("endpoints")
        return out


class ServingSource(Protocol):
    """What the Overview and Try it pages read about serving."""

    def environments(self) -> list[str]:
        """The environments, in display order."""

    def tracks(self, environment: str) -> list[Track]:
        """The tracks of one environment (stable first)."""

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every ready predictor instance, for the ``/metrics`` scraper."""

    def lock(self, environment: str) -> dict[str, Any] | None:
        """The rollout in progress (the lock's content) or ``None``."""

    def events(self, environment: str) -> list[dict[str, Any]]:
        """Rollout Events, oldest first: ``{at, reason, message, type}``."""


def _ordered(tracks: list[Track]) -> list[Track]:
    return sorted(tracks, key=lambda t: (TRACK_ORDER.get(t.track, 9), t.model_version or ""))


class LocalServing:
    """Predictors at known URLs."""

    def __init__(self, predictors: list[tuple[str, str, str]], weights: dict[tuple[str, str], int], model_name: str,
                 timeout_s: float) -> None:
        """``predictors``: ``(environment, track, url)``."""
        self.predictors = predictors
        self.weights = weights
        self.model_name = model_name
        self.timeout_s = timeout_s

    def environments(self) -> list[str]:
        """In the order first listed."""
        return list(dict.fromkeys(env for env, _, _ in self.predictors))

    def _probe(self, url: str) -> tuple[bool, str | None]:
        """Ready, and the version from the V2 metadata's platform (``kube-sentiment/sklearn;version=3;...``)."""
        try:
            ready = httpx.get(f"{url}/v2/models/{self.model_name}/ready", timeout=self.timeout_s).status_code == 200
            meta = httpx.get(f"{url}/v2/models/{self.model_name}", timeout=self.timeout_s)
            version = None
            if meta.status_code == 200:
                for part in str(meta.json().get("platform", "")).split(";"):
                    if part.startswith("version="):
                        version = part.removeprefix("version=")
            return ready, version
        except (httpx.HTTPError, ValueError):
            return False, None

    def tracks(self, environment: str) -> list[Track]:
        """One track per listed predictor."""
        rows = [(track, url) for env, track, url in self.predictors if env == environment]
        out = []
        for track, url in rows:
            ready, version = self._probe(url)
            weight = self.weights.get((environment, track))
            if weight is None and track == "stable" and len(rows) == 1:
                weight = 100
            out.append(Track(track, version, weight, int(ready), 1, [url] if ready else []))
        return _ordered(out)

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every listed predictor (a down one simply fails its scrape)."""
        return [ScrapeTarget(env, track, url) for env, track, url in self.predictors]

    def lock(self, environment: str) -> dict[str, Any] | None:
        """No lock object without a cluster (the rollout's own log says it)."""
        return None

    def events(self, environment: str) -> list[dict[str, Any]]:
        """No Events without a cluster."""
        return []


def _ready(pod: Any) -> bool:
    conditions = (pod.status.conditions or []) if pod.status else []
    return pod.status is not None and pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in conditions)


class KubernetesServing:
    """The chart's objects in ``namespaces``, read with the least-privilege ServiceAccount (or a kubeconfig)."""

    def __init__(self, namespaces: list[str], serving_port: int, timeout_s: float,
                 kubeconfig: Path | None = None, api_client: Any = None) -> None:
        """Loads the in-cluster configuration (or ``kubeconfig``) now."""
        from kubernetes import client, config

        if api_client is None:
            if kubeconfig is not None:
                api_client = config.new_client_from_config(config_file=str(kubeconfig))
            else:
                config.load_incluster_config()
                api_client = client.ApiClient()
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.namespaces = namespaces
        self.serving_port = serving_port
        self.timeout_s = timeout_s
        self._env_of: dict[str, str] = {}

    # --- names -------------------------------------------------------------------------------------------------
    def environments(self) -> list[str]:
        """The environment of each namespace: its objects' ``kube-sentiment/environment`` label, else its name."""
        out = []
        for namespace in self.namespaces:
            env = self._env_of.get(namespace)
            if env is None:
                env = namespace
                try:
                    pods: list[Any] = self.core.list_namespaced_pod(
                        namespace, label_selector=SERVING_SELECTOR, limit=1, _request_timeout=self.timeout_s).items
                    if pods and (pods[0].metadata.labels or {}).get(ENV_LABEL):
                        env = pods[0].metadata.labels[ENV_LABEL]
                        self._env_of[namespace] = env
                except Exception as e:  # an unreachable API shows the namespace name, and the error elsewhere
                    log.warning("namespace %s: %s", namespace, e)
            out.append(env)
        return out

    def namespace(self, environment: str) -> str:
        """The namespace of ``environment``."""
        self.environments()
        for namespace in self.namespaces:
            if self._env_of.get(namespace, namespace) == environment:
                return namespace
        raise KeyError(environment)

    # --- reading -----------------------------------------------------------------------------------------------
    def _custom(self, group: str, version: str, namespace: str, plural: str) -> list[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException

        try:
            body: Any = self.custom.list_namespaced_custom_object(group, version, namespace, plural,
                                                             label_selector=PART_OF, _request_timeout=self.timeout_s)
        except ApiException as e:
            if e.status == 404:  # the CRD is not installed (the other serving mode)
                return []
            raise
        items: list[dict[str, Any]] = body.get("items", [])
        return items

    def _weights(self, namespace: str) -> tuple[dict[str, int], dict[str, Any] | None]:
        """Shares by track and the serving object (for the lock) from the InferenceService or the HTTPRoute."""
        for isvc in self._custom("serving.kserve.io", "v1beta1", namespace, "inferenceservices"):
            canaries: list[dict[str, Any]] = isvc.get("spec", {}).get("canary", []) or []
            canary = sum(int(c.get("trafficPercent", 0)) for c in canaries)
            weights: dict[str, int] = {"stable": 100 - canary}
            if canary:
                weights["canary"] = canary
            return weights, isvc
        for route in self._custom("gateway.networking.k8s.io", "v1", namespace, "httproutes"):
            weights = {}
            for rule in route.get("spec", {}).get("rules", []):
                refs = rule.get("backendRefs", []) or []
                total = sum(int(r.get("weight", 1)) for r in refs) or 1
                for ref in refs:
                    track = str(ref.get("name", "")).rsplit("-", 1)[-1]
                    weights[track] = round(100 * int(ref.get("weight", 1)) / total)
                for f in rule.get("filters", []) or []:
                    mirror = f.get("requestMirror")
                    if f.get("type") == "RequestMirror" and mirror:
                        track = str(mirror.get("backendRef", {}).get("name", "")).rsplit("-", 1)[-1]
                        weights[track] = int(mirror.get("percent", 100))
                break
            return weights, None
        return {}, None

    def tracks(self, environment: str) -> list[Track]:
        """Pods grouped by track and version, with desired replicas and shares."""
        namespace = self.namespace(environment)
        pods: list[Any] = self.core.list_namespaced_pod(namespace, label_selector=SERVING_SELECTOR,
                                                        _request_timeout=self.timeout_s).items
        # every Deployment: KServe's own (kserve mode) carry the chart's labels on their pod template only
        deployments: list[Any] = self.apps.list_namespaced_deployment(namespace,
                                                                      _request_timeout=self.timeout_s).items
        weights, _ = self._weights(namespace)
        groups: dict[tuple[str, str | None], Track] = {}
        for pod in pods:
            labels = pod.metadata.labels or {}
            key = (labels.get(TRACK_LABEL, "stable"), labels.get(VERSION_LABEL))
            track = groups.setdefault(key, Track(key[0], key[1], weights.get(key[0]), 0, None, []))
            if _ready(pod) and pod.status.pod_ip:
                track.ready += 1
                track.endpoints.append(f"http://{pod.status.pod_ip}:{self.serving_port}")
        for d in deployments:
            labels = (d.spec.template.metadata.labels or {}) if d.spec and d.spec.template.metadata else {}
            if labels.get("app.kubernetes.io/component") != "serving" or \
                    labels.get("app.kubernetes.io/part-of") != "kube-sentiment":
                continue
            key = (labels.get(TRACK_LABEL, "stable"), labels.get(VERSION_LABEL))
            track = groups.setdefault(key, Track(key[0], key[1], weights.get(key[0]), 0, None, []))
            track.desired = (track.desired or 0) + int(d.spec.replicas or 0)
        return _ordered(list(groups.values()))

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every ready serving pod."""
        out: list[ScrapeTarget] = []
        for environment in self.environments():
            for track in self.tracks(environment):
                out.extend(ScrapeTarget(environment, track.track, url) for url in track.endpoints)
        return out

    def lock(self, environment: str) -> dict[str, Any] | None:
        """The lock annotation on the InferenceService or the stable Deployment."""
        namespace = self.namespace(environment)
        annotations: dict[str, str] = {}
        _, isvc = self._weights(namespace)
        if isvc is not None:
            annotations = isvc.get("metadata", {}).get("annotations") or {}
        else:
            stable: list[Any] = self.apps.list_namespaced_deployment(namespace, label_selector=PART_OF,
                                                                     _request_timeout=self.timeout_s).items
            for d in stable:
                if (d.metadata.labels or {}).get(TRACK_LABEL) == "stable":
                    annotations = d.metadata.annotations or {}
        raw = annotations.get(LOCK_ANNOTATION)
        if not raw:
            return None
        try:
            lock: dict[str, Any] = json.loads(raw)
        except ValueError:
            return {"raw": raw}
        return lock

    def events(self, environment: str) -> list[dict[str, Any]]:
        """The namespace's ``Rollout*`` Events (the rollout command's record on the serving object)."""
        namespace = self.namespace(environment)
        out: list[dict[str, Any]] = []
        events: list[Any] = self.core.list_namespaced_event(namespace, _request_timeout=self.timeout_s).items
        for event in events:
            if not str(event.reason or "").startswith("Rollout"):
                continue
            when = event.last_timestamp or event.event_time or event.first_timestamp
            out.append({"at": when.isoformat() if when else None, "reason": event.reason, "message": event.message,
                        "type": event.type, "object": f"{event.involved_object.kind}/{event.involved_object.name}"})
        out.sort(key=lambda e: e["at"] or "")
        return out
