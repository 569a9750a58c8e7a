"""Shadow traffic in kserve mode: the answering predictor sends copies (exactly its share, batched, bounded, never in
the way of the answer) and a shadow predictor answers them into its events with the live request's id; a copy the
Gateway sends (deployment mode) is recognised by its ``x-request-id``. Real processes for the end-to-end cases."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client import CollectorRegistry

from serving.eventlog.events import mirrored_event_id
from serving.mirror import Mirror, groups, parse_records
from tests.support import free_port, stop, wait_until
from tests.support.events import journal_events
from tests.support.servers import Predictor, recorder, start_predictor

V1 = "/v1/models/sentiment:predict"


def test_copies_are_exactly_the_share_evenly_spread_and_sent_in_batches() -> None:
    with recorder() as shadow:
        mirror = Mirror(shadow.url, "sentiment", 30, CollectorRegistry(), batch_size=8)

        async def run() -> None:
            for i in range(100):
                mirror.submit(f"req-{i}", "v1", [f"text {i}", "second"])
            await mirror.flush(deadline_s=60)
            await mirror.aclose()

        asyncio.run(run())
        records = [orjson.loads(line) for body in shadow.bodies() for line in body.splitlines()]
    assert mirror.counts["sent"] == 30 == len(records)
    kept = sorted(int(r["id"].split("-")[1]) for r in records)  # batches are sent concurrently: any order
    assert all(3 <= b - a <= 4 for a, b in itertools.pairwise(kept))  # every third or fourth request
    first = next(r for r in records if r["id"] == f"req-{kept[0]}")
    assert first == {"id": f"req-{kept[0]}", "protocol": "v1", "texts": [f"text {kept[0]}", "second"]}
    assert {path for path, _, _ in shadow.posts} == {"/v1/models/sentiment/mirror"}
    assert len(shadow.posts) >= 4  # batches of at most 8 copies
    assert all(h.get("content-type") == "application/x-ndjson" for _, h, _ in shadow.posts)


def test_a_failing_or_full_shadow_costs_the_answer_nothing_and_is_counted() -> None:
    with recorder() as shadow:
        shadow.status = 503
        registry = CollectorRegistry()
        mirror = Mirror(shadow.url, "sentiment", 100, registry, queue_size=5, batch_size=2)

        async def run() -> int:
            for i in range(8):  # submitted back to back: the request path only appends, nothing is sent yet
                mirror.submit(f"r{i}", "v2-grpc", ["x"])
            posted_meanwhile = len(shadow.posts)
            await mirror.flush(deadline_s=60)
            mirror.submit("bad", "v1", ["\ud800"])  # not valid Unicode
            await mirror.flush(deadline_s=60)
            await mirror.aclose()
            return posted_meanwhile

        assert asyncio.run(run()) == 0
    assert mirror.counts == {"sent": 0, "dropped_queue_full": 3, "dropped_send_failed": 5, "dropped_unencodable": 1}
    assert registry.get_sample_value("kube_sentiment_mirror_total", {"outcome": "dropped_send_failed"}) == 5


def test_nobody_listening_is_a_failed_send_not_an_error() -> None:
    mirror = Mirror(f"http://127.0.0.1:{free_port()}", "sentiment", 100, CollectorRegistry(), timeout_s=1)

    async def run() -> None:
        mirror.submit("r", "v1", ["x"])
        await mirror.flush(deadline_s=60)
        await mirror.aclose()

    asyncio.run(run())
    assert mirror.counts["dropped_send_failed"] == 1


def test_mirror_bodies_are_checked_line_by_line() -> None:
    assert parse_records(b'{"id": "a", "texts": ["x"]}\n\n{"id": "b", "protocol": "v2-rest", "texts": []}\n') == [
        ("a", "v1", ["x"]), ("b", "v2-rest", [])]
    for body, message in ((b"not json", "line 1 is not JSON"), (b'{"texts": ["x"]}', "non-empty string id"),
                          (b'{"id": "a", "protocol": "smtp"}', "protocol 'smtp'")):
        with pytest.raises(ValueError, match=message):
            parse_records(body)
    records = [("a", "v1", ["x"] * 3), ("b", "v1", ["x"] * 3), ("c", "v1", ["x"] * 9), ("d", "v1", None)]
    assert [[r[0] for r in g] for g in groups(records, 6)] == [["a", "b"], ["c"], ["d"]]


# --- real predictors ---------------------------------------------------------------------------------------------


def serve(tmp: Path, model_dir: Path, name: str, *args: str, **env: str) -> Predictor:
    workdir = tmp / name
    workdir.mkdir()
    return start_predictor(workdir, ["--model-dir", str(model_dir), *args],
                           env={"KS_SERVE_EVENTS_DIR": str(workdir / "journal"),
                                "KS_SERVE_EVENTS_FLUSH_INTERVAL_S": "0.05", "KS_SERVE_ENVIRONMENT": "test", **env})


@pytest.mark.integration
def test_the_stable_predictor_mirrors_to_a_shadow_predictor(tiny_model_dir: Path, tmp_path: Path) -> None:
    shadow = serve(tmp_path, tiny_model_dir, "shadow", "--track", "shadow")
    stable = serve(tmp_path, tiny_model_dir, "stable", "--mirror-url", shadow.http, "--mirror-percent", "50")
    try:
        with httpx.Client(base_url=stable.http, timeout=30) as client:
            for i in range(20):
                headers = {"x-request-id": f"live-{i}"} if i % 2 == 0 else {}
                response = client.post(V1, json={"instances": [f"great flight {i}", "awful"]}, headers=headers)
                assert response.status_code == 200
            body = {"id": "v2-live", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                "data": ["fine"]}]}
            assert client.post("/v2/models/sentiment/infer", json=body).status_code == 200
        assert stable.events_dir is not None and shadow.events_dir is not None
        live = wait_until(lambda: [e for e in journal_events(stable.events_dir)] if len(
            journal_events(stable.events_dir)) == 41 else None, 60, "the stable events")
        copies = wait_until(lambda: [e for e in journal_events(shadow.events_dir)] if len(
            journal_events(shadow.events_dir)) >= 20 else None, 60, "the shadow's events")
        assert len(copies) == 20 or len(copies) == 21  # half the 21 requests, texts of 10 or 11
        assert {e["track"] for e in copies} == {"shadow"} and {e["track"] for e in live} == {"stable"}
        live_by_id = {e["id"]: e for e in live}
        for copy in copies:
            twin = live_by_id[mirrored_event_id(copy["id"], copy["mirror_of"])]  # the same text, answered twice
            assert twin["text_sha256"] == copy["text_sha256"] and twin["label"] == copy["label"]
            assert copy["id"] == f"{copy['mirror_of']}.shadow:{copy['id'].rsplit(':', 1)[1]}"
        assert all(e["mirror_of"] is None for e in live)
    finally:
        stop(stable.process)
        stop(shadow.process)


@pytest.mark.integration
def test_a_dead_shadow_never_fails_or_slows_the_answer(tiny_model_dir: Path, tmp_path: Path) -> None:
    stable = serve(tmp_path, tiny_model_dir, "stable", "--mirror-url", f"http://127.0.0.1:{free_port()}",
                   "--mirror-timeout-s", "0.5")
    try:
        with httpx.Client(base_url=stable.http, timeout=30) as client:
            codes = [client.post(V1, json={"instances": ["ok"]}).status_code for _ in range(200)]
            assert codes == [200] * 200

            def dropped() -> float:
                text = client.get("/metrics").text
                return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                           if line.startswith('kube_sentiment_mirror_total{outcome="dropped_send_failed"}'))

            wait_until(lambda: dropped() == 200, 60, "200 copies counted as failed sends")
    finally:
        stop(stable.process)


@pytest.mark.integration
def test_a_shadow_recognises_the_gateways_copies_and_refuses_what_is_not_a_copy(tiny_model_dir: Path,
                                                                                tmp_path: Path) -> None:
    shadow = serve(tmp_path, tiny_model_dir, "shadow", "--track", "shadow")
    stable = serve(tmp_path, tiny_model_dir, "stable")
    try:
        with httpx.Client(timeout=30) as client:
            # Deployment mode: the Gateway's RequestMirror keeps the live request's x-request-id on the copy.
            assert client.post(shadow.http + V1, json={"instances": ["a", "b"]},
                               headers={"x-request-id": "gw-1"}).status_code == 200
            mirror = "/v1/models/sentiment/mirror"
            body = b'{"id": "p-1", "protocol": "v2-grpc", "texts": ["good"]}\n{"id": "p-2", "texts": [""]}\n'
            answered = client.post(shadow.http + mirror, content=body)
            assert answered.status_code == 202 and answered.json() == {"accepted": 1, "refused": 1}
            assert client.post(shadow.http + mirror, content=b"nope").status_code == 400
            assert client.post(shadow.http + "/v1/models/other/mirror", content=body).status_code == 404
            refused = client.post(stable.http + mirror, content=body)
            assert refused.status_code in (404, 405, 409)  # the route exists on shadows only
        assert shadow.events_dir is not None
        events = wait_until(lambda: journal_events(shadow.events_dir) if len(
            journal_events(shadow.events_dir)) == 3 else None, 60, "the shadow's 3 events")
        by_id = {e["id"]: e for e in events}
        assert by_id["gw-1.shadow:0"]["mirror_of"] == "gw-1" and by_id["gw-1.shadow:1"]["mirror_of"] == "gw-1"
        assert by_id["p-1.shadow:0"]["mirror_of"] == "p-1" and by_id["p-1.shadow:0"]["protocol"] == "v2-grpc"
    finally:
        stop(stable.process)
        stop(shadow.process)
