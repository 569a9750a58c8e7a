"""Rollout decisions per environment, from the three places the rollout command records them
(``control/rollout/record.py`` and ``driver.py``):

* MLflow version tags ``rollout.<env>.*``: the latest decision per version and environment, with its checks;
* Kubernetes Events ``Rollout*`` on the serving object: every decision (reason and message);
* JSON log lines of ``kube-sentiment rollout run`` (``{"rollout": {at, decision, step, step_index, reason, checks,
  stable_version}, "environment", "model_version"}``): every decision with its checks (local runs keep them in a
  file).

Merged into one list of decisions ``{environment, version, at, decision, step, step_index, reason, checks,
stable_version, source}``, oldest first, one entry per (environment, version, time, decision).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Event reason -> decision (driver.py's ``reasons`` table, inverted).
EVENT_DECISIONS = {"RolloutStarted": "started", "RolloutResumed": "resumed", "RolloutAdvanced": "advance",
                   "RolloutHold": "hold", "RolloutFailedCheck": "rollback", "RolloutPromoted": "promoted",
                   "RolloutRolledBack": "rolled_back"}
_EVENT_MESSAGE = re.compile(r"^version (?P<version>\S+): (?P<decision>\S+)(?: at (?P<step>[^:]+))?: (?P<reason>.*)$",
                            re.DOTALL)
_MAX_LINE = 1_000_000


def _decision(environment: str, version: str, record: dict[str, Any], source: str) -> dict[str, Any]:
    checks = record.get("checks")
    if isinstance(checks, str):
        try:
            checks = json.loads(checks)
        except ValueError:
            checks = {}
    return {"environment": environment, "version": str(version), "at": record.get("at"),
            "decision": record.get("decision"), "step": record.get("step"), "step_index": record.get("step_index"),
            "reason": record.get("reason"), "checks": checks or {}, "stable_version": record.get("stable_version"),
            "source": source}


def from_registry(versions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest decision of each version in each environment (the Models source's ``rollouts``)."""
    return [_decision(env, v["version"], record, "mlflow") for v in versions
            for env, record in v.get("rollouts", {}).items()]


def from_events(environment: str, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decisions from ``Rollout*`` Events (message ``version V: decision[ at step]: reason``)."""
    out = []
    for event in events:
        match = _EVENT_MESSAGE.match(str(event.get("message") or ""))
        if not match:
            continue
        record = {"at": event.get("at"), "decision": EVENT_DECISIONS.get(str(event.get("reason")),
                                                                         match["decision"]),
                  "step": match["step"], "reason": match["reason"]}
        out.append(_decision(environment, match["version"], record, "event"))
    return out


def from_logs(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Decisions from JSON log files of ``rollout run`` (lines without a ``rollout`` record are skipped)."""
    out = []
    for path in paths:
        try:
            with path.open("rb") as f:
                for raw in f:
                    if b'"rollout"' not in raw or len(raw) > _MAX_LINE:
                        continue
                    try:
                        line = json.loads(raw)
                    except ValueError:
                        continue
                    record = line.get("rollout") if isinstance(line, dict) else None
                    if isinstance(record, dict) and line.get("environment") and line.get("model_version"):
                        out.append(_decision(str(line["environment"]), str(line["model_version"]), record, "log"))
        except OSError as e:
            log.warning("cannot read rollout log %s: %s", path, e)
    return out


def merge(*sources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (environment, version, time, decision), the most detailed source winning (log > mlflow >
    event), oldest first."""
    rank = {"log": 0, "mlflow": 1, "event": 2}
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for decisions in sources:
        for d in decisions:
            key = (d["environment"], d["version"], str(d["at"])[:19], d["decision"])
            if key not in best or rank[d["source"]] < rank[best[key]["source"]]:
                best[key] = d
    return sorted(best.values(), key=lambda d: str(d["at"] or ""))
