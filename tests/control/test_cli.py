"""The ``kube-sentiment`` dispatch table and the shape every process shares: help, usage errors (2), bad settings
(78) whether they come from a flag or the environment, and stdout reserved for the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from control.cli import COMMANDS, main
from model.errors import ExitCode

CLI = str(Path(sys.executable).parent / "kube-sentiment")

#: A setting of each command that cannot work, as a flag and as its environment variable.
BAD_SETTINGS = {
    "train": ("--test-size", "KS_TRAIN_TEST_SIZE", "3"),
    "serve": ("--max-texts", "KS_SERVE_MAX_TEXTS", "0"),
    "ship": ("--port", "KS_SHIP_PORT", "x"),
    "drift": ("--window", "KS_DRIFT_WINDOW", "forever"),
    "console": ("--scrape-interval-s", "KS_CONSOLE_SCRAPE_INTERVAL_S", "0"),
    "feedback": ("--window", "KS_FEEDBACK_WINDOW", "forever"),
    "loop": ("--traffic", "KS_LOOP_TRAFFIC", "0"),
    "rollout": ("--window", "KS_ROLLOUT_WINDOW", "forever"),
}
#: The subcommand a command with subcommands is tested through.
SUBCOMMAND = {"feedback": ["snapshot"], "rollout": ["analyze"]}


def argv_of(command: str, *args: str) -> list[str]:
    """``[command, <subcommand>, *args]``."""
    return [command, *SUBCOMMAND.get(command, []), *args]


def test_every_command_has_a_bad_setting_case() -> None:
    assert set(BAD_SETTINGS) == set(COMMANDS)


def test_top_level_help_lists_commands_and_the_exit_code_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in COMMANDS)
    assert all(f"{int(code):>2}  " in out for code in ExitCode)
    assert main([]) == ExitCode.USAGE and "usage: kube-sentiment" in capsys.readouterr().err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_flags_defaults_and_env_vars(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv_of(command, "--help")) == 0
    out = capsys.readouterr().out
    flag, env, _ = BAD_SETTINGS[command]
    assert f"usage: kube-sentiment {command}" in out and flag in out and env in out
    assert "[default: INFO]" in out and "--log-level" in out and "--json-logs, --no-json-logs" in out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_setting_exits_78_naming_it(command: str, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    flag, env, value = BAD_SETTINGS[command]
    assert main(argv_of(command, flag, value, "--json-logs")) == ExitCode.BAD_CONFIG
    err = capsys.readouterr().err
    record = json.loads(err.strip().splitlines()[-1])
    assert record["exit_code"] == 78 and f"{flag} / {env} = '{value}'" in record["msg"]
    monkeypatch.setenv(env, value)
    assert main(argv_of(command, "--json-logs")) == ExitCode.BAD_CONFIG
    assert f"= '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["bogus"], ["train", "--no-such-flag"], ["ship", "--port"], ["drift", "--log-to-mlflow", "yes"],
     ["serve", "--model-dir"], ["feedback"], ["feedback", "export"], ["feedback", "import"], ["rollout"],
     ["rollout", "bogus"], ["rollout", "run", "production"]],
    ids=["unknown-command", "unknown-flag", "missing-value", "value-for-a-switch", "serve-missing-value",
         "no-subcommand", "unknown-subcommand", "import-without-file", "rollout-without-subcommand",
         "rollout-unknown-subcommand", "rollout-run-without-version"],
)
def test_a_command_line_that_does_not_parse_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    assert "usage: kube-sentiment" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.parametrize(
    "argv",
    [[CLI], *([CLI, name] for name in COMMANDS), [CLI, "rollout", "analyze"], [CLI, "rollout", "run"],
     [sys.executable, "-m", "serving"],
     [sys.executable, "-m", "serving.shipper"], [sys.executable, "-m", "control.drift"]],
    ids=lambda argv: " ".join(Path(a).name for a in argv),
)
def test_help_works_as_a_process(argv: list[str]) -> None:
    result = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("usage: ") and not result.stderr


@pytest.mark.integration
def test_processes_exit_78_and_2_with_one_line_saying_why() -> None:
    bad = subprocess.run([CLI, "ship", "--sink", "s3", "--json-logs"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 78 and not bad.stdout
    assert "sink=s3 needs s3_bucket" in json.loads(bad.stderr.strip())["msg"]
    usage = subprocess.run([sys.executable, "-m", "control.drift", "--windw", "1h"], capture_output=True, text=True,
                           timeout=300)
    assert usage.returncode == 2 and "unrecognized arguments: --windw" in usage.stderr
