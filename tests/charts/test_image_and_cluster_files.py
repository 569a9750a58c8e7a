"""The Dockerfile (hadolint), the cluster scripts (shellcheck) and the k8s/ manifests (strict offline schemas)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import chartlib
import pytest
import yaml

REPO = chartlib.REPO
VENV_BIN = REPO / ".venv" / "bin"
SCRIPTS = [REPO / "scripts" / "bootstrap-cluster.sh"]


def _venv_tool(name: str) -> Path:
    path = VENV_BIN / name
    if not path.exists():
        pytest.skip(f"{name} missing from .venv: run `uv sync --frozen --extra dev`")
    return path


def test_dockerfile_is_hadolint_clean() -> None:
    result = subprocess.run(
        [str(_venv_tool("hadolint")), "--failure-threshold", "info", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", text, re.M)
    assert [name for _, name in stages] == ["builder", "runtime"]
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    # Dependencies from the lock before the source, for layer caching.
    assert text.index("uv sync --frozen --no-dev --no-install-project") < text.index("COPY model/")
    builder, runtime = text.split("AS runtime", 1)
    assert "uv " not in runtime and "pip install" not in runtime and "apt-get" not in runtime
    # The kernels are compiled ahead of time into the installed package (not /src) after the project is installed,
    # and the build is checked usable; the compilers stay in the builder.
    assert builder.index("uv sync --frozen --no-dev --no-editable") < builder.index("python -I -m serving.aot")
    assert "ahead_of_time()[1]" in builder and "g++" in builder and "g++" not in runtime
    user = re.search(r"^USER\s+(\S+)", runtime, re.M).group(1)
    assert user == "${APP_UID}:${APP_GID}" and re.search(r"^ARG APP_UID=\d+$", runtime, re.M)
    assert 'ENTRYPOINT ["kube-sentiment"]' in runtime
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" or "*" in ignore, "the build context is an allow-list"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_shellcheck_clean(script: Path) -> None:
    result = subprocess.run(
        [str(_venv_tool("shellcheck")), "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bootstrap_dry_run_uses_pinned_versions() -> None:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "bootstrap-cluster.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    )
    pins = chartlib.versions()
    for key in ("CERT_MANAGER_VERSION", "GATEWAY_API_VERSION", "ENVOY_GATEWAY_VERSION", "KSERVE_VERSION"):
        assert pins[key] in result.stdout, key
    assert not re.search(r"^\s*sleep\b", (REPO / "scripts" / "bootstrap-cluster.sh").read_text(), re.M)
    assert result.stdout.count("kubectl wait") + result.stdout.count("wait --for") >= 6


@pytest.mark.integration
def test_k8s_manifests_validate(kubeconform_bin: Path, schema_dir: Path) -> None:
    manifests = [
        REPO / "k8s" / "namespaces.yaml",
        REPO / "k8s" / "gateway" / "gateway.yaml",
        REPO / "k8s" / "kserve" / "gateway.yaml",
    ]
    text = "\n---\n".join(p.read_text() for p in manifests)
    assert chartlib.kubeconform(text, schema_dir) == []
    namespaces = {d["metadata"]["name"]: d for d in yaml.safe_load_all((REPO / "k8s" / "namespaces.yaml").read_text())}
    assert {"staging", "production", "mlflow", "monitoring"} <= set(namespaces)
    for env in ("staging", "production"):
        labels = namespaces[env]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The routes of the app chart attach to the listeners this Gateway defines.
    gateway = next(
        d for d in yaml.safe_load_all((REPO / "k8s" / "gateway" / "gateway.yaml").read_text()) if d["kind"] == "Gateway"
    )
    values = yaml.safe_load((chartlib.CHARTS / "kube-sentiment" / "values.yaml").read_text())
    listeners = {listener["name"] for listener in gateway["spec"]["listeners"]}
    for proto in ("http", "grpc"):
        ref = values["serving"]["gateway"][proto]["parentRefs"][0]
        assert (ref["name"], ref["namespace"]) == (gateway["metadata"]["name"], gateway["metadata"]["namespace"])
        assert ref["sectionName"] in listeners


def test_kind_config_pins_node_image() -> None:
    config = yaml.safe_load((REPO / "k8s" / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and len(config["nodes"]) >= 2
    image = chartlib.versions()["KIND_NODE_IMAGE"]
    assert re.fullmatch(r"kindest/node:v1\.32\.\d+(@sha256:[a-f0-9]{64})?", image), image
