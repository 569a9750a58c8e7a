"""A rollout target without a cluster: an in-memory release with Helm's semantics (numbered revisions, upgrade,
rollback to a revision, values), used by the local loop (``kube-sentiment loop --rollout``), whose sender routes
and mirrors traffic by the current revision instead of a Gateway, and whose ``on_change`` starts the processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from control.rollout.driver import Candidate, Lock, RolloutBusy, TargetState
from control.rollout.policy import Step

log = logging.getLogger(__name__)
EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class Revision:
    """One revision of the release: what each track serves."""

    number: int
    stable_version: str
    canary: tuple[str, int] | None = None
    """``(version, weight %)``."""
    shadow: tuple[str, int] | None = None
    """``(version, mirrored %)``."""
    deployed_at: datetime = EPOCH
    description: str = "install"


class LocalRelease:
    """Revisions in memory; ``on_change(revision)`` runs after every change (the loop applies it to processes)."""

    def __init__(self, environment: str, stable_version: str,
                 on_change: Callable[[Revision], None] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        """Revision 1 serves ``stable_version`` alone."""
        self.environment = environment
        self._now = clock or (lambda: datetime.now(UTC))
        self._on_change = on_change
        self._lock_value: Lock | None = None
        self._mutex = threading.Lock()
        self.history = [Revision(1, stable_version, deployed_at=self._now())]
        if on_change is not None:
            on_change(self.current)

    @property
    def current(self) -> Revision:
        """The deployed revision."""
        return self.history[-1]

    def _deploy(self, description: str, **changes: object) -> None:
        revision = replace(self.current, number=self.current.number + 1, deployed_at=self._now(),
                           description=description, **changes)  # type: ignore[arg-type]
        if self._on_change is not None:
            self._on_change(revision)
        self.history.append(revision)
        log.info("%s revision %d: %s", self.environment, revision.number, description)

    # --- Target ---------------------------------------------------------------------------------------------------
    def state(self) -> TargetState:
        """From the current revision."""
        r = self.current
        lock = self._lock_value
        candidates = []
        if r.canary is not None:
            candidates.append(Candidate(r.canary[0], "canary", r.canary[1]))
        if r.shadow is not None:
            candidates.append(Candidate(r.shadow[0], "shadow", r.shadow[1]))
        ours = [c for c in candidates if lock is not None and c.version == lock.version]
        chosen = (ours or candidates)[0] if candidates else None
        return TargetState(r.stable_version, chosen, str(r.number), r.deployed_at, lock)

    def acquire(self, lock: Lock) -> None:
        """Compare-and-set."""
        with self._mutex:
            if self._lock_value is not None:
                raise RolloutBusy(f"a rollout holds {self.environment}: {self._lock_value}")
            self._lock_value = lock

    def update_lock(self, lock: Lock) -> None:
        """Replace the lock."""
        self._lock_value = lock

    def release(self) -> None:
        """Drop the lock."""
        self._lock_value = None

    def apply(self, version: str, step: Step) -> None:
        """The shadow or canary share of ``step`` (a shadow of the same version ends when its canary starts)."""
        if step.track == "shadow":
            self._deploy(f"shadow {version} at {step.percent} %", shadow=(version, step.percent))
        else:
            shadow = None if self.current.shadow and self.current.shadow[0] == version else self.current.shadow
            self._deploy(f"canary {version} at {step.percent} %", canary=(version, step.percent), shadow=shadow)

    def promote(self, version: str) -> None:
        """``version`` becomes stable, the candidate goes."""
        self._deploy(f"promote {version}", stable_version=version, canary=None, shadow=None)

    def rollback(self, revision: str) -> None:
        """A new revision with the content of ``revision``."""
        old = next(r for r in self.history if r.number == int(revision))
        self._deploy(f"rollback to {revision}", stable_version=old.stable_version, canary=old.canary,
                     shadow=old.shadow)

    def event(self, reason: str, message: str, warning: bool) -> None:
        """No event API here: the log line is the event."""
        log.log(logging.WARNING if warning else logging.INFO, "event %s: %s", reason, message)
