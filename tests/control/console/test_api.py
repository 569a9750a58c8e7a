"""Every data endpoint of the console against the real local loop parts (``conftest.console_world``): a real MLflow
server, two predictor processes shipping to a real shipper, the shipped prediction log and the drift job's reports.
Each test asserts what the page shows equals the state of the part it comes from."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from control.console.app import create_app
from tests.control.console.conftest import ENVIRONMENT, MODEL, ConsoleWorld
from tests.support import wait_until

# The session's console world (conftest) starts MLflow, a shipper, two predictors and two drift runs: minutes on a
# loaded machine, counted against the first test that asks for it.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def client(console_world: ConsoleWorld) -> Iterator[TestClient]:
    """The app over the world, its lifespan (the /metrics scraper) running."""
    with TestClient(create_app(console_world.settings())) as c:
        yield c


def test_environments_and_session(client: TestClient) -> None:
    body = client.get("/api/environments").json()
    assert body["environments"] == [ENVIRONMENT]
    assert body["actions_enabled"] is True and body["signed_in"] is False and body["csrf_token"] is None
    assert body["rollout_actions"] == [] and body["metrics_source"] == "predictors' /metrics"


def test_overview_shows_tracks_traffic_and_verdicts(client: TestClient, console_world: ConsoleWorld) -> None:
    v1, v2 = console_world.versions

    def measured() -> dict | None:
        # keep traffic flowing so that two consecutive scrapes see requests on the stable track
        httpx.post(f"{console_world.stable.http}/v1/models/sentiment:predict",
                   json={"instances": ["what a lovely flight", "the bag is lost again"]}, timeout=10)
        body = client.get("/api/overview").json()
        stable = body["tracks"][0]
        return body if stable["current"] and stable["current"]["rps"] > 0 else None

    body = wait_until(measured, 120, "a request rate on the stable track", interval_s=0.3)
    tracks = {t["track"]: t for t in body["tracks"]}
    assert [t["track"] for t in body["tracks"]] == ["stable", "canary"]
    assert (tracks["stable"]["model_version"], tracks["stable"]["weight"], tracks["stable"]["ready"]) == (v1, 90, 1)
    assert (tracks["canary"]["model_version"], tracks["canary"]["weight"]) == (v2, 10)
    stable = tracks["stable"]
    assert stable["current"]["error_rate"] == 0.0 and stable["current"]["p50_ms"] > 0
    assert stable["current"]["p99_ms"] >= stable["current"]["p50_ms"]
    assert len(stable["series"]) >= 1 and "endpoints" not in stable
    latest = json.loads((console_world.drift_dir / console_world.reports[-1] / "report.json").read_text())
    groups = {(g["model_version"], g["track"]): g["verdict"] for g in latest["groups"]}
    assert stable["drift"] == groups[(v1, "stable")] and stable["drift_run_id"] == console_world.reports[-1]
    assert tracks["canary"]["drift"] == groups[(v2, "canary")] == "insufficient_data"
    assert body["latest_drift"]["run_id"] == console_world.reports[-1]
    mix = body["class_mix"]
    assert sum(map(sum, mix["tracks"]["stable"].values())) >= 700
    assert sum(map(sum, mix["tracks"]["canary"].values())) >= 100
    assert set(mix["tracks"]["stable"]) <= set(console_world.classes) and len(mix["hours"]) == 24
    assert body["rollout"]["in_progress"] is True and body["rollout"]["latest"]["decision"] == "hold"


def test_models_are_the_registry(client: TestClient, console_world: ConsoleWorld) -> None:
    from mlflow.tracking import MlflowClient

    v1, v2 = console_world.versions
    body = client.get("/api/models").json()
    assert body["registered_model"] == MODEL and body["configured"] is True
    versions = {v["version"]: v for v in body["versions"]}
    assert [v["version"] for v in body["versions"]] == [v2, v1]
    assert versions[v1]["aliases"] == ["production"] and versions[v2]["aliases"] == ["candidate"]
    assert versions[v1]["gate"]["decision"] == "promoted" and "floor" in versions[v1]["gate"]["reason"]
    assert versions[v1]["metrics"]["macro_f1"] == pytest.approx(0.71)
    run = MlflowClient(console_world.mlflow.uri).get_run(versions[v2]["run_id"])
    assert versions[v2]["links"]["run"].endswith(f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    assert versions[v2]["links"]["version"].endswith(f"/#/models/{MODEL}/versions/{v2}")
    assert versions[v2]["rollouts"][ENVIRONMENT]["decision"] == "hold"
    assert versions[v1]["drift_tags"] == {}  # the drift job ran without log_to_mlflow


def test_rollouts_merge_registry_tags_and_log_lines(client: TestClient, console_world: ConsoleWorld) -> None:
    _, v2 = console_world.versions
    body = client.get("/api/rollouts", params={"environment": ENVIRONMENT}).json()
    decisions = body["decisions"]
    assert [d["decision"] for d in decisions] == ["started", "advance", "hold", "hold"]
    assert {d["source"] for d in decisions} == {"log", "mlflow"}
    advance = decisions[1]
    assert advance["step"] == "shadow 100%" and advance["step_index"] == "1/2" and advance["version"] == v2
    assert advance["checks"]["class_shares_psi"] == {"status": "pass", "value": 0.02, "threshold": 0.1,
                                                     "p_value_adjusted": 0.4}
    assert decisions[-1]["source"] == "mlflow" and decisions[-1]["reason"] == "too few requests: 90 of 200"
    assert body["available_actions"] == [] and body["lock"] is None


def test_drift_reports_and_trends(client: TestClient, console_world: ConsoleWorld) -> None:
    v1, _ = console_world.versions
    body = client.get("/api/drift").json()
    assert [r["run_id"] for r in body["reports"]] == list(reversed(console_world.reports))
    trend = next(t for t in body["trends"] if (t["model_version"], t["track"]) == (v1, "stable"))
    assert len(trend["verdicts"]) == 2
    signals = {s["name"]: s for s in trend["signals"]}
    assert "class_shares_psi" in signals and "domain_classifier_auc" in signals
    report = json.loads((console_world.drift_dir / console_world.reports[0] / "report.json").read_text())
    psi = next(s for g in report["groups"] if g["model_version"] == v1 for s in g["signals"]
               if s["name"] == "class_shares_psi")
    assert signals["class_shares_psi"]["points"][0]["value"] == psi["value"]
    assert signals["class_shares_psi"]["threshold_drift"] == psi["threshold_drift"]
    page = client.get(f"/drift/reports/{console_world.reports[0]}")
    assert page.status_code == 200 and "Drift report" in page.text
    assert "sandbox" in page.headers["content-security-policy"]
    assert client.get("/drift/reports/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/drift/reports/20990101T000000Z").status_code == 404


def test_try_it_predicts_and_its_id_is_the_logged_prediction(client: TestClient,
                                                             console_world: ConsoleWorld) -> None:
    v1, _ = console_world.versions
    response = client.post("/api/predict", json={"environment": ENVIRONMENT, "track": "stable",
                                                  "text": "I love this airline, the crew was wonderful"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] in console_world.classes and body["model_version"] == v1
    assert set(body["probabilities"]) == set(console_world.classes)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    prediction_id = body["prediction_id"]
    assert prediction_id.startswith("console-") and prediction_id.endswith(":0")

    def logged() -> bool:
        ids = [pq.read_table(p, columns=["id"]).column("id").to_pylist()
               for p in console_world.sink.rglob("*.parquet") if "quarantine" not in p.parts]
        return any(prediction_id in chunk for chunk in ids)

    wait_until(logged, 120, f"prediction {prediction_id} in the shipped log")


@pytest.mark.parametrize(("payload", "message"), [
    ({"environment": ENVIRONMENT, "track": "stable", "text": ""}, "'text' is missing"),
    ({"environment": "nowhere", "track": "stable", "text": "hi"}, "unknown environment"),
    ({"environment": ENVIRONMENT, "track": "blue", "text": "hi"}, "has no track 'blue'"),
    ({"environment": ENVIRONMENT, "track": "stable", "text": "x" * 5001}, "at most 5000"),
    ([1, 2], "send a JSON object"),
], ids=["empty-text", "unknown-environment", "unknown-track", "too-long", "not-an-object"])
def test_try_it_refuses_bad_input_with_400(client: TestClient, payload: object, message: str) -> None:
    response = client.post("/api/predict", json=payload)
    assert response.status_code == 400 and message in response.json()["error"]


def test_unknown_environment_is_400(client: TestClient) -> None:
    response = client.get("/api/overview", params={"environment": "mars"})
    assert response.status_code == 400 and "choose one of ['local']" in response.json()["error"]


def test_feedback_reaches_the_predictor_when_signed_in(client: TestClient, console_world: ConsoleWorld) -> None:
    from tests.control.console.conftest import TOKEN

    prediction = client.post("/api/predict", json={"environment": ENVIRONMENT, "track": "stable",
                                                    "text": "the flight was late"}).json()
    label = next(c for c in console_world.classes if c != prediction["label"])
    response = client.post("/api/feedback", headers={"authorization": f"Bearer {TOKEN}"},
                           json={"environment": ENVIRONMENT, "track": "stable",
                                 "prediction_id": prediction["prediction_id"], "label": label})
    assert response.status_code == 202, response.text
    assert response.json()["prediction_id"] == prediction["prediction_id"]
