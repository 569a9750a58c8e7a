"""helm/kube-sentiment and helm/mlflow on the real local API server (issue 6): releases per environment in both
serving modes, canary upgrade / promotion / rollback, Deployment rollouts and undo, the drift CronJob, RBAC of
the service accounts, and refused or failed upgrades leaving the previous release in place.

Pods run on kwok fake nodes (Running; Job pods Succeeded); the namespaces come from k8s/namespaces.yaml, whose
restricted Pod Security profile is enforced by the API server for every pod the charts create.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from localcluster import Cluster

pytestmark = pytest.mark.cluster

WAIT = "120s"


# -- helpers --------------------------------------------------------------------------------------------------
def chart(cluster: Cluster, name: str) -> Path:
    path = cluster.repo / "helm" / name
    if not (path / "Chart.yaml").exists():
        pytest.fail(f"{path} is missing: the chart tests need helm/{name}")
    return path


def env_values(cluster: Cluster, environment: str) -> str:
    return str(chart(cluster, "kube-sentiment") / f"values-{environment}.yaml")


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def upgrade(cluster: Cluster, release: str, namespace: str, chart_name: str, *args: str, check: bool = True) -> Any:
    """``helm upgrade --install`` (waiting for workloads); returns the CompletedProcess."""
    return cluster.helm(
        "upgrade",
        "--install",
        release,
        str(chart(cluster, chart_name)),
        "--namespace",
        namespace,
        "--wait",
        f"--timeout={WAIT}",
        *args,
        check=check,
        timeout=240,
    )


def history(cluster: Cluster, release: str, namespace: str) -> list[dict[str, Any]]:
    return json.loads(cluster.helm("history", release, "-n", namespace, "-o", "json").stdout)


def bind_volume(cluster: Cluster, namespace: str, claim: str, tmp_path: Path, size: str = "20Gi") -> None:
    """A PersistentVolume pre-bound to ``namespace/claim`` (the local cluster has no dynamic provisioner)."""
    name = f"pv-{namespace}-{claim}"[:63]
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": f"/var/lib/ks-test/{name}"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(pv))
    cluster.kubectl("apply", "-f", str(path))


def s3_secret(cluster: Cluster, namespace: str, name: str) -> None:
    if cluster.kubectl("get", "secret", name, "-n", namespace, check=False).returncode != 0:
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            name,
            "-n",
            namespace,
            "--from-literal=AWS_ACCESS_KEY_ID=test",
            "--from-literal=AWS_SECRET_ACCESS_KEY=test",
        )


def server_side_strict_dry_run(cluster: Cluster, manifests: str, namespace: str, tmp_path: Path) -> None:
    """Every rendered object is accepted by the API server with strict field validation."""
    path = tmp_path / "rendered.yaml"
    path.write_text(manifests)
    cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "--field-manager=chart-test",
        "-n",
        namespace,
        "-f",
        str(path),
    )


def diff_paths(before: Any, after: Any, path: str = "") -> set[str]:
    """Paths (``a.b[0].c``) at which two JSON documents differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: set[str] = set()
        for key in before.keys() | after.keys():
            out |= diff_paths(before.get(key), after.get(key), f"{path}.{key}" if path else key)
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = set()
        for index, (x, y) in enumerate(zip(before, after, strict=True)):
            out |= diff_paths(x, y, f"{path}[{index}]")
        return out
    return set() if before == after else {path}


def model_uri(pod_spec: dict[str, Any], container: str) -> str:
    for c in pod_spec["containers"]:
        if c["name"] == container:
            return next(e["value"] for e in c.get("env", []) if e["name"] == "KS_SERVE_MODEL_URI")
    raise AssertionError(f"no container {container} in {pod_spec['containers']}")


def predictor_model_uri(predictor: dict[str, Any]) -> str:
    """The model URI of an InferenceService predictor: its ``model``'s environment (KServe merges it over the
    chart's ServingRuntime's kserve-container)."""
    return next(e["value"] for e in predictor["model"].get("env", []) if e["name"] == "KS_SERVE_MODEL_URI")


