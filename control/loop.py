"""``kube-sentiment loop``: the whole loop on one machine, no cluster.

A real ``mlflow server`` (sqlite, local artefacts, loopback) → train and gate → the registry's ``production``
alias is moved to the promoted version (what a deployment does) → the shipper sidecar and the KServe predictor
start as processes → held-out tweets are sent over V1 REST, V2 REST and V2 gRPC → everything shuts down
gracefully (the shipper drains to its sink) → the drift job compares the logged window with the training
reference. Prints where to look: a JSON summary, the only thing on stdout (``kube-sentiment loop | jq`` works).
``--scenario feedback`` closes the loop with ground-truth labels and retraining (:mod:`control.loop_feedback`);
``--rollout`` then rolls a second version out as ``rollout run`` does on a cluster (:mod:`control.loop_rollout`); in
the feedback scenario, the version the gate promotes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from model.errors import UnavailableError
from model.process import Outcome, ProcessSettings, run_process, settings_parser

log = logging.getLogger(__name__)
BIN = Path(sys.executable).parent


class LoopSettings(ProcessSettings):
    """Knobs of the local loop (env ``KS_LOOP_*``)."""

    model_config = SettingsConfigDict(env_prefix="KS_LOOP_")

    state_dir: Path = Path(".kube-sentiment/loop")
    """Where the MLflow database, artefacts, spool, prediction logs and reports live."""
    mlflow_port: int = Field(5000, ge=0, le=65535)
    """Port of the local MLflow server (0: any free port)."""
    scenario: Literal["default", "feedback"] = "default"
    """``default``: train, serve held-out tweets, drift report. ``feedback``: hold out a topic, serve it, feed labels
    back, let degraded live quality retrain with production data, deploy what the gate promotes, serve again
    (``control/loop_feedback.py``)."""
    traffic: int = Field(2000, ge=1)
    """How many tweets to send through the predictor (the feedback scenario: of the held-out topic, then half as
    many to the retrained version)."""
    topic: Literal["apple", "airline", "cars"] = "apple"
    """Feedback scenario: the topic of the corpus held out from the first training and sent as traffic."""
    label_share: float = Field(0.6, gt=0.0, le=1.0)
    """Feedback scenario: share of the traffic whose labels are fed back."""
    keep_running: bool = False
    """Leave MLflow, the predictor and the shipper running until Ctrl-C instead of stopping at the end."""
    deadline_s: float = Field(300.0, gt=0)
    """How long each process may take to become ready."""
    console: bool = True
    """Run the console (``kube-sentiment console``) over the loop's predictor, registry and reports."""
    console_port: int = Field(8070, ge=0, le=65535)
    """Port of the console (0, or taken: any free port)."""
    rollout: bool = False
    """Then roll a second version out against the served one, as ``rollout run`` does on a cluster: shadow and
    canary steps analysed on the prediction logs, the loop's sender splitting and mirroring the traffic. With
    ``--scenario feedback``: the retrained version the gate promotes is rolled out this way before it serves."""
    rollout_candidate: Literal["retrain", "permuted"] = "retrain"
    """The second version: ``retrain`` (trained again on another split of the corpus: a good one) or ``permuted``
    (the served version with its class mapping permuted: a bad one, to be rolled back)."""
    rollout_candidate_traffic: bool = True
    """Send the candidate its share of the traffic (off: it gets none, holds, and is rolled back at the deadline)."""
    rollout_policy_file: Path | None = None
    """Rollout policy (chart values or their ``rollout`` block; default: the chart's steps with laptop-sized waits
    and samples)."""
    rollout_rate: float = Field(40.0, gt=0)
    """Requests per second (of four held-out texts) the loop's sender sends during the rollout."""


class LoopError(UnavailableError):
    """A process of the local loop did not start or answer (exit 69)."""


