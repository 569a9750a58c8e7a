"""``kube-sentiment``: one console script, a subcommand per process.

A dispatch table and nothing else: ``kube-sentiment <command> [args]`` imports the command's module and returns
its ``main(args)``, which parses the arguments, builds the process's settings, configures logging and exits with a
code of the one table in :class:`model.errors.ExitCode`. Modules are imported only when their command runs, so
``kube-sentiment --help`` is instant.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NamedTuple

from model.errors import ExitCode


class Command(NamedTuple):
    """A subcommand: the module whose ``main(argv) -> int`` runs it, and one line of help."""

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "train": Command("control.train", "train, evaluate, register and gate a model version (the training Job)"),
    "serve": Command("serving.__main__", "the KServe predictor: V1/V2 REST on 8080, V2 gRPC on 8081"),
    "ship": Command("serving.shipper.main", "the monitoring sidecar: spool prediction events, write them to a sink"),
    "drift": Command("control.drift.main", "compare a window of logged predictions with the training reference"),
    "console": Command("control.console.main", "the control room: a web console over registry, drift, serving"),
    "feedback": Command("control.feedback.main", "ground-truth labels: import a file, snapshot labelled production "
                        "data for training"),
    "rollout": Command("control.rollout.main", "progressive delivery: analyze a canary or shadow, run a rollout"),
    "loop": Command("control.loop", "the whole loop on this machine: MLflow, train + gate, serve, ship, drift"),
}


def usage() -> str:
    """The top-level help: commands and the exit-code table."""
    width = max(map(len, COMMANDS))
    commands = "\n".join(f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items())
    names: dict[int, list[str]] = {}
    for name, code in ExitCode.__members__.items():
        names.setdefault(int(code), []).append(name.lower().replace("_", " "))
    codes = "\n".join(f"  {code:>2}  {' / '.join(aliases)}" for code, aliases in names.items())
    return (
        "usage: kube-sentiment <command> [options]   (kube-sentiment <command> --help for its options)\n\n"
        "Kubernetes-native MLOps for text classification: train, serve, ship, drift.\n\n"
        f"commands:\n{commands}\n\nexit codes (every command):\n{codes}\n"
    )


def entry_point(name: str) -> Callable[[Sequence[str]], int]:
    """The ``main`` of command ``name`` (its module imported now)."""
    module = importlib.import_module(COMMANDS[name].module)
    main: Callable[[Sequence[str]], int] = module.main
    return main


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: dispatch to the command's ``main``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write(usage())
        return ExitCode.USAGE
    if args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return ExitCode.OK
    if args[0] == "--version":
        sys.stdout.write(f"kube-sentiment {metadata.version('kube-sentiment')}\n")
        return ExitCode.OK
    if args[0] not in COMMANDS:
        sys.stderr.write(f"kube-sentiment: unknown command {args[0]!r}; choose one of {', '.join(COMMANDS)}\n\n"
                         + usage())
        return ExitCode.USAGE
    return int(entry_point(args[0])(args[1:]))
