"""The retraining trigger on the real local API server: the drift ServiceAccount's Role lets it create Jobs in its
namespace and nothing else (``kubectl auth can-i --as``), the admission policy lets it create only the chart's
training Job, and the drift job's own code, authenticated with a token of that ServiceAccount, creates that Job
once: a second create while it exists is the cooldown, and after it finished and its TTL (the cooldown) passed, the
next verdict creates it again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from localcluster import Cluster

from control.retrain import REASON_ANNOTATION, RetrainSettings, trigger

pytestmark = pytest.mark.cluster

RELEASE = "ks-retrain"


def can(cluster: Cluster, namespace: str, account: str, *verb_resource: str, where: str | None = None) -> bool:
    result = cluster.kubectl("auth", "can-i", *verb_resource, "-n", where or namespace,
                             f"--as=system:serviceaccount:{namespace}:{RELEASE}-kube-sentiment-{account}",
                             check=False)
    assert result.stdout.strip() in {"yes", "no"}, result.stderr
    return result.stdout.strip() == "yes"


def service_account_dir(cluster: Cluster, namespace: str, account: str, tmp_path: Path) -> Path:
    """What the projected volume gives the drift container: a bound token, the cluster CA, the namespace."""
    directory = tmp_path / account
    directory.mkdir()
    token = cluster.kubectl("create", "token", f"{RELEASE}-kube-sentiment-{account}", "-n", namespace,
                            "--duration=10m").stdout.strip()
    (directory / "token").write_text(token)
    (directory / "namespace").write_text(namespace)
    config = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]
    shutil.copy(config["certificate-authority"], directory / "ca.crt")
    return directory


def test_the_trigger_creates_the_training_job_and_nothing_else(cluster: Cluster, namespace: str,
                                                               tmp_path: Path) -> None:
    chart = cluster.repo / "helm" / "kube-sentiment"
    cluster.helm("upgrade", "--install", RELEASE, str(chart), "--namespace", namespace, "--wait=false",
                 "--set=serving.mode=kserve", "--set=shipper.enabled=false", "--set=shipper.sink.type=s3",
                 "--set=shipper.sink.s3.uri=s3://bucket/events", "--set=retrain.trigger.enabled=true",
                 "--set=retrain.trigger.cooldownSeconds=5", "--set=retrain.trigger.admissionPolicy=true",
                 timeout=240)

    # RBAC: create Jobs here, nothing else, nowhere else; no other ServiceAccount may create Jobs.
    assert can(cluster, namespace, "drift", "create", "jobs.batch")
    for verb_resource in (("get", "jobs.batch"), ("list", "jobs.batch"), ("watch", "jobs.batch"),
                          ("delete", "jobs.batch"), ("patch", "jobs.batch"), ("create", "cronjobs.batch"),
                          ("create", "pods"), ("get", "secrets"), ("get", "configmaps"),
                          ("create", "rolebindings.rbac.authorization.k8s.io")):
        assert not can(cluster, namespace, "drift", *verb_resource), f"drift may {' '.join(verb_resource)}"
    assert not can(cluster, namespace, "drift", "create", "jobs.batch", where="default")
    assert not can(cluster, namespace, "train", "create", "jobs.batch")
    assert not can(cluster, namespace, "serving", "create", "jobs.batch")

    manifest = tmp_path / "job.json"
    config_map = json.loads(cluster.kubectl("get", "configmap", f"{RELEASE}-kube-sentiment-retrain-job", "-n",
                                            namespace, "-o", "json").stdout)
    manifest.write_text(config_map["data"]["job.json"])
    server = yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    settings = RetrainSettings(retrain_on=("quality",), retrain_job=manifest, kube_api_url=server,
                               service_account_dir=service_account_dir(cluster, namespace, "drift", tmp_path))
    job_name = f"{RELEASE}-kube-sentiment-retrain"

    # RBAC says "create Jobs"; the admission policy says which: anything but the chart's training Job is refused.
    template = json.loads(manifest.read_text())
    for change in ({"metadata": {**template["metadata"], "name": "something-else"}},
                   {"spec": {**template["spec"], "template": {**template["spec"]["template"], "spec": {
                       **template["spec"]["template"]["spec"], "containers": [
                           {**template["spec"]["template"]["spec"]["containers"][0], "image": "busybox:1.37"}]}}}}):
        tampered = tmp_path / "tampered.json"
        tampered.write_text(json.dumps({**template, **change}))
        refused = trigger(settings.model_copy(update={"retrain_job": tampered}), "ok", "degraded", "run-x", "x")
        assert refused["outcome"] == "failed" and "ValidatingAdmissionPolicy" in refused["message"], refused
    assert "Error from server (NotFound)" in cluster.kubectl("get", "job", "something-else", "-n", namespace,
                                                             check=False).stderr

    # A run without a verdict for it creates nothing; a degraded-quality verdict creates the Job, as the drift SA.
    assert trigger(settings, "drift", "ok", "run-0", "")["outcome"] == "not_triggered"
    first = trigger(settings, "ok", "degraded", "run-1", "quality degraded: version 3 stable")
    assert first["outcome"] == "created" and first["job"] == job_name, first
    job = json.loads(cluster.kubectl("get", "job", job_name, "-n", namespace, "-o", "json").stdout)
    assert job["metadata"]["annotations"][REASON_ANNOTATION] == "quality degraded: version 3 stable"
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-kube-sentiment-train"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["train"]
    assert job["spec"]["ttlSecondsAfterFinished"] == 5

    # While it exists, the next verdict is the cooldown: the API server refuses a second Job of that name.
    second = trigger(settings, "ok", "degraded", "run-2", "again")
    assert second["outcome"] == "cooldown", second

    # The Job finishes (kwok runs its pod), the TTL controller deletes it after the cooldown; then it can run again.
    cluster.kubectl("wait", "--for=condition=Complete", f"job/{job_name}", "-n", namespace, "--timeout=120s",
                    timeout=150)
    cluster.kubectl("wait", "--for=delete", f"job/{job_name}", "-n", namespace, "--timeout=120s", timeout=150)
    assert trigger(settings, "ok", "degraded", "run-3", "after the cooldown")["outcome"] == "created"

    # The same code with another namespace, or another ServiceAccount's token, is refused by RBAC.
    elsewhere = trigger(settings.model_copy(update={"retrain_namespace": "default"}), "ok", "degraded", "run-4", "x")
    assert elsewhere["outcome"] == "failed" and "HTTP 403" in elsewhere["message"]
    train_token = settings.model_copy(
        update={"service_account_dir": service_account_dir(cluster, namespace, "train", tmp_path)})
    cluster.kubectl("delete", "job", job_name, "-n", namespace, "--wait=true", timeout=120)
    refused = trigger(train_token, "ok", "degraded", "run-5", "x")
    assert refused["outcome"] == "failed" and "HTTP 403" in refused["message"], refused
