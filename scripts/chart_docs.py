"""Chart documentation from values.yaml: each chart's README.md and the descriptions in its values.schema.json.

The helm-docs comments (``# --``) in a chart's values.yaml are the one home of a value's description. helm-docs
renders them, through the chart's README.md.gotmpl, into README.md; this script copies the same text into the
matching property of values.schema.json (editors and schema tools show it). Properties that values.yaml does not
hold (array items, ``$defs``, optional keys) keep the description written in the schema itself.

It refuses (exit 1) a value without a comment, a documented value the schema has no property for, and a schema
property without a description. With ``--check`` it changes nothing and exits 1 when a file is not what it would
write. Run through ``scripts/chart-docs.sh``, which provides the pinned helm-docs binary.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_STALE, EXIT_USAGE = 0, 1, 2
README_TEMPLATE = "README.md.gotmpl"
# One JSON object per values row: its key and its description (`# --` comment, or the older `# key -- text`).
ROWS_TEMPLATE = (
    '{{- range .Values }}\n{{ dict "key" .Key "description" (.Description | default .AutoDescription) | toJson }}\n'
    "{{- end }}\n"
)
# Subschemas that describe values: a property found only under if/then/else/not re-constrains one of these.
_DESCRIBED_CONTAINERS = ("properties", "$defs")
_SCHEMA_CHILDREN = ("items", "additionalProperties")
_SCHEMA_LISTS = ("oneOf", "anyOf", "allOf")
_KEY_PART = re.compile(r'"[^"]*"|[^.]+')


class ChartDocsError(Exception):
    """What is wrong in a chart's values.yaml or values.schema.json, or with helm-docs."""