def _free_port(preferred: int = 0) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: Callable[[], bool], deadline_s: float, what: str, process: subprocess.Popen[bytes],
          logfile: Path) -> None:
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        if process.poll() is not None:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise LoopError(f"{what} exited with {process.returncode}; last log lines:\n{tail}")
        if check():
            return
        time.sleep(0.2)  # readiness poll interval, bounded by the deadline
    raise LoopError(f"{what} not ready after {deadline_s:.0f}s; see {logfile}")


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _start(name: str, argv: list[str], logs: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    logfile = logs / f"{name}.log"
    log.info("starting %s (log: %s)", name, logfile)
    return subprocess.Popen(argv, stdout=logfile.open("ab"), stderr=subprocess.STDOUT,
                            env=os.environ | (env or {}), start_new_session=True)


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def send_traffic(http: str, grpc: str, texts: list[str], batch: int = 16) -> tuple[dict[str, int], list[str]]:
    """Send ``texts`` in batches, rotating V1 REST, V2 REST and V2 gRPC; return texts sent per protocol and the
    prediction id each text was given (in the order of ``texts``)."""
    import httpx
    import numpy as np
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    counts = {"v1": 0, "v2-rest": 0, "v2-grpc": 0}
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=http, timeout=30) as rest, InferenceGRPCClient(grpc) as grpc_client:
        for i, start in enumerate(range(0, len(texts), batch)):
            chunk = texts[start:start + batch]
            protocol = ("v1", "v2-rest", "v2-grpc")[i % 3]
            if protocol == "v1":
                response = await rest.post("/v1/models/sentiment:predict", json={"instances": chunk})
                response.raise_for_status()
                ids += [p["id"] for p in response.json()["predictions"]]
            elif protocol == "v2-rest":
                body = {"inputs": [{"name": "text", "shape": [len(chunk)], "datatype": "BYTES", "data": chunk}]}
                response = await rest.post("/v2/models/sentiment/infer", json=body)
                response.raise_for_status()
                ids += next(o["data"] for o in response.json()["outputs"] if o["name"] == "id")
            else:
                tensor = InferInput("text", [len(chunk)], "BYTES")
                tensor.set_data_from_numpy(np.array(chunk, dtype=object))
                answer = await grpc_client.infer(InferRequest(model_name="sentiment", infer_inputs=[tensor]))
                output = next(o for o in answer.outputs if o.name == "id")
                ids += [x.decode() if isinstance(x, bytes) else str(x) for x in output.as_numpy().tolist()]
            counts[protocol] += len(chunk)
    return counts, ids


def send_feedback(http: str, items: list[dict[str, str]], batch: int = 500) -> int:
    """POST labels to the predictor's ``/v1/feedback`` in batches; return how many were accepted."""
    import httpx

    accepted = 0
    with httpx.Client(base_url=http, timeout=60) as client:
        for start in range(0, len(items), batch):
            response = client.post("/v1/feedback", json=items[start:start + batch])
            if response.status_code != 202:
                raise LoopError(f"POST /v1/feedback answered {response.status_code}: {response.text[:300]}")
            accepted += int(response.json()["accepted"])
    return accepted


