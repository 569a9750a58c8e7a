"""Session fixture of the real-pods tier: the local control plane plus a real node (containerd, kubelet, kube-proxy,
CoreDNS, a default StorageClass), the KServe controller and Traefik (``tests/cluster/realnode.py``), with the images
of ``scripts/build-images.sh`` imported and pinned by digest in the Helm values the tier uses.

Before any test runs (a cold build takes longer than a test's timeout) the real-node tools and the images are built
(``scripts/build-tools.sh --real-node``, ``scripts/build-images.sh``; both cached). The tier is skipped, loudly and
with the reason, when this machine cannot run a node (not root, Debian packages missing, another containerd).

Environment:
    KS_REALPODS=0          skip the tier (say so loudly); KS_REALPODS=1 runs it even when a cold start would not
                           fit CI's 90 minutes (KS_CI_STARTED, set by .ci/run, says when CI started)
    KS_CLUSTER_KEEP=1      keep the work directory (logs, kubeconfig, diagnostics) after the session
    KS_DIAGNOSTICS_DIR     where scripts/diagnostics.sh output of a failed test is written (default: work dir)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))

from realnode import RealCluster, module_dir, why_unavailable  # noqa: E402
from traffic import Tally, Traffic  # noqa: E402

from tests.support.cluster_checks import Release  # noqa: E402

_PREPARED = pytest.StashKey[dict[str, Path] | str]()
_REAL = pytest.StashKey["Real"]()
#: Set on a test item whose call failed (the flow of a serving mode skips its later steps).
CALL_FAILED = pytest.StashKey[bool]()


def _versions() -> dict[str, str]:
    lines = (REPO / "k8s" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))


def _loud(reason: str) -> str:
    message = f"REAL-PODS TIER SKIPPED: {reason}"
    print(f"\n{'*' * 100}\n{message}\n{'*' * 100}", file=sys.stderr)
    return message


#: What a cold start of the tier costs on the project's 2-core machine (docs/ci.md): the real-node Go builds, the
#: images, and the tier itself; CI's whole run has 90 minutes.
COLD_BUILDS_S, COLD_IMAGES_S, TIER_S, CI_BUDGET_S = 2700, 600, 2400, 5400
#: One serving mode's flow on a slow turn of that machine (15-17 min on 2026-12-02's slowest). The tier runs last
#: (tests/conftest.py): a mode whose flow would end the run past CI's budget is skipped, loudly.
MODE_S, MARGIN_S = 1200, 240
#: The tier's start before its first mode: the node, KServe and Traefik up, MLflow, the training Jobs.
TIER_START_S = 480


def _missing_builds() -> list[str]:
    """The real-node tools and images that are not in the caches yet (a cold start builds them)."""
    pins = _versions()
    tools = Path(os.environ.get("KS_TOOLS_DIR", Path.home() / ".cache" / "kube-sentiment" / "tools"))
    wanted = {
        f"kubernetes-node-{pins['KUBERNETES_VERSION']}/kubelet": "node",
        f"coredns-{pins['COREDNS_VERSION']}/coredns": "coredns",
        f"kserve-manager-{pins['KSERVE_VERSION']}/kserve-manager": "kserve-manager",
        f"traefik-{pins['TRAEFIK_VERSION']}/traefik": "traefik",
    }
    missing = [name for path, name in wanted.items() if not (tools / path).exists()]
    images = Path(os.environ.get("KS_IMAGES_DIR", Path.home() / ".cache" / "kube-sentiment" / "images"))
    if not (images / "images.env").exists():
        missing.append("images")
    return missing


def _over_budget() -> str | None:
    """Why a cold start would not fit what is left of CI's 90 minutes (.ci/run sets KS_CI_STARTED), or None."""
    started = os.environ.get("KS_CI_STARTED")
    missing = _missing_builds()
    if not started or not missing or os.environ.get("KS_REALPODS") == "1":
        return None
    elapsed = time.time() - float(started)
    need = (COLD_BUILDS_S if set(missing) - {"images"} else 0) + (COLD_IMAGES_S if "images" in missing else 0)
    if elapsed + need + TIER_S <= CI_BUDGET_S:
        return None
    return (
        f"a cold start ({', '.join(missing)} not built yet: ~{need // 60} min, then ~{TIER_S // 60} min of tests) does "
        f"not fit the {CI_BUDGET_S // 60} minutes of CI after {elapsed / 60:.0f} min; build them once with "
        "scripts/build-tools.sh --real-node and scripts/build-images.sh (cached), or force with KS_REALPODS=1"
    )


