"""scripts/build-tools.sh contract, checked without building anything: the cache layout, skipping versions
that are already built, the loud exit 3 without Go, and usage errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build-tools.sh"
NO_GO_PATH = "/usr/bin:/bin"


def _versions() -> dict[str, str]:
    lines = (REPO / "k8s" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _run(tools_dir: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KS_TOOLS_DIR": str(tools_dir)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture
def without_go() -> str:
    if shutil.which("go", path=NO_GO_PATH) is not None:
        pytest.skip(f"go is installed in {NO_GO_PATH}; cannot hide it")
    return NO_GO_PATH


def test_without_go_exits_3_naming_what_to_install(tmp_path: Path, without_go: str) -> None:
    result = _run(tmp_path, "kubeconform", path=without_go)
    assert result.returncode == 3
    assert "Install Go" in result.stderr
    assert "SKIPPED" in result.stderr


def test_already_built_version_is_skipped_and_linked(tmp_path: Path, without_go: str) -> None:
    version = _versions()["HELM_VERSION"]
    binary = tmp_path / f"helm-{version}" / "helm"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\necho prebuilt\n")
    binary.chmod(0o755)

    result = _run(tmp_path, "helm", path=without_go)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "bin")
    link = tmp_path / "bin" / "helm"
    assert os.readlink(link) == f"../helm-{version}/helm"
    assert "already built, skipping" in result.stderr


def test_unknown_tool_is_a_usage_error(tmp_path: Path) -> None:
    result = _run(tmp_path, "kubectx")
    assert result.returncode == 2
    assert "unknown tool 'kubectx'" in result.stderr


def test_unreachable_module_proxy_exits_3(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    env = {**os.environ, "KS_TOOLS_DIR": str(tmp_path / "tools"), "GOPROXY": "off", "GOMODCACHE": str(tmp_path / "mod")}
    result = subprocess.run(
        ["bash", str(SCRIPT), "kubeconform"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 3, result.stderr
    assert "module proxy" in result.stderr and "SKIPPED" in result.stderr
    assert not (tmp_path / "tools" / "bin" / "kubeconform").exists()


def test_crds_take_no_tool_names(tmp_path: Path) -> None:
    result = _run(tmp_path, "--crds", "helm")
    assert result.returncode == 2
    assert "--crds takes no tool names" in result.stderr


def test_crds_without_module_proxy_exit_3_and_leave_nothing(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    env = {**os.environ, "KS_TOOLS_DIR": str(tmp_path / "tools"), "GOPROXY": "off", "GOMODCACHE": str(tmp_path / "mod")}
    result = subprocess.run(
        ["bash", str(SCRIPT), "--crds"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 3, result.stderr
    assert "module proxy" in result.stderr
    assert {path.name for path in (tmp_path / "tools" / "crds").iterdir()} <= {".lock"}  # no CRDs, no staging dir


@pytest.mark.cluster
def test_crds_are_the_pinned_modules_crds_only(tmp_path: Path) -> None:
    """--crds keeps, per pinned module, exactly the CRDs its kustomization installs (plus KServe's controller
    config), says where they came from, and skips a second time."""
    if shutil.which("go") is None:
        pytest.skip("go is not installed")
    pins = _versions()
    version = {"kserve": pins["KSERVE_VERSION"], "gateway-api": pins["GATEWAY_API_VERSION"]}
    first = _run(tmp_path, "--crds")
    assert first.returncode == 0, first.stderr
    root = Path(first.stdout.strip().splitlines()[-1])
    assert root == tmp_path / "crds"

    kinds: dict[str, set[str]] = {}
    for name, module in (("kserve", "github.com/kserve/kserve"), ("gateway-api", "sigs.k8s.io/gateway-api")):
        folder = root / f"{name}-{version[name]}"
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the KServe CRDs are megabytes
        docs = [doc for path in folder.glob("*.yaml") for doc in yaml.load_all(path.read_text(), loader) if doc]
        assert {doc["kind"] for doc in docs} == {"CustomResourceDefinition"}, folder
        kinds[name] = {doc["spec"]["names"]["kind"] for doc in docs}
        source = (folder / "SOURCE").read_text().split()
        assert source[:2] == [module, version[name]]
        assert source[2].startswith("h1:")
    assert {"InferenceService", "ServingRuntime", "ClusterServingRuntime", "ClusterStorageContainer"} <= kinds["kserve"]
    assert "LLMInferenceService" not in kinds["kserve"]  # a separate KServe component (needs a conversion webhook)
    assert {"Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute", "ReferenceGrant"} <= kinds["gateway-api"]
    configmap_file = root / f"kserve-{version['kserve']}" / "configmap" / "inferenceservice.yaml"
    configmap = yaml.safe_load(configmap_file.read_text())
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "inferenceservice-config")

    again = _run(tmp_path, "--crds")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already fetched, skipping") == 2