# -- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def envs(cluster: Cluster) -> Cluster:
    """The namespaces of k8s/namespaces.yaml exist (the session fixture applied them)."""
    for namespace in ("staging", "production", "mlflow"):
        cluster.kubectl("get", "namespace", namespace)
    s3_secret(cluster, "production", "kube-sentiment-s3")
    return cluster


# -- releases per environment and serving mode ----------------------------------------------------------------
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_environment_release_in_both_serving_modes(envs: Cluster, environment: str, tmp_path: Path) -> None:
    cluster, release = envs, "kube-sentiment"
    values = env_values(cluster, environment)
    if environment == "staging":
        bind_volume(cluster, environment, f"{release}-sink", tmp_path)
    for mode in ("kserve", "deployment"):
        rendered = cluster.helm(
            "template",
            release,
            str(chart(cluster, "kube-sentiment")),
            "-n",
            environment,
            "-f",
            values,
            f"--set=serving.mode={mode}",
        ).stdout
        server_side_strict_dry_run(cluster, rendered, environment, tmp_path)
        upgrade(cluster, release, environment, "kube-sentiment", "-f", values, f"--set=serving.mode={mode}")
        manifest = cluster.helm("get", "manifest", release, "-n", environment).stdout
        kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
        if mode == "kserve":
            isvc = get_json(cluster, "inferenceservice", release, "-n", environment)
            assert isvc["metadata"]["labels"]["kube-sentiment/environment"] == environment
            assert {"ServingRuntime", "HTTPRoute", "GRPCRoute"} <= kinds and "Deployment" not in kinds
        else:
            assert {"Deployment", "Service", "HTTPRoute", "GRPCRoute", "CronJob"} <= kinds
            # The InferenceService of the previous revision is gone: helm removed it on the mode switch.
            assert cluster.kubectl("get", "inferenceservice", release, "-n", environment, check=False).returncode
            cluster.kubectl(
                "rollout", "status", f"deployment/{release}-stable", "-n", environment, "--timeout=90s", timeout=120
            )
            pods = get_json(
                cluster,
                "pods",
                "-n",
                environment,
                "-l",
                f"kube-sentiment/track=stable,app.kubernetes.io/instance={release}",
            )
            assert pods["items"]
            assert all(p["status"]["phase"] == "Running" for p in pods["items"])
    assert [h["status"] for h in history(cluster, release, environment)][-1] == "deployed"


def test_mlflow_release(envs: Cluster, tmp_path: Path) -> None:
    cluster = envs
    bind_volume(cluster, "mlflow", "mlflow", tmp_path)
    rendered = cluster.helm("template", "mlflow", str(chart(cluster, "mlflow")), "-n", "mlflow").stdout
    server_side_strict_dry_run(cluster, rendered, "mlflow", tmp_path)
    upgrade(cluster, "mlflow", "mlflow", "mlflow")
    cluster.kubectl("rollout", "status", "deployment/mlflow", "-n", "mlflow", "--timeout=90s", timeout=120)
    assert get_json(cluster, "pvc", "mlflow", "-n", "mlflow")["status"]["phase"] == "Bound"