def _mode_over_budget(what: str, before_s: float = 0) -> str | None:
    """Why ``what`` (a serving mode's flow, after ``before_s`` of other work) would not fit what is left of CI's
    90 minutes, or None (outside CI, or forced with KS_REALPODS=1)."""
    started = os.environ.get("KS_CI_STARTED")
    if not started or os.environ.get("KS_REALPODS") == "1":
        return None
    elapsed = time.time() - float(started)
    if elapsed + before_s + MODE_S + MARGIN_S <= CI_BUDGET_S:
        return None
    return (
        f"{what}: {'its start and ' if before_s else ''}one serving mode's flow (up to ~{(before_s + MODE_S) // 60:.0f}"
        f" min on a slow machine) {'do' if before_s else 'does'} not fit the {CI_BUDGET_S // 60} minutes of CI after "
        f"{elapsed / 60:.0f} min (the "
        "rest of the suite ran first); this machine is slower than usual right now. Run the tier alone "
        "(pytest tests/cluster/realpods) or force with KS_REALPODS=1"
    )


def _prepare() -> dict[str, Path] | str:
    """Build the tools (control plane and real node) and the images; return their paths or why the tier cannot run."""
    if os.environ.get("KS_REALPODS") == "0":
        return "KS_REALPODS=0"
    if reason := os.environ.get("KS_NO_TOOLS_REASON"):
        return reason
    if reason := why_unavailable():
        return reason
    if reason := _over_budget():
        return reason
    paths: dict[str, Path] = {}
    for what, argv in (
        ("tools", [str(REPO / "scripts" / "build-tools.sh")]),
        ("bin", [str(REPO / "scripts" / "build-tools.sh"), "--real-node"]),
        ("images", [str(REPO / "scripts" / "build-images.sh")]),
    ):
        print(f"\n[realpods] {' '.join(Path(a).name for a in argv)} (cached after the first run)", file=sys.stderr)
        result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False, timeout=5400)
        if result.returncode in (3, 69):
            return f"{Path(argv[0]).name} exited {result.returncode}: this machine cannot build the real-pods tier"
        if result.returncode != 0:
            raise pytest.UsageError(f"{' '.join(argv)} failed (exit {result.returncode}); see its output above")
        paths[what] = Path(result.stdout.strip().splitlines()[-1])
    return paths


def pytest_collection_finish(session: pytest.Session) -> None:
    if any(item.get_closest_marker("realpods") for item in session.items):
        session.stash[_PREPARED] = _prepare()


