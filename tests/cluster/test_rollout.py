"""``kube-sentiment rollout run`` against the real API server with the real Helm and ``scripts/canary.sh``, in both
serving modes: the HTTPRoute mirror and backend weights / the InferenceService ``spec.canary[].trafficPercent`` and
the shadow InferenceService change step by step, promotion leaves one track, a failed check returns the release to
the revision before the rollout, a driver killed mid-rollout resumes where the release is, a second rollout is
refused; Kubernetes Events and MLflow tags (a real ``mlflow server``) are written.

kwok runs no containers, so the traffic is a generator writing the prediction logs the pods would write (real model
probabilities, written the shipper's way) into a local sink that ``rollout run --analysis local`` reads; and the
KServe controller's part that the scripts wait for is played by :mod:`kserve_standin`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kserve_standin import KServeStandIn
from localcluster import Cluster
from sklearn.pipeline import Pipeline

from model.data import Split
from tests.support import wait_until
from tests.support.events import PermutedModel, predicted_events, write_to_sink
from tests.support.servers import MlflowServer

pytestmark = pytest.mark.cluster

NS = "staging"
RELEASE = "kube-sentiment"
CLI = str(Path(sys.executable).parent / "kube-sentiment")
#: A fast policy: analyses every 2 s on a few dozen predictions.
POLICY = {"rollout": {"interval": "2s", "progressDeadline": "90s", "analysis": {
    "minRequests": 40, "minPairs": 40, "minLatencyRequests": 20}}}


class Traffic:
    """Writes, every ``period_s``, the predictions the pods would log: stable (version 1), the shadow's copies of
    them and a canary's own (version 2, answering like stable, or with a permuted class mapping when ``bad``)."""

    def __init__(self, sink: Path, pipeline: Pipeline, texts: list[str], bad: bool, period_s: float = 0.8) -> None:
        self.sink, self.pipeline, self.texts, self.period_s = sink, pipeline, texts, period_s
        self.candidate = PermutedModel(pipeline) if bad else pipeline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            now = time.time()
            stable = predicted_events(self.pipeline, self.texts, "1", "stable", NS, now, f"t{tick}r")
            shadow = predicted_events(self.candidate, self.texts, "2", "shadow", NS, now, f"t{tick}s",
                                      mirror_of_prefix=f"t{tick}r")
            canary = predicted_events(self.candidate, self.texts, "2", "canary", NS, now, f"t{tick}c")
            write_to_sink(self.sink, stable + shadow + canary, f"tick{tick}")
            tick += 1
            self._stop.wait(self.period_s)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Observer:
    """Polls what routes the traffic (HTTPRoute, or the InferenceServices) and keeps each distinct state."""

    def __init__(self, cluster: Cluster, mode: str) -> None:
        self.cluster, self.mode = cluster, mode
        self.states: list[tuple[Any, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def state(self) -> tuple[Any, ...]:
        if self.mode == "deployment":
            route = json.loads(self.cluster.kubectl("-n", NS, "get", "httproute", RELEASE, "-o", "json").stdout)
            rule = route["spec"]["rules"][0]
            mirror = [f["requestMirror"]["percent"] for f in rule.get("filters", []) if f["type"] == "RequestMirror"]
            weights = tuple((r["name"].removeprefix(f"{RELEASE}-"), r["weight"]) for r in rule["backendRefs"])
            return ("mirror", mirror[0]) if mirror else ("no mirror",), weights
        items = json.loads(self.cluster.kubectl("-n", NS, "get", "inferenceservices.serving.kserve.io", "-o",
                                                "json").stdout)["items"]
        names = {i["metadata"]["name"]: i for i in items if not i["metadata"].get("deletionTimestamp")}
        canary = names[RELEASE]["spec"].get("canary") if RELEASE in names else None
        return (("shadow isvc",) if f"{RELEASE}-shadow" in names else ("no shadow",),
                ("canary", canary[0]["trafficPercent"]) if canary else ("no canary",))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                current = self.state()
                if not self.states or self.states[-1] != current:
                    self.states.append(current)
            except (AssertionError, KeyError, ValueError):
                pass  # between two helm operations an object may be missing
            self._stop.wait(0.25)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def subsequence(expected: list[Any], seen: list[Any]) -> bool:
    it = iter(seen)
    return all(any(s == e for s in it) for e in expected)


@pytest.fixture(scope="module")
def texts(corpus_split: Split) -> list[str]:
    return corpus_split.holdout["text"].tolist()[:60]


@pytest.fixture
def env(cluster: Cluster, mlflow_server: MlflowServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh release at stable version 1 with the fast policy, a registered model with versions 1 and 2."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    model = f"ks-rollout-{tmp_path.name[-12:].strip('_-').lower()}"
    client.create_registered_model(model)
    run = client.create_run("0")
    for _ in range(2):
        client.create_model_version(model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    cluster.helm("uninstall", RELEASE, "-n", NS, "--wait", check=False, timeout=240)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    yield {"client": client, "model": model, "policy": policy, "sink": tmp_path / "sink"}
    cluster.helm("uninstall", RELEASE, "-n", NS, "--wait", check=False, timeout=240)


def install(cluster: Cluster, mode: str, policy: Path) -> None:
    cluster.helm("upgrade", "--install", RELEASE, str(cluster.repo / "helm" / "kube-sentiment"), "-n", NS,
                 "-f", str(policy), f"--set=serving.mode={mode}", "--set=serving.stable.modelVersion=1",
                 "--set=shipper.enabled=false", "--set=drift.enabled=false", "--set=serving.pdb.enabled=false",
                 "--wait", "--timeout=120s", timeout=240)


def run_env(cluster: Cluster) -> dict[str, str]:
    return cluster.env | {"PATH": f"{cluster.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def rollout_argv(cluster: Cluster, e: dict[str, Any], mlflow_uri: str) -> list[str]:
    return [CLI, "rollout", "run", NS, "2", "--analysis", "local", "--source", str(e["sink"]),
            "--chart", str(cluster.repo / "helm" / "kube-sentiment"),
            "--canary-script", str(cluster.repo / "scripts" / "canary.sh"), "--timeout", "2m",
            "--tracking-uri", mlflow_uri, "--registered-model", e["model"], "--json-logs"]


def rollout(cluster: Cluster, e: dict[str, Any], mlflow_uri: str) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(rollout_argv(cluster, e, mlflow_uri), capture_output=True, text=True,
                            env=run_env(cluster), timeout=900, check=False)
    out = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, out, result.stderr


def values(cluster: Cluster) -> dict[str, Any]:
    return json.loads(cluster.helm("get", "values", RELEASE, "-n", NS, "--all", "-o", "json").stdout)


def history(cluster: Cluster) -> list[dict[str, Any]]:
    return json.loads(cluster.helm("history", RELEASE, "-n", NS, "-o", "json").stdout)


def serving_object(mode: str) -> str:
    return f"inferenceservices.serving.kserve.io/{RELEASE}" if mode == "kserve" else f"deployment/{RELEASE}-stable"


def rollout_events(cluster: Cluster, mode: str) -> list[dict[str, Any]]:
    name = serving_object(mode).split("/")[1]
    items = json.loads(cluster.kubectl("-n", NS, "get", "events", "-o", "json").stdout)["items"]
    mine = [e for e in items if e["involvedObject"]["name"] == name
            and (e.get("source") or {}).get("component") == "kube-sentiment-rollout"]
    return sorted(mine, key=lambda e: (e["firstTimestamp"], e["metadata"]["creationTimestamp"]))


def lock(cluster: Cluster, mode: str) -> str | None:
    obj = json.loads(cluster.kubectl("-n", NS, "get", serving_object(mode), "-o", "json").stdout)
    return (obj["metadata"].get("annotations") or {}).get("kube-sentiment/rollout")


def canary_sh(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", str(cluster.repo / "scripts" / "canary.sh"), NS, *args], capture_output=True,
                            text=True, env=run_env(cluster), timeout=300, check=False)
    assert not check or result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_a_good_version_is_promoted_through_every_step(cluster: Cluster, env: dict[str, Any], mode: str,
                                                       tiny_pipeline: Pipeline, texts: list[str],
                                                       mlflow_server: MlflowServer) -> None:
    standin = KServeStandIn(cluster, NS) if mode == "kserve" else None
    if standin:
        standin.__enter__()
    try:
        install(cluster, mode, env["policy"])
        before = len(history(cluster))
        with Traffic(env["sink"], tiny_pipeline, texts, bad=False), Observer(cluster, mode) as observer:
            code, out, err = rollout(cluster, env, mlflow_server.uri)
    finally:
        if standin:
            standin.__exit__()
    assert code == 0, err[-5000:]
    assert out["result"] == "promoted"
    assert [d["decision"] for d in out["decisions"]] == ["started", "advance", "advance", "advance", "advance",
                                                         "promoted"]
    if mode == "deployment":
        expected = [(("no mirror",), (("stable", 100),)), (("mirror", 100), (("stable", 100),)),
                    (("no mirror",), (("stable", 95), ("canary", 5))),
                    (("no mirror",), (("stable", 75), ("canary", 25))),
                    (("no mirror",), (("stable", 50), ("canary", 50))), (("no mirror",), (("stable", 100),))]
        deployments = json.loads(cluster.kubectl("-n", NS, "get", "deployments", "-l",
                                                 f"app.kubernetes.io/instance={RELEASE}", "-o", "json").stdout)
        live = [d for d in deployments["items"] if not d["metadata"].get("deletionTimestamp")]
        assert [d["metadata"]["name"] for d in live] == [f"{RELEASE}-stable"]  # one track left
    else:
        expected = [(("no shadow",), ("no canary",)), (("shadow isvc",), ("no canary",)),
                    (("no shadow",), ("canary", 5)), (("no shadow",), ("canary", 25)),
                    (("no shadow",), ("canary", 50)), (("no shadow",), ("no canary",))]
        isvc = json.loads(cluster.kubectl("-n", NS, "get", serving_object(mode), "-o", "json").stdout)
        uri = next(e["value"] for e in isvc["spec"]["predictor"]["model"]["env"]
                   if e["name"] == "KS_SERVE_MODEL_URI")
        assert uri == "models:/sentiment/2" and "canary" not in isvc["spec"]
    assert subsequence(expected, observer.states), observer.states
    v = values(cluster)
    assert v["serving"]["stable"]["modelVersion"] == 2
    assert not v["serving"]["canary"]["enabled"] and not v["serving"]["shadow"]["enabled"]
    assert len(history(cluster)) == before + 6  # shadow, 0 then 5 (canary.sh start: ready first), 25, 50, promote
    assert lock(cluster, mode) is None
    reasons = [e["reason"] for e in rollout_events(cluster, mode)]
    assert reasons[0] == "RolloutStarted" and reasons[-1] == "RolloutPromoted"
    assert reasons.count("RolloutAdvanced") == 4
    tags = env["client"].get_model_version(env["model"], "2").tags
    assert tags["rollout.staging.decision"] == "promoted" and tags["rollout.staging.stable_version"] == "2"
    stderr_records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r.get("rollout", {}).get("decision") == "advance" for r in stderr_records)  # JSON log lines


@pytest.mark.parametrize("mode", ["deployment", "kserve"])
def test_a_bad_version_is_rolled_back_at_its_first_step(cluster: Cluster, env: dict[str, Any], mode: str,
                                                        tiny_pipeline: Pipeline, texts: list[str],
                                                        mlflow_server: MlflowServer) -> None:
    standin = KServeStandIn(cluster, NS) if mode == "kserve" else None
    if standin:
        standin.__enter__()
    try:
        install(cluster, mode, env["policy"])
        start_revision = history(cluster)[-1]["revision"]
        with Traffic(env["sink"], tiny_pipeline, texts, bad=True):
            code, out, err = rollout(cluster, env, mlflow_server.uri)
    finally:
        if standin:
            standin.__exit__()
    assert code == 3, err[-5000:]
    assert out["result"] == "rolled_back" and out["reason"].startswith("shadow 100%: failed: ")
    assert "agreement" in out["reason"]
    assert [d["decision"] for d in out["decisions"]] == ["started", "rollback", "rolled_back"]
    last = history(cluster)[-1]
    assert last["description"] == f"Rollback to {start_revision}"
    v = values(cluster)
    assert v["serving"]["stable"]["modelVersion"] == 1 and not v["serving"]["shadow"]["enabled"]
    assert lock(cluster, mode) is None
    events = rollout_events(cluster, mode)
    failed = [e for e in events if e["reason"] == "RolloutFailedCheck"]
    assert len(failed) == 1 and failed[0]["type"] == "Warning" and "agreement" in failed[0]["message"]
    assert events[-1]["reason"] == "RolloutRolledBack"
    tags = env["client"].get_model_version(env["model"], "2").tags
    assert tags["rollout.staging.decision"] == "rolled_back" and "agreement" in tags["rollout.staging.reason"]


def test_a_killed_driver_resumes_and_a_second_rollout_is_refused(cluster: Cluster, env: dict[str, Any],
                                                                 tiny_pipeline: Pipeline, texts: list[str],
                                                                 mlflow_server: MlflowServer) -> None:
    install(cluster, "deployment", env["policy"])
    with Traffic(env["sink"], tiny_pipeline, texts, bad=False):
        driver = subprocess.Popen(rollout_argv(cluster, env, mlflow_server.uri), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=run_env(cluster), start_new_session=True)
        try:
            # Killed while it waits to analyse canary 25 % (its upgrade done, the next not begun).
            wait_until(lambda: values(cluster)["serving"]["canary"]["weight"] == 25
                       and values(cluster)["serving"]["canary"]["enabled"]
                       and history(cluster)[-1]["status"] == "deployed", 600, "the canary at 25 %")
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # no cleanup, no unlock: as if the runner died
            driver.wait(timeout=30)
        assert json.loads(lock(cluster, "deployment") or "{}")["version"] == "2"
        weight = values(cluster)["serving"]["canary"]["weight"]
        before = [h["description"] for h in history(cluster)]
        # While the lock holds, another rollout and a hand-made change are refused.
        busy = subprocess.run([*rollout_argv(cluster, env, mlflow_server.uri)[:4], "3",
                               *rollout_argv(cluster, env, mlflow_server.uri)[5:]], capture_output=True,
                              text=True, env=run_env(cluster), timeout=300, check=False)
        assert busy.returncode == 75 and "a rollout of version 2 is in progress" in busy.stderr
        refused = canary_sh(cluster, "weight", "90", check=False)
        assert refused.returncode == 75 and "a rollout of version 2 holds staging" in refused.stderr
        code, out, err = rollout(cluster, env, mlflow_server.uri)
    assert code == 0, err[-5000:]
    decisions = [d["decision"] for d in out["decisions"]]
    assert decisions[0] == "resumed" and decisions[-1] == "promoted" and "started" not in decisions
    after = history(cluster)[len(before):]
    assert len(after) == {25: 2, 50: 1}[weight]  # the steps left and the promotion: nothing redone
    assert values(cluster)["serving"]["stable"]["modelVersion"] == 2 and lock(cluster, "deployment") is None


def test_abort_returns_to_the_revision_before_the_rollout(cluster: Cluster, env: dict[str, Any]) -> None:
    install(cluster, "deployment", env["policy"])
    first = history(cluster)[-1]["revision"]
    canary_sh(cluster, "shadow", "2", "50")
    lock_value = json.dumps({"version": "2", "from_revision": str(first), "started_at": "2026-01-01T00:00:00Z",
                             "owner": "a runner that died", "phase": "running"})
    cluster.kubectl("-n", NS, "annotate", serving_object("deployment"), f"kube-sentiment/rollout={lock_value}")
    status = canary_sh(cluster, "status").stdout.strip()
    assert status.endswith("shadow=2@50 rollout=2")
    canary_sh(cluster, "abort")
    assert history(cluster)[-1]["description"] == f"Rollback to {first}"
    assert lock(cluster, "deployment") is None and not values(cluster)["serving"]["shadow"]["enabled"]
