"""``model.process``: flags generated from settings, flags over env over defaults, the exit-code mapping, and a
log stream that holds nothing but JSON while stdout holds nothing but the result."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Literal

import pytest
from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from model.errors import DataError, ExitCode
from model.process import Outcome, ProcessSettings, SettingsGroup, run_process, settings_from_args, settings_parser


class Inner(SettingsGroup):
    """A nested group, flattened like its env vars."""

    model_config = SettingsConfigDict(env_prefix="KS_DEMO_")

    depth: int = Field(3, ge=1)
    """How deep; costs ~4% of the budget per level."""
    labels: tuple[str, ...] = ("a", "b")
    """Labels in order."""


class DemoSettings(ProcessSettings):
    """A process's settings."""

    model_config = SettingsConfigDict(env_prefix="KS_DEMO_")

    model_uri: str | None = None
    """Where the model is."""
    mode: Literal["fast", "exact"] = "fast"
    """How to compute."""
    enabled: bool = False
    """Whether to do it."""
    out_dir: Path = Path("out")
    """Where results go."""
    tracking_uri: str | None = Field(None, validation_alias=AliasChoices("KS_DEMO_TRACKING_URI",
                                                                         "MLFLOW_TRACKING_URI"))
    """Tracking server."""
    inner: Inner = Field(default_factory=Inner)


def parser() -> argparse.ArgumentParser:
    return settings_parser(DemoSettings, prog="demo", description="A demo process.")


def build(argv: list[str]) -> DemoSettings:
    return settings_from_args(DemoSettings, parser().parse_args(argv))


def test_help_has_kebab_flags_docstrings_choices_defaults_and_env_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        parser().parse_args(["--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--model-uri MODEL_URI Where the model is. [env: KS_DEMO_MODEL_URI]" in out
    assert "How to compute. One of: fast, exact. [default: fast]" in out
    assert "--enabled, --no-enabled" in out and "[default: out]" in out
    assert "[env: KS_DEMO_TRACKING_URI, MLFLOW_TRACKING_URI]" in out
    assert "--depth DEPTH How deep; costs ~4% of the budget per level. [default: 3] [env: KS_DEMO_DEPTH]" in out
    assert "--labels VALUE [VALUE ...]" in out and "[default: a b]" in out
    assert out.index("--log-level") > out.index("--depth")  # the process's own settings first


def test_flags_override_env_which_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build([]) == DemoSettings()
    monkeypatch.setenv("KS_DEMO_MODE", "exact")
    monkeypatch.setenv("KS_DEMO_DEPTH", "5")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    s = build(["--enabled", "--labels", "x", "y", "z", "--out-dir", "/tmp/o"])
    assert (s.mode, s.enabled, s.out_dir, s.tracking_uri) == ("exact", True, Path("/tmp/o"), "http://mlflow:5000")
    assert (s.inner.depth, s.inner.labels) == (5, ("x", "y", "z"))
    s = build(["--mode", "fast", "--depth", "7", "--tracking-uri", "http://other"])
    assert (s.mode, s.inner.depth, s.tracking_uri) == ("fast", 7, "http://other")


def test_process_exit_codes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def ok(settings: DemoSettings, _: argparse.Namespace) -> int:
        return 0

    def bad_data(settings: DemoSettings, _: argparse.Namespace) -> int:
        raise DataError("the data has a single class")

    def bug(settings: DemoSettings, _: argparse.Namespace) -> int:
        raise ZeroDivisionError("oops")

    def run(body, *argv: str) -> int:  # type: ignore[no-untyped-def]
        return run_process(DemoSettings, ["--json-logs", *argv], body, parser=parser())

    assert run(ok) == ExitCode.OK
    assert run(ok, "--depth", "0") == ExitCode.BAD_CONFIG
    assert run(ok, "--mode", "slow") == ExitCode.BAD_CONFIG
    monkeypatch.setenv("KS_DEMO_ENABLED", "maybe")
    assert run(ok) == ExitCode.BAD_CONFIG
    monkeypatch.delenv("KS_DEMO_ENABLED")
    assert run(ok, "--depth") == ExitCode.USAGE
    assert run(ok, "--help") == ExitCode.OK
    capsys.readouterr()
    assert run(bad_data) == ExitCode.BAD_DATA
    record = json.loads(capsys.readouterr().err.strip())
    assert record["msg"] == "the data has a single class" and "exc" not in record  # one line, no traceback
    assert run(bug) == ExitCode.ERROR
    record = json.loads(capsys.readouterr().err.strip())
    assert "ZeroDivisionError" in record["msg"] and "Traceback" in record["exc"]


@pytest.mark.parametrize("json_logs", [True, False])
def test_stdout_holds_only_the_result(json_logs: bool, capsys: pytest.CaptureFixture[str]) -> None:
    def noisy(settings: DemoSettings, _: argparse.Namespace) -> Outcome:
        print("View run train-1 at: http://mlflow/#/runs/1")  # what MLflow prints on stdout
        sys.stderr.write("Downloading artifacts:  50%|#####     \rDownloading artifacts: 100%|##########|\n")
        warnings.warn("this API is deprecated", UserWarning, stacklevel=1)
        logging.getLogger("demo").info("working")
        return Outcome(ExitCode.GATE_REFUSED, {"decision": "refused"})

    flag = "--json-logs" if json_logs else "--no-json-logs"
    assert run_process(DemoSettings, [flag], noisy, parser=parser()) == ExitCode.GATE_REFUSED
    out, err = capsys.readouterr()
    assert json.loads(out) == {"decision": "refused"}
    assert "View run train-1" in err and "working" in err
    if json_logs:
        records = [json.loads(line) for line in err.splitlines()]  # every line is a JSON record
        by_logger = {r["logger"]: r for r in records}
        assert by_logger["stdout"]["msg"].startswith("View run") and by_logger["demo"]["msg"] == "working"
        assert "this API is deprecated" in by_logger["py.warnings"]["msg"]
        assert [r["msg"] for r in records if r["logger"] == "stderr"][-1].startswith("Downloading artifacts: 100%")
    assert sys.stdout is not None and not isinstance(sys.stdout, logging.Handler)
