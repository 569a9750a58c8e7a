"""The chart's progressive-delivery values, rendered with the real Helm: the shadow track in both serving modes
(Gateway API RequestMirror with a percentage; a cluster-local InferenceService the predictors mirror to), the
rollout policy (schema-checked, the same defaults as ``control.rollout.policy``), and the analysis Job that
``rollout run`` renders from the chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chartlib
import pytest
import yaml
from test_chart_render import _write, by_kind, env_of, one, render_app

from control.rollout.policy import RolloutPolicy, policy_from_values

pytestmark = pytest.mark.integration

SHADOW = ("serving.stable.modelVersion=7", "serving.shadow.enabled=true", "serving.shadow.modelVersion=9",
          "serving.shadow.percent=30")


def test_deployment_mode_mirrors_through_the_routes(helm_bin: Path) -> None:
    objs = render_app("production", "deployment", *SHADOW, "serving.canary.enabled=true",
                      "serving.canary.modelVersion=8", "serving.canary.weight=10")
    assert {d["metadata"]["name"] for d in by_kind(objs, "Deployment")} == {
        "kube-sentiment-stable", "kube-sentiment-canary", "kube-sentiment-shadow"}
    shadow = one(objs, "Deployment", "-shadow")["spec"]["template"]["spec"]
    assert env_of(shadow["containers"][0])["KS_SERVE_TRACK"] == "shadow"
    assert env_of(shadow["containers"][0])["KS_SERVE_MODEL_URI"] == "models:/sentiment/9"
    assert one(objs, "Service", "-shadow")["spec"]["selector"]["kube-sentiment/track"] == "shadow"
    for kind, port in (("HTTPRoute", 8080), ("GRPCRoute", 8081)):
        rule = one(objs, kind)["spec"]["rules"][0]
        # The shadow answers nothing: it is no backend, only the mirror's target.
        assert [(r["name"], r["weight"]) for r in rule["backendRefs"]] == [
            ("kube-sentiment-stable", 90), ("kube-sentiment-canary", 10)]
        assert rule["filters"] == [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "kube-sentiment-shadow", "port": port}, "percent": 30}}]
    # The Gateway mirrors: the predictors do not.
    for deployment in by_kind(objs, "Deployment"):
        assert "KS_SERVE_MIRROR_URL" not in env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    no_shadow = render_app("production", "deployment")
    assert "filters" not in one(no_shadow, "HTTPRoute")["spec"]["rules"][0]


def test_deployment_mode_mirrors_in_the_predictor_for_gateways_without_request_mirror(helm_bin: Path) -> None:
    """``serving.shadow.mirror.by: predictor``: no RequestMirror filter (a Gateway that lacks it may fail the whole
    route), the stable and canary predictors copy to the shadow's Service, and the serving policy lets them."""
    objs = render_app("production", "deployment", *SHADOW, "serving.shadow.mirror.by=predictor",
                      "serving.canary.enabled=true", "serving.canary.modelVersion=8", "serving.canary.weight=10")
    assert all("filters" not in one(objs, kind)["spec"]["rules"][0] for kind in ("HTTPRoute", "GRPCRoute"))
    for track in ("stable", "canary"):
        env = env_of(one(objs, "Deployment", f"-{track}")["spec"]["template"]["spec"]["containers"][0])
        assert env["KS_SERVE_MIRROR_URL"] == "http://kube-sentiment-shadow.production.svc.cluster.local:8080"
        assert env["KS_SERVE_MIRROR_PERCENT"] == "30"
    assert "KS_SERVE_MIRROR_URL" not in env_of(
        one(objs, "Deployment", "-shadow")["spec"]["template"]["spec"]["containers"][0])
    serving = next(p for p in by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("-serving"))
    assert any(peer.get("podSelector", {}).get("matchLabels", {}).get("kube-sentiment/track") == "shadow"
               for rule in serving["spec"]["egress"] for peer in rule["to"])


