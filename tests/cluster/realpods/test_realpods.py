"""The kind e2e's steps on a real node (``conftest.py``): real pods from the project's image, the real KServe
controller, Traefik as the Gateway, the same scripts the kind workflow calls (``scripts/deploy.sh``,
``scripts/canary.sh``) and the same checks ``scripts/smoke.sh`` runs (``tests/support/cluster_checks.py``), in both
serving modes. What the kwok tiers cannot show is measured here: canary weights as traffic, readiness, graceful
shutdown (zero failed requests through rollouts), the sidecar's events surviving a pod's end, the drift Job, and
automatic rollouts (``canary.sh <env> auto``) judged by analysis Jobs on live traffic.

The tests of a serving mode share one flow and run in file order; a failed step skips the rest of its mode.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from realnode import BRIDGE, ISOLATE_CHAIN, NODE_NAME, POD_SUBNET
from traffic import Traffic

from tests.support.cluster_checks import Release, mlflow_helm_test

pytestmark = [pytest.mark.cluster, pytest.mark.realpods, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[3]
#: The canary's share of the traffic in the flow (the kind workflow's CANARY_WEIGHT).
CANARY_WEIGHT = 20
SPLIT_REQUESTS = 1000
#: The kind workflow's automatic-rollout values: the chart's steps, 30 s between analyses, fewer predictions.
ROLLOUT_VALUES = REPO / ".github" / "e2e" / "values-rollout.yaml"


def log(line: str) -> None:
    print(f"[realpods] {line}", file=sys.stderr, flush=True)


def wait_for(check: Any, *, timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- the node --------------------------------------------------------------------------------------------------------
def test_node_is_real_isolated_and_serves_dns(real: Any) -> None:
    """One real node (containerd, kubelet at the pinned version), not kwok; a pod gets an address on the bridge,
    resolves cluster names through CoreDNS behind kube-dns, and has no default route; forwarding off the bridge is
    dropped on the host."""
    node = json.loads(real.kubectl("get", "node", NODE_NAME, "-o", "json").stdout)
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://"), info
    pins = dict(
        line.split("=", 1)
        for line in (REPO / "k8s/versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert info["kubeletVersion"] == pins["KUBERNETES_VERSION"], info
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    assert len(json.loads(real.kubectl("get", "nodes", "-o", "json").stdout)["items"]) == 1
    classes = json.loads(real.kubectl("get", "storageclass", "-o", "json").stdout)["items"]
    assert any(
        c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
        for c in classes
    )

    real.kubectl("create", "namespace", "realpods-probe")
    try:
        probe = Release("realpods-probe", env=real.env)
        out = probe.client(
            probe.client_image,
            "sh",
            "-c",
            "hostname -i; cat /proc/net/route; getent hosts kube-dns.kube-system.svc.cluster.local",
        )
    finally:
        real.kubectl("delete", "namespace", "realpods-probe", "--wait=false")
    lines = out.split()
    assert any(POD_SUBNET.overlaps(_net(a)) for a in lines[:1]), out
    routes = [line.split() for line in out.splitlines() if line.startswith("eth0")]
    assert routes and all(r[1] != "00000000" for r in routes), f"a pod has a default route:\n{out}"
    assert "10.96.0.10" in out, out
    # The isolation chain is judged before every rule of FORWARD that can accept a packet (kube-proxy's and the CNI
    # plugin's); kube-proxy may insert its drop-only firewall jump above it on a later sync, which lets nothing out.
    forward = real.run("iptables", "-w", "-S", "FORWARD").stdout.splitlines()
    isolate = forward.index(f"-A FORWARD -j {ISOLATE_CHAIN}")
    accepting = [
        i
        for i, rule in enumerate(forward)
        if rule.endswith("-j ACCEPT") or "-j KUBE-FORWARD" in rule or "-j CNI-FORWARD" in rule
    ]
    assert all(isolate < i for i in accepting), forward
    assert f"-A {ISOLATE_CHAIN} -i {BRIDGE} -j DROP" in real.run("iptables", "-w", "-S", ISOLATE_CHAIN).stdout


def _net(address: str) -> Any:
    import ipaddress

    return ipaddress.ip_network(f"{address}/32")


# -- MLflow and training (shared by both modes) ----------------------------------------------------------------------
def test_mlflow_up_with_helm_test(real: Any) -> None:
    args = [a for f in real.mlflow_values for a in ("-f", str(f))]
    real.script("deploy.sh", "mlflow", *args)
    mlflow_helm_test(real.env)


def test_training_jobs_register_versions_with_the_gate_decision(real: Any) -> None:
    """Two runs of the chart's training Job (the image, the corpus it ships): versions 1 and 2, each registered
    with the gate's decision."""
    staging = Release("staging", env=real.env)
    args = [a for f in real.app_values for a in ("-f", str(f))]
    for run in (1, 2):
        real.script(
            "deploy.sh",
            "train",
            "staging",
            "--builtin-corpus",
            "--env",
            "KS_TRAIN_FLOOR=0.3",
            "--set",
            f"train.actor=realpods-{run}",
            *args,
        )
        found = staging.registry("promoted")
        assert found["version"] == str(run), found


