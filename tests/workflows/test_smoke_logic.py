"""scripts/smoke.sh's verdicts, with kubectl and helm replaced by stubs on PATH (no cluster here has a data plane).

The stubs answer what a cluster with a Gateway and a canary would answer; the client pod's output is what the
test says it is. What is checked is smoke.sh's own logic: the client pod spec it asks for (valid JSON that passes
restricted Pod Security), the canary share arithmetic and tolerance, the version check after promote/rollback,
and the registry's gate-decision check.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

KUBECTL = r"""#!/usr/bin/env bash
all="$*"
printf '%s\n' "${all//$'\n'/ }" >> "${STUB_DIR}/kubectl.log"
case "$*" in
  *" run "*)
    for arg in "$@"; do
      [[ "${arg}" == --overrides=* ]] && printf '%s' "${arg#--overrides=}" > "${STUB_DIR}/overrides.json"
    done
    cat "${STUB_DIR}/client.out"
    exit "$(cat "${STUB_DIR}/client.rc")" ;;
  *"get inferenceservices"*) exit 1 ;;
  *"get httproutes"*) echo httproute.gateway.networking.k8s.io/kube-sentiment ;;
  *"get httproute.gateway.networking.k8s.io/kube-sentiment"*hostnames*) echo sentiment.example.com ;;
  *"get httproute.gateway.networking.k8s.io/kube-sentiment"*parentRefs[0].namespace*) echo gateway ;;
  *"get httproute.gateway.networking.k8s.io/kube-sentiment"*parentRefs[0].name*) echo kube-sentiment ;;
  *"get httproute.gateway.networking.k8s.io/kube-sentiment"*Accepted*) echo True ;;
  *"get gateways"*) echo 80 ;;
  *"get services"*) echo service/envoy-gateway-kube-sentiment-0123abcd ;;
  *) echo "kubectl stub: unexpected $*" >&2; exit 9 ;;
esac
"""

HELM = r"""#!/usr/bin/env bash
case "$*" in
  *"get values"*) cat "${STUB_DIR}/values.json" ;;
  *) echo "helm stub: unexpected $*" >&2; exit 9 ;;
esac
"""


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    for name, text in (("kubectl", KUBECTL), ("helm", HELM)):
        path = tmp_path / name
        path.write_text(text)
        path.chmod(0o755)
    (tmp_path / "values.json").write_text(json.dumps({
        "serving": {"mode": "deployment", "stable": {"modelVersion": 1},
                    "canary": {"enabled": True, "modelVersion": 2, "weight": 20}},
    }))
    (tmp_path / "client.rc").write_text("0")
    return tmp_path


def smoke(stubs: Path, *args: str, client_out: str, rc: int = 0) -> subprocess.CompletedProcess[str]:
    (stubs / "client.out").write_text(client_out)
    (stubs / "client.rc").write_text(str(rc))
    env = {**os.environ, "STUB_DIR": str(stubs), "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(REPO / "scripts" / "smoke.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def answers(**counts: int) -> str:
    return "".join(f"{version.lstrip('v')}\n" * n for version, n in counts.items())


def test_split_within_tolerance_passes_and_asks_for_a_restricted_client_pod(stubs: Path) -> None:
    result = smoke(stubs, "production", "split", "20", "100", client_out=answers(v1=78, v2=22))
    assert result.returncode == 0, result.stderr
    assert "22 % of 100 answers" in result.stderr
    spec = json.loads((stubs / "overrides.json").read_text())["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = spec["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["limits"]
    run = next(line for line in (stubs / "kubectl.log").read_text().splitlines() if " run " in line)
    # Through the Envoy Service of the route's Gateway, with the route's host name, warm-up on the canary version.
    assert "http://envoy-gateway-kube-sentiment-0123abcd.envoy-gateway-system.svc.cluster.local:80" in run
    assert "sentiment.example.com 100 2" in run


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"v1": 60, "v2": 40}, "canary share 40 % is not ~20 %"),
        ({"v1": 100}, "not both versions answered"),
        ({"v1": 80, "v2": 15}, "95 of 100 answers"),
        ({"v1": 80, "v2": 10, "v3": 10}, "90 of 100 answers"),
    ],
)
def test_split_failures_say_why(stubs: Path, counts: dict[str, int], message: str) -> None:
    result = smoke(stubs, "production", "split", "20", "100", client_out=answers(**counts))
    assert result.returncode == 1
    assert message in result.stderr


def test_split_fails_when_the_client_pod_fails(stubs: Path) -> None:
    result = smoke(stubs, "production", "split", "20", "100", client_out="", rc=1)
    assert result.returncode == 1 and "requests through the Gateway failed" in result.stderr


def test_only_one_version(stubs: Path) -> None:
    assert smoke(stubs, "production", "only", "1", "50", client_out=answers(v1=50)).returncode == 0
    wrong = smoke(stubs, "production", "only", "1", "50", client_out=answers(v1=49, v2=1))
    assert wrong.returncode == 1 and "1 of 50 answers did not come from version 1" in wrong.stderr


def _registry_answer(decision: str | None) -> str:
    tags = [{"key": "gate.reason", "value": "no production model yet"}]
    if decision:
        tags.append({"key": "gate.decision", "value": decision})
    return json.dumps({"model_version": {"name": "sentiment", "version": "2", "run_id": "r1", "tags": tags}})


def test_registry_checks_the_recorded_gate_decision(stubs: Path) -> None:
    ok = smoke(stubs, "staging", "registry", "promoted", client_out=_registry_answer("promoted"))
    assert ok.returncode == 0, ok.stderr
    assert "registered model sentiment version 2 (run r1): gate promoted" in ok.stdout
    refused = smoke(stubs, "staging", "registry", "promoted", client_out=_registry_answer("refused"))
    assert refused.returncode == 1 and "gate decision refused, expected promoted" in refused.stderr
    missing = smoke(stubs, "staging", "registry", client_out=_registry_answer(None))
    assert missing.returncode == 1 and "not recorded" in missing.stderr
    run = next(line for line in (stubs / "kubectl.log").read_text().splitlines() if " run " in line)
    assert "registered-models/alias?name=sentiment&alias=candidate" in run
