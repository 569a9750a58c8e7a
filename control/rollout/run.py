"""``kube-sentiment rollout run ENV VERSION``: take a registry version through the policy's steps in one environment.

The policy is the release's own (its ``rollout`` values, schema-checked by the chart) unless ``--policy-file`` is
given. Each step is applied with ``scripts/canary.sh`` (a ``helm upgrade --reuse-values``), analysed every interval
(as a Job in the namespace, or here with ``--analysis local``), and the candidate is promoted after the last step
(``canary.sh promote``) or rolled back to the revision before the rollout (``canary.sh rollback``) on a failed check
or a passed progress deadline. Every decision becomes MLflow tags ``rollout.<env>.*`` on the version, a Kubernetes
Event on the serving object and a JSON log line. Exit codes: 0 promoted (or already stable), 3 rolled back, 75
another rollout (or a hand-started candidate) holds the environment, 78 bad settings or policy, 1 other error.
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from control.rollout.analyze import AnalysisSources, local_analyzer
from control.rollout.driver import Analyzer, Driver
from control.rollout.helm import HelmTarget, JobAnalyzer, Kube
from control.rollout.policy import RolloutPolicy, load_policy, policy_from_values
from control.rollout.record import MlflowJournal
from model.process import Outcome, ProcessSettings, run_process, settings_parser


class RunSettings(ProcessSettings):
    """Everything ``kube-sentiment rollout run`` needs (env ``KS_ROLLOUT_*``)."""

    model_config = SettingsConfigDict(env_prefix="KS_ROLLOUT_")

    environment: str = Field(min_length=1)
    """The environment (namespace of the release ``kube-sentiment``): staging or production."""
    version: str = Field(pattern=r"^[0-9]+$")
    """The registry version to roll out."""
    analysis: Literal["job", "local"] = "job"
    """Where each analysis runs: ``job`` (a Job in the namespace, rendered from the chart, reading the sink and
    Prometheus from inside the cluster) or ``local`` (here, from ``--source`` and ``--prometheus-url``)."""
    sources: AnalysisSources = Field(default_factory=AnalysisSources)
    """Inputs of a ``local`` analysis."""
    policy_file: Path | None = None
    """Use this policy instead of the release's ``rollout`` values (a values file or that block alone)."""
    chart: Path = Path("helm/kube-sentiment")
    """The chart (``canary.sh`` upgrades with it; the analysis Job is rendered from it)."""
    canary_script: Path = Path("scripts/canary.sh")
    """``scripts/canary.sh``: how each step, the promotion and the roll back are applied."""
    helm: str = "helm"
    """Helm binary."""
    kubectl: str = "kubectl"
    """kubectl binary."""
    timeout: str = "10m"
    """Wait timeout of each helm upgrade or rollback (``KS_TIMEOUT`` of canary.sh)."""
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("KS_ROLLOUT_TRACKING_URI",
                                                                          "MLFLOW_TRACKING_URI"))
    """MLflow server the decisions are tagged in (``MLFLOW_TRACKING_URI`` is honoured; unset: no tags)."""
    registered_model: str = "sentiment"
    """Registered model whose version is rolled out."""


def build_parser() -> argparse.ArgumentParser:
    """``kube-sentiment rollout run ENV VERSION [flags]``."""
    parser = settings_parser(
        RunSettings,
        prog="kube-sentiment rollout run",
        description="Roll out registry version VERSION in environment ENV through the policy's steps (shadow, then "
        "canary shares), analysing each, then promote it or roll it back. A killed run started again continues "
        "where the release is. Exit codes: 0 promoted, 3 rolled back, 75 another rollout holds the environment, "
        "78 bad settings or policy, 1 other error.",
        skip=("environment", "version"),
    )
    parser.add_argument("environment", metavar="ENV", help="environment (namespace): staging or production")
    parser.add_argument("version", metavar="VERSION", help="registry version of the candidate")
    return parser


def owner() -> str:
    """Who drives: user, host and process."""
    return f"{getpass.getuser()}@{os.uname().nodename} pid {os.getpid()}"


def _run(settings: RunSettings, _: argparse.Namespace) -> Outcome:
    kube = Kube(settings.environment, settings.chart, settings.canary_script, settings.helm, settings.kubectl,
                settings.timeout)
    target = HelmTarget(kube, settings.version)
    policy: RolloutPolicy = (load_policy(settings.policy_file) if settings.policy_file is not None
                             else policy_from_values(target.values(), f"the release in {settings.environment}"))
    analyzer: Analyzer = (JobAnalyzer(kube) if settings.analysis == "job" else
                          local_analyzer(settings.sources.inputs(), policy.analysis, settings.environment,
                                         settings.sources.model_name, settings.json_logs))
    driver = Driver(target, analyzer, policy, MlflowJournal(settings.tracking_uri, settings.registered_model),
                    owner=owner())
    outcome = driver.run(settings.version)
    return Outcome(outcome.exit_code, outcome.as_dict())


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment rollout run``: returns the exit code."""
    return run_process(RunSettings, argv, _run, parser=build_parser())
