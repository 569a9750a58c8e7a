"""Chart documentation: README.md (helm-docs) and the values.schema.json descriptions come from the `# --`
comments of values.yaml through scripts/chart-docs.sh, are committed fresh, and cover every value and property.

Needs the helm-docs binary from `scripts/build-tools.sh helm-docs`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chartlib
import pytest
import yaml
from jsonschema import Draft202012Validator

pytestmark = pytest.mark.integration

CHART_DOCS = chartlib.REPO / "scripts" / "chart-docs.sh"
CHART_DOCS_PY = chartlib.REPO / "scripts" / "chart_docs.py"
CHARTS = ("kube-sentiment", "mlflow")
# Subschemas that only re-constrain properties described elsewhere.
CONDITIONAL = {"if", "then", "else", "not"}


@pytest.fixture(scope="module")
def helm_docs_bin() -> Path:
    try:
        return chartlib.tool("helm-docs")
    except chartlib.ToolMissing as e:
        print(f"\n*** chart tests: SKIPPED: {e}", flush=True)
        pytest.skip(str(e))


def chart_docs(helm_docs_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """scripts/chart_docs.py with the pinned helm-docs (what scripts/chart-docs.sh runs)."""
    return subprocess.run(
        [sys.executable, str(CHART_DOCS_PY), "--helm-docs", str(helm_docs_bin), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture
def charts_copy(tmp_path: Path) -> Path:
    """A scratch copy of helm/ that a test may edit."""
    copy_dir = tmp_path / "helm"
    shutil.copytree(chartlib.CHARTS, copy_dir)
    return copy_dir


def test_the_committed_docs_are_what_the_script_writes(helm_docs_bin: Path) -> None:
    env = {**os.environ, "KS_TOOLS_BIN": str(helm_docs_bin.parent)}
    result = subprocess.run(
        ["bash", str(CHART_DOCS), "--check"], capture_output=True, text=True, env=env, check=False, timeout=300
    )
    assert result.returncode == 0, f"run scripts/chart-docs.sh and commit the result:\n{result.stderr}"


def test_a_changed_comment_reaches_the_readme_and_the_schema(helm_docs_bin: Path, charts_copy: Path) -> None:
    values = charts_copy / "kube-sentiment" / "values.yaml"
    old = "# -- Percentage of traffic sent to the canary (0-100)."
    new = "# -- Share of the routed traffic, in percent, that the canary track answers."
    assert old in values.read_text()
    values.write_text(values.read_text().replace(old, new))

    stale = chart_docs(helm_docs_bin, "--charts", str(charts_copy), "--check")
    assert stale.returncode == 1
    assert "kube-sentiment/README.md" in stale.stderr and "kube-sentiment/values.schema.json" in stale.stderr
    assert "mlflow/" not in stale.stderr.split("stale, run")[-1]

    assert chart_docs(helm_docs_bin, "--charts", str(charts_copy)).returncode == 0
    text = new.removeprefix("# -- ")
    schema = json.loads((charts_copy / "kube-sentiment" / "values.schema.json").read_text())
    assert schema["properties"]["serving"]["properties"]["canary"]["properties"]["weight"]["description"] == text
    readme = (charts_copy / "kube-sentiment" / "README.md").read_text()
    assert f"| serving.canary.weight | int | `10` | {text} |" in readme
    assert chart_docs(helm_docs_bin, "--charts", str(charts_copy), "--check").returncode == 0


def test_a_value_without_a_comment_is_refused(helm_docs_bin: Path, charts_copy: Path) -> None:
    values = charts_copy / "mlflow" / "values.yaml"
    values.write_text(values.read_text().replace("server:\n", "server:\n  newKnob: 3\n", 1))
    result = chart_docs(helm_docs_bin, "--charts", str(charts_copy), "--check")
    assert result.returncode == 1
    assert "no `# --` comment for server.newKnob" in result.stderr


def test_a_property_without_a_description_is_refused(helm_docs_bin: Path, charts_copy: Path) -> None:
    schema_file = charts_copy / "kube-sentiment" / "values.schema.json"
    schema = json.loads(schema_file.read_text())
    del schema["$defs"]["parentRefs"]["items"]["properties"]["sectionName"]["description"]
    schema_file.write_text(json.dumps(schema, indent=2) + "\n")
    result = chart_docs(helm_docs_bin, "--charts", str(charts_copy))
    assert result.returncode == 1
    assert "#/$defs/parentRefs/items/properties/sectionName" in result.stderr


def _described_nodes(node: Any, pointer: str = "#") -> Iterator[tuple[str, Any]]:
    """Every property and $defs entry of a schema, outside conditional subschemas (which only re-constrain)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONDITIONAL:
                continue
            if key in ("properties", "$defs") and isinstance(value, dict):
                for name, child in value.items():
                    yield f"{pointer}/{key}/{name}", child
            yield from _described_nodes(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _described_nodes(item, f"{pointer}/{index}")


@pytest.mark.parametrize("chart", CHARTS)
def test_every_schema_property_has_a_description(chart: str) -> None:
    schema = json.loads((chartlib.CHARTS / chart / "values.schema.json").read_text())
    nodes = list(_described_nodes(schema))
    assert len(nodes) > 50, f"only {len(nodes)} properties found: the walk is broken"
    missing = [pointer for pointer, node in nodes if not (isinstance(node, dict) and node.get("description"))]
    assert missing == []


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("chart", CHARTS)
def test_the_schema_is_json_schema_2020_12_and_takes_every_shipped_values_file(chart: str) -> None:
    directory = chartlib.CHARTS / chart
    schema = json.loads((directory / "values.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    defaults = yaml.safe_load((directory / "values.yaml").read_text())
    overlays = sorted(directory.glob("values-*.yaml")) + sorted((directory / "ci").glob("*-values.yaml"))
    for overlay in [None, *overlays]:
        values = _merge(defaults, yaml.safe_load(overlay.read_text()) if overlay else {})
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]
        assert errors == [], overlay
