"""``kube-sentiment loop --rollout``: after the default loop, a second version rolled out against the served one on
this machine, as ``kube-sentiment rollout run`` does on a cluster.

A shipper and a predictor per served (version, track) run as processes; the loop's :class:`Sender` stands in for the
Gateway (it splits the traffic and mirrors copies with the live request's ``x-request-id``); the release is the
in-memory :class:`control.rollout.local.LocalRelease`, whose revisions the processes follow; the step driver and the
analysis on the prediction logs are the ones ``rollout run`` uses.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.loop import BIN, LoopSettings, _free_port, _ok, _start, _stop, _wait
from control.rollout.analyze import local_analyzer
from control.rollout.driver import Clock, Driver
from control.rollout.local import LocalRelease, Revision
from control.rollout.policy import RolloutPolicy, load_policy
from control.rollout.record import MlflowJournal
from control.rollout.sources import Inputs, LogSource

log = logging.getLogger(__name__)

#: The chart's steps with laptop-sized waits and samples (``--rollout-policy-file`` replaces it).
LOCAL_POLICY: dict[str, Any] = {"interval": "5s", "progressDeadline": "2m", "analysis": {
    "minRequests": 150, "minPairs": 150, "minLatencyRequests": 50}}
#: Texts per request of the rollout's sender.
TEXTS_PER_REQUEST = 4


@dataclass
class Routing:
    """Where the loop's sender sends (its stand-in for the Gateway): stable, and the candidate's share."""

    stable: str | None = None
    candidate: str | None = None
    canary_percent: int = 0
    mirror_percent: int = 0


class Sender(threading.Thread):
    """Held-out texts as V1 requests, ``rate`` per second, split and mirrored by the current :class:`Routing` the
    way the Gateway does: ``canary_percent`` % answered by the candidate, a copy of ``mirror_percent`` % sent to it
    with the same ``x-request-id`` (its answer dropped). ``to_candidate=False``: the candidate gets nothing."""

    def __init__(self, routing: Routing, texts: list[str], rate: float, to_candidate: bool = True) -> None:
        super().__init__(name="loop-sender", daemon=True)
        self.routing, self.texts, self.rate, self.to_candidate = routing, texts, rate, to_candidate
        self.counts = {"stable": 0, "canary": 0, "mirrored": 0, "errors": 0}
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Stop after the request in flight."""
        self._stop_event.set()
        self.join(timeout=30)

    @staticmethod
    def _share(credit: int, percent: int) -> tuple[int, bool]:
        """Exactly ``percent`` % of the calls, evenly spread: ``(new credit, this one?)``."""
        credit += percent
        return (credit - 100, True) if credit >= 100 else (credit, False)

    def run(self) -> None:
        import httpx

        canary_credit = mirror_credit = 0
        i = 0
        next_at = time.monotonic()
        with httpx.Client(timeout=30) as client:
            while not self._stop_event.is_set():
                routing = self.routing
                texts = [self.texts[(i + k) % len(self.texts)] for k in range(TEXTS_PER_REQUEST)]
                i += TEXTS_PER_REQUEST
                headers = {"x-request-id": uuid.uuid4().hex}
                body = {"instances": texts}
                canary_credit, to_canary = self._share(canary_credit, routing.canary_percent)
                to_canary = to_canary and self.to_candidate and routing.candidate is not None
                mirror_credit, mirror = self._share(mirror_credit, routing.mirror_percent)
                target = routing.candidate if to_canary else routing.stable
                try:
                    if target is not None:
                        client.post(f"{target}/v1/models/sentiment:predict", json=body,
                                    headers=headers).raise_for_status()
                        self.counts["canary" if to_canary else "stable"] += 1
                    if mirror and self.to_candidate and routing.candidate is not None and not to_canary:
                        client.post(f"{routing.candidate}/v1/models/sentiment:predict", json=body, headers=headers)
                        self.counts["mirrored"] += 1
                except httpx.HTTPError:
                    self.counts["errors"] += 1  # a predictor restarting between two revisions
                next_at += 1.0 / self.rate
                self._stop_event.wait(max(0.0, next_at - time.monotonic()))  # the sender's pace


