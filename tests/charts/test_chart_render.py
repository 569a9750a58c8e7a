"""Chart tests: helm lint, render every chart x environment x serving mode with the real Helm engine, validate every
object strictly offline (k8s 1.32 OpenAPI + the pinned CRDs, unknown fields fail) and assert policy on the output.

Needs the helm and kubeconform binaries from `scripts/build-tools.sh helm kubeconform`, and the Kubernetes
OpenAPI documents of the pinned version (k8s.io/kubernetes Go module; see chartlib.openapi_dir).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chartlib
import pytest
import yaml

pytestmark = pytest.mark.integration

APP = chartlib.CHARTS / "kube-sentiment"
MLFLOW = chartlib.CHARTS / "mlflow"
ENVS = {"staging": APP / "values-staging.yaml", "production": APP / "values-production.yaml"}
MODES = ("kserve", "deployment")
APP_CI = sorted((APP / "ci").glob("*-values.yaml"))
MLFLOW_CI = sorted((MLFLOW / "ci").glob("*-values.yaml"))
# Kinds whose CRDs are not pinned here (Prometheus Operator): checked by the policy tests below instead.
NO_SCHEMA = ("PodMonitor",)
CANARY = ("serving.canary.enabled=true", "serving.canary.modelVersion=42", "serving.canary.weight=15")


@functools.cache
def _render(chart: str, namespace: str, values: tuple[Path, ...], sets: tuple[str, ...]) -> str:
    return chartlib.render(chart, chart, namespace, values, sets)


def render_app(env: str, mode: str, *sets: str, extra: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    return chartlib.objects(_render("kube-sentiment", env, (ENVS[env], *extra), (f"serving.mode={mode}", *sets)))


def app_matrix() -> list[tuple[str, str, tuple[str, ...]]]:
    return [(env, mode, canary) for env in ENVS for mode in MODES for canary in ((), CANARY)]


def _id(case: tuple[str, str, tuple[str, ...]]) -> str:
    env, mode, canary = case
    return f"{env}-{mode}{'-canary' if canary else ''}"


def all_app_renders() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for case in app_matrix():
        yield _id(case), render_app(case[0], case[1], *case[2])
    for ci in APP_CI:
        for mode in MODES:
            yield f"ci-{ci.stem}-{mode}", render_app("staging", mode, extra=(ci,))


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def pod_specs(
    obj: dict[str, Any], objs: list[dict[str, Any]] | None = None
) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """(where, pod spec, pod labels) of every pod an object creates. An InferenceService's predictors give the pod
    KServe builds from them and the ServingRuntime they name (found in ``objs``, the same render)."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    if kind in ("Deployment", "Job"):
        tpl = obj["spec"]["template"]
        yield f"{kind}/{name}", tpl["spec"], tpl["metadata"].get("labels", {})
    elif kind == "CronJob":
        tpl = obj["spec"]["jobTemplate"]["spec"]["template"]
        yield f"{kind}/{name}", tpl["spec"], tpl["metadata"].get("labels", {})
    elif kind == "Pod":
        yield f"{kind}/{name}", obj["spec"], obj["metadata"].get("labels", {})
    elif kind == "InferenceService":
        assert objs is not None, "an InferenceService's pods need the render's ServingRuntime"
        predictors = [("predictor", obj["spec"]["predictor"])]
        predictors += [(f"canary[{i}]", c["predictor"]) for i, c in enumerate(obj["spec"].get("canary", []))]
        for where, predictor in predictors:
            runtime = one(objs, "ServingRuntime", predictor["model"]["runtime"])
            yield f"{kind}/{name}/{where}", kserve_pod(predictor, runtime), predictor.get("labels", {})


#: Fields of a predictor that are KServe's component settings or its model, not PodSpec fields.
KSERVE_COMPONENT_FIELDS = {
    "name", "labels", "annotations", "minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "timeout",
    "deploymentStrategy", "logger", "model",
}  # fmt: skip


