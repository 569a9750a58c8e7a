"""The step driver of ``rollout run`` on the in-memory release the local loop uses (Helm's semantics), with a clock
that jumps instead of sleeping: promotion through every step, roll back on a failed check or a passed deadline, a
killed driver resuming from the release's state, and the lock refusing a second rollout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control.rollout.driver import Driver, Lock, RolloutBusy
from control.rollout.local import LocalRelease
from control.rollout.policy import RolloutPolicy
from control.rollout.record import MlflowJournal
from model.errors import DataError, ExitCode

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
POLICY = RolloutPolicy.model_validate({"interval": "1m", "progressDeadline": "5m"})


class Killed(Exception):
    """The driver process dies (SIGKILL) here."""


class JumpClock:
    """Time moves only when the driver waits; ``die_at``: the wait at which the driver is killed."""

    def __init__(self, start: datetime = T0, die_at: int | None = None) -> None:
        self.moment = start
        self.waits = 0
        self.die_at = die_at

    def now(self) -> datetime:
        return self.moment

    def sleep_until(self, moment: datetime) -> None:
        self.waits += 1
        if self.die_at is not None and self.waits == self.die_at:
            raise Killed
        self.moment = max(self.moment, moment)


class Journal:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, environment: str, version: str, record: dict[str, Any]) -> None:
        self.records.append((environment, version, record))

    def decisions(self) -> list[str]:
        return [r["decision"] for _, _, r in self.records]


Script = Callable[[str, datetime, datetime], str]


def analyzer(script: Script, calls: list[tuple[str, datetime, datetime]]) -> Any:
    def analyze(track: str, stable: str, candidate: str, start: datetime, end: datetime) -> tuple[str, str, dict]:
        assert (stable, candidate) == ("1", "2")
        calls.append((track, start, end))
        decision = script(track, start, end)
        return decision, f"scripted {decision}", {"checks": [{"name": "agreement", "status": "pass", "value": 0.9,
                                                              "threshold": 0.8, "p_value_adjusted": 0.5}]}
    return analyze


def setup(script: Script, clock: JumpClock | None = None) -> tuple[LocalRelease, Driver, Journal, list, JumpClock]:
    clock = clock or JumpClock()
    release = LocalRelease("staging", "1", clock=clock.now)
    journal, calls = Journal(), []
    driver = Driver(release, analyzer(script, calls), POLICY, journal, clock, owner="test")
    return release, driver, journal, calls, clock


def test_a_good_version_is_promoted_through_every_step() -> None:
    release, driver, journal, calls, _ = setup(lambda *_: "advance")
    outcome = driver.run("2")
    assert (outcome.result, outcome.exit_code) == ("promoted", ExitCode.OK)
    assert [r.description for r in release.history] == [
        "install", "shadow 2 at 100 %", "canary 2 at 5 %", "canary 2 at 25 %", "canary 2 at 50 %", "promote 2"]
    state = release.state()
    assert state.stable_version == "2" and state.candidate is None and state.lock is None
    # Each step is analysed over the data since it was applied, one interval after.
    assert [(track, start) for track, start, _ in calls] == [
        ("shadow", release.history[1].deployed_at), ("canary", release.history[2].deployed_at),
        ("canary", release.history[3].deployed_at), ("canary", release.history[4].deployed_at)]
    assert all(end - start == timedelta(minutes=1) for _, start, end in calls)
    assert journal.decisions() == ["started", "advance", "advance", "advance", "advance", "promoted"]
    steps = [r["step"] for _, _, r in journal.records if r["decision"] == "advance"]
    assert steps == ["shadow 100%", "canary 5%", "canary 25%", "canary 50%"]


def test_a_failed_check_rolls_back_to_the_revision_before_the_rollout() -> None:
    release, driver, journal, _, _ = setup(lambda track, *_: "rollback" if track == "shadow" else "advance")
    outcome = driver.run("2")
    assert (outcome.result, outcome.exit_code) == ("rolled_back", ExitCode.ROLLBACK)
    assert outcome.reason.startswith("shadow 100%: scripted rollback")
    assert [r.description for r in release.history] == ["install", "shadow 2 at 100 %", "rollback to 1"]
    assert release.state().candidate is None and release.state().lock is None
    assert journal.decisions() == ["started", "rollback", "rolled_back"]


def test_a_version_that_keeps_holding_is_rolled_back_at_the_progress_deadline() -> None:
    release, driver, journal, calls, _ = setup(lambda *_: "hold")
    outcome = driver.run("2")
    assert outcome.exit_code == ExitCode.ROLLBACK
    assert "progress deadline (0:05:00) passed while holding: scripted hold" in outcome.reason
    started = release.history[1].deployed_at
    assert [end - started for _, _, end in calls] == [timedelta(minutes=m) for m in range(1, 6)]
    assert journal.decisions() == ["started", "hold", "hold", "hold", "hold", "rollback", "rolled_back"]
    assert release.current.description == "rollback to 1"


def test_an_analysis_that_cannot_read_its_source_holds() -> None:
    def broken(*_: object) -> str:
        raise DataError("cannot open the prediction log")

    _, driver, journal, _, _ = setup(broken)
    assert driver.run("2").exit_code == ExitCode.ROLLBACK
    holds = [r["reason"] for _, _, r in journal.records if r["decision"] == "hold"]
    assert holds and all("analysis failed: cannot open the prediction log" in h for h in holds)


def test_a_killed_driver_resumes_where_the_release_is() -> None:
    clock = JumpClock(die_at=3)  # dies waiting for the first analysis of canary 25 %
    release, first, journal, calls, _ = setup(lambda *_: "advance", clock)
    with pytest.raises(Killed):
        first.run("2")
    assert release.state().lock is not None and release.current.description == "canary 2 at 25 %"
    before = len(release.history)
    second = Driver(release, first.analyzer, POLICY, journal, clock, owner="test-2")
    clock.die_at = None
    outcome = second.run("2")
    assert outcome.result == "promoted"
    assert journal.decisions() == ["started", "advance", "advance", "resumed", "advance", "advance", "promoted"]
    assert [r.description for r in release.history[before:]] == ["canary 2 at 50 %", "promote 2"]  # nothing redone
    assert calls[2][1] == release.history[before - 1].deployed_at  # canary 25 % judged from when it was applied


def test_a_driver_killed_between_the_two_revisions_of_a_canary_start_resumes() -> None:
    """``canary.sh start`` makes the canary ready at 0 %, then gives it its weight: killed in between, the next
    driver finishes the first canary step instead of refusing a share that is no step."""
    release, driver, journal, _, _ = setup(lambda *_: "advance")
    release.acquire(Lock("2", "1", T0.isoformat(), "test"))
    release.apply("2", POLICY.steps[0])
    release.apply("2", POLICY.steps[1].model_copy(update={"percent": 0}))  # where the killed driver stopped
    outcome = driver.run("2")
    assert outcome.result == "promoted"
    assert journal.decisions() == ["resumed", "advance", "advance", "advance", "promoted"]
    assert [r.description for r in release.history[3:]] == ["canary 2 at 5 %", "canary 2 at 25 %",
                                                            "canary 2 at 50 %", "promote 2"]


def test_a_driver_killed_while_rolling_back_finishes_the_roll_back() -> None:
    release, driver, journal, _, clock = setup(lambda *_: "rollback")
    lock = Lock("2", "1", T0.isoformat(), "test", "rolling_back")
    release.acquire(lock)
    release.apply("2", POLICY.steps[1])  # the release as the killed driver left it
    outcome = Driver(release, driver.analyzer, POLICY, journal, clock).run("2")
    assert outcome.exit_code == ExitCode.ROLLBACK and journal.decisions() == ["resumed", "rolled_back"]
    assert release.current.description == "rollback to 1" and release.state().lock is None


def test_a_second_rollout_and_a_hand_started_canary_are_refused() -> None:
    release, driver, _, _, _ = setup(lambda *_: "hold")
    release.acquire(Lock("7", "1", T0.isoformat(), "someone"))
    with pytest.raises(RolloutBusy, match="a rollout of version 7 is in progress") as busy:
        driver.run("2")
    assert busy.value.exit_code == ExitCode.BUSY == 75
    release.release()
    release.apply("5", POLICY.steps[1])
    with pytest.raises(RolloutBusy, match=r"version 5 runs as canary at 5 %.*not started by a rollout"):
        driver.run("2")


def test_a_version_already_stable_is_done() -> None:
    release = LocalRelease("staging", "2")
    outcome = Driver(release, analyzer(lambda *_: "hold", []), POLICY, Journal(), JumpClock()).run("2")
    assert (outcome.result, outcome.exit_code) == ("promoted", ExitCode.OK) and len(release.history) == 1


def test_the_mlflow_tags_of_a_decision() -> None:
    record = {"at": "2026-05-01T12:00:00+00:00", "decision": "rollback", "reason": "failed: agreement 0.4 < 0.8",
              "step": "shadow 100%", "step_index": "1/4", "stable_version": "1",
              "checks": {"agreement": {"status": "fail", "value": 0.4}}}
    tags = MlflowJournal(None, "sentiment").tags("production", record)
    assert tags == {"rollout.production.decision": "rollback", "rollout.production.reason": record["reason"],
                    "rollout.production.at": record["at"], "rollout.production.step": "shadow 100%",
                    "rollout.production.step_index": "1/4", "rollout.production.stable_version": "1",
                    "rollout.production.checks": '{"agreement":{"status":"fail","value":0.4}}'}