def test_a_bad_version_is_registered_for_the_automatic_rollouts(real: Any) -> None:
    """Version 3, bad on purpose like the kind workflow's (heavy regularisation, no lexicon: it calls nearly
    everything negative, with confidence near a third; macro-F1 0.27); the floor is lowered so that the gate registers
    it."""
    staging = Release("staging", env=real.env)
    args = [a for f in real.app_values for a in ("-f", str(f))]
    real.script(
        "deploy.sh",
        "train",
        "staging",
        "--builtin-corpus",
        *("--env", "KS_TRAIN_FLOOR=0", "--env", "KS_TRAIN_ALPHA=1", "--env", "KS_TRAIN_LEXICON=false"),
        "--set",
        "train.actor=realpods-bad-version",
        *args,
    )
    assert staging.registry()["version"] == "3"


# -- both serving modes ------------------------------------------------------------------------------------------------
def deploy(real: Any, env: str, mode: str, *extra: str) -> None:
    args = [a for f in real.app_values for a in ("-f", str(f))]
    real.script("deploy.sh", env, *args, "--set", f"serving.mode={mode}", *extra)


def gateway_traffic(flow: Any, **kwargs: Any) -> Traffic:
    """Bounded HTTP and gRPC traffic through the Gateway, from this process."""
    url, host = flow.production.gateway()
    # The chart's GRPCRoute (both modes; KServe generates HTTPRoutes only).
    route = flow.production.get(
        "grpcroutes.gateway.networking.k8s.io", selector=f"app.kubernetes.io/instance={flow.production.release}"
    )[0]
    gw = Release(route["spec"]["parentRefs"][0]["namespace"], env=flow.production.env).get(
        "gateways.gateway.networking.k8s.io", route["spec"]["parentRefs"][0]["name"]
    )
    port = next(lst["port"] for lst in gw["spec"]["listeners"] if lst["name"] == "grpc")
    grpc_target = f"{gw['status']['addresses'][0]['value']}:{port}"
    grpc_authority = route["spec"]["hostnames"][0]
    log(f"{flow.mode}: traffic through {url} (Host {host}); gRPC {grpc_target} ({grpc_authority})")
    return Traffic(url, host, grpc_target, grpc_authority, **kwargs).start()