class LocalRollout:
    """The rollout scenario's processes: a shipper, a predictor per served (version, track), the sender, and the
    in-memory release whose revisions they follow (:class:`control.rollout.local.LocalRelease`). Use with
    ``with``; :meth:`driver` is the same step driver ``rollout run`` uses on a cluster."""

    def __init__(self, state: Path, tracking: str, model_name: str, stable_version: str, texts: list[str],
                 policy: RolloutPolicy, rate: float, deadline_s: float, to_candidate: bool = True) -> None:
        self.state, self.tracking, self.model_name = state, tracking, model_name
        self.stable_version, self.policy, self.deadline_s = stable_version, policy, deadline_s
        self.logs = state / "logs"
        self.sink = state / "predictions"
        self.routing = Routing()
        self.sender = Sender(self.routing, texts, rate, to_candidate)
        self.predictors: dict[tuple[str, str], tuple[subprocess.Popen[bytes], str]] = {}
        self.shipper: subprocess.Popen[bytes] | None = None
        self.ship_port = _free_port()
        self.release: LocalRelease | None = None

    def __enter__(self) -> LocalRollout:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.shipper = _start("shipper", [str(BIN / "kube-sentiment"), "ship", "--host", "127.0.0.1", "--port",
                                          str(self.ship_port), "--spool-dir", str(self.state / "spool"),
                                          "--sink-dir", str(self.sink), "--environment", "local"], self.logs,
                              {"KS_SHIP_SEGMENT_MAX_AGE_S": "1"})
        _wait(lambda: _ok(f"http://127.0.0.1:{self.ship_port}/readyz"), self.deadline_s, "shipper", self.shipper,
              self.logs / "shipper.log")
        self.release = LocalRelease("local", self.stable_version, on_change=self._apply)
        self.sender.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.sender.stop()
        for process, _url in self.predictors.values():
            _stop(process)
        if self.shipper is not None:
            _stop(self.shipper)

    def _predictor(self, version: str, track: str) -> str:
        """The base URL of a ready predictor serving ``version`` on ``track`` (started when there is none)."""
        if (version, track) not in self.predictors:
            http_port, grpc_port = _free_port(), _free_port()
            name = f"predictor-v{version}-{track}"
            process = _start(name, [
                str(BIN / "kube-sentiment"), "serve", "--model-uri", f"models:/{self.model_name}/{version}",
                "--http_port", str(http_port), "--grpc_port", str(grpc_port), "--environment", "local",
                "--track", track, "--events-dir", str(self.state / "spool" / "journal"), "--log-text",
            ], self.logs, {"MLFLOW_TRACKING_URI": self.tracking})
            url = f"http://127.0.0.1:{http_port}"
            _wait(lambda: _ok(f"{url}/v2/health/ready"), self.deadline_s, name, process, self.logs / f"{name}.log")
            self.predictors[(version, track)] = (process, url)
        return self.predictors[(version, track)][1]

    def _apply(self, revision: Revision) -> None:
        """Make the processes and the routing what ``revision`` says (the loop's ``helm upgrade --wait``)."""
        wanted = {(revision.stable_version, "stable")}
        if revision.canary is not None:
            wanted.add((revision.canary[0], "canary"))
        if revision.shadow is not None:
            wanted.add((revision.shadow[0], "shadow"))
        urls = {key: self._predictor(*key) for key in sorted(wanted)}
        candidate = revision.canary or revision.shadow
        track = "canary" if revision.canary is not None else "shadow"
        self.routing = Routing(urls[(revision.stable_version, "stable")],
                               urls[(candidate[0], track)] if candidate else None,
                               revision.canary[1] if revision.canary else 0,
                               revision.shadow[1] if revision.shadow else 0)
        self.sender.routing = self.routing
        for key in [k for k in self.predictors if k not in wanted]:
            _stop(self.predictors.pop(key)[0])

    def driver(self, clock: Clock | None = None) -> Driver:
        """The step driver on this loop's release, analysing this loop's sink."""
        assert self.release is not None
        analyzer = local_analyzer(Inputs(LogSource(str(self.sink))), self.policy.analysis, "local", json_logs=None)
        return Driver(self.release, analyzer, self.policy, MlflowJournal(self.tracking, self.model_name), clock,
                      owner="kube-sentiment loop")


