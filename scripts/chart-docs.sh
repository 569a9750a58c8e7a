#!/usr/bin/env bash
# Write each chart's README.md (helm-docs, through helm/<chart>/README.md.gotmpl) and the property descriptions
# of its values.schema.json from the `# --` comments of its values.yaml (logic: scripts/chart_docs.py).
#
#   scripts/chart-docs.sh            # rewrite helm/*/README.md and helm/*/values.schema.json
#   scripts/chart-docs.sh --check    # write nothing; exit 1 naming every stale file (the chart tests run this)
#
#   KS_TOOLS_BIN  bin directory of the pinned tools (scripts/test.sh sets it); else scripts/build-tools.sh helm-docs
#
# Exit codes: 0 ok (up to date); 1 stale file, value without a comment, property without a description;
#             2 usage; 3 Go or the module proxy missing (helm-docs cannot be built).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${repo_root}/.venv/bin/python"
[[ -x "${python}" ]] || { echo "chart-docs: ${python} missing; run scripts/setup.sh --dev" >&2; exit 2; }

helm_docs="${KS_TOOLS_BIN:-}/helm-docs"
if [[ -z "${KS_TOOLS_BIN:-}" || ! -x "${helm_docs}" ]]; then
  helm_docs="$("${repo_root}/scripts/build-tools.sh" helm-docs | tail -n 1)/helm-docs"
fi
exec "${python}" "${repo_root}/scripts/chart_docs.py" --helm-docs "${helm_docs}" "$@"