@dataclass
class Real:
    """What a real-pods test gets: the running cluster, the environment for kubectl/helm/scripts, the values files."""

    cluster: RealCluster
    env: dict[str, str]
    #: -f files for scripts/deploy.sh staging|production (after values-<env>.yaml): kind's e2e values, ours, images.
    app_values: list[Path]
    #: -f files for scripts/deploy.sh mlflow.
    mlflow_values: list[Path]
    images: dict[str, str]

    def run(self, *argv: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=timeout, check=False)
        sys.stderr.write(result.stderr[-6000:])
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-6000:]}"
            )
        return result

    def script(self, name: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return self.run(str(REPO / "scripts" / name), *args, timeout=timeout)

    def kubectl(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kwargs)  # type: ignore[arg-type]


def _write_values(workdir: Path, images: dict[str, str]) -> tuple[Path, Path]:
    """Values pinning every image by the digest containerd holds (repository:tag@digest, never pulled)."""

    def ref(name: str) -> dict[str, str]:
        repository, tag = images[f"KS_IMAGE_{name}"].rsplit(":", 1)
        return {"repository": repository, "tag": tag, "digest": images[f"KS_DIGEST_{name}"]}

    app = workdir / "values-images.yaml"
    app.write_text(yaml.safe_dump({"image": {**ref("APP"), "pullPolicy": "Never"}, "tests": {"image": ref("DEBIAN")}}))
    mlflow = workdir / "values-mlflow-images.yaml"
    mlflow.write_text(
        yaml.safe_dump({"image": {**ref("APP"), "pullPolicy": "Never"}, "tests": {"image": ref("DEBIAN")}})
    )
    return app, mlflow


@pytest.fixture(scope="session")
def real(request: pytest.FixtureRequest, crd_dirs: dict[str, Path]) -> Iterator[Real]:
    prepared = request.session.stash.get(_PREPARED, None)
    if prepared is None:
        prepared = request.session.stash[_PREPARED] = _prepare()
    if isinstance(prepared, str):
        pytest.skip(_loud(prepared))
    if reason := _mode_over_budget("the tier", before_s=TIER_START_S):
        pytest.skip(_loud(reason))
    pins = _versions()
    workdir = Path(tempfile.mkdtemp(prefix="ks-realpods-"))
    kserve = module_dir("github.com/kserve/kserve", pins["KSERVE_VERSION"])
    cluster = RealCluster(
        workdir=workdir,
        bin_dir=prepared["bin"],
        images_env=prepared["images"],
        crds=list(crd_dirs.values()),
        manifests=[REPO / "k8s" / "namespaces.yaml"],
        kserve_config=kserve / "config",
    )
    try:
        try:
            cluster.start(timeout=300)
        except Exception as error:
            pytest.fail(f"the real node did not start: {error}\n{cluster.diagnostics()}")
        app_images, mlflow_images = _write_values(workdir, cluster.images)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "HELM_"))}
        env.update(
            KUBECONFIG=str(cluster.kubeconfig),
            PATH=f"{prepared['tools']}{os.pathsep}{prepared['bin']}{os.pathsep}{env['PATH']}",
            HELM_CACHE_HOME=str(workdir / "helm" / "cache"),
            HELM_CONFIG_HOME=str(workdir / "helm" / "config"),
            HELM_DATA_HOME=str(workdir / "helm" / "data"),
            KS_IMAGE=cluster.images["KS_IMAGE_APP"],
            KS_CLIENT_IMAGE=f"{cluster.images['KS_IMAGE_DEBIAN']}@{cluster.images['KS_DIGEST_DEBIAN']}",
            KS_TIMEOUT="10m",
        )
        handle = Real(
            cluster=cluster,
            env=env,
            app_values=[REPO / ".github" / "e2e" / "values-kind.yaml", HERE / "values-real.yaml", app_images],
            mlflow_values=[HERE / "values-real-mlflow.yaml", mlflow_images],
            images=cluster.images,
        )
        request.session.stash[_REAL] = handle
        print(f"\n[realpods] cluster up: {cluster.timings}", file=sys.stderr)
        yield handle
    finally:
        left = cluster.stop()
        if os.environ.get("KS_CLUSTER_KEEP") == "1":
            print(f"real-pods work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if left:
            pytest.fail("the real node left things behind on the host:\n" + "\n".join(left))


# -- one serving mode's flow (tests/cluster/realpods/test_realpods.py::TestServingMode) ----------------------
@dataclass
class Flow:
    mode: str
    staging: Release
    production: Release
    failed: str = ""
    traffic: Traffic | None = None
    tallies: dict[str, Tally] = field(default_factory=dict)
    revision_before_canary: str = ""


@pytest.fixture(scope="class")
def flow(request: pytest.FixtureRequest, real: Real) -> Iterator[Flow]:
    """State shared by the tests of one serving mode; at the end both environments' releases are uninstalled."""
    mode = request.param
    if reason := _mode_over_budget(f"{mode} mode"):
        pytest.skip(_loud(reason))
    state = Flow(mode, Release("staging", env=real.env), Release("production", env=real.env))
    yield state
    if state.traffic is not None:
        state.traffic.stop()
    for ns in ("staging", "production"):
        real.run(
            str(Path(real.env["PATH"].split(os.pathsep)[0]) / "helm"),
            "-n",
            ns,
            "uninstall",
            "kube-sentiment",
            "--wait",
            "--timeout",
            "5m",
            check=False,
        )
        real.kubectl(
            "-n", ns, "delete", "pods,jobs,pvc", "--all", "--wait=true", "--timeout=300s", check=False, timeout=320
        )


@pytest.fixture
def step(flow: Flow, request: pytest.FixtureRequest) -> Iterator[Flow]:
    """Skip when an earlier step of this mode failed; remember this step's failure for the next ones."""
    if flow.failed:
        pytest.skip(f"{flow.mode} mode: an earlier step failed ({flow.failed})")
    yield flow
    # A measurement that fails (zero failed requests) changes nothing the later steps build on.
    if request.node.stash.get(CALL_FAILED, False) and not request.node.name.startswith("test_zero_failed"):
        flow.failed = request.node.name


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """A failed real-pods test gets scripts/diagnostics.sh's output (written whole to a file, its tail attached)
    and the log tails of the node's processes."""
    report = yield
    if report.failed and call.when == "call":
        item.stash[CALL_FAILED] = True
    handle = item.session.stash.get(_REAL, None)
    if report.failed and call.when == "call" and handle is not None:
        out_dir = Path(os.environ.get("KS_DIAGNOSTICS_DIR") or handle.cluster.workdir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"diagnostics-{item.name}.txt"
        try:
            result = subprocess.run(
                [str(REPO / "scripts" / "diagnostics.sh")],
                capture_output=True,
                text=True,
                env=handle.env,
                timeout=300,
                check=False,
            )
            path.write_text(result.stdout + result.stderr)
            text = f"full output: {path}\n{(result.stdout + result.stderr)[-20000:]}"
        except subprocess.TimeoutExpired:
            text = "scripts/diagnostics.sh timed out"
        report.sections.append(("real-pods diagnostics", f"{text}\n{handle.cluster.diagnostics()}"))
    return report
