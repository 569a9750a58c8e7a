"""Session fixture for the cluster tier: a real local control plane (etcd, kube-apiserver, controller-manager,
scheduler, kwok fake nodes) from the binaries ``scripts/build-tools.sh`` builds from pinned Go modules.

Installs the pinned KServe and Gateway API CRDs (``scripts/build-tools.sh --crds``, through
``chartlib.crd_dirs``) and applies ``k8s/namespaces.yaml`` (what a real cluster gets before the charts).

Environment:
    KS_TOOLS_BIN         bin directory printed by build-tools.sh (scripts/test.sh sets it); else the fixture runs
                         build-tools.sh itself (cached builds are skipped).
    KS_NO_TOOLS_REASON   set by scripts/test.sh when build-tools.sh exited 3: every cluster test is skipped with it.
    KS_CRDS_DIR          CRD folder printed by ``build-tools.sh --crds`` (scripts/test.sh sets it); else it is run.
    KS_TOOLS_DIR         tools cache (default ``~/.cache/kube-sentiment/tools``), read by build-tools.sh.
    KS_CLUSTER_KEEP=1    keep the work directory (logs, kubeconfig) after the session for debugging.
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
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "charts"))

import chartlib
from localcluster import Cluster, ClusterError, LocalCluster, install_crds

REPO = Path(__file__).resolve().parents[2]
BUILD_TOOLS = REPO / "scripts" / "build-tools.sh"
#: build-tools.sh exit code for "Go missing or module proxy unreachable".
EXIT_NO_GO = 3
_SESSION_CLUSTER = pytest.StashKey[Cluster]()
_TOOLS = pytest.StashKey[Path | str]()


def _skip_loudly(reason: str) -> None:
    message = f"CLUSTER TIER SKIPPED: {reason}"
    print(f"\n{'*' * 80}\n{message}\n{'*' * 80}", file=sys.stderr)
    pytest.skip(message)


def _build_tools() -> Path | str:
    """The bin dir of the pinned tools (from scripts/test.sh, or built or reused here), or why there is none."""
    if reason := os.environ.get("KS_NO_TOOLS_REASON"):
        return reason
    if preset := os.environ.get("KS_TOOLS_BIN"):
        return Path(preset)
    print("\n[cluster] scripts/build-tools.sh (the first run on a machine builds for many minutes)", file=sys.stderr)
    result = subprocess.run(["bash", str(BUILD_TOOLS)], capture_output=True, text=True, check=False, timeout=3600)
    if result.returncode == EXIT_NO_GO:
        return result.stderr.strip()
    if result.returncode != 0:
        raise pytest.UsageError(f"scripts/build-tools.sh failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the tools once, before any test runs, when cluster tests are selected: a cold build takes longer
    than the per-test timeout, so it must not happen inside a fixture."""
    if any(item.get_closest_marker("cluster") for item in session.items):
        session.stash[_TOOLS] = _build_tools()


def _tools_bin(session: pytest.Session) -> Path:
    tools = session.stash.get(_TOOLS, None)
    if tools is None:
        tools = session.stash[_TOOLS] = _build_tools()
    if isinstance(tools, str):
        _skip_loudly(tools)
    assert isinstance(tools, Path)
    return tools


@pytest.fixture(scope="session")
def crd_dirs() -> dict[str, Path]:
    """The pinned KServe and Gateway API CRD folders; the tier is skipped loudly without Go or the module proxy."""
    try:
        return chartlib.crd_dirs()
    except chartlib.ToolMissing as error:
        _skip_loudly(str(error))
        raise


@pytest.fixture(scope="session")
def cluster(crd_dirs: dict[str, Path], request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A started local control plane with the pinned CRDs Established; always torn down at session end."""
    bin_dir = _tools_bin(request.session)
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH; the cluster tier drives the API server with it")
    workdir = Path(tempfile.mkdtemp(prefix="ks-cluster-"))
    local = LocalCluster(workdir=workdir, bin_dir=bin_dir)
    try:
        try:
            local.start(timeout=180)
            install_crds(local, list(crd_dirs.values()), timeout=120)
            namespaces = REPO / "k8s" / "namespaces.yaml"
            if namespaces.exists():
                local.kubectl("apply", "--server-side", "-f", str(namespaces))
        except ClusterError as error:
            pytest.fail(f"local control plane failed: {error}\n{local.diagnostics()}")
        handle = Cluster(local=local, bin_dir=bin_dir, repo=REPO)
        request.session.stash[_SESSION_CLUSTER] = handle
        yield handle
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """When a cluster test fails, attach events, pods, helm releases and component log tails to its report."""
    report = yield
    handle = item.session.stash.get(_SESSION_CLUSTER, None)
    if report.failed and call.when == "call" and handle is not None:
        sections = []
        for title, argv in (
            ("events", ("kubectl", "get", "events", "-A", "--sort-by=.lastTimestamp")),
            ("pods", ("kubectl", "get", "pods", "-A", "-o", "wide")),
            ("helm releases", (str(handle.bin_dir / "helm"), "list", "-A", "-a")),
        ):
            try:
                result = handle.run(*argv, check=False, timeout=30)
                sections.append(f"--- {title} ---\n{result.stdout[-6000:]}{result.stderr[-2000:]}")
            except subprocess.TimeoutExpired:
                sections.append(f"--- {title} --- (timed out)")
        sections.append(handle.local.diagnostics())
        report.sections.append(("cluster diagnostics", "\n".join(sections)))
    return report