# -- canary in kserve mode ------------------------------------------------------------------------------------
def test_kserve_canary_upgrade_promotion_and_rollback(envs: Cluster, tmp_path: Path) -> None:
    cluster, ns, release = envs, "staging", "ks-canary"
    name = f"{release}-kube-sentiment"
    base = ["-f", env_values(cluster, "staging"), "--set=serving.mode=kserve"]
    bind_volume(cluster, ns, f"{name}-sink", tmp_path)
    upgrade(cluster, release, ns, "kube-sentiment", *base)
    rev1 = get_json(cluster, "inferenceservice", name, "-n", ns)["spec"]
    stable_uri = predictor_model_uri(rev1["predictor"])
    assert "canary" not in rev1

    # Upgrade 2: a candidate model version at 10 %; the stable predictor is untouched.
    canary = [
        "--set=serving.canary.enabled=true",
        "--set=serving.canary.modelVersion=3",
        "--set=serving.canary.weight=10",
    ]
    upgrade(cluster, release, ns, "kube-sentiment", *base, *canary)
    rev2 = get_json(cluster, "inferenceservice", name, "-n", ns)["spec"]
    assert diff_paths(rev1, rev2) == {"canary"}
    assert [c["trafficPercent"] for c in rev2["canary"]] == [10]
    assert predictor_model_uri(rev2["canary"][0]["predictor"]) == "models:/sentiment/3"
    assert predictor_model_uri(rev2["predictor"]) == stable_uri

    # Upgrade 3: only the weight changes.
    upgrade(cluster, release, ns, "kube-sentiment", *base, *canary, "--set=serving.canary.weight=30")
    rev3 = get_json(cluster, "inferenceservice", name, "-n", ns)["spec"]
    assert diff_paths(rev2, rev3) == {"canary[0].trafficPercent"}

    # Upgrade 4: promotion — version 3 becomes stable, the canary goes away.
    upgrade(cluster, release, ns, "kube-sentiment", *base, "--set=serving.stable.modelVersion=3")
    rev4 = get_json(cluster, "inferenceservice", name, "-n", ns)["spec"]
    assert "canary" not in rev4
    assert predictor_model_uri(rev4["predictor"]) == "models:/sentiment/3"

    # helm rollback to revision 3 brings that revision's objects back.
    cluster.helm("rollback", release, "3", "-n", ns, "--wait", f"--timeout={WAIT}")
    assert get_json(cluster, "inferenceservice", name, "-n", ns)["spec"] == rev3
    assert history(cluster, release, ns)[-1]["description"] == "Rollback to 3"


