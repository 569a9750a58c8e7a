"""``kube-sentiment feedback <import|snapshot>``: the subcommand dispatch (each subcommand is a process of its own
shape: settings from flags and ``KS_FEEDBACK_*``, a JSON summary on stdout, the one exit-code table).

Exit codes: 0 done, 2 usage, 65 a bad file or row (nothing stored), 66/69 the registry or the sink unreachable or
missing, 78 bad settings, 1 other error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from control.feedback.settings import ImportSettings, SnapshotSettings
from model.errors import ExitCode
from model.process import Outcome, run_process, settings_parser


class Subcommand(NamedTuple):
    """One subcommand: its settings, what it does, its parser and one line of help."""

    settings: type[Any]
    body: Callable[[Any, argparse.Namespace], Outcome]
    parser: Callable[[], argparse.ArgumentParser]
    summary: str


def _import(settings: ImportSettings, _: argparse.Namespace) -> Outcome:
    from control.feedback.importer import run_import

    return Outcome(ExitCode.OK, run_import(settings))


def _snapshot(settings: SnapshotSettings, _: argparse.Namespace) -> Outcome:
    from control.feedback.snapshot import run_snapshot

    return Outcome(ExitCode.OK, run_snapshot(settings))


def import_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment feedback import``: FILE plus one per :class:`ImportSettings` field."""
    parser = settings_parser(
        ImportSettings, prog="kube-sentiment feedback import", skip=["file"],
        description="Store the labels of a CSV or Parquet file (columns id, label, optionally source and at) as "
        "feedback events in the sink, checked against the model's classes. Importing a file again stores nothing "
        "twice. Prints a JSON summary. Exit codes: 0 stored, 65 a bad file or row (nothing stored), 69 sink "
        "unreachable, 78 bad configuration.",
    )
    parser.add_argument("file", metavar="FILE", help="CSV or Parquet file of labels (id, label[, source, at])")
    return parser


def snapshot_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment feedback snapshot``: one per :class:`SnapshotSettings` field."""
    return settings_parser(
        SnapshotSettings, prog="kube-sentiment feedback snapshot",
        description="Write the labelled production data of a window (logged texts joined to their feedback) to a "
        "Parquet file for `kube-sentiment train --production-data`. Prints a JSON summary. Exit codes: 0 written, "
        "65 unreadable logs, 69 sink unreachable, 78 bad configuration.",
    )


SUBCOMMANDS: dict[str, Subcommand] = {
    "import": Subcommand(ImportSettings, _import, import_parser, "store labels from a CSV/Parquet file in the sink"),
    "snapshot": Subcommand(SnapshotSettings, _snapshot, snapshot_parser,
                           "write a window's labelled production data to a Parquet file for training"),
}


def usage() -> str:
    """The command's help: its subcommands, then each one's options."""
    width = max(map(len, SUBCOMMANDS))
    lines = "\n".join(f"  {name:<{width}}  {sub.summary}" for name, sub in SUBCOMMANDS.items())
    details = "\n".join(sub.parser().format_help() for sub in SUBCOMMANDS.values())
    return (f"usage: kube-sentiment feedback {{{','.join(SUBCOMMANDS)}}} [options]\n\nGround-truth labels in, "
            f"labelled production data out.\n\nsubcommands:\n{lines}\n\n{details}")


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment feedback <subcommand> [flags]``: returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return ExitCode.OK
    if not args or args[0] not in SUBCOMMANDS:
        got = f"unknown subcommand {args[0]!r}; " if args else ""
        sys.stderr.write(f"kube-sentiment feedback: {got}choose one of {', '.join(SUBCOMMANDS)}\n\n{usage()}")
        return ExitCode.USAGE
    sub = SUBCOMMANDS[args[0]]
    return run_process(sub.settings, args[1:], sub.body, parser=sub.parser())
