"""A chart that changed against main carries a higher `version` than main's, as `ct lint` checks in CI
(check-version-increment, .github/ct.yaml): chart users rely on a version naming one content.

The base is the merge base of HEAD with KS_CHART_BASE (default: `main`, else `origin/main`); uncommitted changes
count, as they do for ct. On main itself nothing has changed and the test passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import chartlib
import pytest
import yaml
from packaging.version import Version

CHARTS = ("kube-sentiment", "mlflow")


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=chartlib.REPO, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def base() -> str:
    """The commit the chart versions are compared with."""
    if shutil.which("git") is None or git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout: no base to compare the chart versions with")
    candidates = [os.environ["KS_CHART_BASE"]] if os.environ.get("KS_CHART_BASE") else ["main", "origin/main"]
    for ref in candidates:
        merge_base = git("merge-base", "HEAD", ref)
        if merge_base.returncode == 0:
            return merge_base.stdout.strip()
    pytest.skip(f"none of {candidates} is a commit here (set KS_CHART_BASE to the branch the charts merge into)")


@pytest.mark.parametrize("chart", CHARTS)
def test_a_changed_chart_has_a_higher_version(base: str, chart: str) -> None:
    directory = f"helm/{chart}"
    changed = git("diff", "--name-only", base, "--", directory).stdout.split()
    changed += git("ls-files", "--others", "--exclude-standard", "--", directory).stdout.split()
    old_chart = git("show", f"{base}:{directory}/Chart.yaml")
    if not changed or old_chart.returncode != 0:  # unchanged, or a new chart
        return
    old = Version(yaml.safe_load(old_chart.stdout)["version"])
    new = Version(yaml.safe_load((chartlib.CHARTS / chart / "Chart.yaml").read_text())["version"])
    assert new > old, (
        f"{directory} changed since {base[:12]} ({', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''}) "
        f"but its version {new} is not above {old}: raise `version` in {directory}/Chart.yaml"
    )
