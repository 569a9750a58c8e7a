"""Helpers for the chart tests: find the pinned tools, render charts with the real Helm engine, and build strict
JSON schemas for offline validation with kubeconform.

Schemas come from two places, both offline:

* built-in kinds: the Kubernetes OpenAPI v3 documents (``api/openapi-spec/v3/*.json``) of the pinned
  ``KUBERNETES_VERSION`` inside the ``k8s.io/kubernetes`` Go module (already in the module cache wherever
  ``scripts/build-tools.sh controlplane`` ran; otherwise ``go mod download`` fetches that one module);
* custom resources: the KServe and Gateway API CRDs of the pinned ``KSERVE_VERSION`` and ``GATEWAY_API_VERSION``,
  taken from their Go modules by ``scripts/build-tools.sh --crds`` (see ``crd_dirs``).

Every object schema that lists properties gets ``additionalProperties: false`` unless the API marks it
``x-kubernetes-preserve-unknown-fields``, so an unknown field fails validation, as strict server-side field
validation would. The files are laid out for kubeconform's ``-schema-location`` template
``<dir>/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json`` (core kinds: group ``v1``).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support import tools_bin

REPO = Path(__file__).resolve().parents[2]
CHARTS = REPO / "helm"
BUILD_TOOLS = REPO / "scripts" / "build-tools.sh"
#: scripts/build-tools.sh exit code for "Go missing or module proxy unreachable".
EXIT_NO_GO = 3
VERSIONS_FILE = REPO / "k8s" / "versions.env"
SCHEMA_LOCATION_TEMPLATE = "{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json"


class ToolMissing(RuntimeError):
    """A pinned tool or schema source is not available on this machine; the message says how to get it."""


def versions() -> dict[str, str]:
    """Return the KEY=value pins of k8s/versions.env."""
    out: dict[str, str] = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def tool(name: str) -> Path:
    """Path of a pinned tool (helm, kubeconform), or ToolMissing naming the command that builds it."""
    reason = os.environ.get("KS_NO_TOOLS_REASON")
    if reason:
        raise ToolMissing(f"{reason}: {name} cannot be built; install Go >= 1.24 and re-run scripts/test.sh")
    path = tools_bin() / name
    if not (path.exists() and os.access(path, os.X_OK)):
        raise ToolMissing(
            f"{name} is not built at {path}: run `scripts/build-tools.sh helm kubeconform` (needs Go and the Go "
            "module proxy) before the chart tests"
        )
    return path


@functools.cache
def crd_dirs() -> dict[str, Path]:
    """The pinned CRD folders, ``{"kserve": ..., "gateway-api": ...}``, each holding only CRD files.

    They come from ``scripts/build-tools.sh --crds`` (the one entry point; it fetches them once from the Go modules
    into the tools cache and prints the folder): KS_CRDS_DIR when scripts/test.sh already ran it, else it is run
    here. ToolMissing when Go or the module proxy is unavailable (exit 3).
    """
    if reason := os.environ.get("KS_NO_TOOLS_REASON"):
        raise ToolMissing(f"{reason}: the KServe and Gateway API CRDs cannot be fetched")
    root = os.environ.get("KS_CRDS_DIR")
    if not root:
        result = subprocess.run(
            ["bash", str(BUILD_TOOLS), "--crds"], capture_output=True, text=True, check=False, timeout=1800
        )
        if result.returncode == EXIT_NO_GO:
            raise ToolMissing(f"scripts/build-tools.sh --crds cannot fetch the CRDs:\n{result.stderr[-2000:]}")
        if result.returncode != 0:
            raise RuntimeError(f"scripts/build-tools.sh --crds failed (exit {result.returncode}):\n{result.stderr}")
        root = result.stdout.strip().splitlines()[-1]
    pins = versions()
    dirs = {
        "kserve": Path(root) / f"kserve-{pins['KSERVE_VERSION']}",
        "gateway-api": Path(root) / f"gateway-api-{pins['GATEWAY_API_VERSION']}",
    }
    for name, path in dirs.items():
        if not any(path.glob("*.yaml")):
            raise RuntimeError(f"{path} holds no {name} CRD: run `scripts/build-tools.sh --crds`")
    return dirs


def crd_files() -> list[Path]:
    """Every pinned CRD file (KServe, then Gateway API)."""
    return [path for folder in crd_dirs().values() for path in sorted(folder.glob("*.yaml"))]


# --------------------------------------------------------------------------------------------- rendering


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm binary with an isolated, empty Helm home."""
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/ks-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/ks-helm/config",
        "HELM_DATA_HOME": "/tmp/ks-helm/data",
    }
    return subprocess.run([str(tool("helm")), *args], capture_output=True, text=True, check=check, env=env)


def render(chart: str, release: str, namespace: str, values: Iterable[Path] = (), sets: Iterable[str] = ()) -> str:
    """Render a chart with `helm template` (the real engine, schema check included) and return the YAML."""
    args = ["template", release, str(CHARTS / chart), "--namespace", namespace, "--kube-version", kube_version()]
    for value_file in values:
        args += ["-f", str(value_file)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args, check=False)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed ({' '.join(args)}):\n{result.stderr}")
    return result.stdout


def objects(manifest: str) -> list[dict[str, Any]]:
    """Parse a multi-document manifest into its objects."""
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def kube_version() -> str:
    """The pinned Kubernetes version without the leading v (e.g. 1.32.13)."""
    return versions()["KUBERNETES_VERSION"].lstrip("v")


# ------------------------------------------------------------------------------------------ k8s schemas


