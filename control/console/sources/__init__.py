"""The console's data sources, one small adapter each, built from the settings by :func:`build_sources`:
``registry`` (MLflow), ``reports`` (drift reports, live quality, class mix from the prediction log), ``metrics``
(predictors' ``/metrics`` or Prometheus), ``serving`` (local predictors or the Kubernetes API), ``rollouts``
(decisions from MLflow tags, Events and log lines), ``predictor`` (Try it and feedback), ``actions`` (rollout
commands)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from control.console.settings import ConsoleSettings
    from control.console.sources.actions import CommandActions
    from control.console.sources.metrics import PrometheusMetrics, Scraper
    from control.console.sources.predictor import PredictorClient
    from control.console.sources.registry import Registry
    from control.console.sources.reports import ClassMix, DriftReports
    from control.console.sources.serving import ServingSource


@dataclass
class Sources:
    """Every adapter the app reads through (``None``: that source is not configured)."""

    serving: ServingSource
    scraper: Scraper | None
    prometheus: PrometheusMetrics | None
    registry: Registry | None
    reports: DriftReports
    class_mix: ClassMix | None
    predictor: PredictorClient
    actions: CommandActions
    namespaces: dict[str, str]
    """Environment -> Kubernetes namespace (the Prometheus ``namespace`` label); the environment itself locally."""


def build_sources(settings: ConsoleSettings) -> Sources:
    """The adapters the settings describe (the Kubernetes client is configured here, nothing is contacted)."""
    import os
    from pathlib import Path

    from control.console.sources.actions import CommandActions
    from control.console.sources.metrics import PrometheusMetrics, Scraper
    from control.console.sources.predictor import PredictorClient
    from control.console.sources.registry import Registry
    from control.console.sources.reports import ClassMix, DriftReports
    from control.console.sources.serving import KubernetesServing, LocalServing

    s = settings
    serving: ServingSource
    namespaces: dict[str, str] = {}
    if s.source == "kubernetes":
        own = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        listed = list(s.namespaces) or ([own.read_text().strip()] if own.exists() else
                                        [os.environ.get("POD_NAMESPACE", "default")])
        kube = KubernetesServing(listed, s.serving_port, s.upstream_timeout_s, s.kubeconfig)
        serving = kube
        namespaces = {env: ns for env, ns in zip(kube.environments(), listed, strict=True)}
    else:
        serving = LocalServing(s.predictor_table(), s.weight_table(), s.model_name, s.upstream_timeout_s)
        namespaces = {env: env for env in serving.environments()}
    prometheus = (PrometheusMetrics(s.prometheus_url, s.scrape_interval_s, s.history_points, s.upstream_timeout_s)
                  if s.prometheus_url else None)
    scraper = None if prometheus else Scraper(serving.scrape_targets, s.scrape_interval_s, s.history_points,
                                              s.upstream_timeout_s)
    registry = (Registry(s.tracking_uri, s.registered_model, s.mlflow_ui_url or s.tracking_uri,
                         timeout_s=s.upstream_timeout_s) if s.tracking_uri else None)
    class_mix = (ClassMix(s.events_source, s.class_mix_hours, s.s3_endpoint_url, s.s3_region)
                 if s.events_source else None)
    actions = CommandActions({"start": s.start_command, "promote": s.promote_command,
                              "rollback": s.rollback_command}, s.action_log_dir)
    return Sources(serving, scraper, prometheus, registry, DriftReports(list(s.drift_dirs)), class_mix,
                   PredictorClient(s.model_name, s.upstream_timeout_s), actions, namespaces)