@pytest.mark.parametrize("flow", ["deployment", "kserve"], indirect=True, scope="class")
class TestServingMode:
    def test_staging_helm_test_and_in_cluster_calls(self, real: Any, step: Any) -> None:
        # deployment mode's staging runs two worker processes per pod (serving.workers): the same calls reach them
        workers = ["--set", "serving.workers=2"] if step.mode == "deployment" else []
        deploy(real, "staging", step.mode, *workers)
        step.staging.calls()
        if workers:
            [predictor] = step.staging.get("deployments", selector="app.kubernetes.io/component=serving")
            logs = step.staging.kubectl("logs", f"deployment/{predictor['metadata']['name']}", "-c", "serve").stdout
            assert "starting 2 workers" in logs and "worker 1 started" in logs, logs[-2000:]
            # the version the training Job registered carries the tables: nothing unpickled at start-up
            assert "kernels aot, tables from fastpath.npz" in logs, logs[-2000:]

    def test_production_stable_then_continuous_traffic(self, real: Any, step: Any) -> None:
        deploy(real, "production", step.mode, "--set", "serving.stable.modelVersion=1")
        step.production.calls()
        step.traffic = gateway_traffic(step)
        wait_for(lambda: step.traffic.snapshot()["http"].ok > 20, timeout=120, what="traffic through the Gateway")

    def test_canary_share_measured_through_the_gateway(self, real: Any, step: Any) -> None:
        status = real.script("canary.sh", "production", "status").stdout
        step.revision_before_canary = status.split("revision=")[1].split()[0]
        real.script("canary.sh", "production", "start", "2", str(CANARY_WEIGHT))
        step.production.calls()
        summary = step.production.split(CANARY_WEIGHT, SPLIT_REQUESTS)
        log(f"{step.mode}: {summary}")

    def test_promote(self, real: Any, step: Any) -> None:
        real.script("canary.sh", "production", "promote")
        step.production.only("2")

    def test_helm_rollback(self, real: Any, step: Any) -> None:
        real.script("canary.sh", "production", "rollback", step.revision_before_canary)
        step.production.only("1")

    def test_stable_track_rolls_to_a_new_version(self, real: Any, step: Any) -> None:
        deploy(real, "production", step.mode, "--set", "serving.stable.modelVersion=2")
        step.production.only("2")

    def test_kubectl_rollout_undo_replaces_the_pods(self, real: Any, step: Any) -> None:
        if step.mode != "deployment":
            pytest.skip("kserve mode: KServe owns the predictor Deployment and reconciles an undo away")
        selector = "app.kubernetes.io/instance=kube-sentiment,kube-sentiment/track=stable"
        before = {p["metadata"]["name"] for p in step.production.get("pods", selector=selector)}
        step.production.kubectl("rollout", "undo", "deployment/kube-sentiment-stable")
        step.production.kubectl("rollout", "status", "deployment/kube-sentiment-stable", "--timeout=10m", timeout=620)
        after = {
            p["metadata"]["name"]
            for p in step.production.get("pods", selector=selector)
            if not p["metadata"].get("deletionTimestamp")
        }
        assert after and not after & before, f"pods not replaced: before {before}, after {after}"
        step.production.only("1")

    def test_zero_failed_requests_through_every_rollout(self, step: Any) -> None:
        assert step.traffic is not None
        step.tallies = step.traffic.stop()
        step.traffic = None
        for name, tally in step.tallies.items():
            log(f"{step.mode}: {tally.line(name)}")
            for failure in tally.failures:
                log(f"{step.mode}: {name} failure: {failure}")
            if tally.failure_seconds:
                log(f"{step.mode}: {name} failures per second: {dict(sorted(tally.failure_seconds.items()))}")
        http = step.tallies["http"]
        assert http.ok > 100 and {"1", "2"} <= set(http.versions), http.line("http")
        assert http.failed == 0, http.line("http")
        grpc_tally = step.tallies["grpc"]
        assert grpc_tally.ok > 50 and grpc_tally.failed == 0, grpc_tally.line("grpc")

    def test_readiness_gates_traffic(self, real: Any, step: Any) -> None:
        """A pod carrying the stable track's labels that answers (another model version, asked directly) but is
        not ready gets none of the requests through the Gateway."""
        production = step.production
        selector = _stable_selector(step.mode)
        template = next(
            p for p in production.get("pods", selector=selector) if not p["metadata"].get("deletionTimestamp")
        )
        stable_version = next(
            e["value"]
            for c in template["spec"]["containers"]
            for e in c.get("env", [])
            if e["name"] == "KS_SERVE_MODEL_VERSION"
        )
        other = "1" if stable_version == "2" else "2"
        pod = _unready_clone(template, other)
        real.run("kubectl", "-n", "production", "apply", "-f", str(_write(real, "unready.json", pod)))
        try:
            ip = wait_for(
                lambda: (production.get("pod", pod["metadata"]["name"]) or {}).get("status", {}).get("podIP"),
                timeout=300,
                what="the unready pod's address",
            )
            port = production.value("serving.ports.http")
            wait_for(
                lambda: _answers_directly(ip, port) == other, timeout=300, what="the unready pod to answer directly"
            )
            status = production.get("pod", pod["metadata"]["name"])["status"]
            assert not any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"]), status
            traffic = gateway_traffic(step, max_requests=150, pause_s=0)
            wait_for(
                lambda: traffic.snapshot()["http"].sent >= 300 or traffic._stop.is_set(),
                timeout=300,
                what="300 requests",
            )
            tallies = traffic.stop()
            log(
                f"{step.mode}: an unready version-{other} pod behind the stable Service: {tallies['http'].line('http')}"
            )
            assert tallies["http"].failed == 0 and tallies["http"].ok >= 300
            assert set(tallies["http"].versions) == {stable_version}, tallies["http"].versions
        finally:
            production.kubectl("delete", "pod", pod["metadata"]["name"], "--wait=false", check=False)

    def test_killed_predictor_pod_loses_no_acknowledged_event(self, real: Any, step: Any) -> None:
        """Requests tagged with ids through the Gateway while a stable pod is deleted (SIGTERM, preStop, drain): every
        request that got a 2xx answer has its event in the sink, shipped by the sidecar of the pod that served it."""
        production = step.production
        tag = f"kill{int(time.time())}"
        traffic = gateway_traffic(step, request_ids=tag, pause_s=0.01)
        wait_for(lambda: traffic.snapshot()["http"].ok >= 200, timeout=300, what="200 answered requests")
        victim = next(
            p
            for p in production.get("pods", selector=_stable_selector(step.mode))
            if not p["metadata"].get("deletionTimestamp")
        )["metadata"]["name"]
        log(f"{step.mode}: deleting {victim} mid-traffic")
        production.kubectl("delete", "pod", victim, "--wait=true", "--timeout=120s", timeout=150)
        sent_at_kill = traffic.snapshot()["http"].sent
        wait_for(lambda: traffic.snapshot()["http"].sent >= sent_at_kill + 200, timeout=300, what="200 more requests")
        tallies = traffic.stop()
        acknowledged = set(tallies["http"].acknowledged)
        log(f"{step.mode}: {tallies['http'].line('http')}")
        sink = _sink_dir(real, production)

        def missing() -> set[str]:
            return acknowledged - _request_ids_in(sink, tag)

        wait_for(lambda: not missing(), timeout=180, what="every acknowledged event in the sink", interval=3)
        log(f"{step.mode}: all {len(acknowledged)} acknowledged requests have their event in the sink")

    def test_sidecar_ships_real_predictions_and_the_drift_job_reports(self, real: Any, step: Any) -> None:
        sink = _sink_dir(real, step.production)
        files = list(sink.rglob("*.parquet"))
        assert files, f"no Parquet file under {sink}"
        table = pq.read_table(files[0], columns=["request_id", "label", "confidence"])
        assert table.num_rows > 0 and all(table.column("label").to_pylist()), table.slice(0, 3).to_pylist()
        result = step.production.drift()
        assert result["exit_code"] in (0, 3, 4)
        assert sum(g.get("n", 0) for g in result.get("groups", [])) > 0, result

    def test_automatic_rollout_promotes_a_good_version_through_every_step(self, real: Any, step: Any) -> None:
        """The kind workflow's step 7 on real pods: live varied traffic through the Gateway from a pod, stable
        version 1, ``canary.sh production auto 2`` with the chart's steps (shadow 100 %, canary 5, 25, 50 %), each
        judged by an analysis Job reading the sink, then promoted; every decision an MLflow tag and an Event."""
        deploy(real, "production", step.mode, "-f", str(ROLLOUT_VALUES), "--set", "serving.stable.modelVersion=1")
        step.production.only("1")
        step.production.traffic("start")
        out = _rollout(real, "2")
        assert out.returncode == 0, out.stderr[-6000:]
        result = json.loads(out.stdout)
        log(f"{step.mode}: {_decisions(result)}")
        assert result["result"] == "promoted", result
        assert _decided(result) == ["started", *["advance"] * 4, "promoted"], result
        assert [d["step"] for d in result["decisions"] if d["decision"] == "advance"] == [
            "shadow 100%",
            "canary 5%",
            "canary 25%",
            "canary 50%",
        ], result
        step.production.only("2")
        tags = step.production.rollout("2", "promoted")
        assert tags["stable_version"] == "2", tags
        values = step.production.values()["serving"]
        assert not values["canary"]["enabled"] and not values["shadow"]["enabled"], values

    def test_automatic_rollout_rolls_a_bad_version_back_at_its_first_step(self, real: Any, step: Any) -> None:
        """Version 3 (bad on purpose) as the next candidate: the shadow step's checks fail on the mirrored
        traffic, the release returns to the revision before the rollout, version 2 keeps serving."""
        before = _history(real)[-1]["revision"]
        try:
            out = _rollout(real, "3")
        finally:
            step.production.traffic("stop")
        assert out.returncode == 3, out.stderr[-6000:]
        result = json.loads(out.stdout)
        log(f"{step.mode}: {_decisions(result)}")
        assert result["result"] == "rolled_back" and result["reason"].startswith("shadow 100%: failed: "), result
        assert _decided(result) == ["started", "rollback", "rolled_back"], result
        assert _history(real)[-1]["description"] == f"Rollback to {before}"
        step.production.only("2")
        tags = step.production.rollout("3", "rolled_back")
        assert tags["step"] == "shadow 100%", tags