def openapi_dir() -> Path:
    """Locate api/openapi-spec/v3 of the pinned k8s.io/kubernetes module, downloading that module if needed."""
    override = os.environ.get("KS_K8S_OPENAPI_DIR")
    if override:
        return Path(override)
    version = versions()["KUBERNETES_VERSION"]
    go = shutil.which("go")
    if go is None:
        raise ToolMissing(
            "Go is not on PATH: the Kubernetes OpenAPI schemas come from the k8s.io/kubernetes Go module "
            f"{version} (or set KS_K8S_OPENAPI_DIR to a copy of its api/openapi-spec/v3)"
        )
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    modcache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    candidate = Path(modcache) / f"k8s.io/kubernetes@{version}" / "api" / "openapi-spec" / "v3"
    if candidate.is_dir():
        return candidate
    result = subprocess.run(
        [go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=900,
    )
    if result.returncode != 0:
        raise ToolMissing(f"`go mod download k8s.io/kubernetes@{version}` failed: {result.stdout}{result.stderr}")
    candidate = Path(json.loads(result.stdout)["Dir"]) / "api" / "openapi-spec" / "v3"
    if not candidate.is_dir():
        raise ToolMissing(f"{candidate} is missing from the k8s.io/kubernetes module")
    return candidate


def _strict(node: Any) -> Any:
    """Recursively close every object schema that lists properties (additionalProperties: false)."""
    if isinstance(node, dict):
        out = {key: _strict(value) for key, value in node.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        if out.get("nullable") is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _closure(defs: dict[str, Any], root: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = defs[name]
        todo.extend(ref for ref in _refs(defs[name]) if ref not in seen)
    return seen


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                "#/definitions/" + value.rsplit("/", 1)[-1]
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def _write(out: Path, group: str, version: str, kind: str, schema: dict[str, Any]) -> None:
    path = out / (group or version) / version / f"{kind.lower()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


def _prepare(defs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the $refs of an OpenAPI document's definitions to #/definitions/ and make them strict."""
    return {name: _strict(_rewrite_refs(schema)) for name, schema in defs.items()}


def _standalone(prepared: dict[str, Any], root: str) -> dict[str, Any]:
    """A self-contained schema: the root definition plus every definition it reaches."""
    closure = _closure(prepared, root)
    top = copy.deepcopy(closure[root])
    top["definitions"] = closure
    return top


def generate_builtin_schemas(spec_dir: Path, out: Path) -> int:
    """Write a strict standalone schema per built-in kind from the OpenAPI v3 documents; return how many."""
    count = 0
    for doc_path in sorted(spec_dir.glob("api*__*_openapi.json")):
        defs = _prepare(json.loads(doc_path.read_text()).get("components", {}).get("schemas", {}))
        for name, schema in defs.items():
            gvks = schema.get("x-kubernetes-group-version-kind") or []
            if len(gvks) != 1 or "properties" not in schema or "metadata" not in schema["properties"]:
                continue
            gvk = gvks[0]
            _write(out, gvk["group"], gvk["version"], gvk["kind"], _standalone(defs, name))
            count += 1
    return count


def _object_meta(spec_dir: Path) -> dict[str, Any]:
    defs = json.loads((spec_dir / "api__v1_openapi.json").read_text())["components"]["schemas"]
    return _standalone(_prepare(defs), "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")


def generate_crd_schemas(crd_files: Iterable[Path], spec_dir: Path, out: Path) -> list[str]:
    """Write a strict schema per served version of each CRD, with the real ObjectMeta schema for metadata."""
    meta = _object_meta(spec_dir)
    meta_defs = meta.pop("definitions")
    written: list[str] = []
    for crd_file in crd_files:
        for crd in yaml.safe_load_all(crd_file.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if not version.get("served", True):
                    continue
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema["properties"]["metadata"] = meta
                schema["definitions"] = meta_defs
                _write(out, group, version["name"], kind, schema)
                written.append(f"{group}/{version['name']}/{kind}")
    return written


def build_schema_dir(out: Path) -> Path:
    """Generate every schema the chart tests need into `out` (built-in kinds and the pinned CRDs)."""
    spec_dir = openapi_dir()
    count = generate_builtin_schemas(spec_dir, out)
    if count < 50:
        raise AssertionError(f"only {count} built-in kinds found in {spec_dir}")
    generate_crd_schemas(crd_files(), spec_dir, out)
    return out


def kubeconform_files(
    files: Iterable[Path], schema_dir: Path, skip_kinds: Iterable[str] = ()
) -> dict[str, list[dict[str, Any]]]:
    """Validate manifest files strictly in one kubeconform run (each schema is compiled once).

    Returns file path -> the non-valid resources of that file (empty lists mean valid).
    """
    paths = [str(f) for f in files]
    args = [
        str(tool("kubeconform")),
        "-strict",
        "-summary",
        "-output",
        "json",
        "-n",
        "2",
        "-kubernetes-version",
        kube_version(),
        "-schema-location",
        str(schema_dir / SCHEMA_LOCATION_TEMPLATE),
    ]
    skip = list(skip_kinds)
    if skip:
        args += ["-skip", ",".join(skip)]
    result = subprocess.run([*args, *paths], capture_output=True, text=True, check=False)
    report = json.loads(result.stdout or "{}")
    out: dict[str, list[dict[str, Any]]] = {path: [] for path in paths}
    for resource in report.get("resources", []):
        if resource.get("status") not in ("statusValid", "statusSkipped"):
            out.setdefault(resource.get("filename", "?"), []).append(resource)
    if result.returncode != 0 and not any(out.values()):
        raise AssertionError(f"kubeconform failed without a per-resource report: {result.stdout}{result.stderr}")
    return out


def kubeconform(manifest: str, schema_dir: Path, skip_kinds: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Validate one manifest (a string); return its non-valid resources (empty means all valid)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "manifest.yaml"
        path.write_text(manifest)
        return kubeconform_files([path], schema_dir, skip_kinds)[str(path)]