def kserve_pod(predictor: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    """The pod spec KServe v0.20 builds for a predictor with a ``model`` (components/predictor.go buildPodSpec):
    the runtime's kserve-container with the model's container fields over it (env merged by name, args appended),
    then the predictor's own containers; the predictor's PodSpec fields as they are."""
    spec = {k: copy.deepcopy(v) for k, v in predictor.items() if k not in KSERVE_COMPONENT_FIELDS}
    model = {k: v for k, v in predictor["model"].items() if k not in ("modelFormat", "runtime", "protocolVersion")}
    model.setdefault("name", "kserve-container")
    base = next(c for c in runtime["spec"]["containers"] if c["name"] == "kserve-container")
    server = {**copy.deepcopy(base), **copy.deepcopy(model)}
    env = {e["name"]: e for e in base.get("env", [])} | {e["name"]: e for e in model.get("env", [])}
    server["env"] = list(env.values())
    server["args"] = [*base.get("args", []), *model.get("args", [])]
    spec["containers"] = [server, *spec.get("containers", [])]
    return spec


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# ------------------------------------------------------------------------------------------------ lint


@pytest.mark.parametrize(
    "chart,values",
    [(APP, None), *[(APP, f) for f in [*ENVS.values(), *APP_CI]], (MLFLOW, None), *[(MLFLOW, f) for f in MLFLOW_CI]],
    ids=lambda p: p.name if isinstance(p, Path) else "defaults",
)
def test_helm_lint(helm_bin: Path, chart: Path, values: Path | None) -> None:
    args = ["lint", "--strict", str(chart), "--kube-version", chartlib.kube_version()]
    if values:
        args += ["-f", str(values)]
    result = chartlib.helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# -------------------------------------------------------------------------------------- schema validation


def validation_cases() -> dict[str, tuple[str, str, tuple[Path, ...], tuple[str, ...]]]:
    """Every render the validation covers: case id -> (chart, namespace, values files, --set items)."""
    cases = {}
    for env, mode, canary in app_matrix():
        cases[_id((env, mode, canary))] = ("kube-sentiment", env, (ENVS[env],), (f"serving.mode={mode}", *canary))
    for ci in APP_CI:
        for mode in MODES:
            cases[f"ci-{ci.stem}-{mode}"] = (
                "kube-sentiment",
                "staging",
                (ENVS["staging"], ci),
                (f"serving.mode={mode}",),
            )
    cases["mlflow-defaults"] = ("mlflow", "mlflow", (), ())
    for ci in MLFLOW_CI:
        cases[f"mlflow-{ci.stem}"] = ("mlflow", "mlflow", (ci,), ())
    return cases


@pytest.fixture(scope="session")
def validation_report(
    helm_bin: Path, schema_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """Render every case and validate all of them in one kubeconform run; case id -> invalid resources."""
    out_dir = tmp_path_factory.mktemp("renders")
    files = {}
    for case, (chart, namespace, values, sets) in validation_cases().items():
        path = out_dir / f"{case}.yaml"
        path.write_text(_render(chart, namespace, values, sets))
        files[case] = path
    report = chartlib.kubeconform_files(files.values(), schema_dir, NO_SCHEMA)
    return {case: report[str(path)] for case, path in files.items()}


@pytest.mark.parametrize("case", list(validation_cases()))
def test_every_render_validates_strictly(validation_report: dict[str, list[dict[str, Any]]], case: str) -> None:
    """Built-in kinds against the k8s OpenAPI schemas, InferenceService/HTTPRoute/GRPCRoute against the CRDs."""
    assert validation_report[case] == []


@pytest.mark.parametrize("case", app_matrix(), ids=_id)
def test_serving_mode_decides_the_kinds(helm_bin: Path, case: tuple[str, str, tuple[str, ...]]) -> None:
    env, mode, canary = case
    kinds = {o["kind"] for o in render_app(env, mode, *canary)}
    # Both modes route through the chart's weighted HTTPRoute and GRPCRoute.
    assert {"HTTPRoute", "GRPCRoute"} <= kinds
    if mode == "kserve":
        assert {"InferenceService", "ServingRuntime"} <= kinds and "Deployment" not in kinds
    else:
        assert {"Deployment", "Service"} <= kinds and not {"InferenceService", "ServingRuntime"} & kinds


def test_mlflow_server_flags(helm_bin: Path) -> None:
    deployment = one(chartlib.objects(_render("mlflow", "mlflow", (), ())), "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--serve-artifacts" in args
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert {"mlflow.mlflow.svc.cluster.local", "mlflow.mlflow.svc.cluster.local:*", "mlflow:*"} <= set(hosts)
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    postgres = one(
        chartlib.objects(_render("mlflow", "mlflow", (MLFLOW / "ci" / "postgres-values.yaml",), ())), "Deployment"
    )
    env = {e["name"]: e for e in postgres["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-database",
        "key": "MLFLOW_BACKEND_STORE_URI",
    }


def test_strict_schemas_reject_unknown_fields(helm_bin: Path, schema_dir: Path, tmp_path: Path) -> None:
    """The generated schemas are closed: an unknown field anywhere fails, for built-in kinds and for CRDs."""
    deployment_mode = render_app("staging", "deployment", *CANARY)
    kserve_mode = render_app("staging", "kserve", *CANARY)
    mutations = [
        (
            one(deployment_mode, "Deployment", "-stable"),
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(bogusField=1),
        ),
        (one(deployment_mode, "Deployment", "-stable"), lambda o: o["metadata"].update(bogus="x")),
        (one(deployment_mode, "CronJob"), lambda o: o["spec"].update(concurrency="Forbid")),
        (one(deployment_mode, "HTTPRoute"), lambda o: o["spec"]["rules"][0]["backendRefs"][0].update(weigth=5)),
        (one(deployment_mode, "GRPCRoute"), lambda o: o["spec"]["rules"][0].update(bogus=True)),
        (one(kserve_mode, "InferenceService"), lambda o: o["spec"]["canary"][0].update(traffic=10)),
        (one(kserve_mode, "InferenceService"), lambda o: o["spec"]["predictor"]["model"].update(bogus=1)),
        (one(kserve_mode, "InferenceService"), lambda o: o["spec"]["canary"][0]["predictor"].update(replicas=1)),
        (one(kserve_mode, "ServingRuntime"), lambda o: o["spec"]["containers"][0].update(bogus=1)),
        (one(kserve_mode, "InferenceService"), lambda o: o["metadata"].update(labelz={})),
    ]
    files = []
    for i, (original, mutate) in enumerate(mutations):
        broken = copy.deepcopy(original)
        mutate(broken)
        for label, obj in (("ok", original), ("broken", broken)):
            path = tmp_path / f"{i}-{label}.yaml"
            path.write_text(yaml.safe_dump(obj))
            files.append(path)
    report = chartlib.kubeconform_files(files, schema_dir)
    for path in files:
        bad = report[str(path)]
        if path.stem.endswith("-ok"):
            assert bad == [], (path.name, bad)
        else:
            assert len(bad) == 1 and bad[0]["status"] == "statusInvalid", (path.name, bad)


# ------------------------------------------------------------------------------------------------ policy


def test_restricted_security_everywhere(helm_bin: Path) -> None:
    renders = [*all_app_renders(), ("mlflow", chartlib.objects(_render("mlflow", "mlflow", (), ())))]
    for case, objs in renders:
        for obj in objs:
            for where, spec, labels in pod_specs(obj, objs):
                ctx = f"{case}: {where}"
                psc = spec["securityContext"]
                assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault", ctx
                assert isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0, ctx
                # The console alone reads the Kubernetes API (read-only: test_console_rbac_reads_only).
                reads_api = labels.get("app.kubernetes.io/component") == "console"
                assert spec["automountServiceAccountToken"] is reads_api, ctx
                tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
                for c in containers(spec):
                    sc = c["securityContext"]
                    assert sc["allowPrivilegeEscalation"] is False, (ctx, c["name"])
                    assert sc["readOnlyRootFilesystem"] is True, (ctx, c["name"])
                    assert sc["capabilities"]["drop"] == ["ALL"], (ctx, c["name"])
                    assert "add" not in sc["capabilities"], (ctx, c["name"])
                    assert sc["seccompProfile"]["type"] == "RuntimeDefault", (ctx, c["name"])
                    tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
                    assert tmp and tmp[0]["name"] in tmp_volumes, (ctx, c["name"], "no emptyDir at /tmp")


def test_resources_probes_and_pinned_images(helm_bin: Path) -> None:
    renders = [*all_app_renders(), ("mlflow", chartlib.objects(_render("mlflow", "mlflow", (), ())))]
    for case, objs in renders:
        for obj in objs:
            for where, spec, _ in pod_specs(obj, objs):
                long_running = obj["kind"] in ("Deployment", "InferenceService")
                for c in containers(spec):
                    ctx = (case, where, c["name"])
                    res = c["resources"]
                    assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], ctx
                    image = c["image"]
                    name, _, tag = image.split("@")[0].rpartition(":")
                    assert name and tag and tag != "latest" and "/" not in tag, (ctx, image)
                    if long_running:
                        assert "readinessProbe" in c and "livenessProbe" in c, ctx
                if long_running:
                    server = spec["containers"][0]
                    if server["name"] in ("serve", "kserve-container"):
                        assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
                        assert server["livenessProbe"]["httpGet"]["path"] == "/"
                        assert {p["containerPort"] for p in server["ports"]} == {8080, 8081}


def test_labels_and_selectors_carry_component(helm_bin: Path) -> None:
    recommended = (
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/component",
        "helm.sh/chart",
    )
    for case, objs in all_app_renders():
        for obj in objs:
            labels = obj["metadata"]["labels"]
            assert all(k in labels for k in recommended), (case, obj["kind"], obj["metadata"]["name"])
            for where, _, pod_labels in pod_specs(obj, objs):
                assert all(k in pod_labels for k in recommended), (case, where)
        pods = [(w, labels) for o in objs for w, _, labels in pod_specs(o, objs)]
        selectors: list[tuple[str, dict[str, str]]] = []
        for obj in objs:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            if obj["kind"] in ("Deployment", "PodDisruptionBudget"):
                selectors.append((name, obj["spec"]["selector"]["matchLabels"]))
            elif obj["kind"] == "Service":
                selectors.append((name, obj["spec"]["selector"]))
            elif obj["kind"] == "NetworkPolicy":
                selectors.append((name, obj["spec"]["podSelector"]["matchLabels"]))
            if obj["kind"] == "Deployment":
                tpl_labels = obj["spec"]["template"]["metadata"]["labels"]
                assert obj["spec"]["selector"]["matchLabels"].items() <= tpl_labels.items(), (case, name)
        for name, selector in selectors:
            assert "app.kubernetes.io/component" in selector, (case, name)
            matched = [labels for _, labels in pods if selector.items() <= labels.items()]
            assert matched, (case, name, "selects no pod of this chart")
            components = {labels["app.kubernetes.io/component"] for labels in matched}
            assert len(components) == 1, (case, name, components)
            if "kube-sentiment/track" in selector:
                tracks = {labels.get("kube-sentiment/track") for labels in matched}
                assert tracks == {selector["kube-sentiment/track"]}, (case, name)


@pytest.mark.parametrize("weight", [0, 10, 35, 100])
def test_canary_weight_and_versions_from_values(helm_bin: Path, weight: int) -> None:
    sets = (
        "serving.stable.modelVersion=7",
        "serving.canary.enabled=true",
        "serving.canary.modelVersion=8",
        f"serving.canary.weight={weight}",
    )
    objs = render_app("production", "deployment", *sets)
    for kind, port in (("HTTPRoute", 8080), ("GRPCRoute", 8081)):
        refs = one(objs, kind)["spec"]["rules"][0]["backendRefs"]
        assert [(r["name"], r["port"], r["weight"]) for r in refs] == [
            ("kube-sentiment-stable", port, 100 - weight),
            ("kube-sentiment-canary", port, weight),
        ]
    for track, version in (("stable", 7), ("canary", 8)):
        spec = one(objs, "Deployment", f"-{track}")["spec"]["template"]["spec"]
        env = env_of(spec["containers"][0])
        assert env["KS_SERVE_MODEL_URI"] == f"models:/sentiment/{version}"
        assert env["KS_SERVE_TRACK"] == track and env["KS_SERVE_MODEL_VERSION"] == str(version)
        shipper = next(c for c in spec["initContainers"] if c["name"] == "shipper")
        assert env_of(shipper)["KS_SHIP_TRACK"] == track and env_of(shipper)["KS_SHIP_MODEL_VERSION"] == str(version)
        service = one(objs, "Service", f"-{track}")
        assert service["spec"]["selector"]["kube-sentiment/track"] == track

    objs = render_app("production", "kserve", *sets)
    isvc = one(objs, "InferenceService")
    assert env_of(isvc["spec"]["predictor"]["model"])["KS_SERVE_MODEL_URI"] == "models:/sentiment/7"
    assert len(isvc["spec"]["canary"]) == 1
    canary = isvc["spec"]["canary"][0]
    assert canary["trafficPercent"] == weight
    assert env_of(canary["predictor"]["model"])["KS_SERVE_MODEL_URI"] == "models:/sentiment/8"
    assert canary["predictor"]["labels"]["kube-sentiment/track"] == "canary"
    # KServe v0.20 routes nothing to a canary: the chart's routes weigh KServe's predictor Services.
    for kind, port in (("HTTPRoute", 80), ("GRPCRoute", 8081)):
        route = one(objs, kind)
        assert route["metadata"]["name"] == "kube-sentiment-tracks"  # KServe's own HTTPRoute is kube-sentiment
        refs = route["spec"]["rules"][0]["backendRefs"]
        assert [(r["name"], r["port"], r["weight"]) for r in refs] == [
            ("kube-sentiment-predictor", port, 100 - weight),
            ("kube-sentiment-canary-predictor", port, weight),
        ]


@pytest.mark.parametrize("mode", ["kserve", "deployment"])
def test_workers_reach_the_server_in_both_modes(helm_bin: Path, mode: str) -> None:
    objs = render_app("production", mode, *CANARY, "serving.workers=2")
    servers = [c for o in objs if o["kind"] in ("ServingRuntime", "Deployment")
               for c in (o["spec"].get("containers") or o["spec"]["template"]["spec"]["containers"])
               if c["name"] in ("serve", "kserve-container")]
    assert servers and all("--workers=2" in c["args"] for c in servers)


def test_kserve_mode_runs_the_charts_serving_runtime(helm_bin: Path) -> None:
    """What KServe v0.20's webhook wants of an InferenceService with spec.canary[] (inference_service_validation.go
    validateCanarySpecs): a stable predictor with a model (or storageUri), a named canary with exactly one
    implementation and fixed replicas no higher than the stable minimum; and a model without a container name."""
    for sets in ((), ("serving.autoscaling.enabled=true",), ("shipper.nativeSidecar=false",)):
        objs = render_app("production", "kserve", *CANARY, *sets)
        runtime = one(objs, "ServingRuntime")
        assert runtime["metadata"]["name"] == "kube-sentiment"
        assert runtime["spec"]["supportedModelFormats"] == [
            {"name": "kube-sentiment", "version": "1", "autoSelect": False}
        ]
        assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]
        [server] = runtime["spec"]["containers"]
        assert server["name"] == "kserve-container" and server["args"][0] == "serve"
        assert not [a for a in server["args"] if a.startswith("--workers")]  # one process unless asked
        assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"http": 8080, "grpc": 8081}
        isvc = one(objs, "InferenceService")
        stable, canary = isvc["spec"]["predictor"], isvc["spec"]["canary"][0]["predictor"]
        for predictor in (stable, canary):
            model = predictor["model"]
            assert model["modelFormat"] == {"name": "kube-sentiment"} and model["runtime"] == "kube-sentiment"
            # No storageUri: the model server loads its version from the registry, no storage initializer. And an
            # empty storage spec, or KServe takes the predictor for multi-model serving and injects its model agent
            # (utils.IsMMSPredictor).
            assert "storageUri" not in model and "storageUri" not in predictor and "storageUris" not in predictor
            assert model["storage"] == {}
            assert "image" not in model and "args" not in model and "ports" not in model
            assert {"envFrom", "env", "volumeMounts", "readinessProbe", "resources", "securityContext"} <= set(model)
            assert not any(c["name"] == "kserve-container" for c in predictor.get("containers", []))
            assert {v["name"] for v in predictor["volumes"]} >= {"tmp", "spool"}
            assert predictor["serviceAccountName"] == "kube-sentiment-serving"
            shipper = [c for c in containers(predictor) if c["name"] == "shipper"]
            assert len(shipper) == 1
            assert (shipper[0].get("restartPolicy") == "Always") == ("shipper.nativeSidecar=false" not in sets)
        assert "name" not in stable  # a changed stable name is refused on update; its Services keep their names
        # The webhook refuses a container name in the stable model; the CRD requires one in a canary's model.
        assert "name" not in stable["model"] and canary["model"]["name"] == "kserve-container"
        assert canary["name"] == "canary"
        assert canary["minReplicas"] == 1 <= stable["minReplicas"]
        assert not {"maxReplicas", "scaleMetric", "scaleTarget", "autoScaling"} & set(canary)
        for where, spec, _ in pod_specs(isvc, objs):
            server = spec["containers"][0]
            assert server["name"] == "kserve-container" and server["image"] == runtime["spec"]["containers"][0]["image"]
            track = "canary" if "canary" in where else "stable"
            assert env_of(server)["KS_SERVE_TRACK"] == track, where
    # The stable minimum bounds the canary's fixed replicas.
    sets = [a for s in (*CANARY, "serving.mode=kserve", "serving.canary.replicas=3") for a in ("--set", s)]
    result = chartlib.helm("template", "kube-sentiment", str(APP), *sets, check=False)
    assert result.returncode != 0 and "must not exceed the stable track's minimum (2)" in result.stderr
    assert "canary" not in one(render_app("production", "kserve"), "InferenceService")["spec"]


def test_no_canary_means_one_track(helm_bin: Path) -> None:
    objs = render_app("production", "deployment")
    assert [d["metadata"]["name"] for d in by_kind(objs, "Deployment")] == ["kube-sentiment-stable"]
    refs = one(objs, "HTTPRoute")["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("kube-sentiment-stable", 100)]
    assert "canary" not in one(render_app("production", "kserve"), "InferenceService")["spec"]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten an object to path -> value; list items are keyed by name; namespace names are normalised."""
    if isinstance(node, str):
        return {prefix: re.sub(r"\b(staging|production)\b(?=\.svc|$)", "<namespace>", node)}
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(node, list):
        out = {}
        for i, value in enumerate(node):
            name = value.get("name", i) if isinstance(value, dict) else i
            out.update(_flatten(value, f"{prefix}[{name}]"))
        return out
    return {prefix: node}


# Every field that may differ between staging and production, each tied to the values that differ between
# values-staging.yaml and values-production.yaml (environment, model version, replicas, autoscaling, PDB,
# resources, hostnames, sink, egress, drift schedule and window).
ALLOWED_ENV_DIFFS = [
    r"metadata\.labels\.kube-sentiment/environment$",
    r"labels\.kube-sentiment/environment$",
    r"labels\.kube-sentiment/model-version$",
    r"(KS_SERVE|KS_SHIP|KS_DRIFT)_ENVIRONMENT",
    r"env\[(KS_SERVE_MODEL_URI|KS_SERVE_MODEL_VERSION|KS_SHIP_MODEL_VERSION)\]\.value$",
    r"annotations\.checksum/",
    r"annotations\.kubernetes\.io/change-cause$",
    r"^spec\.replicas$",
    r"\.?predictor\.(min|max)Replicas$",
    r"\.?predictor\.(scaleMetric|scaleTarget)$",
    r"resources\.(requests|limits)\.(cpu|memory)$",
    r"^spec\.hostnames\[0\]$",
    r"data\.(KS_SHIP_SINK|KS_SHIP_SINK_DIR|KS_SHIP_S3_BUCKET|KS_SHIP_S3_PREFIX|KS_DRIFT_SOURCE|KS_DRIFT_OUTPUT_DIR)$",
    r"data\.KS_DRIFT_LOG_TO_MLFLOW$",
    r"(volumes|volumeMounts)\[(sink|reports)\]",
    r"env\[AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)\]",
    r"^spec\.egress\[2\]",
    r"^spec\.(schedule|jobTemplate\.spec\.template\.metadata\.annotations\.checksum/drift-config)$",
    r"data\.KS_DRIFT_WINDOW$",
    r"^data\.kube-sentiment\.json$",
]
# Objects that exist in one environment only, each because of a value (PDB off in staging, HPA on in
# production, PVC sink in staging, S3 sink in production).
ALLOWED_ENV_ONLY = {"PodDisruptionBudget", "HorizontalPodAutoscaler", "PersistentVolumeClaim"}


@pytest.mark.parametrize("mode", MODES)
def test_staging_and_production_differ_only_where_values_do(helm_bin: Path, mode: str) -> None:
    staging = {(o["kind"], o["metadata"]["name"]): o for o in render_app("staging", mode, *CANARY)}
    production = {(o["kind"], o["metadata"]["name"]): o for o in render_app("production", mode, *CANARY)}
    only = set(staging) ^ set(production)
    assert {kind for kind, _ in only} <= ALLOWED_ENV_ONLY, only
    unexplained = []
    for key in sorted(set(staging) & set(production)):
        a, b = _flatten(staging[key]), _flatten(production[key])
        a.pop("metadata.namespace", None), b.pop("metadata.namespace", None)
        for path in sorted(set(a) | set(b)):
            if a.get(path) != b.get(path) and not any(re.search(p, path) for p in ALLOWED_ENV_DIFFS):
                unexplained.append(f"{key[0]}/{key[1]}: {path}: {a.get(path)!r} -> {b.get(path)!r}")
    assert unexplained == []
    # What must never differ: images, security contexts, probes and ports of every container.
    for key in set(staging) & set(production):
        pairs = zip(
            pod_specs(staging[key], list(staging.values())),
            pod_specs(production[key], list(production.values())),
            strict=True,
        )
        for (_, s_spec, _), (_, p_spec, _) in pairs:
            for s_c, p_c in zip(containers(s_spec), containers(p_spec), strict=True):
                for field in ("image", "securityContext", "readinessProbe", "livenessProbe", "ports", "args"):
                    assert s_c.get(field) == p_c.get(field), (key, s_c["name"], field)


def _write(tmp_path: Path, name: str, content: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.mark.parametrize(
    "chart,values,message",
    [
        ("kube-sentiment", {"serving": {"canary": {"weigth": 10}}}, "additional properties 'weigth' not allowed"),
        ("kube-sentiment", {"image": {"tag": "latest"}}, "/image/tag"),
        ("kube-sentiment", {"serving": {"mode": "knative"}}, "/serving/mode"),
        ("kube-sentiment", {"serving": {"canary": {"enabled": True, "modelVersion": 1}}}, "must differ"),
        ("kube-sentiment", {"serving": {"canary": {"enabled": True, "weight": 150, "modelVersion": 2}}}, "weight"),
        ("kube-sentiment", {"shipper": {"sink": {"type": "s3"}}}, "/shipper/sink/s3/uri"),
        ("kube-sentiment", {"drift": {"concurrencyPolicy": "Allow"}}, "concurrencyPolicy"),
        ("kube-sentiment", {"shipper": {"spool": {"sizeLimit": "900Mi"}}}, "must hold shipper.spool.shipperMaxMiB"),
        ("kube-sentiment", {"shipper": {"spool": {"journalMaxMiB": 0}}}, "/shipper/spool/journalMaxMiB"),
        # Shared definitions ($defs) refuse as strictly as the properties that use them.
        ("kube-sentiment", {"serving": {"resources": {"requests": {"cpuu": "1"}}}}, "'cpuu' not allowed"),
        ("kube-sentiment", {"drift": {"resources": {"limits": {"memory": "1 GB"}}}}, "/drift/resources/limits/memory"),
        ("kube-sentiment", {"shipper": {"extraEnv": [{"value": "x"}]}}, "missing property 'name'"),
        (
            "kube-sentiment",
            {"serving": {"gateway": {"http": {"parentRefs": [{"name": "gw", "sectionname": "http"}]}}}},
            "'sectionname' not allowed",
        ),
        ("kube-sentiment", {"tests": {"image": {"tag": "latest"}}}, "/tests/image/tag"),
        # A `$schema` key in values (an editor hint written as YAML) is a typo like any other.
        ("kube-sentiment", {"$schema": "values.schema.json"}, "additional properties '$schema' not allowed"),
        ("kube-sentiment", {"retrain": {"trigger": {"enabled": True}}, "drift": {"enabled": False}},
         "retrain.trigger.enabled needs drift.enabled"),
        ("kube-sentiment", {"retrain": {"trigger": {"enabled": True}}, "rbac": {"create": False}},
         "needs serviceAccounts.create and rbac.create"),
        ("kube-sentiment", {"retrain": {"trigger": {"verdicts": ["drift", "always"]}}}, "/retrain/trigger/verdicts"),
        ("kube-sentiment", {"train": {"productionData": {"enabled": True}}}, "needs serving.logText"),
        ("kube-sentiment", {"drift": {"quality": {"lateness": "a week"}}}, "/drift/quality/lateness"),
        ("kube-sentiment", {"serving": {"workers": 0}}, "/serving/workers"),
        ("mlflow", {"backendStore": {"type": "database"}}, "existingSecret"),
        ("mlflow", {"persistance": {"enabled": True}}, "additional properties 'persistance' not allowed"),
        ("mlflow", {"resources": {"limits": {"cpu": "-1"}}}, "/resources/limits/cpu"),
        ("mlflow", {"server": {"port": 0}}, "/server/port"),
    ],
)
def test_bad_values_are_refused(helm_bin: Path, tmp_path: Path, chart: str, values: dict, message: str) -> None:
    bad = _write(tmp_path, "bad-values.yaml", values)
    result = chartlib.helm("template", chart, str(chartlib.CHARTS / chart), "-f", str(bad), check=False)
    assert result.returncode != 0, f"helm accepted {values}"
    assert message in result.stderr, result.stderr


def test_training_job(helm_bin: Path) -> None:
    objs = render_app("staging", "kserve", "train.enabled=true")
    job = one(objs, "Job")
    spec = job["spec"]
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 3600
    rules = spec["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "train", "operator": "In",
                                                 "values": [10, 65, 66, 78]}} in rules
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["args"] == ["train"]
    config = one(objs, "ConfigMap", "-train")["data"]
    assert (
        config["MLFLOW_TRACKING_URI"]
        == config["KS_TRAIN_TRACKING_URI"]
        == "http://mlflow.mlflow.svc.cluster.local:5000"
    )
    assert config["KS_TRAIN_REGISTERED_MODEL"] == "sentiment"
    assert config["KS_TRAIN_DATA_PATH"] == "/data/train.csv"
    # An empty data path leaves the trainer on the corpus in its image (deploy.sh train --builtin-corpus).
    builtin = one(render_app("staging", "kserve", "train.enabled=true", "train.dataPath="), "ConfigMap", "-train")
    assert "KS_TRAIN_DATA_PATH" not in builtin["data"]
    # Same settings, same Job (an upgrade leaves it alone); changed settings, new Job (the pod template is immutable).
    assert (
        one(render_app("staging", "kserve", "train.enabled=true", "serving.canary.weight=50"), "Job")["metadata"][
            "name"
        ]
        == job["metadata"]["name"]
    )
    changed = one(render_app("staging", "kserve", "train.enabled=true", "train.dataPath=/data/v2.csv"), "Job")
    assert changed["metadata"]["name"] != job["metadata"]["name"]
    assert not by_kind(render_app("staging", "kserve"), "Job")


def test_drift_cronjob(helm_bin: Path) -> None:
    objs = render_app("production", "deployment")
    cron = one(objs, "CronJob")["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] == 3 and cron["failedJobsHistoryLimit"] == 3
    assert cron["schedule"] == "17 * * * *" and cron["timeZone"] == "Etc/UTC"
    job = cron["jobTemplate"]["spec"]
    assert job["ttlSecondsAfterFinished"] == 86400 and job["backoffLimit"] == 2
    fail_job = {"action": "FailJob",
                "onExitCodes": {"containerName": "drift", "operator": "In", "values": [3, 4, 65, 66, 78]}}
    assert fail_job in job["podFailurePolicy"]["rules"]
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["containers"][0]["args"] == ["drift"]
    config = one(objs, "ConfigMap", "-drift")["data"]
    assert config["KS_DRIFT_SOURCE"] == "s3://kube-sentiment-events/production"
    assert config["KS_DRIFT_OUTPUT_DIR"] == "/var/lib/kube-sentiment/drift-reports"
    assert config["KS_DRIFT_LOG_TO_MLFLOW"] == "true"
    assert config["KS_DRIFT_WINDOW"] == "24h"
    assert config["KS_DRIFT_REGISTERED_MODEL"] == "sentiment"
    shipper = one(objs, "ConfigMap", "-shipper")["data"]
    assert (shipper["KS_SHIP_SINK"], shipper["KS_SHIP_S3_BUCKET"], shipper["KS_SHIP_S3_PREFIX"]) == (
        "s3",
        "kube-sentiment-events",
        "production",
    )
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["reports"] == config["KS_DRIFT_OUTPUT_DIR"]
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in pod["containers"][0]["env"]}
    assert secret_env == {"AWS_ACCESS_KEY_ID": "kube-sentiment-s3", "AWS_SECRET_ACCESS_KEY": "kube-sentiment-s3"}
    staging_objs = render_app("staging", "deployment")
    assert one(staging_objs, "CronJob")["spec"]["schedule"] == "23 */6 * * *"
    # PVC sink: the shipper writes where the drift job reads, and the reports land on the same volume.
    ship, drift = one(staging_objs, "ConfigMap", "-shipper")["data"], one(staging_objs, "ConfigMap", "-drift")["data"]
    assert ship["KS_SHIP_SINK"] == "local" and ship["KS_SHIP_SINK_DIR"] == drift["KS_DRIFT_SOURCE"]
    assert drift["KS_DRIFT_OUTPUT_DIR"].startswith("/var/lib/kube-sentiment/sink/")


def test_shipper_sidecar_shares_the_spool(helm_bin: Path) -> None:
    for mode in MODES:
        objs = render_app("staging", mode)
        _, spec, _ = next(pod_specs(one(objs, "InferenceService" if mode == "kserve" else "Deployment"), objs))
        shipper = next(c for c in spec["initContainers"] if c["name"] == "shipper")
        assert shipper["restartPolicy"] == "Always"  # native sidecar
        assert shipper["args"][0] == "ship"
        server = spec["containers"][0]
        spool = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
        assert spool["spool"] == {m["name"]: m["mountPath"] for m in shipper["volumeMounts"]}["spool"]
        serving, shipping = one(objs, "ConfigMap", "-serving")["data"], one(objs, "ConfigMap", "-shipper")["data"]
        # the model server appends to the journal on the shared volume, the sidecar reads the same directory
        assert serving["KS_SERVE_EVENTS_DIR"] == shipping["KS_SHIP_JOURNAL_DIR"] == spool["spool"] + "/journal"
        budgets = int(serving["KS_SERVE_EVENTS_MAX_BYTES"]) + int(shipping["KS_SHIP_SPOOL_MAX_BYTES"])
        limit = next(v["emptyDir"]["sizeLimit"] for v in spec["volumes"] if v["name"] == "spool")
        assert limit == "1Gi" and budgets + 64 * 2**20 <= 2**30
        assert any(v.get("persistentVolumeClaim") for v in spec["volumes"])
    without = render_app("staging", "deployment", "shipper.enabled=false")
    assert one(without, "ConfigMap", "-serving")["data"]["KS_SERVE_EVENTS_DIR"] == ""  # events off, no volume
    # No secret literal ever: S3 credentials only by Secret reference.
    for _, objs in all_app_renders():
        assert not by_kind(objs, "Secret")


def test_config_checksums_roll_pods(helm_bin: Path) -> None:
    def annotations(*sets: str) -> dict[str, str]:
        deployment = one(render_app("staging", "deployment", *sets), "Deployment", "-stable")
        return deployment["spec"]["template"]["metadata"]["annotations"]

    base = annotations()
    changed = annotations("mlflow.trackingUri=http://mlflow.other.svc:5000")
    assert base["checksum/serving-config"] != changed["checksum/serving-config"]
    assert base["checksum/shipper-config"] == changed["checksum/shipper-config"]
    assert annotations("shipper.port=9191")["checksum/shipper-config"] != base["checksum/shipper-config"]


def test_rbac_least_privilege(helm_bin: Path) -> None:
    objs = render_app("production", "kserve", "train.enabled=true")
    accounts = {o["metadata"]["name"]: o for o in by_kind(objs, "ServiceAccount")}
    assert set(accounts) == {"kube-sentiment-serving", "kube-sentiment-train", "kube-sentiment-drift"}
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    assert not by_kind(objs, "Role") and not by_kind(objs, "RoleBinding") and not by_kind(objs, "ClusterRole")
    everything = render_app("staging", "deployment", extra=(APP / "ci" / "everything-values.yaml",))
    assert not by_kind(render_app("staging", "kserve"), "Role"), "the console (off by default) adds no Role"
    role = one(everything, "Role")
    assert role["metadata"]["name"] == "kube-sentiment-drift"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
    binding = one(everything, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kube-sentiment-drift", "namespace": "staging"}]
    drift_pod = one(everything, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert drift_pod["serviceAccountName"] == "kube-sentiment-drift"


def test_retraining_trigger_schedule_and_production_data(helm_bin: Path) -> None:
    objs = render_app("production", "kserve", extra=(APP / "ci" / "retrain-values.yaml",))
    # The drift ServiceAccount may create Jobs and nothing else; no other component gets a Role.
    role = one(objs, "Role")
    assert role["metadata"]["name"] == "kube-sentiment-drift"
    assert role["rules"] == [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]
    assert not by_kind(objs, "ClusterRole") and len(by_kind(objs, "RoleBinding")) == 1
    # The Job the drift job creates: the training template, a fixed name, the cooldown as its TTL.
    job = json.loads(one(objs, "ConfigMap", "-retrain-job")["data"]["job.json"])
    assert job["metadata"]["name"] == "kube-sentiment-retrain" and job["metadata"]["namespace"] == "production"
    assert job["spec"]["ttlSecondsAfterFinished"] == 43200
    train_pod = job["spec"]["template"]["spec"]
    assert train_pod["serviceAccountName"] == "kube-sentiment-train"
    assert [c["args"] for c in train_pod["initContainers"]] == [["feedback", "snapshot"]]
    assert train_pod["containers"][0]["args"] == ["train"]
    config = one(objs, "ConfigMap", "-train")["data"]
    assert config["KS_TRAIN_PRODUCTION_DATA"] == config["KS_FEEDBACK_OUT"] == "/tmp/production/production.parquet"
    assert config["KS_FEEDBACK_SINK"] == one(objs, "ConfigMap", "-drift")["data"]["KS_DRIFT_SOURCE"]
    assert config["KS_FEEDBACK_WINDOW"] == "14d"
    init_env = {e["name"] for e in train_pod["initContainers"][0].get("env", [])}
    assert init_env == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}  # production reads its S3 sink
    # The drift pod: the manifest and a bound token of its own ServiceAccount, in the drift container only.
    drift_cron = one(objs, "CronJob", "-drift")["spec"]["jobTemplate"]["spec"]["template"]
    pod = drift_cron["spec"]
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["kube-api-access"] == "/var/run/secrets/kubernetes.io/serviceaccount"
    assert mounts["retrain-job"] == "/etc/kube-sentiment/retrain"
    drift = one(objs, "ConfigMap", "-drift")["data"]
    assert json.loads(drift["KS_DRIFT_RETRAIN_ON"]) == ["quality", "drift"]
    assert drift["KS_DRIFT_MIN_LABELLED"] == "300" and drift["KS_DRIFT_QUALITY"] == "true"
    assert "checksum/retrain-job" in drift_cron["metadata"]["annotations"]
    # The schedule runs the same training template.
    scheduled = one(objs, "CronJob", "-retrain")["spec"]
    assert scheduled["concurrencyPolicy"] == "Forbid" and scheduled["schedule"] == "0 3 * * 0"
    assert scheduled["jobTemplate"]["spec"]["template"]["spec"]["initContainers"] == train_pod["initContainers"]
    assert not by_kind(objs, "Job")  # train.enabled stays off: nothing trains at install
    egress = next(p for p in by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("-drift"))
    assert any({"port": 6443, "protocol": "TCP"} in rule.get("ports", []) for rule in egress["spec"]["egress"])
    # The admission policy lets that ServiceAccount create only this Job: its name, ServiceAccount, image, commands.
    policy = one(objs, "ValidatingAdmissionPolicy")
    assert policy["metadata"]["name"] == "production.kube-sentiment-retrain"
    assert policy["spec"]["matchConditions"][0]["expression"] == (
        'request.userInfo.username == "system:serviceaccount:production:kube-sentiment-drift"')
    checks = " ".join(v["expression"] for v in policy["spec"]["validations"])
    assert '"kube-sentiment-retrain"' in checks and '"kube-sentiment-train"' in checks and '["train"]' in checks
    binding = one(objs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "production"}
    # Off by default: no Role, no retraining objects, no token.
    plain = render_app("production", "kserve")
    assert not by_kind(plain, "Role") and not [o for o in plain if "retrain" in o["metadata"]["name"]]
    serving = one(plain, "ConfigMap", "-serving")["data"]
    assert serving["KS_SERVE_LOG_TEXT"] == "false" and serving["KS_SERVE_FEEDBACK_MAX_ITEMS"] == "1000"


def test_network_policies_cover_every_component(helm_bin: Path) -> None:
    objs = render_app("production", "deployment", "train.enabled=true")
    policies = {
        p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: p
        for p in by_kind(objs, "NetworkPolicy")
    }
    assert set(policies) == {"serving", "train", "drift"}
    assert policies["train"]["spec"]["ingress"] == [] and policies["drift"]["spec"]["ingress"] == []
    ports = {p["port"] for p in policies["serving"]["spec"]["ingress"][0]["ports"]}
    assert ports == {"http", "grpc", "ship"}


CONSOLE = APP / "ci" / "console-values.yaml"
BOTH = "console.namespaces={staging,production}"
READ = ["get", "list", "watch"]


def test_console_is_off_by_default(helm_bin: Path) -> None:
    for env in ENVS:
        for mode in MODES:
            objs = render_app(env, mode)
            assert not [o for o in objs if o["metadata"]["name"].endswith("-console")], (env, mode)


def test_console_rbac_reads_only_the_charts_objects(helm_bin: Path) -> None:
    assert [r["metadata"]["namespace"] for r in by_kind(render_app("staging", "kserve", extra=(CONSOLE,)), "Role")] == [
        "staging"]
    objs = render_app("staging", "kserve", BOTH, extra=(CONSOLE,))
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objs, "Role")}
    assert set(roles) == {"staging", "production"}
    for namespace, role in roles.items():
        assert role["metadata"]["name"] == "kube-sentiment-console"
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["pods", "events"], "verbs": READ},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": READ},
            {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": READ},
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["httproutes"], "verbs": READ},
        ], namespace
    for binding in by_kind(objs, "RoleBinding"):
        assert binding["roleRef"]["name"] == "kube-sentiment-console"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kube-sentiment-console",
                                        "namespace": "staging"}]
    assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")


def test_console_deployment(helm_bin: Path) -> None:
    objs = render_app("staging", "deployment", BOTH, extra=(CONSOLE,))
    deployment = one(objs, "Deployment", "-console")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["console"] and spec["serviceAccountName"] == "kube-sentiment-console"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8070}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    config = one(objs, "ConfigMap", "-console")["data"]
    assert config["KS_CONSOLE_SOURCE"] == "kubernetes" and config["KS_CONSOLE_NAMESPACES"] == "staging,production"
    assert config["KS_CONSOLE_HOST"] == "0.0.0.0" and config["KS_CONSOLE_SECURE_COOKIES"] == "true"
    assert config["KS_CONSOLE_PROMETHEUS_URL"] == "http://prometheus.monitoring.svc.cluster.local:9090"
    assert config["KS_CONSOLE_DRIFT_DIRS"] == "/var/lib/kube-sentiment/sink/drift-reports"
    assert config["KS_CONSOLE_EVENTS_SOURCE"] == "/var/lib/kube-sentiment/sink/predictions"
    # The token is a file from the Secret, never a value or an environment variable.
    assert config["KS_CONSOLE_TOKEN_FILE"] == "/var/run/secrets/kube-sentiment-console/token"
    token = next(v for v in spec["volumes"] if v["name"] == "token")
    assert token["secret"] == {"secretName": "kube-sentiment-console", "defaultMode": 0o440,
                               "items": [{"key": "token", "path": "token"}]}
    assert not any("TOKEN" in e["name"] and "value" in e for e in container.get("env", []))
    sink = next(m for m in container["volumeMounts"] if m["name"] == "sink")
    assert sink["readOnly"] is True
    service = one(objs, "Service", "-console")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_console_network_policy(helm_bin: Path) -> None:
    objs = render_app("staging", "deployment", BOTH, extra=(CONSOLE,))
    policy = one(objs, "NetworkPolicy", "-console")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "console"
    sources = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in sources
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}} in sources
    egress = policy["spec"]["egress"]
    assert {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}],
            "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]} in egress
    predictors = next(rule for rule in egress if rule["ports"] == [{"port": 8080, "protocol": "TCP"}])
    assert [t["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for t in predictors["to"]] == [
        "staging", "production"]
    assert all(t["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "serving" for t in predictors["to"])


def test_test_pods_send_real_predictions(helm_bin: Path) -> None:
    for mode, hosts in (
        (
            "deployment",
            [
                "kube-sentiment-stable.staging.svc.cluster.local:8080",
                "kube-sentiment-canary.staging.svc.cluster.local:8080",
            ],
        ),
        (
            "kserve",
            [
                "kube-sentiment-predictor.staging.svc.cluster.local:80",
                "kube-sentiment-canary-predictor.staging.svc.cluster.local:80",
            ],
        ),
    ):
        pod = one(render_app("staging", mode, *CANARY), "Pod")
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        container = pod["spec"]["containers"][0]
        assert re.fullmatch(r"[a-z0-9./-]+:[0-9][0-9.]*", container["image"]), container["image"]
        script = container["command"][2]
        assert "/v1/models/${model}:predict" in script and "/v2/models/${model}/infer" in script
        assert container["command"][4:] == [f"stable={hosts[0]}", f"canary={hosts[1]}"]
    mlflow_pod = one(chartlib.objects(_render("mlflow", "mlflow", (), ())), "Pod")
    assert "mlflow.mlflow.svc.cluster.local:5000" in mlflow_pod["spec"]["containers"][0]["command"][2]


def render_notes(chart: Path, release: str, namespace: str, tmp_path: Path, *args: str) -> str:
    """Render a chart's NOTES.txt offline: `helm install --dry-run` wants a cluster, so a copy of the chart
    renders the same text through `tpl` into a ConfigMap that `helm template --show-only` prints."""
    copy_dir = tmp_path / chart.name
    shutil.copytree(chart, copy_dir)
    (copy_dir / "notes.src").write_text((chart / "templates" / "NOTES.txt").read_text())
    (copy_dir / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '{{ tpl (.Files.Get "notes.src") . | indent 4 }}\n'
    )
    result = chartlib.helm(
        "template", release, str(copy_dir), "-n", namespace, "--show-only", "templates/zz-notes.yaml", *args
    )
    return yaml.safe_load(result.stdout)["data"]["notes"]


def test_notes_print_pasteable_commands(helm_bin: Path, tmp_path: Path) -> None:
    for mode in MODES:
        canary = [arg for s in CANARY for arg in ("--set", s)]
        notes = render_notes(
            APP,
            "kube-sentiment",
            "staging",
            tmp_path / mode,
            "-f",
            str(ENVS["staging"]),
            "--set",
            f"serving.mode={mode}",
            *canary,
        )
        assert "/v1/models/sentiment:predict" in notes and "/v2/models/sentiment/infer" in notes
        assert "helm rollback kube-sentiment -n staging" in notes
        assert "stable: models:/sentiment/2, 85%" in notes and "canary: models:/sentiment/42, 15%" in notes
        if mode == "deployment":
            assert "grpcurl" in notes and "rollout status deployment/kube-sentiment-canary" in notes
            assert "http://kube-sentiment-stable.staging.svc.cluster.local:8080/v1/models/sentiment:predict" in notes
        else:
            assert "http://kube-sentiment-predictor.staging.svc.cluster.local:80/v1/models/sentiment:predict" in notes
    notes = render_notes(MLFLOW, "mlflow", "mlflow", tmp_path / "mlflow")
    assert "http://mlflow.mlflow.svc.cluster.local:5000" in notes


def test_dashboard_queries_metrics_the_code_exports() -> None:
    dashboard = json.loads((APP / "dashboards" / "kube-sentiment.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    packages = ("serving", "model", "control")
    source = "\n".join(p.read_text() for d in packages for p in (chartlib.REPO / d).rglob("*.py"))
    names = {m for e in exprs for m in re.findall(r"\b((?:kube_sentiment|ks)_[a-z_]+)", e)}
    assert names, exprs
    for name in names:
        base = re.sub(r"_(total|bucket|sum|count)$", "", name)
        assert f'"{base}' in source, f"dashboard metric {name} is exported nowhere in serving/, model/ or control/"
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("request rate", "latency", "error", "class mix", "drift"):
        assert topic in titles, topic