def register_permuted(tracking: str, model_name: str, version: str, work: Path) -> str:
    """Register ``version`` with its class mapping permuted (the answer for one class reported as the next): a
    deliberately broken release that a rollout must stop. Returns the new version."""
    import mlflow
    import numpy as np

    from model import registry
    from model.artifacts import save_model_dir
    from model.settings import TrackingSettings

    client = registry.client(TrackingSettings(tracking_uri=tracking, registered_model=model_name))
    bundle = registry.download_version(tracking, client.get_model_version(model_name, version), work / "base")
    classifier = bundle.pipeline.steps[-1][1]
    classifier.classes_ = np.roll(classifier.classes_, 1)
    model_dir = save_model_dir(work / "permuted", bundle.pipeline, bundle.metadata | {"permuted_from": version},
                               bundle.profile)
    with registry.tracking_at(tracking), mlflow.start_run(run_name=f"permuted-{version}") as run:
        mlflow.log_artifacts(str(model_dir), registry.MODEL_ARTIFACT_PATH)
        permuted = registry.register(client, run.info.run_id, model_name, {"kube_sentiment.permuted_from": version})
    log.info("registered %s version %s: version %s with its class mapping permuted", model_name, permuted.version,
             version)
    return str(permuted.version)


def rollout_scenario(settings: LoopSettings, tracking: str, model_name: str, stable_version: str,
                     texts: list[str]) -> dict[str, Any]:
    """Register the candidate, roll it out against ``stable_version``; return what happened."""
    from control.train import train_and_gate
    from model.data import DataSettings
    from model.settings import TrackingSettings, TrainSettings

    state = settings.state_dir.resolve() / "rollout"
    state.mkdir(parents=True, exist_ok=True)
    training = None
    if settings.rollout_candidate == "retrain":  # a good version: trained again on another split of the corpus
        result = train_and_gate(TrainSettings(
            tracking=TrackingSettings(tracking_uri=tracking), output_dir=state / "train",
            data=DataSettings(seed=DataSettings().seed + 1)))
        candidate, training = result.model_version, result.summary()
    else:
        candidate = register_permuted(tracking, model_name, stable_version, Path(tempfile.mkdtemp(dir=state)))
    return {"candidate": settings.rollout_candidate, "training": training,
            **roll_out(settings, tracking, model_name, stable_version, candidate, texts)}


def roll_out(settings: LoopSettings, tracking: str, model_name: str, stable_version: str, candidate: str,
             texts: list[str]) -> dict[str, Any]:
    """Roll ``candidate`` out against ``stable_version`` with the loop's policy, sender and processes (the feedback
    scenario rolls its retrained version out this way); return the driver's outcome with the revisions and traffic.
    """
    state = settings.state_dir.resolve() / "rollout"
    state.mkdir(parents=True, exist_ok=True)
    policy = load_policy(settings.rollout_policy_file) if settings.rollout_policy_file else \
        RolloutPolicy.model_validate(LOCAL_POLICY)
    with LocalRollout(state, tracking, model_name, stable_version, texts, policy, settings.rollout_rate,
                      settings.deadline_s, settings.rollout_candidate_traffic) as local:
        outcome = local.driver().run(candidate)
        assert local.release is not None
        revisions = [r.description for r in local.release.history]
        sent = dict(local.sender.counts)
    return {"candidate_version": candidate, "revisions": revisions, "traffic": sent, **outcome.as_dict()}