# -- deployment mode: rollout status / history / undo ---------------------------------------------------------
def test_deployment_mode_rollout_history_and_undo(envs: Cluster, tmp_path: Path) -> None:
    cluster, ns, release = envs, "staging", "ks-rollout"
    deployment = f"deployment/{release}-kube-sentiment-stable"
    base = ["-f", env_values(cluster, "staging"), "--set=serving.mode=deployment"]
    bind_volume(cluster, ns, f"{release}-kube-sentiment-sink", tmp_path)

    def replica_sets() -> dict[str, str]:
        items = get_json(cluster, "rs", "-n", ns, "-l", f"app.kubernetes.io/instance={release}")["items"]
        return {rs["metadata"]["name"]: model_uri(rs["spec"]["template"]["spec"], "serve") for rs in items}

    upgrade(cluster, release, ns, "kube-sentiment", *base, "--set=serving.stable.modelVersion=4")
    cluster.kubectl("rollout", "status", deployment, "-n", ns, "--timeout=90s", timeout=120)
    first = replica_sets()
    assert list(first.values()) == ["models:/sentiment/4"]

    upgrade(cluster, release, ns, "kube-sentiment", *base, "--set=serving.stable.modelVersion=5")
    cluster.kubectl("rollout", "status", deployment, "-n", ns, "--timeout=90s", timeout=120)
    second = replica_sets()
    assert set(second.values()) == {"models:/sentiment/4", "models:/sentiment/5"}
    assert len(second) == 2

    revisions = cluster.kubectl("rollout", "history", deployment, "-n", ns).stdout
    assert "models:/sentiment/4" in revisions and "models:/sentiment/5" in revisions
    assert "helm revision 2" in revisions

    cluster.kubectl("rollout", "undo", deployment, "-n", ns)
    cluster.kubectl("rollout", "status", deployment, "-n", ns, "--timeout=90s", timeout=120)
    live = get_json(cluster, deployment, "-n", ns)
    assert model_uri(live["spec"]["template"]["spec"], "serve") == "models:/sentiment/4"
    assert replica_sets() == second  # undo reuses the old ReplicaSet instead of creating a third one
    pods = get_json(cluster, "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={release}")["items"]
    running = [p for p in pods if p["status"]["phase"] == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert running and all(model_uri(p["spec"], "serve") == "models:/sentiment/4" for p in running)


# -- drift CronJob --------------------------------------------------------------------------------------------
def test_drift_cronjob_creates_a_job_that_completes(envs: Cluster, tmp_path: Path) -> None:
    cluster, ns, release = envs, "production", "ks-drift"
    values_path = env_values(cluster, "production")
    upgrade(cluster, release, ns, "kube-sentiment", "-f", values_path)
    cronjob = get_json(cluster, "cronjob", f"{release}-kube-sentiment-drift", "-n", ns)
    defaults = yaml.safe_load((chart(cluster, "kube-sentiment") / "values.yaml").read_text())["drift"]
    overrides = yaml.safe_load(Path(values_path).read_text()).get("drift", {})
    expected = {**defaults, **overrides}
    spec = cronjob["spec"]
    assert spec["schedule"] == expected["schedule"]
    assert spec["concurrencyPolicy"] == expected["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == expected["successfulJobsHistoryLimit"]
    assert spec["failedJobsHistoryLimit"] == expected["failedJobsHistoryLimit"]
    assert spec["jobTemplate"]["spec"]["ttlSecondsAfterFinished"] == expected["ttlSecondsAfterFinished"]

    job = f"{release}-drift-manual"
    cluster.kubectl("create", "job", job, f"--from=cronjob/{release}-kube-sentiment-drift", "-n", ns)
    cluster.kubectl("wait", "--for=condition=Complete", f"job/{job}", "-n", ns, "--timeout=90s", timeout=120)
    pods = get_json(cluster, "pods", "-n", ns, "-l", f"job-name={job}")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]


# -- RBAC -----------------------------------------------------------------------------------------------------
def test_service_accounts_can_do_what_they_need_and_nothing_more(envs: Cluster, namespace: str) -> None:
    cluster, release = envs, "ks-rbac"
    upgrade(
        cluster,
        release,
        namespace,
        "kube-sentiment",
        "--set=serving.mode=kserve",
        "--set=train.enabled=true",
        "--set=shipper.enabled=false",
        "--set=drift.enabled=true",
        "--set=shipper.sink.type=s3",
        "--set=shipper.sink.s3.uri=s3://bucket/events",
        "--set=shipper.sink.s3.credentialsSecret.name=s3",
        '--set-json=rbac.drift.rules=[{"apiGroups":[""],"resources":["events"],"verbs":["create"]}]',
        "--wait=false",
    )

    def can(sa: str, *verb_resource: str) -> bool:
        result = cluster.kubectl(
            "auth",
            "can-i",
            *verb_resource,
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:{release}-kube-sentiment-{sa}",
            check=False,
        )
        assert result.stdout.strip() in {"yes", "no"}, result.stderr
        return result.stdout.strip() == "yes"

    # The drift job may record Events (the rule in values) and nothing else.
    assert can("drift", "create", "events")
    for sa in ("drift", "train", "serving"):
        for verb_resource in (
            ("get", "secrets"),
            ("list", "pods"),
            ("create", "pods"),
            ("delete", "jobs"),
            ("patch", "inferenceservices.serving.kserve.io"),
            ("get", "configmaps"),
        ):
            assert not can(sa, *verb_resource), f"{sa} may {' '.join(verb_resource)}"
    assert not can("train", "create", "events")
    assert not can("serving", "create", "events")
    # And nothing in other namespaces.
    result = cluster.kubectl(
        "auth",
        "can-i",
        "create",
        "events",
        "-n",
        "default",
        f"--as=system:serviceaccount:{namespace}:{release}-kube-sentiment-drift",
        check=False,
    )
    assert result.stdout.strip() == "no"


# -- refused and failed upgrades ------------------------------------------------------------------------------
def test_bad_values_are_refused_before_reaching_the_cluster(envs: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster, release = envs, "ks-guard"
    base = ["--set=serving.mode=deployment", "--set=shipper.enabled=false", "--set=drift.enabled=false"]
    upgrade(cluster, release, namespace, "kube-sentiment", *base)
    before = get_json(cluster, "deployment", "-n", namespace)["items"]
    revisions = len(history(cluster, release, namespace))

    bad = tmp_path / "bad-values.yaml"
    bad.write_text(yaml.safe_dump({"serving": {"mode": "knative", "stable": {"replicaz": 3}}}))
    result = upgrade(cluster, release, namespace, "kube-sentiment", *base, "-f", str(bad), check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert len(history(cluster, release, namespace)) == revisions  # no release record was written
    after = get_json(cluster, "deployment", "-n", namespace)["items"]
    assert [d["metadata"]["resourceVersion"] for d in after] == [d["metadata"]["resourceVersion"] for d in before]


def test_failed_upgrade_rolls_back_and_keeps_serving(envs: Cluster, namespace: str) -> None:
    cluster, release = envs, "ks-atomic"
    deployment = f"deployment/{release}-kube-sentiment-stable"
    base = ["--set=serving.mode=deployment", "--set=shipper.enabled=false", "--set=drift.enabled=false"]
    upgrade(cluster, release, namespace, "kube-sentiment", *base, "--set=serving.stable.modelVersion=4")
    good = get_json(cluster, deployment, "-n", namespace)["spec"]["template"]

    # The new pods can never be scheduled (no such node), so --wait times out and --atomic rolls back.
    result = cluster.helm(
        "upgrade",
        release,
        str(chart(cluster, "kube-sentiment")),
        "-n",
        namespace,
        *base,
        "--set=serving.stable.modelVersion=5",
        "--set=serving.nodeSelector.pool=does-not-exist",
        "--atomic",
        "--wait",
        "--timeout=15s",
        check=False,
        timeout=180,
    )
    assert result.returncode != 0
    assert "rolled back" in (result.stderr + result.stdout)
    statuses = [h["status"] for h in history(cluster, release, namespace)]
    assert statuses[-2:] == ["failed", "deployed"]
    cluster.kubectl("rollout", "status", deployment, "-n", namespace, "--timeout=90s", timeout=120)
    live = get_json(cluster, deployment, "-n", namespace)["spec"]["template"]
    assert model_uri(live["spec"], "serve") == model_uri(good["spec"], "serve") == "models:/sentiment/4"
    assert "nodeSelector" not in live["spec"] or "pool" not in live["spec"]["nodeSelector"]


# -- every chart-testing scenario is accepted by the API server -----------------------------------------------
#: Kinds whose CRDs a scenario may use but the local cluster does not install (Prometheus Operator).
NOT_INSTALLED_KINDS = {"PodMonitor", "ServiceMonitor"}
SCENARIOS = sorted(
    (path.parent.parent.name, path.name)
    for path in (Path(__file__).resolve().parents[2] / "helm").glob("*/ci/*-values.yaml")
)


@pytest.mark.parametrize(("chart_name", "scenario"), SCENARIOS, ids=[f"{c}/{s}" for c, s in SCENARIOS])
def test_ci_scenario_is_accepted_with_strict_validation(
    cluster: Cluster, namespace: str, tmp_path: Path, chart_name: str, scenario: str
) -> None:
    values = chart(cluster, chart_name) / "ci" / scenario
    rendered = cluster.helm("template", "scenario", str(chart(cluster, chart_name)), "-n", namespace, "-f", str(values))
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    kept = [doc for doc in docs if doc["kind"] not in NOT_INSTALLED_KINDS]
    assert kept, f"{scenario} renders nothing"
    server_side_strict_dry_run(cluster, yaml.safe_dump_all(kept), namespace, tmp_path)


# -- the console's ServiceAccount ------------------------------------------------------------------------------
def test_console_reads_the_chart_and_nothing_more(envs: Cluster, namespace: str, tmp_path: Path) -> None:
    """`kubectl auth can-i --as` the console's ServiceAccount, then the console's own Kubernetes adapter with that
    account's token: it reads tracks, shares, the lock and rollout Events, and is refused everything else."""
    from kubernetes.client.exceptions import ApiException

    from control.console.sources import rollouts
    from control.console.sources.serving import KubernetesServing

    cluster, release = envs, "ks-console"
    account = f"{release}-kube-sentiment-console"
    upgrade(cluster, release, namespace, "kube-sentiment", "--set=serving.mode=deployment",
            "--set=shipper.enabled=false", "--set=drift.enabled=false", "--set=serving.stable.replicas=1",
            "--set=serving.canary.enabled=true", "--set=serving.canary.modelVersion=2",
            "--set=serving.canary.weight=20", "--set=console.enabled=true", "--set=console.readSink=false",
            f"--set=console.namespaces={{{namespace}}}")

    def can(*verb_resource: str, where: str = namespace) -> bool:
        result = cluster.kubectl("auth", "can-i", *verb_resource, "-n", where,
                                 f"--as=system:serviceaccount:{namespace}:{account}", check=False)
        assert result.stdout.strip() in {"yes", "no"}, result.stderr
        return result.stdout.strip() == "yes"

    for verb in ("get", "list", "watch"):
        for resource in ("pods", "events", "deployments.apps", "inferenceservices.serving.kserve.io",
                         "httproutes.gateway.networking.k8s.io"):
            assert can(verb, resource), f"the console may not {verb} {resource}"
    for verb_resource in (("get", "secrets"), ("list", "secrets"), ("get", "configmaps"), ("create", "pods"),
                          ("delete", "pods"), ("patch", "deployments.apps"), ("create", "events"),
                          ("patch", "inferenceservices.serving.kserve.io"), ("create", "jobs.batch"),
                          ("get", "pods", "--subresource=log"), ("create", "pods", "--subresource=exec"),
                          ("list", "roles.rbac.authorization.k8s.io")):
        assert not can(*verb_resource), f"the console may {' '.join(verb_resource)}"
    assert not can("list", "pods", where="default") and not can("list", "pods", where="production")

    # The adapter, with the ServiceAccount's own token.
    lock = {"version": "2", "from_revision": "1", "started_at": "2026-12-01T10:00:00+00:00", "owner": "test",
            "phase": "running"}
    cluster.kubectl("annotate", f"deployment/{release}-kube-sentiment-stable", "-n", namespace,
                    f"kube-sentiment/rollout={json.dumps(lock)}")
    event = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ks-console-rollout-1", "namespace": namespace},
             "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace,
                                "name": f"{release}-kube-sentiment-stable"},
             "reason": "RolloutAdvanced", "message": "version 2: advance at canary 20%: every check passed",
             "type": "Normal", "firstTimestamp": "2026-12-01T10:05:00Z", "lastTimestamp": "2026-12-01T10:05:00Z",
             "source": {"component": "kube-sentiment-rollout"}, "count": 1}
    (tmp_path / "event.json").write_text(json.dumps(event))
    cluster.kubectl("create", "-f", str(tmp_path / "event.json"))
    token = cluster.kubectl("create", "token", account, "-n", namespace).stdout.strip()
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": token}
    kubeconfig = tmp_path / "console-kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    serving = KubernetesServing([namespace], 8080, 30.0, kubeconfig)
    assert serving.environments() == ["staging"]  # the pods' kube-sentiment/environment label
    tracks = {t.track: t for t in serving.tracks("staging")}
    assert (tracks["stable"].model_version, tracks["stable"].weight, tracks["stable"].desired) == ("1", 80, 1)
    assert (tracks["canary"].model_version, tracks["canary"].weight, tracks["canary"].desired) == ("2", 20, 1)
    assert tracks["stable"].ready == tracks["canary"].ready == 1
    assert serving.lock("staging") == lock
    decisions = rollouts.from_events("staging", serving.events("staging"))
    assert [(d["version"], d["decision"], d["step"]) for d in decisions] == [("2", "advance", "canary 20%")]
    with pytest.raises(ApiException) as refused:
        serving.core.read_namespaced_secret("anything", namespace)
    assert refused.value.status == 403
    with pytest.raises(ApiException) as elsewhere:
        serving.core.list_namespaced_pod("default")
    assert elsewhere.value.status == 403
