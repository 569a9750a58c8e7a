"""The console script passes each process's exit code through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).parent / "kube-sentiment")


def test_help_lists_every_process() -> None:
    result = subprocess.run([CLI, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert all(name in result.stdout for name in ("train", "serve", "ship", "drift", "loop"))


def test_serve_with_a_missing_model_exits_66_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-model-here"
    result = subprocess.run([CLI, "serve", "--model_dir", str(missing), "--http_port", "0", "--grpc_port", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 66, result.stderr[-2000:]
    assert str(missing) in result.stderr