def _decided(result: dict[str, Any]) -> list[str]:
    """The rollout's decisions without its holds, after checking that each hold only waited for data: a loaded
    machine sends fewer requests per analysis window, so a step may hold once; it may never hold on a failed check."""
    holds = [d for d in result["decisions"] if d["decision"] == "hold"]
    assert all(d["reason"].startswith("not enough data yet") for d in holds), holds
    return [d["decision"] for d in result["decisions"] if d["decision"] != "hold"]


def _rollout(real: Any, version: str) -> Any:
    """``scripts/canary.sh production auto <version>``, its decisions tagged in the release's MLflow through
    ``kubectl port-forward`` (as the kind workflow does: the server accepts only its own names and localhost)."""
    from tests.support import free_port

    port = free_port()
    forward = subprocess.Popen(
        ["kubectl", "-n", "mlflow", "port-forward", "service/mlflow", f"{port}:5000"],
        env=real.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(f"{uri}/health"), timeout=60, what="kubectl port-forward to MLflow")
        argv = [str(REPO / "scripts" / "canary.sh"), "production", "auto", version]
        env = {**real.env, "MLFLOW_TRACKING_URI": uri}
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1500, check=False)
    finally:
        forward.terminate()
        forward.wait(timeout=30)
    sys.stderr.write(result.stderr[-8000:])
    return result


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _history(real: Any) -> list[dict[str, Any]]:
    out = real.run("helm", "-n", "production", "history", "kube-sentiment", "-o", "json").stdout
    return list(json.loads(out))


