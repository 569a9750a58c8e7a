"""``kube-sentiment rollout analyze|run``: the two rollout commands behind one entry in the dispatch table."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from model.errors import ExitCode

USAGE = """usage: kube-sentiment rollout {analyze,run} [options]

  analyze              one decision for one window: advance (0), roll back (3) or hold (4)
  run ENV VERSION      drive VERSION through the policy's steps in ENV, promote or roll back

kube-sentiment rollout <subcommand> --help shows its options; docs/deploy.md explains the policy and the checks.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to ``analyze`` or ``run``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        (sys.stdout if args else sys.stderr).write(USAGE)
        return ExitCode.OK if args else ExitCode.USAGE
    command, rest = args[0], args[1:]
    if command == "analyze":
        from control.rollout.analyze import main as analyze_main

        return analyze_main(rest)
    if command == "run":
        from control.rollout.run import main as run_main

        return run_main(rest)
    sys.stderr.write(f"kube-sentiment rollout: unknown subcommand {command!r}\n\n{USAGE}")
    return ExitCode.USAGE
