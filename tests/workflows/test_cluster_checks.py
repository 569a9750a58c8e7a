"""The verdicts of tests/support/cluster_checks.py (what scripts/smoke.sh and the real-pods tier check), with the
cluster replaced: a Release whose client pods answer what the test says. What is checked is the checks' own logic:
the client pod they ask for (restricted Pod Security), the binomial canary share, the version check after promote
and roll back, the registry's gate decision; and that the gRPC client and the in-pod request loop are valid code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.support.cluster_checks import (
    GRPC_CALL,
    VERSION_LOOP,
    CheckFailed,
    Release,
    binomial_tolerance,
    client_pod,
    split_verdict,
)


class FakeRelease(Release):
    """Answers from a script instead of a cluster: ``answers`` is what the next client pod prints."""

    def __init__(self, answers: str = "", values: dict[str, Any] | None = None) -> None:
        super().__init__("production", env={"PATH": "/nonexistent"}, client_image="curl:test", app_image="app:test")
        self.answers = answers
        self.asked: list[tuple[str, ...]] = []
        self._values = values or {
            "serving": {"stable": {"modelVersion": 1}, "canary": {"enabled": True, "modelVersion": 2}}
        }

    def client(self, image: str, *command: str, volume: tuple[str, str] | None = None, timeout: float = 600) -> str:
        self.asked.append((image, *command))
        return self.answers

    def values(self) -> dict[str, Any]:
        return self._values

    def get(self, kind: str, name: str | None = None, *, selector: str | None = None) -> Any:
        return [] if name is None else None  # no terminating pods, no InferenceService

    def gateway(self) -> tuple[str, str]:
        return "http://10.245.0.1:80", "sentiment.example.com"


def versions(**counts: int) -> str:
    return "".join(f"{version.lstrip('v')}\n" * n for version, n in counts.items())


def test_the_client_pod_passes_restricted_pod_security() -> None:
    pod = client_pod("c", "curl:test", ["curl", "-fsS", "http://x"], volume=("sink", "/data"))
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False and spec["restartPolicy"] == "Never"
    container = spec["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["limits"] and container["command"][0] == "curl"
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": "sink", "readOnly": True}


def test_the_binomial_tolerance_widens_with_the_sample() -> None:
    assert binomial_tolerance(1000, 20) == pytest.approx(4 * (1000 * 0.2 * 0.8) ** 0.5)
    assert binomial_tolerance(100, 20) < binomial_tolerance(1000, 20)


def test_a_split_within_tolerance_passes_through_the_gateway_with_the_canary_warm_up() -> None:
    release = FakeRelease(versions(v1=790, v2=210))
    summary = release.split(20, 1000)
    assert "210 of 1000 answers (21.0 %" in summary
    image, *command = release.asked[0]
    assert image == "curl:test" and command[:2] == ["sh", "-ec"]
    # url, Host, n, the version that must answer first (the canary), the body
    assert command[4:8] == ["http://10.245.0.1:80", "sentiment.example.com", "1000", "2"]


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"1": 700, "2": 300}, "300 of 1000 answers"),
        ({"1": 1000}, "not both versions answered"),
        ({"1": 790, "2": 200, "3": 10}, "other than 1 and 2"),
    ],
)
def test_split_failures_say_why(counts: dict[str, int], message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        split_verdict(counts, "1", "2", 20)


def test_split_fails_when_requests_go_unanswered() -> None:
    with pytest.raises(CheckFailed, match="990 of 1000 requests"):
        FakeRelease(versions(v1=790, v2=200)).split(20, 1000)


def test_only_one_version() -> None:
    FakeRelease(versions(v1=50)).only("1", 50)
    with pytest.raises(CheckFailed, match="not all from version 1"):
        FakeRelease(versions(v1=49, v2=1)).only("1", 50)


def _registry_answer(decision: str | None) -> str:
    tags = [{"key": "gate.reason", "value": "no production model yet"}]
    if decision:
        tags.append({"key": "gate.decision", "value": decision})
    return json.dumps({"model_version": {"name": "sentiment", "version": "2", "run_id": "r1", "tags": tags}})


def test_registry_checks_the_recorded_gate_decision() -> None:
    ok = FakeRelease(_registry_answer("promoted"))
    assert ok.registry("promoted") == {
        "version": "2",
        "run": "r1",
        "decision": "promoted",
        "reason": "no production model yet",
    }
    assert "registered-models/alias?name=sentiment&alias=candidate" in ok.asked[0][-1]
    with pytest.raises(CheckFailed, match="gate decision refused, expected promoted"):
        FakeRelease(_registry_answer("refused")).registry("promoted")
    with pytest.raises(CheckFailed, match="not recorded"):
        FakeRelease(_registry_answer(None)).registry()


def test_the_grpc_client_compiles_against_the_kserve_stubs() -> None:
    compile(GRPC_CALL, "cluster_checks:GRPC_CALL", "exec")
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as rpc

    tensor = pb.ModelInferRequest.InferInputTensor(
        name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"x"])
    )
    assert pb.ModelInferRequest(model_name="sentiment", inputs=[tensor]).inputs[0].contents.bytes_contents == [b"x"]
    assert pb.ModelReadyRequest(name="sentiment").name == "sentiment"
    assert hasattr(rpc, "GRPCInferenceServiceStub")


def test_the_in_pod_request_loop_is_posix_sh() -> None:
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh
    result = subprocess.run([sh, "-n", "-c", VERSION_LOOP], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
