"""The console's world for its integration and browser tests, built from the local loop's real parts: a real
``mlflow server`` with two registered versions (gate tags, holdout metrics, an alias, a rollout record), two
predictor processes (stable and canary) sending events to a real shipper, the shipped prediction log, and drift
reports written by the real drift job from that log against the registry's reference."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from control.console.settings import ConsoleSettings
from model.registry import register
from tests.support import BIN, REPO, free_port, stop, wait_until
from tests.support.models import SmallModel
from tests.support.servers import START_DEADLINE_S, MlflowServer, Predictor, ShipperProcess, start_predictor

MODEL = "sentiment-console"
TOKEN = "console-test-token-0123456789abcdef"
ENVIRONMENT = "local"


@dataclass
class ConsoleWorld:
    """Everything a console reads, running."""

    mlflow: MlflowServer
    stable: Predictor
    canary: Predictor
    shipper: ShipperProcess
    sink: Path
    drift_dir: Path
    rollout_log: Path
    token_file: Path
    versions: tuple[str, str]
    reports: list[str]
    classes: tuple[str, ...]

    def settings(self, **overrides: object) -> ConsoleSettings:
        """Console settings over this world (token file, fast scrapes)."""
        values: dict[str, object] = {
            "predictors": (f"{ENVIRONMENT}/stable={self.stable.http}", f"{ENVIRONMENT}/canary={self.canary.http}"),
            "weights": (f"{ENVIRONMENT}/stable=90", f"{ENVIRONMENT}/canary=10"),
            "tracking_uri": self.mlflow.uri, "registered_model": MODEL, "drift_dirs": (self.drift_dir,),
            "events_source": str(self.sink), "rollout_logs": (self.rollout_log,), "token_file": self.token_file,
            "scrape_interval_s": 0.5, "json_logs": True,
        }
        return ConsoleSettings(**(values | overrides))  # type: ignore[arg-type]

    def argv(self, port: int, *extra: str) -> list[str]:
        """``kube-sentiment console`` flags over this world."""
        return [str(BIN / "kube-sentiment"), "console", "--port", str(port),
                "--predictors", f"{ENVIRONMENT}/stable={self.stable.http}", f"{ENVIRONMENT}/canary={self.canary.http}",
                "--weights", f"{ENVIRONMENT}/stable=90", f"{ENVIRONMENT}/canary=10",
                "--tracking-uri", self.mlflow.uri, "--registered-model", MODEL, "--drift-dirs", str(self.drift_dir),
                "--events-source", str(self.sink), "--rollout-logs", str(self.rollout_log),
                "--token-file", str(self.token_file), "--scrape-interval-s", "1", "--json-logs", *extra]


def _register(client, small_model: SmallModel, metrics: dict[str, float], gate: dict[str, str]) -> str:
    experiment = client.get_experiment_by_name("console-test")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("console-test")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_artifacts(run_id, str(small_model.model_dir), "model")
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id)
    return str(register(client, run_id, MODEL, tags=gate).version)


def _send(predictor: Predictor, texts: list[str], batch: int = 16) -> None:
    with httpx.Client(base_url=predictor.http, timeout=30) as client:
        for start in range(0, len(texts), batch):
            response = client.post("/v1/models/sentiment:predict", json={"instances": texts[start:start + batch]})
            response.raise_for_status()


def _rollout_log(path: Path, version: str, stable: str) -> None:
    """Decisions in the JSON log-line format of ``kube-sentiment rollout run`` (control/rollout/driver.py)."""
    now = datetime.now(UTC)
    checks = {"error_rate": {"status": "pass", "value": 0.0, "threshold": 0.01, "p_value_adjusted": None},
              "class_shares_psi": {"status": "pass", "value": 0.02, "threshold": 0.1, "p_value_adjusted": 0.4}}
    records = [
        ("started", None, None, f"from stable {stable} (revision 1), 2 steps", None),
        ("advance", "shadow 100%", "1/2", "every check passed", checks),
        ("hold", "canary 10%", "2/2", "too few requests: 40 of 200", checks),
    ]
    with path.open("w") as f:
        for i, (decision, step, index, reason, c) in enumerate(records):
            record = {"at": (now - timedelta(minutes=30 - 10 * i)).isoformat(), "decision": decision,
                      "reason": reason, "step": step, "step_index": index, "stable_version": stable}
            if c is not None:
                record["checks"] = c
            f.write(json.dumps({"ts": record["at"], "level": "info", "logger": "control.rollout.driver",
                                "msg": f"rollout {ENVIRONMENT} version {version}: {decision}",
                                "environment": ENVIRONMENT, "model_version": version, "rollout": record}) + "\n")
        f.write("not json\n")


@pytest.fixture(scope="session")
def console_world(mlflow_server: MlflowServer, small_model: SmallModel,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    """The running world (module tests share it: starting it takes a while on a loaded machine)."""
    from mlflow.tracking import MlflowClient

    from control.drift.main import run as run_drift
    from control.drift.settings import DriftSettings

    root = tmp_path_factory.mktemp("console")
    client = MlflowClient(tracking_uri=mlflow_server.uri, registry_uri=mlflow_server.uri)
    v1 = _register(client, small_model, {"macro_f1": 0.71, "accuracy": 0.74, "ece": 0.03},
                   {"gate.decision": "promoted", "gate.reason": "no production model; clears the floor 0.6",
                    "gate.candidate_macro_f1": "0.71"})
    v2 = _register(client, small_model, {"macro_f1": 0.73, "accuracy": 0.75, "ece": 0.02},
                   {"gate.decision": "promoted", "gate.reason": "beats production by 0.02 > margin 0.005",
                    "gate.candidate_macro_f1": "0.73"})
    client.set_registered_model_alias(MODEL, "production", v1)
    client.set_registered_model_alias(MODEL, "candidate", v2)
    client.set_model_version_tag(MODEL, v2, f"rollout.{ENVIRONMENT}.decision", "hold")
    client.set_model_version_tag(MODEL, v2, f"rollout.{ENVIRONMENT}.step", "canary 10%")
    client.set_model_version_tag(MODEL, v2, f"rollout.{ENVIRONMENT}.at",
                                 (datetime.now(UTC) - timedelta(minutes=5)).isoformat())
    client.set_model_version_tag(MODEL, v2, f"rollout.{ENVIRONMENT}.reason", "too few requests: 90 of 200")
    client.set_model_version_tag(MODEL, v2, f"rollout.{ENVIRONMENT}.checks",
                                 json.dumps({"error_rate": {"status": "pass", "value": 0.0, "threshold": 0.01}}))

    shipper = ShipperProcess(root / "shipper", {"KS_SHIP_SEGMENT_MAX_AGE_S": "0.5", "KS_SHIP_ENVIRONMENT": ENVIRONMENT})
    shipper.start()
    common = ["--model-dir", str(small_model.model_dir), "--environment", ENVIRONMENT, "--log-text",
              "--events-flush-interval-s", "0.1"]
    events = {"KS_SERVE_EVENTS_DIR": str(shipper.journal_dir)}  # the journal hand-off to the sidecar
    stable = start_predictor(root, [*common, "--model-version", v1, "--track", "stable"], events)
    canary = start_predictor(root, [*common, "--model-version", v2, "--track", "canary"], events)
    texts = small_model.fresh_texts
    _send(stable, texts[:700])
    _send(canary, texts[700:800])
    sink = shipper.sink_dir

    wait_until(lambda: _rows(sink) >= 800, START_DEADLINE_S, "the shipper to write 800 events to its sink")
    drift_dir = root / "drift"
    reports = []
    for shift in (0, 2):
        outcome = run_drift(DriftSettings(source=str(sink), tracking_uri=mlflow_server.uri, registered_model=MODEL,
                                          output_dir=drift_dir, environment=ENVIRONMENT, min_samples=500),
                            now=datetime.now(UTC) + timedelta(seconds=60 + shift))
        reports.append(outcome.report["run_id"])
    rollout_log = root / "rollout.log"
    _rollout_log(rollout_log, v2, v1)
    token_file = root / "token"
    token_file.write_text(TOKEN + "\n")
    world = ConsoleWorld(mlflow_server, stable, canary, shipper, sink, drift_dir, rollout_log, token_file, (v1, v2),
                         reports, small_model.classes)
    try:
        yield world
    finally:
        for predictor in (stable, canary):
            stop(predictor.process)
        shipper.terminate()


def _rows(sink: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in sink.rglob("*.parquet") if "quarantine" not in p.parts)


@dataclass
class ConsoleProcess:
    """``kube-sentiment console`` running as a process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_console(world: ConsoleWorld, workdir: Path, *extra: str) -> ConsoleProcess:
    """Start the console on a free port and wait until it answers."""
    port = free_port()
    log = workdir / f"console-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KS_CONSOLE_")}
    process = subprocess.Popen(world.argv(port, *extra), stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
                               cwd=REPO)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, f"console exited with {process.returncode}: {log.read_text()[-3000:]}"
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200

    wait_until(up, START_DEADLINE_S, "the console")
    return ConsoleProcess(url, process, log)


@pytest.fixture(scope="session")
def console_process(console_world: ConsoleWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    """The console as a process over the world, up for the session."""
    console = start_console(console_world, tmp_path_factory.mktemp("console-process"))
    try:
        yield console
    finally:
        stop(console.process)

