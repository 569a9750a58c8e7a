"""The GitHub workflows and the laptop cluster scripts, checked with the tools that run here.

* actionlint (built from its Go module by ``scripts/build-tools.sh``) with shellcheck on PATH, so every ``run:``
  script is checked too: it must report nothing.
* Supply chain and hygiene: every ``uses:`` pinned to a commit SHA with its version in a comment, top-level
  ``permissions: {}`` and read-only jobs, a concurrency group that cancels superseded runs, no sleeps.
* One place defines versions: the workflows load ``k8s/versions.env`` and take every tool, image and chart version
  from it; the copies elsewhere (scripts/setup.sh, Dockerfile, chart test images, chart annotations, pyproject)
  agree with it; the kind node image is Kubernetes >= 1.32 of KUBERNETES_VERSION's minor.
* The scripts: strict mode, usage errors without a cluster, their embedded client code compiles, and the chart
  renders the way deploy.sh and the e2e values use it (real Helm).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import tools_bin

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.y*ml"))
OUR_SCRIPTS = ["kind-up.sh", "deploy.sh", "canary.sh", "smoke.sh", "diagnostics.sh"]
#: Workflow -> job -> permissions beyond read that the job needs (pushing the image to GHCR).
WRITE_PERMISSIONS = {"cd.yaml": {"image": {"packages": "write"}}}
#: Workflows whose runs queue instead of cancelling each other (a deployment never stops halfway).
QUEUED = {"cd.yaml"}
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
# `with:` inputs that name a version or an image: they must come from k8s/versions.env.
VERSION_INPUTS = {"version", "kubectl_version", "node_image", "go-version", "python-version", "yamllint_version",
                  "yamale_version"}
ENV_REF = re.compile(r"^\$\{\{\s*env\.([A-Z0-9_]+)\s*\}\}$")
# Variables the workflows define themselves (not versions).
WORKFLOW_ENV = {"KS_IMAGE", "KS_MODE", "CANARY_WEIGHT"}


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (REPO / "k8s" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def tool(name: str) -> Path:
    """A pinned tool from scripts/build-tools.sh (built when missing); skip loudly when Go is unavailable."""
    reason = os.environ.get("KS_NO_TOOLS_REASON")
    if reason:
        pytest.skip(f"{name} cannot be built here: {reason}")
    path = tools_bin() / name
    if not path.exists():
        result = subprocess.run([str(REPO / "scripts" / "build-tools.sh"), name], capture_output=True, text=True,
                                timeout=900, check=False)
        if result.returncode == 3:
            pytest.skip(f"{name} cannot be built here (Go or its module proxy is missing):\n{result.stderr[-2000:]}")
        assert result.returncode == 0, f"scripts/build-tools.sh {name} failed:\n{result.stderr[-4000:]}"
        path = Path(result.stdout.strip().splitlines()[-1]) / name
    assert path.exists(), f"{path} missing after scripts/build-tools.sh {name}"
    return path


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yaml", "e2e-kind.yaml", "cd.yaml"}


def test_actionlint_reports_nothing() -> None:
    actionlint = tool("actionlint")
    venv_bin = REPO / ".venv" / "bin"
    path = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    assert shutil.which("shellcheck", path=path), "shellcheck is not on PATH: actionlint would skip run: scripts"
    result = subprocess.run([str(actionlint), "-color=false", *map(str, WORKFLOWS)], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PATH": path}, timeout=300, check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha(path: Path) -> None:
    uses = [step["uses"] for step in steps(load(path)) if "uses" in step]
    assert uses, f"{path.name} uses no action"
    for ref in uses:
        assert SHA_PIN.match(ref), f"{path.name}: {ref} is not pinned to a 40-hex commit SHA"
    for line in path.read_text().splitlines():
        if re.match(r"^\s*(-\s+)?uses:", line):
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), f"{path.name}: no '# vX.Y.Z' on: {line}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert workflow.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for name, job in workflow["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict) and perms, f"{path.name}: job {name} must declare its permissions"
        allowed = WRITE_PERMISSIONS.get(path.name, {}).get(name, {})
        extra = {k: v for k, v in perms.items() if v != "read"}
        assert extra == allowed, f"{path.name}: job {name} asks for {extra or 'nothing'} beyond read, not {allowed}"
        assert perms.get("contents") == "read", f"{path.name}: job {name} must read its contents only"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_superseded_runs_are_cancelled(path: Path) -> None:
    concurrency = load(path).get("concurrency")
    assert isinstance(concurrency, dict), f"{path.name}: no concurrency group"
    assert "github.workflow" in concurrency["group"] and "github.ref" in concurrency["group"]
    assert concurrency.get("cancel-in-progress") is (path.name not in QUEUED)


def test_ci_runs_on_every_push_and_pull_request() -> None:
    triggers = load(REPO / ".github" / "workflows" / "ci.yaml")[True]  # YAML 1.1 reads `on` as True
    assert set(triggers) >= {"push", "pull_request"}
    assert triggers["push"] is None, "ci.yaml must run on every push"


def test_ci_runs_the_readme_test_command_and_every_linter() -> None:
    text = (REPO / ".github" / "workflows" / "ci.yaml").read_text()
    for needle in ("scripts/test.sh", "ruff check", "mypy model serving", "hadolint Dockerfile", "ct lint",
                   "ct install", "helm lint", "docker/build-push-action", "cache-to: type=gha"):
        assert needle in text, f"ci.yaml does not run {needle!r}"
    assert "continue-on-error" not in text, "a linter that cannot fail is theatre"


def test_ci_keeps_the_console_screenshots() -> None:
    """The browser test's screenshots (tests/control/console/test_browser.py) are an artefact of every run."""
    job = load(REPO / ".github" / "workflows" / "ci.yaml")["jobs"]["test"]
    names = [s.get("name", "") for s in job["steps"]]
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert names.index(upload["name"]) > next(i for i, s in enumerate(job["steps"]) if "scripts/test.sh" in
                                                 s.get("run", ""))
    assert upload["if"] == "always()" and upload["with"]["path"] == "test-artifacts/console/"


