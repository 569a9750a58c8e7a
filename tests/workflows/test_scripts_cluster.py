"""scripts/deploy.sh and scripts/canary.sh against a real API server (the local control plane of the cluster tier:
etcd, kube-apiserver, controllers, scheduler and kwok nodes, built from pinned Go modules), with the real Helm.

kwok runs no containers, so what is checked is what the scripts do to the cluster: the objects, the Helm
revisions, the route weights and the model versions per track, and the waits (a Job waited for to completion,
Deployments to readiness, a refused upgrade rolled back).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "cluster"))
sys.path.insert(0, str(REPO / "tests" / "charts"))

import chartlib  # noqa: E402
from localcluster import ClusterError, LocalCluster, wait_until  # noqa: E402

pytestmark = pytest.mark.cluster


def _tools_bin() -> Path:
    if reason := os.environ.get("KS_NO_TOOLS_REASON"):
        pytest.skip(f"the local control plane cannot be built here: {reason}")
    if preset := os.environ.get("KS_TOOLS_BIN"):
        return Path(preset)
    result = subprocess.run([str(REPO / "scripts" / "build-tools.sh")], capture_output=True, text=True, timeout=3600,
                            check=False)
    if result.returncode == 3:
        pytest.skip(f"the local control plane cannot be built here (no Go):\n{result.stderr[-2000:]}")
    assert result.returncode == 0, result.stderr[-4000:]
    return Path(result.stdout.strip().splitlines()[-1])


class Env:
    """Runs the scripts against the local cluster, with Helm's state in the cluster's work directory."""

    def __init__(self, local: LocalCluster, bin_dir: Path) -> None:
        assert local.kubeconfig is not None
        work = local.workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "HELM_", "KS_IMAGE"))}
        self.env.update(KUBECONFIG=str(local.kubeconfig), HELM_CACHE_HOME=str(work / "helm-cache"),
                        HELM_CONFIG_HOME=str(work / "helm-config"), HELM_DATA_HOME=str(work / "helm-data"),
                        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", KS_TIMEOUT="3m",
                        KS_TRAIN_TIMEOUT="3m")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(argv), capture_output=True, text=True, env=self.env, cwd=REPO, timeout=400,
                                check=False)
        if check:
            assert result.returncode == 0, f"{argv} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def script(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(REPO / "scripts" / name), *args, check=check)

    def kubectl(self, *args: str) -> str:
        return self.run("kubectl", *args).stdout.strip()


def _established(local: LocalCluster, crd: str) -> bool:
    status = json.loads(local.kubectl("get", f"crd/{crd}", "-o", "json").stdout).get("status") or {}
    return any(c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or [])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Env]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH")
    bin_dir = _tools_bin()
    try:
        gateway_api = chartlib.crd_dirs()["gateway-api"]
    except chartlib.ToolMissing as error:
        pytest.skip(f"the pinned CRDs cannot be fetched here: {error}")
    local = LocalCluster(workdir=Path(tempfile.mkdtemp(prefix="ks-scripts-")), bin_dir=bin_dir)
    try:
        local.start(timeout=180)
        # The deployment serving mode needs only the Gateway API CRDs (HTTPRoute, GRPCRoute).
        local.kubectl("apply", "--server-side", "-f", str(gateway_api))
        for crd in ("httproutes", "grpcroutes"):
            wait_until(lambda crd=crd: _established(local, f"{crd}.gateway.networking.k8s.io"), timeout=120,
                       what=f"CRD {crd} Established")
        local.kubectl("apply", "--server-side", "-f", str(REPO / "k8s" / "namespaces.yaml"))
        yield Env(local, bin_dir)
    except ClusterError as error:
        pytest.fail(f"local control plane failed: {error}\n{local.diagnostics()}")
    finally:
        local.stop()
        shutil.rmtree(local.workdir, ignore_errors=True)


def test_deploy_train_applies_the_charts_job_alone_and_waits_for_it(cluster: Env) -> None:
    first = cluster.script("deploy.sh", "train", "staging", "--env", "KS_TRAIN_FLOOR=0.3", "--set", "train.actor=t1")
    assert "Complete" in first.stderr
    jobs = cluster.kubectl("-n", "staging", "get", "jobs", "-l", "app.kubernetes.io/instance=kube-sentiment-train",
                           "-o", "jsonpath={.items[*].metadata.name}").split()
    assert len(jobs) == 1 and jobs[0].startswith("kube-sentiment-train-train-")
    env = cluster.kubectl("-n", "staging", "get", "job", jobs[0], "-o",
                          "jsonpath={.spec.template.spec.containers[0].env[0].name}={.spec.template.spec.containers[0].env[0].value}")
    assert env == "KS_TRAIN_FLOOR=0.3"
    # The same settings are the same Job (named after a hash of its pod): nothing new runs.
    cluster.script("deploy.sh", "train", "staging", "--env", "KS_TRAIN_FLOOR=0.3", "--set", "train.actor=t1")
    # Other settings are a new run.
    cluster.script("deploy.sh", "train", "staging", "--env", "KS_TRAIN_FLOOR=0.3", "--set", "train.actor=t2")
    names = cluster.kubectl("-n", "staging", "get", "jobs", "-o", "jsonpath={.items[*].metadata.name}").split()
    assert len(names) == 2
    # No ServiceAccount, no serving objects: the environment's own release is untouched.
    assert not cluster.kubectl("-n", "staging", "get", "deployments,serviceaccounts", "-l",
                               "app.kubernetes.io/instance=kube-sentiment-train", "-o", "name")


def _track_versions(cluster: Env) -> dict[str, str]:
    out = cluster.kubectl("-n", "production", "get", "deployments", "-l", "app.kubernetes.io/instance=kube-sentiment",
                          "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].env}"
                          "{'\\n'}{end}")
    versions = {}
    for line in out.splitlines():
        name, _, env = line.partition("=")
        marker = '"name":"KS_SERVE_MODEL_VERSION","value":"'
        assert marker in env, f"{name} has no KS_SERVE_MODEL_VERSION: {env}"
        versions[name.removeprefix("kube-sentiment-")] = env.split(marker, 1)[1].split('"', 1)[0]
    return versions


def _weights(cluster: Env) -> dict[str, int]:
    out = cluster.kubectl("-n", "production", "get", "httproutes", "-l", "app.kubernetes.io/instance=kube-sentiment",
                          "-o", "jsonpath={range .items[0].spec.rules[0].backendRefs[*]}{.name}={.weight} {end}")
    return {k.removeprefix("kube-sentiment-"): int(v) for k, v in (p.split("=") for p in out.split())}


def test_canary_start_promote_and_rollback(cluster: Env) -> None:
    cluster.script("deploy.sh", "production", "--set", "serving.mode=deployment")
    status = cluster.script("canary.sh", "production", "status").stdout
    assert status.strip() == "revision=1 stable=1 canary=none weight=10 shadow=none rollout=none"
    assert _track_versions(cluster) == {"stable": "1"} and _weights(cluster) == {"stable": 100}

    cluster.script("canary.sh", "production", "start", "2", "20")
    assert _track_versions(cluster) == {"stable": "1", "canary": "2"}
    assert _weights(cluster) == {"stable": 80, "canary": 20}

    # A canary of the stable version is refused by the chart; --atomic leaves the release as it was.
    refused = cluster.script("canary.sh", "production", "start", "1", "30", check=False)
    assert refused.returncode != 0
    status = cluster.script("canary.sh", "production", "status").stdout
    # start: ready at weight 0, then 20 %
    assert status.strip() == "revision=3 stable=1 canary=2 weight=20 shadow=none rollout=none"
    assert _weights(cluster) == {"stable": 80, "canary": 20}

    promoted = cluster.script("canary.sh", "production", "promote").stdout
    assert "stable=2 canary=none" in promoted
    assert _track_versions(cluster) == {"stable": "2"} and _weights(cluster) == {"stable": 100}

    cluster.script("canary.sh", "production", "rollback", "1")
    assert "stable=1 canary=none" in cluster.script("canary.sh", "production", "status").stdout
    assert _track_versions(cluster) == {"stable": "1"}

    nothing = cluster.script("canary.sh", "production", "promote", check=False)
    assert nothing.returncode == 1 and "no canary" in nothing.stderr


def _mirror(cluster: Env) -> list[dict[str, object]]:
    out = cluster.kubectl("-n", "production", "get", "httproutes", "-l", "app.kubernetes.io/instance=kube-sentiment",
                          "-o", "jsonpath={.items[0].spec.rules[0].filters}")
    return json.loads(out) if out else []


def test_shadow_mirrors_then_becomes_the_canary_and_is_promoted(cluster: Env) -> None:
    cluster.script("deploy.sh", "production", "--set", "serving.mode=deployment", "--set",
                   "serving.stable.modelVersion=1")
    cluster.script("canary.sh", "production", "shadow", "3", "40")
    assert _track_versions(cluster) == {"stable": "1", "shadow": "3"}
    assert _weights(cluster) == {"stable": 100}  # the shadow answers nothing
    assert _mirror(cluster) == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"group": "", "kind": "Service", "name": "kube-sentiment-shadow", "port": 8080},
        "percent": 40}}]
    assert "shadow=3@40" in cluster.script("canary.sh", "production", "status").stdout
    # Starting the shadow's version as the canary ends the shadow.
    cluster.script("canary.sh", "production", "start", "3", "5")
    assert _track_versions(cluster) == {"stable": "1", "canary": "3"} and not _mirror(cluster)
    assert _weights(cluster) == {"stable": 95, "canary": 5}
    cluster.script("canary.sh", "production", "promote")
    assert _track_versions(cluster) == {"stable": "3"}