def test_kserve_mode_mirrors_in_the_predictor_to_a_cluster_local_shadow(helm_bin: Path) -> None:
    objs = render_app("staging", "kserve", *SHADOW, "serving.canary.enabled=true", "serving.canary.modelVersion=8")
    main, shadow = one(objs, "InferenceService", "kube-sentiment"), one(objs, "InferenceService", "-shadow")
    assert shadow["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"
    assert shadow["spec"]["predictor"]["labels"]["kube-sentiment/track"] == "shadow"
    # The container fields of each predictor are its `model`'s (over the chart's ServingRuntime).
    assert env_of(shadow["spec"]["predictor"]["model"])["KS_SERVE_TRACK"] == "shadow"
    assert "KS_SERVE_MIRROR_URL" not in env_of(shadow["spec"]["predictor"]["model"])
    # The predictors mirror: the chart's routes (kserve mode too) do not.
    assert all("filters" not in one(objs, kind)["spec"]["rules"][0] for kind in ("HTTPRoute", "GRPCRoute"))
    for predictor in (main["spec"]["predictor"], main["spec"]["canary"][0]["predictor"]):
        env = env_of(predictor["model"])
        assert env["KS_SERVE_MIRROR_URL"] == "http://kube-sentiment-shadow-predictor.staging.svc.cluster.local:80"
        assert (env["KS_SERVE_MIRROR_PERCENT"], env["KS_SERVE_MIRROR_QUEUE_SIZE"]) == ("30", "1000")
    # The predictors may reach the shadow's pods (and only those, beyond what they reached before).
    serving = next(p for p in by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("-serving"))
    to_shadow = [rule for rule in serving["spec"]["egress"]
                 if any(peer.get("podSelector", {}).get("matchLabels", {}).get("kube-sentiment/track") == "shadow"
                        for peer in rule["to"])]
    assert len(to_shadow) == 1 and to_shadow[0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    test_pod = one(objs, "Pod")
    assert "shadow=kube-sentiment-shadow-predictor.staging.svc.cluster.local:80" in test_pod["spec"]["containers"][0][
        "command"]


def test_the_chart_default_policy_is_the_code_default_and_lands_in_a_configmap(helm_bin: Path) -> None:
    values = yaml.safe_load((chartlib.CHARTS / "kube-sentiment" / "values.yaml").read_text())
    assert policy_from_values(values, "values.yaml") == RolloutPolicy()
    configmap = one(render_app("staging", "kserve"), "ConfigMap", "-rollout")
    assert policy_from_values(yaml.safe_load(configmap["data"]["policy.yaml"]), "cm") == RolloutPolicy()


@pytest.mark.parametrize(("values", "message"), [
    ({"rollout": {"steps": [{"track": "canary", "percent": 100}]}}, "/rollout/steps/0/percent"),
    ({"rollout": {"steps": [{"track": "blue", "percent": 5}]}}, "/rollout/steps/0/track"),
    ({"rollout": {"interval": "soon"}}, "/rollout/interval"),
    ({"rollout": {"analysis": {"minAgreement": 1.5}}}, "/rollout/analysis/minAgreement"),
    ({"rollout": {"analysis": {"minAgrement": 0.9}}}, "'minAgrement' not allowed"),
    ({"serving": {"shadow": {"enabled": True, "modelVersion": 1}}}, "must differ"),
    ({"serving": {"shadow": {"enabled": True}}}, "modelVersion"),
    ({"serving": {"shadow": {"enabled": True, "modelVersion": 2, "percent": 0}}}, "/serving/shadow/percent"),
    ({"serving": {"shadow": {"mirror": {"by": "envoy"}}}}, "/serving/shadow/mirror/by"),
])
def test_bad_rollout_and_shadow_values_are_refused(helm_bin: Path, tmp_path: Path, values: dict[str, Any],
                                                   message: str) -> None:
    bad = _write(tmp_path, "bad.yaml", values)
    result = chartlib.helm("template", "kube-sentiment", str(chartlib.CHARTS / "kube-sentiment"), "-f", str(bad),
                           check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("sink", ["pvc", "s3"])
def test_the_analysis_job_renders_only_when_rollout_run_asks(helm_bin: Path, sink: str) -> None:
    assert not [o for o in render_app("staging", "kserve") if o["kind"] == "Job"]
    sets = ['rollout.analysisRun.name=ks-analysis-1', "rollout.prometheus.url=http://prometheus.monitoring:9090",
            f"shipper.sink.type={sink}"]
    if sink == "s3":
        sets += ["shipper.sink.s3.uri=s3://events/staging", "shipper.sink.s3.credentialsSecret.name=s3"]
    args = json.dumps(["rollout", "analyze", "--track", "shadow"])
    rendered = chartlib.helm("template", "kube-sentiment", str(chartlib.CHARTS / "kube-sentiment"), "-n", "staging",
                             "-f", str(chartlib.CHARTS / "kube-sentiment" / "values-staging.yaml"),
                             *(f"--set={s}" for s in sets), f"--set-json=rollout.analysisRun.args={args}",
                             "--show-only", "templates/rollout/analysis-job.yaml").stdout
    job = one(chartlib.objects(rendered), "Job")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["rollout", "analyze", "--track", "shadow"]
    assert job["spec"]["backoffLimit"] == 0 and container["terminationMessagePath"] == "/dev/termination-log"
    env = env_of(container)
    assert env["KS_ROLLOUT_POLICY_FILE"] == "/etc/kube-sentiment/rollout/policy.yaml"
    assert env["KS_ROLLOUT_PROMETHEUS_SELECTOR"] == 'namespace="staging"'
    assert env["KS_ROLLOUT_SOURCE"] == ("/var/lib/kube-sentiment/sink/predictions" if sink == "pvc"
                                        else "s3://events/staging")
    assert ("AWS_ACCESS_KEY_ID" in env) is (sink == "s3")
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "drift"  # its policy
    assert pod["serviceAccountName"] == "kube-sentiment-drift" and pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "kube-sentiment-rollout"
    assert ("sink" in volumes) is (sink == "pvc")