def test_no_sleeps_anywhere() -> None:
    sources = [*WORKFLOWS, *(REPO / "scripts" / s for s in OUR_SCRIPTS)]
    for path in sources:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            assert not re.search(r"(^|[\s;&|(])sleep\s", code), f"{path.name}:{n} sleeps: {line.strip()}"


def test_cd_deploys_what_ci_passed_staging_then_production_behind_approval() -> None:
    workflow = load(REPO / ".github" / "workflows" / "cd.yaml")
    triggers = workflow[True]
    assert triggers["workflow_run"] == {"workflows": ["ci"], "types": ["completed"], "branches": ["main"]}
    jobs = workflow["jobs"]
    assert "workflow_run.conclusion == 'success'" in jobs["image"]["if"]
    build = next(s for s in jobs["image"]["steps"] if s.get("id") == "build")
    assert build["with"]["push"] is True and jobs["image"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    assert jobs["staging"]["needs"] == "image" and jobs["production"]["needs"] == ["image", "staging"]
    assert jobs["staging"]["environment"] == "staging" and jobs["production"]["environment"] == "production"
    runs = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    # The deploy steps are the scripts the tests drive, the image pinned by its digest.
    assert 'scripts/deploy.sh staging --set-string "image.digest=${IMAGE_DIGEST}"' in runs["staging"]
    assert "scripts/smoke.sh staging" in runs["staging"]
    assert 'scripts/deploy.sh production --set-string "image.digest=${IMAGE_DIGEST}"' in runs["production"]
    assert 'scripts/canary.sh production auto "${MODEL_VERSION}"' in runs["production"]
    assert jobs["production"]["env"]["MODEL_VERSION"] == "${{ needs.staging.outputs.model-version }}"
    for name in ("staging", "production"):
        cluster = next(s for s in jobs[name]["steps"] if s.get("id") == "cluster")
        assert cluster["env"]["KUBECONFIG_DATA"] == "${{ secrets.KUBECONFIG }}"
        assert "::notice" in cluster["run"] and "present=false" in cluster["run"]
        for step in jobs[name]["steps"][3:]:
            assert "steps.cluster.outputs.present == 'true'" in step.get("if", ""), step.get("name")


def test_e2e_runs_the_whole_loop_in_order() -> None:
    workflow = load(REPO / ".github" / "workflows" / "e2e-kind.yaml")
    job = workflow["jobs"]["e2e"]
    assert {m["mode"] for m in job["strategy"]["matrix"]["include"]} == {"kserve", "deployment"}
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    expected = [
        "scripts/kind-up.sh --no-create --load",
        "scripts/deploy.sh mlflow",
        "scripts/deploy.sh train staging",
        "scripts/smoke.sh staging registry promoted",
        "scripts/deploy.sh staging",
        "scripts/smoke.sh staging",
        "scripts/deploy.sh production",
        "scripts/canary.sh production start 2",
        "scripts/smoke.sh production split",
        "scripts/canary.sh production promote",
        "scripts/smoke.sh production only 2",
        "scripts/canary.sh production rollback",
        "scripts/smoke.sh production only 1",
        "scripts/smoke.sh production drift",
        "scripts/deploy.sh train staging --builtin-corpus --env KS_TRAIN_FLOOR=0 --env KS_TRAIN_ALPHA=1",
        "scripts/deploy.sh production",
        "scripts/smoke.sh production traffic start",
        "scripts/canary.sh production auto 2",
        "scripts/smoke.sh production only 2",
        "scripts/smoke.sh production rollout 2 promoted",
        "scripts/canary.sh production auto 3",
        '[[ "${status}" -eq 3 ]]',
        "scripts/smoke.sh production only 2",
        "scripts/smoke.sh production rollout 3 rolled_back",
        "scripts/smoke.sh production traffic stop",
    ]
    at = 0
    for step in expected:
        found = runs.find(step, at)
        assert found >= 0, f"e2e-kind.yaml does not run {step!r} after the steps before it"
        at = found + len(step)
    failure = [s for s in job["steps"] if s.get("if") == "failure()"]
    assert any("scripts/diagnostics.sh" in s.get("run", "") for s in failure)
    assert any(s.get("uses", "").startswith("actions/upload-artifact@") for s in failure)
    kind = next(s for s in job["steps"] if s.get("uses", "").startswith("helm/kind-action@"))
    assert kind["with"]["config"] == "k8s/kind-config.yaml"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_versions_come_from_versions_env(path: Path) -> None:
    pins = versions()
    workflow = load(path)
    for job in workflow["jobs"].values():
        load_step = job["steps"][1] if len(job["steps"]) > 1 else {}
        uses_env = any("${{ env." in str(v) for s in job["steps"] for v in s.get("with", {}).values())
        if uses_env:
            assert "k8s/versions.env" in load_step.get("run", "") and "GITHUB_ENV" in load_step["run"], (
                f"{path.name}: a job reads env versions without loading k8s/versions.env first"
            )
        for step in job["steps"]:
            for key, value in step.get("with", {}).items():
                if key in VERSION_INPUTS:
                    match = ENV_REF.match(str(value))
                    assert match, f"{path.name}: {step.get('uses')} {key}={value!r} is not from k8s/versions.env"
                    assert match.group(1) in pins, f"{path.name}: {match.group(1)} is not in k8s/versions.env"
    for name in re.findall(r"\$\{\{\s*env\.([A-Z0-9_]+)\s*\}\}", path.read_text()):
        assert name in pins or name in WORKFLOW_ENV, f"{path.name}: env.{name} is defined nowhere"
    # No literal version or image tag outside comments and the pinned `uses:` lines.
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split(" #", 1)[0]
        if "uses:" in code or code.lstrip().startswith("#"):
            continue
        assert not re.search(r"\bv?\d+\.\d+\.\d+\b", code), f"{path.name}:{n} hard-codes a version: {line.strip()}"
    for job in workflow["jobs"].values():
        assert not str(job["runs-on"]).endswith("-latest"), f"{path.name}: runs-on must name the image version"


@pytest.mark.parametrize("name", OUR_SCRIPTS)
def test_scripts_hard_code_no_version(name: str) -> None:
    text = (REPO / "scripts" / name).read_text()
    for n, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        assert not re.search(r"\bv\d+\.\d+|:\d+\.\d+\.\d+\b", code), f"{name}:{n} hard-codes a version: {line}"


def test_copies_of_the_pins_agree() -> None:
    pins = versions()
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert re.search(rf"^readonly UV_VERSION={re.escape(pins['UV_VERSION'])}$", setup, re.M), "scripts/setup.sh uv"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"ARG UV_VERSION={pins['UV_VERSION']}\n" in dockerfile, "Dockerfile uv"
    assert re.search(rf"^ARG PYTHON_IMAGE=python:{re.escape(pins['PYTHON_VERSION'])}-", dockerfile, re.M), (
        "Dockerfile PYTHON_IMAGE and PYTHON_VERSION differ"
    )
    for chart in ("kube-sentiment", "mlflow"):
        test_image = load(REPO / "helm" / chart / "values.yaml")["tests"]["image"]
        assert f"{test_image['repository']}:{test_image['tag']}" == pins["CURL_IMAGE"], f"{chart} tests.image"
    annotations = load(REPO / "helm" / "kube-sentiment" / "Chart.yaml")["annotations"]
    assert annotations["kube-sentiment/kserve-version"] == pins["KSERVE_VERSION"]
    assert annotations["kube-sentiment/gateway-api-version"] == pins["GATEWAY_API_VERSION"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"kserve=={pins["KSERVE_VERSION"].lstrip("v")}"' in pyproject, "pyproject kserve pin"
    for doc in (REPO / "docs").glob("*.md"):
        for image in re.findall(r"curlimages/curl:[\w.-]+", doc.read_text()):
            assert image == pins["CURL_IMAGE"], f"{doc.name} names {image}"


def test_kind_node_image_is_kubernetes_1_32_or_newer_of_the_pinned_minor() -> None:
    pins = versions()
    repo, _, tag = pins["KIND_NODE_IMAGE"].partition(":")
    assert repo == "kindest/node" and "@" not in tag
    node = tuple(int(x) for x in tag.lstrip("v").split("."))
    k8s = tuple(int(x) for x in pins["KUBERNETES_VERSION"].lstrip("v").split("."))
    assert node[:2] >= (1, 32), f"KServe {pins['KSERVE_VERSION']} needs Kubernetes >= 1.32, node image is {tag}"
    assert node[:2] == k8s[:2], f"kind node {tag} and KUBERNETES_VERSION {pins['KUBERNETES_VERSION']} differ"
    assert "image" not in (REPO / "k8s" / "kind-config.yaml").read_text().split("nodes:", 1)[1], (
        "k8s/kind-config.yaml must not pin its own node image (kind-up.sh and the workflows pass KIND_NODE_IMAGE)"
    )


@pytest.mark.parametrize("name", OUR_SCRIPTS)
def test_scripts_are_strict_and_executable(name: str) -> None:
    path = REPO / "scripts" / name
    lines = path.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert os.access(path, os.X_OK)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["deploy.sh"], 2),
        (["deploy.sh", "qa"], 2),
        (["deploy.sh", "train", "qa"], 2),
        (["canary.sh", "production"], 2),
        (["canary.sh", "qa", "promote"], 2),
        (["canary.sh", "production", "start", "two", "10"], 2),
        (["smoke.sh"], 2),
        (["smoke.sh", "qa"], 2),
        (["smoke.sh", "staging", "split", "x"], 2),
        (["smoke.sh", "staging", "traffic"], 2),
        (["smoke.sh", "staging", "rollout", "two", "promoted"], 2),
        (["canary.sh", "production", "shadow", "2"], 2),
        (["canary.sh", "production", "auto"], 2),
        (["canary.sh", "production", "auto", "latest"], 2),
        (["kind-up.sh", "--bogus"], 2),
        (["kind-up.sh", "--help"], 0),
    ],
)
def test_scripts_refuse_bad_arguments_before_touching_a_cluster(args: list[str], code: int, tmp_path: Path) -> None:
    # An empty kubeconfig: a script that reached the cluster would fail differently.
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none")}
    result = subprocess.run([str(REPO / "scripts" / args[0]), *args[1:]], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode == code, result.stdout + result.stderr
    if code == 2:
        assert result.stderr.strip(), "a usage error must say what is wrong"


@pytest.mark.parametrize("name", ["VERSION_LOOP", "TRAFFIC_LOOP"])
def test_the_in_pod_request_loops_are_posix_sh(name: str) -> None:
    from tests.support import cluster_checks

    sh = shutil.which("dash") or shutil.which("sh")
    assert sh
    result = subprocess.run([sh, "-n", "-c", getattr(cluster_checks, name)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("canary_weight", [5, 25, 50])
def test_the_traffic_cycle_gives_every_track_the_same_texts_under_round_robin(canary_weight: int) -> None:
    """The in-pod traffic cycles through its request bodies; a Gateway splitting by smooth weighted round robin
    (deterministic, as Traefik's) must still send each body to the canary at the canary's weight."""
    from tests.support.cluster_checks import TRAFFIC_TEXTS

    bodies, weights = len(TRAFFIC_TEXTS), {"stable": 100 - canary_weight, "canary": canary_weight}
    current = dict.fromkeys(weights, 0)
    to_canary = [0] * bodies
    for request in range(bodies * 100 * 4):
        for track in current:
            current[track] += weights[track]
        chosen = max(current, key=lambda t: current[t])
        current[chosen] -= 100
        to_canary[request % bodies] += chosen == "canary"
    shares = [n / 400 for n in to_canary]
    assert max(shares) - min(shares) < 0.02, shares


@pytest.fixture(scope="module")
def helm() -> Path:
    return tool("helm")


def _template(helm: Path, release: str, *args: str) -> list[dict[str, Any]]:
    chart = REPO / "helm" / "kube-sentiment"
    result = subprocess.run([str(helm), "template", release, str(chart), *args], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.mark.parametrize("mode", ["kserve", "deployment"])
def test_the_e2e_production_values_render_a_canary_on_a_pvc_sink(helm: Path, mode: str) -> None:
    chart = REPO / "helm" / "kube-sentiment"
    docs = _template(helm, "kube-sentiment", "--namespace", "production", "-f",
                     str(chart / "values-production.yaml"), "-f", str(REPO / ".github" / "e2e" / "values-kind.yaml"),
                     "--set", f"serving.mode={mode}", "--set", "serving.canary.enabled=true",
                     "--set", "serving.canary.modelVersion=2", "--set", "serving.canary.weight=20")
    kinds = {d["kind"] for d in docs}
    assert "PersistentVolumeClaim" in kinds and "HorizontalPodAutoscaler" not in kinds
    assert "CronJob" in kinds
    if mode == "kserve":
        isvc = next(d for d in docs if d["kind"] == "InferenceService")
        assert isvc["spec"]["canary"][0]["trafficPercent"] == 20
    else:
        route = next(d for d in docs if d["kind"] == "HTTPRoute")
        weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
        assert weights == {"kube-sentiment-stable": 80, "kube-sentiment-canary": 20}


def test_the_training_run_renders_alone_with_the_image_corpus(helm: Path) -> None:
    """What `scripts/deploy.sh train` applies: only the training ConfigMap and Job, no ServiceAccount."""
    chart = REPO / "helm" / "kube-sentiment"
    env = '[{"name":"KS_TRAIN_DATA_PATH","value":"/opt/corpus.csv"},{"name":"KS_TRAIN_FLOOR","value":"0.3"}]'
    docs = _template(helm, "kube-sentiment-train", "--namespace", "staging", "-f", str(chart / "values-staging.yaml"),
                     "--set", "train.enabled=true", "--set", "serviceAccounts.create=false",
                     "--set-json", f"train.extraEnv={env}", "--show-only", "templates/train/configmap.yaml",
                     "--show-only", "templates/train/job.yaml")
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    job = docs[1]
    assert job["metadata"]["name"].startswith("kube-sentiment-train-train-")
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default" and pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    # env wins over envFrom: the corpus path overrides the ConfigMap's KS_TRAIN_DATA_PATH.
    assert {"name": "KS_TRAIN_DATA_PATH", "value": "/opt/corpus.csv"} in container["env"]
    assert container["envFrom"][0]["configMapRef"]["name"] == docs[0]["metadata"]["name"]
