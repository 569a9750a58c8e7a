"""Session fixture for the cluster tier: a real local control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok fake nodes) built from the pinned Go modules by ``scripts/build-tools.sh``.

Uses ``<repo>/../shared/crds`` (read-only developer material) for the KServe and Gateway API CRDs; there is no
network source to fall back to, so the fixture fails, naming the missing path, when it is absent.

Environment:
    KS_TOOLS_DIR       tools cache (default ``~/.cache/kube-sentiment/tools``), passed to build-tools.sh.
    KS_CLUSTER_KEEP=1  keep the work directory (logs, kubeconfig) after the session for debugging.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from localcluster import ClusterError, LocalCluster, install_crds, wait_until

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
BUILD_TOOLS = REPO / "scripts" / "build-tools.sh"
#: build-tools.sh exit code for "Go missing or module proxy unreachable".
EXIT_NO_GO = 3

__all__ = ["Cluster", "ClusterError", "wait_until"]


@dataclass
class Cluster:
    """What a cluster test gets: the kubeconfig, the tools' bin dir, and helpers running kubectl and helm."""

    local: LocalCluster
    bin_dir: Path
    repo: Path
    shared: Path

    @property
    def kubeconfig(self) -> Path:
        assert self.local.kubeconfig is not None
        return self.local.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses: only this cluster's kubeconfig, helm state inside the work dir."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "HELM_"))}
        workdir = self.local.workdir
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            HOME=str(workdir),
            HELM_CACHE_HOME=str(workdir / "helm" / "cache"),
            HELM_CONFIG_HOME=str(workdir / "helm" / "config"),
            HELM_DATA_HOME=str(workdir / "helm" / "data"),
        )
        return env

    def run(self, *argv: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run a command against the cluster; with ``check`` a failure raises with stdout and stderr."""
        result = subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def kubectl(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kwargs)

    def helm(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.bin_dir / "helm"), *args, **kwargs)


def _build_tools() -> Path:
    """Build (or reuse) the pinned tools; skip the tier loudly when Go or the module proxy is missing."""
    result = subprocess.run(["bash", str(BUILD_TOOLS)], capture_output=True, text=True, check=False, timeout=3600)
    if result.returncode == EXIT_NO_GO:
        message = f"CLUSTER TIER SKIPPED: {result.stderr.strip()}"
        print(message, file=sys.stderr)
        pytest.skip(message)
    if result.returncode != 0:
        pytest.fail(f"scripts/build-tools.sh failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``<repo>/../shared``; the CRDs have no other offline source, so its absence is an error."""
    if not (SHARED / "crds").is_dir():
        pytest.fail(f"{SHARED / 'crds'} is missing: the cluster tier installs the KServe and Gateway API CRDs from it")
    return SHARED


@pytest.fixture(scope="session")
def cluster(shared_dir: Path) -> Iterator[Cluster]:
    """A started local control plane with the shared CRDs Established; always torn down at session end."""
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH; the cluster tier drives the API server with it")
    bin_dir = _build_tools()
    workdir = Path(tempfile.mkdtemp(prefix="ks-cluster-"))
    local = LocalCluster(workdir=workdir, bin_dir=bin_dir)
    try:
        local.start(timeout=180)
        crds = shared_dir / "crds"
        install_crds(local, [crds / "kserve-v0.20.0", crds / "gateway-api-v1.5.1"], timeout=120)
        namespaces = REPO / "k8s" / "namespaces.yaml"
        if namespaces.exists():  # what a real cluster gets before the charts (k8s/ is the product's bootstrap)
            local.kubectl("apply", "--server-side", "-f", str(namespaces))
        yield Cluster(local=local, bin_dir=bin_dir, repo=REPO, shared=shared_dir)
    except ClusterError as error:
        pytest.fail(f"local control plane failed: {error}\n{local.diagnostics()}")
    finally:
        local.stop()
        if os.environ.get("KS_CLUSTER_KEEP") == "1":
            print(f"cluster work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for finalization)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
