"""Rollout actions (start, promote, roll back) as commands the operator configured.

The console holds no rights of its own to change a release: its ServiceAccount only reads. An action runs the
command given in the settings (``kube-sentiment rollout run {environment} {version}``, ``scripts/canary.sh
{environment} promote`` ...) where the console runs with the rights of whoever started it (a workstation, the local
loop), detached, its output in ``<action_log_dir>/<id>.log``. An action without a command is not offered.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ACTIONS = ("start", "promote", "rollback")
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class ActionRefused(Exception):
    """The action cannot run (not configured, or a bad argument): ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class CommandActions:
    """Runs the configured command of an action."""

    commands: dict[str, str | None]
    log_dir: Path
    started: list[dict[str, Any]] = field(default_factory=list)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def available(self) -> list[str]:
        """The actions with a command."""
        return [a for a in ACTIONS if self.commands.get(a)]

    def run(self, action: str, environment: str, version: str | None, environments: list[str]) -> dict[str, Any]:
        """Start the command; ``{id, action, argv, log, pid}``."""
        template = self.commands.get(action)
        if action not in ACTIONS:
            raise ActionRefused(404, f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
        if not template:
            raise ActionRefused(403, f"the {action} action is not configured (KS_CONSOLE_{action.upper()}_COMMAND)")
        if environment not in environments:
            raise ActionRefused(400, f"unknown environment {environment!r}; choose one of {environments}")
        if action == "start" and (version is None or not version.isdigit()):
            raise ActionRefused(400, f"start needs a registry version (a whole number), not {version!r}")
        for name, value in (("environment", environment), ("version", version or "0")):
            if not _VALUE.match(value):
                raise ActionRefused(400, f"{name} {value!r} has characters a command line must not get")
        argv = [part.format(environment=environment, version=version or "") for part in shlex.split(template)]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        action_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{action}-{uuid.uuid4().hex[:6]}"
        logfile = self.log_dir / f"{action_id}.log"
        with logfile.open("wb") as out:
            try:
                process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True)
            except OSError as e:
                raise ActionRefused(500, f"cannot start {argv[0]}: {e}") from e
        record = {"id": action_id, "action": action, "environment": environment, "version": version,
                  "argv": argv, "log": str(logfile), "pid": process.pid, "at": time.time()}
        self.started.append(record)
        self._processes[action_id] = process
        log.info("action %s in %s started: %s", action, environment, " ".join(argv), extra={"action": record})
        return record

    def history(self) -> list[dict[str, Any]]:
        """The actions started by this console, newest first, with their exit code once finished (reaped here)."""
        return [record | {"exit_code": self._processes[record["id"]].poll()} for record in reversed(self.started)]
