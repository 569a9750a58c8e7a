"""The step logic of ``kube-sentiment rollout run``, over an injectable target, analysis and clock.

A rollout takes a candidate version through the policy's steps (shadow, then canary shares), analysing each step
every ``interval`` over the data since the step began, until the analysis says advance (next step; promotion after
the last), roll back (a failed check) or the step's progress deadline passes while it still holds (roll back).

Nothing of the rollout lives in the driver's memory: the :class:`Target` says where the candidate is (its track and
share), since when, and holds the lock (which version, the revision to roll back to, the phase). A driver killed at
any point and started again with the same version continues where the target is; a driver for another version, or
a candidate that a person started by hand, is refused (:class:`RolloutBusy`, exit 75). The Kubernetes target is
:class:`control.rollout.helm.HelmTarget`; the local loop has its own (``control.loop_rollout``), driving the same logic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from control.rollout.checks import ADVANCE, HOLD, ROLLBACK
from control.rollout.policy import RolloutPolicy, Step
from model.errors import DataError, ExitCode, KubeSentimentError, UnavailableError

log = logging.getLogger(__name__)

Phase = Literal["running", "promoting", "rolling_back"]
#: What ``rollout run`` ends with, and its exit code.
PROMOTED, ROLLED_BACK = "promoted", "rolled_back"


class RolloutBusy(KubeSentimentError):
    """Another rollout (or a hand-started candidate) holds the environment (exit 75, EX_TEMPFAIL)."""

    exit_code = ExitCode.BUSY


@dataclass(frozen=True)
class Candidate:
    """The candidate as the target serves it now."""

    version: str
    track: Literal["shadow", "canary"]
    percent: int


@dataclass(frozen=True)
class Lock:
    """The rollout in progress in an environment, stored on the target (so a restarted driver finds it)."""

    version: str
    from_revision: str
    """The target's revision before the rollout: what a roll back returns to."""
    started_at: str
    owner: str
    phase: Phase = "running"

    def to_json(self) -> str:
        """Compact JSON (the annotation's value)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Lock:
        """Parse :meth:`to_json`'s output."""
        data = json.loads(text)
        return cls(**{k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class TargetState:
    """What the target serves now."""

    stable_version: str
    candidate: Candidate | None
    revision: str
    changed_at: datetime
    """When the current traffic setting was applied: the start of the current step."""
    lock: Lock | None


class Target(Protocol):
    """Where the rollout happens: Helm releases in a namespace, or the local loop's processes and sender."""

    environment: str

    def state(self) -> TargetState:
        """The current state, read from the target (never cached)."""

    def acquire(self, lock: Lock) -> None:
        """Store the lock, or raise :class:`RolloutBusy` when one is stored already (compare-and-set)."""

    def update_lock(self, lock: Lock) -> None:
        """Replace the stored lock (same rollout, new phase)."""

    def release(self) -> None:
        """Remove the lock."""

    def apply(self, version: str, step: Step) -> None:
        """Serve ``version`` as this step says (shadow or canary share), and wait until it does."""

    def promote(self, version: str) -> None:
        """``version`` becomes stable, the candidate goes away (the path of ``scripts/canary.sh promote``)."""

    def rollback(self, revision: str) -> None:
        """Return to ``revision`` (``helm rollback``)."""

    def event(self, reason: str, message: str, warning: bool) -> None:
        """Record a decision where operators look (a Kubernetes Event on the serving object)."""


#: ``(track, stable version, candidate version, start, end) -> (decision, reason, JSON result)``.
Analyzer = Callable[[str, str, str, datetime, datetime], tuple[str, str, dict[str, Any]]]


class Clock(Protocol):
    """Time, injectable so tests can drive a rollout without waiting for real intervals."""

    def now(self) -> datetime:
        """The current time (UTC)."""

    def sleep_until(self, moment: datetime) -> None:
        """Return at ``moment`` (at once when it has passed)."""


class WallClock:
    """The real clock."""

    def now(self) -> datetime:
        """Now, UTC."""
        return datetime.now(UTC)

    def sleep_until(self, moment: datetime) -> None:
        """Sleep until ``moment`` (the driver's only wait: the time between two analyses)."""
        delay = (moment - self.now()).total_seconds()
        if delay > 0:
            time.sleep(delay)


class Journal(Protocol):
    """Where every decision is recorded besides the target's events (MLflow tags, a JSON log line)."""

    def record(self, environment: str, version: str, record: dict[str, Any]) -> None:
        """Record one decision."""


@dataclass
class Outcome:
    """How a rollout ended."""

    result: str
    exit_code: ExitCode
    reason: str
    version: str
    environment: str
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``rollout run`` prints."""
        return {"result": self.result, "exit_code": int(self.exit_code), "reason": self.reason,
                "version": self.version, "environment": self.environment, "decisions": self.decisions}


class Driver:
    """Takes one candidate version through the policy on one target."""

    def __init__(self, target: Target, analyzer: Analyzer, policy: RolloutPolicy, journal: Journal,
                 clock: Clock | None = None, owner: str = "kube-sentiment-rollout") -> None:
        """Nothing happens until :meth:`run`."""
        self.target = target
        self.analyzer = analyzer
        self.policy = policy
        self.journal = journal
        self.clock = clock or WallClock()
        self.owner = owner
        self.decisions: list[dict[str, Any]] = []

    # --- recording ---------------------------------------------------------------------------------------------
    def _record(self, version: str, decision: str, reason: str, step: Step | None = None, index: int | None = None,
                result: dict[str, Any] | None = None, stable: str | None = None) -> None:
        record: dict[str, Any] = {"at": self.clock.now().isoformat(), "decision": decision, "reason": reason,
                                  "step": step.name if step else None,
                                  "step_index": f"{index + 1}/{len(self.policy.steps)}" if index is not None else None,
                                  "stable_version": stable}
        if result is not None:
            record["checks"] = {c["name"]: {k: c[k] for k in ("status", "value", "threshold", "p_value_adjusted")}
                                for c in result.get("checks", [])}
        self.decisions.append(record)
        log.info("rollout %s version %s: %s%s: %s", self.target.environment, version, decision,
                 f" at {step.name}" if step else "", reason,
                 extra={"environment": self.target.environment, "model_version": version, "rollout": record})
        self.journal.record(self.target.environment, version, record)
        reasons = {"started": "RolloutStarted", "resumed": "RolloutResumed", ADVANCE: "RolloutAdvanced",
                   HOLD: "RolloutHold", ROLLBACK: "RolloutFailedCheck", PROMOTED: "RolloutPromoted",
                   ROLLED_BACK: "RolloutRolledBack"}
        where = f" at {step.name}" if step else ""
        self.target.event(reasons.get(decision, "Rollout"), f"version {version}: {decision}{where}: {reason}"[:1000],
                          warning=decision in (ROLLBACK, ROLLED_BACK))

    def _outcome(self, result: str, code: ExitCode, reason: str, version: str) -> Outcome:
        return Outcome(result, code, reason, version, self.target.environment, self.decisions)

    # --- the rollout --------------------------------------------------------------------------------------------
    def run(self, version: str) -> Outcome:
        """Take ``version`` through every step: promoted (exit 0) or rolled back (3)."""
        target, policy = self.target, self.policy
        state = target.state()
        lock = state.lock
        if lock is not None and lock.version != version:
            raise RolloutBusy(f"a rollout of version {lock.version} is in progress in {target.environment} (since "
                              f"{lock.started_at}, by {lock.owner}); let it finish, or roll it back")
        if lock is None:
            if state.candidate is not None:
                c = state.candidate
                raise RolloutBusy(f"version {c.version} runs as {c.track} at {c.percent} % in {target.environment}, "
                                  "not started by a rollout; promote or roll it back first (scripts/canary.sh)")
            if state.stable_version == version:
                self._record(version, PROMOTED, f"version {version} is already stable in {target.environment}")
                return self._outcome(PROMOTED, ExitCode.OK, "already stable", version)
            lock = Lock(version, state.revision, self.clock.now().isoformat(), self.owner)
            target.acquire(lock)
            self._record(version, "started", f"from stable {state.stable_version} (revision {state.revision}), "
                         f"{len(policy.steps)} steps", stable=state.stable_version)
        else:
            self._record(version, "resumed", f"phase {lock.phase}, revision {state.revision}, rollout started "
                         f"{lock.started_at}", stable=state.stable_version)
            if lock.phase == "rolling_back":
                return self._roll_back(version, lock, "finishing the roll back of a previous run")
            if lock.phase == "promoting" or (state.stable_version == version and state.candidate is None):
                return self._promote(version, lock)
        if state.candidate is None:
            target.apply(version, policy.steps[0])
            state = target.state()
        candidate = state.candidate
        if candidate is None or candidate.version != version:
            raise DataError(f"{target.environment} serves {candidate} although the rollout of version {version} "
                            "holds the lock; fix the release by hand (scripts/canary.sh) and run again")
        index = policy.index_of(candidate.track, candidate.percent)
        first_canary = next((i for i, s in enumerate(policy.steps) if s.track == "canary"), None)
        if index is None and (candidate.track, candidate.percent) == ("canary", 0) and first_canary is not None:
            # Killed between the two revisions of ``canary.sh start`` (the canary ready at 0 %, then its weight):
            # finish applying the first canary step.
            target.apply(version, policy.steps[first_canary])
            state = target.state()
            if state.candidate is not None:
                candidate = state.candidate
                index = policy.index_of(candidate.track, candidate.percent)
        if index is None:
            raise DataError(f"version {version} runs as {candidate.track} at {candidate.percent} %, which is no step "
                            f"of the policy {[s.name for s in policy.steps]}; set a step's traffic by hand "
                            "(scripts/canary.sh) and run again")
        while True:
            step = policy.steps[index]
            verdict, reason = self._step(version, index, state)
            if verdict == ROLLBACK:
                return self._roll_back(version, lock, f"{step.name}: {reason}")
            if index + 1 == len(policy.steps):
                return self._promote(version, lock)
            index += 1
            target.apply(version, policy.steps[index])
            state = target.state()

    def _step(self, version: str, index: int, state: TargetState) -> tuple[str, str]:
        """Analyse one step every interval until it advances, fails, or its deadline passes while holding."""
        step = self.policy.steps[index]
        started = state.changed_at
        interval = self.policy.step_interval(step)
        deadline = started + self.policy.step_deadline(step)
        moment = started + interval
        while True:
            self.clock.sleep_until(min(moment, deadline))
            now = self.clock.now()
            try:
                decision, reason, result = self.analyzer(step.track, state.stable_version, version, started, now)
            except (DataError, UnavailableError) as e:  # a source down for a while: hold, the deadline decides
                decision, reason, result = HOLD, f"analysis failed: {e}", {}
            if decision == HOLD and now >= deadline:
                reason = f"progress deadline ({self.policy.step_deadline(step)}) passed while holding: {reason}"
                self._record(version, ROLLBACK, reason, step, index, result, state.stable_version)
                return ROLLBACK, reason
            self._record(version, decision, reason, step, index, result, state.stable_version)
            if decision in (ADVANCE, ROLLBACK):
                return decision, reason
            moment = now + interval

    def _promote(self, version: str, lock: Lock) -> Outcome:
        lock = replace(lock, phase="promoting")
        self.target.update_lock(lock)
        state = self.target.state()
        if not (state.stable_version == version and state.candidate is None):
            self.target.promote(version)
        self.target.release()
        reason = f"version {version} passed every step and is stable in {self.target.environment}"
        self._record(version, PROMOTED, reason, stable=version)
        return self._outcome(PROMOTED, ExitCode.OK, reason, version)

    def _roll_back(self, version: str, lock: Lock, reason: str) -> Outcome:
        lock = replace(lock, phase="rolling_back")
        self.target.update_lock(lock)
        if self.target.state().candidate is not None:  # else a killed run rolled back already
            self.target.rollback(lock.from_revision)
        self.target.release()
        state = self.target.state()
        self._record(version, ROLLED_BACK, f"{reason}; back to revision {lock.from_revision} (stable "
                     f"{state.stable_version})", stable=state.stable_version)
        return self._outcome(ROLLED_BACK, ExitCode.ROLLBACK, reason, version)