class Loop:
    """The processes of a loop run under one state directory: MLflow first, then a predictor and its shipper as
    often as a scenario needs them; :meth:`close` stops whatever still runs."""

    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings
        self.state = settings.state_dir.resolve()
        self.logs = self.state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.sink = self.state / "predictions"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.tracking = ""
        self.port = 0

    def start_mlflow(self) -> str:
        """Start the tracking server; its URL."""
        self.port = _free_port(self.settings.mlflow_port)  # the configured port when free, else any free one
        self.tracking = f"http://127.0.0.1:{self.port}"
        mlflow = _start("mlflow", [str(BIN / "mlflow"), "server", "--backend-store-uri",
                                   f"sqlite:///{self.state / 'mlflow.db'}", "--artifacts-destination",
                                   str(self.state / "mlflow-artifacts"), "--host", "127.0.0.1", "--port",
                                   str(self.port), "--workers", "1"], self.logs,
                        {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        self.processes.append(mlflow)
        _wait(lambda: _ok(f"{self.tracking}/health"), self.settings.deadline_s, "mlflow server", mlflow,
              self.logs / "mlflow.log")
        log.info("MLflow UI: %s", self.tracking)
        return self.tracking

    def serve(self, model_name: str) -> tuple[str, str, list[subprocess.Popen[bytes]]]:
        """Start the shipper and a predictor serving ``models:/<model_name>@production`` (texts logged);
        ``(http URL, gRPC address, [predictor, shipper])``."""
        ship_port, http_port, grpc_port = _free_port(), _free_port(), _free_port()
        shipper = _start("shipper", [str(BIN / "kube-sentiment"), "ship", "--host", "127.0.0.1",
                                     "--port", str(ship_port), "--spool-dir", str(self.state / "spool"),
                                     "--sink-dir", str(self.sink), "--environment", "local"], self.logs)
        self.processes.append(shipper)
        _wait(lambda: _ok(f"http://127.0.0.1:{ship_port}/readyz"), self.settings.deadline_s, "shipper", shipper,
              self.logs / "shipper.log")
        predictor = _start("predictor", [
            str(BIN / "kube-sentiment"), "serve", "--model-uri", f"models:/{model_name}@production",
            "--http_port", str(http_port), "--grpc_port", str(grpc_port), "--environment", "local",
            "--events-dir", str(self.state / "spool" / "journal"), "--log-text",
        ], self.logs, {"MLFLOW_TRACKING_URI": self.tracking})
        self.processes.append(predictor)
        http = f"http://127.0.0.1:{http_port}"
        _wait(lambda: _ok(f"{http}/v2/health/ready"), self.settings.deadline_s, "predictor", predictor,
              self.logs / "predictor.log")
        return http, f"127.0.0.1:{grpc_port}", [predictor, shipper]

    @staticmethod
    def stop(serving: list[subprocess.Popen[bytes]]) -> None:
        """Stop a predictor, then its shipper (which drains to the sink)."""
        for process in serving:
            _stop(process)

    def reopen_command(self) -> str:
        """How to look at the MLflow UI again after the loop."""
        return (f"{BIN / 'mlflow'} server --backend-store-uri sqlite:///{self.state / 'mlflow.db'} "
                f"--artifacts-destination {self.state / 'mlflow-artifacts'} --port {self.port}")

    def close(self) -> None:
        """Stop everything still running, newest first."""
        for process in reversed(self.processes):
            _stop(process)


def deploy(tracking: str, result: Any) -> str:
    """What a deployment does after a promotion: alias ``production`` -> the promoted version. The served version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    if result.decision.passed:
        client.set_registered_model_alias(result.model_name, "production", result.model_version)
        log.info("deployed: alias 'production' -> version %s", result.model_version)
    return str(client.get_model_version_by_alias(result.model_name, "production").version)


def run_loop(settings: LoopSettings) -> dict[str, Any]:
    """Run the loop (the default scenario, or :func:`run_feedback`); return the summary that ``main`` prints.
    Processes are stopped unless ``keep_running``."""
    if settings.scenario == "feedback":
        from control.loop_feedback import run_feedback

        return run_feedback(settings)
    from control.drift.main import run as run_drift
    from control.drift.settings import DriftSettings
    from control.train import train_and_gate
    from model.settings import TrackingSettings, TrainSettings

    loop = Loop(settings)
    try:
        tracking = loop.start_mlflow()
        result = train_and_gate(TrainSettings(tracking=TrackingSettings(tracking_uri=tracking),
                                              output_dir=loop.state / "train"))
        served = deploy(tracking, result)
        http, grpc, serving = loop.serve(result.model_name)
        console_url, console_argv = None, console_command(settings, loop.state, tracking, result.model_name,
                                                          loop.sink)
        if settings.console:
            console_port = _free_port(settings.console_port)
            console_url = f"http://127.0.0.1:{console_port}"
            console = _start("console", [*console_argv, "--port", str(console_port), "--predictors",
                                         f"local/stable={http}"], loop.logs)
            loop.processes.append(console)
            _wait(lambda: _ok(f"{console_url}/healthz"), settings.deadline_s, "console", console,
                  loop.logs / "console.log")
            log.info("console: %s", console_url)
        texts = result.holdout_texts[: settings.traffic]
        sent, _ = asyncio.run(send_traffic(http, grpc, texts))
        log.info("sent %d held-out tweets: %s", len(texts), sent)

        if settings.keep_running:
            log.info("predictor: %s (gRPC %s), MLflow: %s, console: %s; Ctrl-C stops and runs drift", http, grpc,
                     tracking, console_url)
            stop_signals = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
            signal.sigwait(stop_signals)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
        loop.stop(serving)
        outcome = run_drift(DriftSettings(source=str(loop.sink), tracking_uri=tracking,
                                          registered_model=result.model_name, output_dir=loop.state / "drift"))
        rollout = None
        if settings.rollout:
            from control.loop_rollout import rollout_scenario

            rollout = rollout_scenario(settings, tracking, result.model_name, str(served), result.holdout_texts)
        return {
            "mlflow_ui": tracking,
            "training": result.summary(),
            "served_version": served,
            "traffic": sent,
            "prediction_logs": str(loop.sink),
            "drift_verdict": outcome.verdict,
            "drift_report_html": str(outcome.html_path),
            "drift_report_json": str(outcome.json_path),
            "console": console_url,
            "reopen_console": " ".join([*console_argv, "--port", str(settings.console_port)]),
            "logs": str(loop.logs),
            "reopen_mlflow_ui": loop.reopen_command(),
            "rollout": rollout,
        }
    finally:
        loop.close()


def console_command(settings: LoopSettings, state: Path, tracking: str, model: str, sink: Path) -> list[str]:
    """``kube-sentiment console`` over the loop's registry, prediction log and drift reports."""
    return [str(BIN / "kube-sentiment"), "console", "--tracking-uri", tracking, "--registered-model", model,
            "--drift-dirs", str(state / "drift"), "--events-source", str(sink), "--scrape-interval-s", "2"]


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``kube-sentiment loop``: one per :class:`LoopSettings` field."""
    return settings_parser(
        LoopSettings,
        prog="kube-sentiment loop",
        description="Run the whole loop locally, no cluster: MLflow server, train + gate, serve, ship, drift report. "
        "Prints a JSON summary on stdout (logs go to stderr).",
    )


def _loop(settings: LoopSettings, _: argparse.Namespace) -> Outcome:
    summary = run_loop(settings)
    return Outcome(summary["rollout"]["exit_code"] if summary.get("rollout") else 0, summary)


def main(argv: Sequence[str] | None = None) -> int:
    """``kube-sentiment loop [flags]``: returns the exit code."""
    return run_process(LoopSettings, argv, _loop, parser=build_parser())
