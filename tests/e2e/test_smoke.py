"""The checks ``scripts/smoke.sh`` runs against a deployed kube-sentiment (the kind e2e workflow's and a laptop's
cluster): each test is one smoke.sh action, on the environment and arguments smoke.sh passes in ``KS_SMOKE_ENV`` and
``KS_SMOKE_ARGS``. The checks themselves live in ``tests/support/cluster_checks.py`` (the real-pods tier runs the
same ones). Without ``KS_SMOKE_ENV`` (the ordinary test run, which has no deployed release) they are skipped.
"""

from __future__ import annotations

import os

import pytest

from tests.support.cluster_checks import SPLIT_Z, Release, mlflow_helm_test

ENV = os.environ.get("KS_SMOKE_ENV", "")
ARGS = os.environ.get("KS_SMOKE_ARGS", "").split()

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.cluster,
    pytest.mark.skipif(not ENV, reason="runs through scripts/smoke.sh against a deployed release"),
]


def test_mlflow() -> None:
    mlflow_helm_test()


def test_calls() -> None:
    Release(ENV).calls()


def test_split() -> None:
    weight, n = int(ARGS[0]), int(ARGS[1]) if len(ARGS) > 1 else 1000
    Release(ENV).split(weight, n, float(os.environ.get("KS_SPLIT_Z", SPLIT_Z)))


def test_only() -> None:
    Release(ENV).only(ARGS[0], int(ARGS[1]) if len(ARGS) > 1 else 50)


def test_registry() -> None:
    Release(ENV).registry(ARGS[0] if ARGS else None)


def test_drift() -> None:
    Release(ENV).drift()


def test_traffic() -> None:
    Release(ENV).traffic(ARGS[0])


def test_rollout() -> None:
    Release(ENV).rollout(ARGS[0], ARGS[1])
