"""Fixtures for the chart tests: the pinned helm/kubeconform binaries and the strict offline schema directory.

Tests that need a missing tool are skipped with a loud reason naming the command that provides it
(`scripts/build-tools.sh helm kubeconform`); nothing is skipped silently.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import chartlib
import pytest

from tests.support import tools_dir


def _skip_loudly(reason: str) -> None:
    print(f"\n*** chart tests: SKIPPED: {reason}", flush=True)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    try:
        return chartlib.tool("helm")
    except chartlib.ToolMissing as e:
        _skip_loudly(str(e))
        raise


@pytest.fixture(scope="session")
def kubeconform_bin() -> Path:
    try:
        return chartlib.tool("kubeconform")
    except chartlib.ToolMissing as e:
        _skip_loudly(str(e))
        raise


def _schema_cache_key() -> str:
    digest = hashlib.sha256(Path(chartlib.__file__).read_bytes())
    for crd in chartlib.crd_files():
        digest.update(crd.name.encode())
        digest.update(crd.read_bytes())
    return f"{chartlib.versions()['KUBERNETES_VERSION']}-{digest.hexdigest()[:16]}"


@pytest.fixture(scope="session")
def schema_dir(kubeconform_bin: Path) -> Path:
    """Strict JSON schemas for k8s built-in kinds (OpenAPI v3 of the pinned version) and the pinned CRDs.

    Generated once per machine into the tools cache (about 10 s), keyed by the Kubernetes version, this
    module's source and the CRD files.
    """
    try:
        target = tools_dir() / "schemas" / _schema_cache_key()
    except chartlib.ToolMissing as e:
        _skip_loudly(str(e))
    if (target / "v1" / "v1" / "pod.json").exists():
        return target
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        chartlib.build_schema_dir(staging)
    except chartlib.ToolMissing as e:
        shutil.rmtree(staging, ignore_errors=True)
        _skip_loudly(str(e))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target