def helm_docs(binary: Path, chart: Path, template: str) -> str:
    """Render `template` (a file name in the chart, or an absolute path) for one chart; helm-docs output."""
    result = subprocess.run(
        [
            str(binary),
            "--chart-search-root",
            str(chart),
            "--dry-run",
            "--sort-values-order",
            "file",
            "--template-files",
            template,
            "--log-level",
            "warning",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # helm-docs reports a bad chart or template as a log line and still exits 0.
    if result.returncode != 0 or result.stderr.strip():
        raise ChartDocsError(f"helm-docs failed on {chart} (exit {result.returncode}):\n{result.stderr.strip()}")
    return result.stdout


def documented_values(binary: Path, chart: Path) -> dict[str, str]:
    """Every values row helm-docs lists (documented keys, and leaves under no documented key): key -> description."""
    with tempfile.NamedTemporaryFile("w", suffix=".gotmpl") as template:
        template.write(ROWS_TEMPLATE)
        template.flush()
        output = helm_docs(binary, chart, template.name)
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    return {row["key"]: row["description"].strip() for row in rows}


def key_path(key: str) -> list[str]:
    """helm-docs key (`a.b`, `a."b.c"`, `a[0].b`) -> path segments, `[]` standing for a list item."""
    parts: list[str] = []
    for part in _KEY_PART.findall(key):
        name, _, rest = part.partition("[")
        parts.append(name.strip('"'))
        parts.extend("[]" for _ in range(rest.count("]")))
    return parts


def schema_node(schema: dict[str, Any], path: list[str], key: str) -> dict[str, Any]:
    """The schema of a value at `path`, following `properties` and `items` (never into a shared `$ref`)."""
    node = schema
    for depth, part in enumerate(path):
        if "$ref" in node:
            raise ChartDocsError(
                f"`{key}`: its parent {'.'.join(path[:depth])} is a shared $ref; describe it in that $defs entry "
                "instead of values.yaml, or give it its own property"
            )
        child = node.get("items") if part == "[]" else node.get("properties", {}).get(part)
        if not isinstance(child, dict):
            raise ChartDocsError(f"values.yaml documents `{key}`, but values.schema.json has no property for it")
        node = child
    return node


def described(node: dict[str, Any], description: str) -> dict[str, Any]:
    """`node` with `description` as its first keyword (where a reader looks first)."""
    rest = {k: v for k, v in node.items() if k != "description"}
    return {"description": description, **rest}


def with_descriptions(schema: dict[str, Any], rows: dict[str, str]) -> dict[str, Any]:
    """A copy of `schema` whose property for every documented value carries that value's description."""
    out = json.loads(json.dumps(schema))
    for key, description in rows.items():
        path = key_path(key)
        node = schema_node(out, path, key)
        parent = schema_node(out, path[:-1], key) if len(path) > 1 else out
        if path[-1] == "[]":
            parent["items"] = described(node, description)
        else:
            parent["properties"][path[-1]] = described(node, description)
    return out


def properties(node: Any, pointer: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON pointer, schema) of every property and `$defs` entry that describes a value (not if/then/else/not)."""
    if not isinstance(node, dict):
        return
    for container in _DESCRIBED_CONTAINERS:
        for name, child in (node.get(container) or {}).items():
            if isinstance(child, dict):
                yield f"{pointer}/{container}/{name}", child
                yield from properties(child, f"{pointer}/{container}/{name}")
    for keyword in _SCHEMA_CHILDREN:
        yield from properties(node.get(keyword), f"{pointer}/{keyword}")
    for keyword in _SCHEMA_LISTS:
        for index, child in enumerate(node.get(keyword) or []):
            yield from properties(child, f"{pointer}/{keyword}/{index}")


def undescribed(schema: dict[str, Any]) -> list[str]:
    """JSON pointers of the properties (and `$defs` entries) that have no description."""
    return [pointer for pointer, node in properties(schema) if not str(node.get("description", "")).strip()]


def render(binary: Path, chart: Path) -> dict[Path, str]:
    """What README.md and values.schema.json of `chart` should contain."""
    rows = documented_values(binary, chart)
    if missing := sorted(key for key, description in rows.items() if not description):
        raise ChartDocsError(f"{chart / 'values.yaml'}: no `# --` comment for " + ", ".join(missing))
    schema_file = chart / "values.schema.json"
    schema = with_descriptions(json.loads(schema_file.read_text()), rows)
    if missing := undescribed(schema):
        raise ChartDocsError(f"{schema_file}: no description for " + ", ".join(missing))
    if not (chart / README_TEMPLATE).is_file():
        raise ChartDocsError(f"{chart / README_TEMPLATE} is missing")
    return {
        chart / "README.md": helm_docs(binary, chart, README_TEMPLATE),
        schema_file: json.dumps(schema, indent=2, ensure_ascii=False) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--helm-docs", type=Path, required=True, help="the pinned helm-docs binary")
    parser.add_argument(
        "--charts",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "helm",
        help="folder holding the charts (default: helm/)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    charts = sorted(path.parent for path in args.charts.glob("*/Chart.yaml"))
    if not charts:
        print(f"chart-docs: no chart under {args.charts}", file=sys.stderr)
        return EXIT_USAGE
    stale = []
    try:
        for chart in charts:
            for path, text in render(args.helm_docs, chart).items():
                current = path.read_text() if path.exists() else ""
                if current == text:
                    continue
                if args.check:
                    stale.append(path)
                    diff = difflib.unified_diff(
                        current.splitlines(), text.splitlines(), str(path), "generated", lineterm="", n=1
                    )
                    print("\n".join(list(diff)[:40]), file=sys.stderr)
                else:
                    path.write_text(text)
                    print(f"chart-docs: wrote {path}", file=sys.stderr)
    except ChartDocsError as error:
        print(f"chart-docs: {error}", file=sys.stderr)
        return EXIT_STALE
    if stale:
        print("chart-docs: stale, run scripts/chart-docs.sh and commit: " + " ".join(map(str, stale)), file=sys.stderr)
        return EXIT_STALE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