def _decisions(result: dict[str, Any]) -> str:
    return "; ".join(
        f"{d['decision']} {d.get('step') or ''} {(d.get('reason') or '')[:160]}" for d in result["decisions"]
    )


def _stable_selector(mode: str) -> str:
    if mode == "kserve":
        return "serving.kserve.io/inferenceservice=kube-sentiment,component=predictor"
    return "app.kubernetes.io/instance=kube-sentiment,kube-sentiment/track=stable"


def _unready_clone(template: dict[str, Any], version: str) -> dict[str, Any]:
    """The template pod's spec and labels, serving ``version``, with a readiness probe that never succeeds."""
    spec = json.loads(json.dumps(template["spec"]))
    for key in ("nodeName", "hostname", "subdomain"):
        spec.pop(key, None)
    server = next(c for c in spec["containers"] if c["name"] in ("serve", "kserve-container"))
    for env in server.get("env", []):
        if env["name"] == "KS_SERVE_MODEL_VERSION":
            env["value"] = version
        if env["name"] == "KS_SERVE_MODEL_URI":
            env["value"] = env["value"].rsplit("/", 1)[0] + f"/{version}"
    server["readinessProbe"] = {"httpGet": {"path": "/never-ready", "port": "http"}, "periodSeconds": 2}
    labels = {k: v for k, v in template["metadata"]["labels"].items() if k != "pod-template-hash"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "kube-sentiment-unready",
            "labels": labels,
            "annotations": template["metadata"].get("annotations", {}),
        },
        "spec": spec,
    }


def _write(real: Any, name: str, obj: dict[str, Any]) -> Path:
    path = real.cluster.workdir / name
    path.write_text(json.dumps(obj))
    return path


def _answers_directly(ip: str, port: int) -> str:
    import httpx

    try:
        response = httpx.post(
            f"http://{ip}:{port}/v1/models/sentiment:predict", json={"instances": ["good"]}, timeout=5
        )
        return str(response.json().get("model_version", "")) if response.status_code == 200 else ""
    except (httpx.HTTPError, ValueError):
        return ""


def _sink_dir(real: Any, release: Release) -> Path:
    """The host directory of the local PersistentVolume bound to the release's sink claim."""
    claim = release.values()["shipper"]["sink"]["pvc"]["existingClaim"] or "kube-sentiment-sink"
    volume = release.get("pvc", claim)["spec"]["volumeName"]
    path = json.loads(real.kubectl("get", "pv", volume, "-o", "json").stdout)["spec"]["local"]["path"]
    return Path(path)


def _request_ids_in(sink: Path, tag: str) -> set[str]:
    found: set[str] = set()
    for path in sink.rglob("*.parquet"):
        try:
            ids = pq.read_table(path, columns=["request_id"]).column("request_id").to_pylist()
        except (OSError, ValueError):
            continue  # a file being written
        found |= {i for i in ids if i and i.startswith(tag)}
    return found
