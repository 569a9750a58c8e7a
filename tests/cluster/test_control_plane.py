"""The local control plane behaves like a cluster: namespaces, Deployments on kwok nodes, Jobs, and the
KServe / Gateway API CRDs with strict server-side validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from localcluster import Cluster

pytestmark = pytest.mark.cluster

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def _write(tmp_path: Path, name: str, manifest: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(manifest))
    return str(path)


def test_api_server_reports_pinned_version(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    versions = dict(
        line.split("=", 1)
        for line in (cluster.repo / "k8s" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert version["gitVersion"] == versions["KUBERNETES_VERSION"]


def test_namespace_can_be_created(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "smoke-namespace")
    phase = cluster.kubectl("get", "namespace", "smoke-namespace", "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Active"
    cluster.kubectl("delete", "namespace", "smoke-namespace", "--wait=false")


def test_deployment_rolls_out_on_kwok_nodes(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "deployment", "web", f"--image={PAUSE_IMAGE}", "--replicas=2", "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=90s", timeout=120)
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout)
    assert len(pods["items"]) == 2
    for pod in pods["items"]:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"].startswith("kwok-node-")


def test_job_completes(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "job", "once", f"--image={PAUSE_IMAGE}", "-n", namespace)
    cluster.kubectl("wait", "--for=condition=Complete", "job/once", "-n", namespace, "--timeout=90s", timeout=120)
    phases = cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", "job-name=once", "-o", "jsonpath={.items[*].status.phase}"
    ).stdout.split()
    assert phases == ["Succeeded"]


def _inference_service(name: str) -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "s3://models/sentiment/1",
                },
            }
        },
    }


def _http_route(name: str) -> dict:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "stable", "port": 80, "weight": 90},
                        {"name": "canary", "port": 80, "weight": 10},
                    ]
                }
            ],
        },
    }


@pytest.mark.parametrize("build", [_inference_service, _http_route], ids=["inferenceservice", "httproute"])
def test_crd_accepts_valid_and_rejects_unknown_field(cluster: Cluster, namespace: str, tmp_path: Path, build) -> None:
    valid = build("valid")
    cluster.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        _write(tmp_path, "ok.json", valid),
    )
    kind = valid["kind"].lower()
    cluster.kubectl("get", kind, "valid", "-n", namespace)

    invalid = build("invalid")
    invalid["spec"]["notAField"] = True
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        _write(tmp_path, "bad.json", invalid),
        check=False,
    )
    assert result.returncode != 0
    # Server-side apply refuses fields outside the CRD's structural schema before anything is stored.
    assert ".spec.notAField: field not declared in schema" in result.stderr
    assert cluster.kubectl("get", kind, "invalid", "-n", namespace, check=False).returncode != 0
