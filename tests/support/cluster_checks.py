"""Checks of a deployed kube-sentiment, made from inside the cluster: short-lived client pods in the release's
namespace (a curl image for HTTP, the kube-sentiment image for gRPC, whose KServe stubs it ships) so every call takes
the network path (Service DNS, the Gateway, NetworkPolicies) of a real client.

One home for what ``scripts/smoke.sh`` checks (through ``tests/e2e/test_smoke.py``, on kind or any cluster) and what
the real-pods tier (``tests/cluster/realpods``) checks on the node it starts. Every check raises ``CheckFailed``
with what was seen; none sleeps (waits are ``kubectl wait``, request loops that stop at the first expected answer,
or polls with deadlines).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RELEASE = "kube-sentiment"
MODEL = "sentiment"
TEXT = "I love this product, it works great"
#: Exit codes of the drift job that are verdicts with a report: 0 no drift, 3 drift, 4 insufficient data.
DRIFT_VERDICTS = (0, 3, 4)
#: Default z of the canary share check: a correct 20 % split fails it with probability ~6e-5.
SPLIT_Z = 4.0

#: The gRPC call (V2 ModelInfer with a BYTES input), run by the kube-sentiment image's Python in a client pod.
GRPC_CALL = """
import sys

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as rpc

target, model, text = sys.argv[1:4]
with grpc.insecure_channel(target) as channel:
    grpc.channel_ready_future(channel).result(timeout=60)
    stub = rpc.GRPCInferenceServiceStub(channel)
    if not stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=10).ready:
        sys.exit(f"gRPC {target}: model {model} is not ready")
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[text.encode()])
    )
    answer = stub.ModelInfer(pb.ModelInferRequest(model_name=model, inputs=[tensor]), timeout=30)
    if not answer.outputs:
        sys.exit(f"gRPC {target}: no outputs in {answer}")
    print(f"gRPC {target}: model {answer.model_name} version {answer.model_version} outputs",
          [o.name for o in answer.outputs])
"""

#: n V1 answers' model_version through the Gateway, one a line, counted after the first answer from version
#: <first> (at most 60 tries): the route's new weights are live from there on. POSIX sh + curl.
VERSION_LOOP = r"""
url="$1" host="$2" n="$3" first="$4" body="$5"
ask() {
  curl -fsS -w '\n' --max-time 10 --retry 5 --retry-all-errors --retry-delay 1 -H "Host: ${host}" \
    -H 'Content-Type: application/json' -d "${body}" "${url}/v1/models/sentiment:predict" |
    sed -n 's/.*"model_version": *"\{0,1\}\([^",}]*\).*/\1/p'
}
i=0
until [ "$(ask)" = "${first}" ]; do
  i=$((i + 1))
  [ "${i}" -lt 60 ] || { echo "no answer from version ${first} in 60 requests" >&2; exit 1; }
done
i=0
while [ "${i}" -lt "${n}" ]; do ask; i=$((i + 1)); done
"""

#: The in-pod traffic loop of ``Release.traffic``: the V1 request bodies given, through the Gateway, back to back,
#: forever (a failed request is skipped). POSIX sh + curl.
TRAFFIC_LOOP = r"""
url="$1" host="$2"
shift 2
while :; do
  for body in "$@"; do
    curl -sS -o /dev/null --max-time 10 -H "Host: ${host}" -H 'Content-Type: application/json' -d "${body}" \
      "${url}/v1/models/sentiment:predict" || true
  done
done
"""
#: Varied texts (positive, negative, neutral) for live traffic: the class mix an automatic rollout compares. Their
#: number (and so the loop's cycle of request bodies) is prime: a Gateway that splits by deterministic weighted round
#: robin (Traefik) has a period that divides 100, and a cycle sharing a factor with it phase-locks, sending some
#: texts mostly to one track. The tracks then see different inputs, and a canary identical to the stable one fails
#: the class-mix and confidence checks (seen on real pods: 3:1 text skews at 50 %, confidence KS 0.21).
TRAFFIC_TEXTS = (
    "I love this, thank you so much", "worst flight ever, two hours late", "the meeting is at noon",
    "great service and friendly crew", "my bag is lost and nobody answers", "what time does the gate open",
    "thanks for the upgrade, amazing", "cancelled again, this is ridiculous", "flying to Boston tomorrow",
    "best customer support I have had", "the seat was broken and dirty", "is there wifi on this plane",
    "really happy with the new app", "rude staff at the counter today", "the flight number changed",
    "smooth landing, well done", "still waiting for a refund", "I will check in online tonight",
    "the new terminal opens in spring",
)
#: Name (and label value) of the traffic Deployment.
TRAFFIC = "ks-traffic"
#: The ``source`` of the Kubernetes Events ``kube-sentiment rollout run`` writes.
ROLLOUT_EVENT_SOURCE = "kube-sentiment-rollout"



class CheckFailed(AssertionError):
    """A check saw something wrong; the message says what."""


def _versions_env() -> dict[str, str]:
    lines = (REPO / "k8s" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))


def app_version() -> str:
    """appVersion of helm/kube-sentiment (the default image tag)."""
    text = (REPO / "helm" / "kube-sentiment" / "Chart.yaml").read_text()
    match = re.search(r'^appVersion:\s*"?([^"\n]+)"?\s*$', text, flags=re.M)
    if not match:
        raise CheckFailed("helm/kube-sentiment/Chart.yaml has no appVersion")
    return match.group(1)


def binomial_tolerance(n: int, weight_percent: float, z: float = SPLIT_Z) -> float:
    """Allowed |canary answers - expected| for n requests at ``weight_percent``: z standard deviations."""
    p = weight_percent / 100
    return z * math.sqrt(n * p * (1 - p))


def split_verdict(counts: Mapping[str, int], stable: str, canary: str, weight: float, z: float = SPLIT_Z) -> str:
    """Judge a measured split; return a one-line summary or raise ``CheckFailed``."""
    n = sum(counts.values())
    other = {v: c for v, c in counts.items() if v not in (stable, canary)}
    if other:
        raise CheckFailed(f"answers from versions other than {stable} and {canary}: {other}")
    got = counts.get(canary, 0)
    if not 0 < got < n:
        raise CheckFailed(f"not both versions answered: {dict(counts)}")
    expected, tolerance = n * weight / 100, binomial_tolerance(n, weight, z)
    summary = (
        f"canary version {canary}: {got} of {n} answers ({100 * got / n:.1f} %, weight {weight:g} %, "
        f"expected {expected:.0f} ± {tolerance:.0f} = {z:g} binomial standard deviations)"
    )
    if abs(got - expected) > tolerance:
        raise CheckFailed(summary)
    return summary


@dataclass
class Release:
    """A kube-sentiment release to check, and how to reach the cluster (kubectl and helm on ``env``'s PATH)."""

    namespace: str
    release: str = RELEASE
    env: Mapping[str, str] | None = None
    client_image: str = ""
    app_image: str = ""
    mlflow_url: str = "http://mlflow.mlflow.svc.cluster.local:5000"
    log: Callable[[str], None] = field(default=lambda line: print(f"[checks] {line}", file=sys.stderr, flush=True))

    def __post_init__(self) -> None:
        env = os.environ if self.env is None else self.env
        self.client_image = self.client_image or env.get("KS_CLIENT_IMAGE") or _versions_env()["CURL_IMAGE"]
        self.app_image = self.app_image or env.get("KS_IMAGE") or f"kube-sentiment:{app_version()}"
        self.mlflow_url = env.get("KS_MLFLOW_URL", self.mlflow_url)

    # -- plumbing --------------------------------------------------------------------------------------------------
    def run(self, *argv: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ if self.env is None else self.env)
        result = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise CheckFailed(
                f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        return result

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", "-n", self.namespace, *args, timeout=timeout, check=check)

    def get(self, kind: str, name: str | None = None, *, selector: str | None = None) -> Any:
        """One object (or a list's items with ``selector``) as parsed JSON; None when the object does not exist."""
        args = ["get", kind] + ([name] if name else []) + (["-l", selector] if selector else []) + ["-o", "json"]
        result = self.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "the server doesn't have a resource type" in result.stderr:
                return None
            raise CheckFailed(f"kubectl get {kind} {name or selector}: {result.stderr.strip()}")
        data = json.loads(result.stdout)
        return data["items"] if name is None else data

    def values(self) -> dict[str, Any]:
        """The release's computed values (``helm get values --all``)."""
        out = self.run("helm", "-n", self.namespace, "get", "values", self.release, "--all", "-o", "json").stdout
        return json.loads(out)

    def value(self, dotted: str) -> Any:
        v: Any = self.values()
        for key in dotted.split("."):
            v = v.get(key) if isinstance(v, dict) else None
        return v

    @property
    def kserve(self) -> bool:
        return self.get("inferenceservices.serving.kserve.io", self.release) is not None

    # -- client pods -----------------------------------------------------------------------------------------------
    def client(self, image: str, *command: str, volume: tuple[str, str] | None = None, timeout: float = 600) -> str:
        """Run ``command`` in a one-shot pod (restricted Pod Security) in the namespace; return its output, or
        raise with the output when it exits non-zero. ``volume`` = (claim, mount path) mounts a PVC read-only."""
        name = f"ks-check-{secrets.token_hex(4)}"
        pod = client_pod(name, image, list(command), volume)
        created = subprocess.run(
            ["kubectl", "-n", self.namespace, "create", "-f", "-"],
            input=json.dumps(pod),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=dict(os.environ if self.env is None else self.env),
        )
        if created.returncode != 0:
            raise CheckFailed(f"cannot create client pod: {created.stderr.strip()}")
        try:
            deadline = time.monotonic() + timeout
            phase = ""
            while time.monotonic() < deadline:
                status = self.get("pod", name) or {}
                phase = status.get("status", {}).get("phase", "")
                if phase in ("Succeeded", "Failed"):
                    break
                self.kubectl(
                    "wait",
                    f"pod/{name}",
                    "--for=jsonpath={.status.phase}=Succeeded",
                    "--timeout=5s",
                    check=False,
                    timeout=30,
                )
            logs = self.kubectl("logs", name, check=False).stdout
            if phase != "Succeeded":
                raise CheckFailed(
                    f"client pod {name} ({image} {' '.join(command[:3])}...) ended {phase or 'never'}:\n{logs[-3000:]}"
                )
            return logs
        finally:
            self.kubectl("delete", "pod", name, "--wait=false", "--ignore-not-found", check=False)

    def curl(self, *args: str) -> str:
        return self.client(
            self.client_image, "curl", "-fsS", "--max-time", "30", "--retry", "5", "--retry-connrefused", *args
        )

    # -- endpoints -------------------------------------------------------------------------------------------------
    def tracks(self) -> list[tuple[str, str, str]]:
        """(track, http host:port, gRPC host:port) of every running track, from the Services themselves."""
        found = []
        kserve = self.kserve
        for track in ("stable", "canary"):
            if kserve:
                # KServe names a canary predictor's Service <isvc>-<predictor name>-predictor (the chart: "canary").
                svc = f"{self.release}-predictor" if track == "stable" else f"{self.release}-canary-predictor"
            else:
                svc = f"{self.release}-{track}"
            service = self.get("service", svc)
            if service is None:
                continue
            ports = service["spec"]["ports"]
            http = next((p["port"] for p in ports if p.get("name") == "http"), ports[0]["port"])
            grpc_port = next((p["port"] for p in ports if p.get("name") == "grpc"), None)
            host = f"{svc}.{self.namespace}.svc.cluster.local"
            if grpc_port is not None:
                grpc = f"{host}:{grpc_port}"
            else:
                # KServe names the predictor Service's ports itself (no gRPC port): a ready pod, on the server's port.
                slices = self.get("endpointslices", selector=f"kubernetes.io/service-name={svc}") or []
                ready = [
                    a
                    for s in slices
                    for e in s.get("endpoints", [])
                    if e.get("conditions", {}).get("ready")
                    for a in e["addresses"]
                ]
                if not ready:
                    raise CheckFailed(f"no ready endpoint behind Service {svc}")
                grpc = f"{ready[0]}:{self.value('serving.ports.grpc')}"
            found.append((track, f"{host}:{http}", grpc))
        if not found:
            raise CheckFailed(f"no serving Service of {self.release} in {self.namespace}")
        return found

    def gateway(self) -> tuple[str, str]:
        """(base URL, Host header) of the HTTP entry point that splits traffic between the tracks: the Gateway's
        own address (status.addresses) and listener port, or Envoy Gateway's Service where it publishes none."""
        if self.kserve:
            self.kubectl(
                "wait",
                # Not --for=condition=Ready: KServe v0.20's status.observedGeneration is the stable Deployment's
                # (scripts/lib.sh wait_kserve), so the condition wait hangs after a canary weight change.
                "--for=jsonpath={.status.conditions[?(@.type=='Ready')].status}=True",
                f"inferenceservices.serving.kserve.io/{self.release}",
                "--timeout=10m",
                timeout=620,
            )
        # The chart's own routes weigh the tracks (both modes); KServe's routes (owned by the InferenceService,
        # carrying its labels) reach its stable predictor only.
        routes = [
            r
            for r in self.get(
                "httproutes.gateway.networking.k8s.io", selector=f"app.kubernetes.io/instance={self.release}"
            )
            or []
            if not r["metadata"].get("ownerReferences")
        ]
        if routes:
            route = routes[0]
            accepted = [
                c
                for p in route.get("status", {}).get("parents", [])
                for c in p.get("conditions", [])
                if c["type"] == "Accepted" and c["status"] == "True"
            ]
            if not accepted:
                self.log(f"warning: HTTPRoute {route['metadata']['name']} is not Accepted yet: {route.get('status')}")
            host = (route["spec"].get("hostnames") or ["kube-sentiment.local"])[0]
            parent = route["spec"]["parentRefs"][0]
            gw_ns, gw_name, listener = (
                parent.get("namespace", self.namespace),
                parent["name"],
                parent.get("sectionName"),
            )
        elif self.kserve:
            url = self.get("inferenceservices.serving.kserve.io", self.release)["status"]["url"]
            host = url.split("://", 1)[1].split("/", 1)[0]
            gw_ns, gw_name, listener = "kserve", "kserve-ingress-gateway", None
        else:
            raise CheckFailed(f"no HTTPRoute of {self.release} in {self.namespace}")
        gateway = Release(gw_ns, env=self.env).get("gateways.gateway.networking.k8s.io", gw_name)
        if gateway is None:
            raise CheckFailed(f"Gateway {gw_ns}/{gw_name} does not exist")
        port = next(
            (
                lst["port"]
                for lst in gateway["spec"]["listeners"]
                if lst["protocol"] == "HTTP" and (listener is None or lst["name"] == listener)
            ),
            80,
        )
        addresses = gateway.get("status", {}).get("addresses", [])
        if addresses:
            return f"http://{addresses[0]['value']}:{port}", host
        services = Release("envoy-gateway-system", env=self.env).get(
            "services",
            selector=f"gateway.envoyproxy.io/owning-gateway-name={gw_name},"
            f"gateway.envoyproxy.io/owning-gateway-namespace={gw_ns}",
        )
        if not services:
            raise CheckFailed(f"Gateway {gw_ns}/{gw_name} has no address and no Envoy Service")
        return f"http://{services[0]['metadata']['name']}.envoy-gateway-system.svc.cluster.local:{port}", host

    # -- checks ----------------------------------------------------------------------------------------------------
    def helm_test(self) -> str:
        out = self.run(
            "helm", "test", self.release, "--namespace", self.namespace, "--logs", "--timeout", "5m", timeout=400
        ).stdout
        self.log(f"{self.namespace}: helm test {self.release} passed")
        return out

    def calls(self) -> list[str]:
        """``helm test``, then V1 and V2 REST and V2 gRPC from client pods on every track, by Service DNS."""
        self.helm_test()
        lines = []
        for track, http, grpc in self.tracks():
            self.log(f"{self.namespace}/{track}: HTTP {http}, gRPC {grpc}")
            out = self.curl(
                "-H",
                "Content-Type: application/json",
                "-d",
                json.dumps({"instances": [TEXT]}),
                f"http://{http}/v1/models/{MODEL}:predict",
            )
            if '"predictions"' not in out:
                raise CheckFailed(f"{track}: V1 answer has no predictions: {out}")
            lines.append(f"V1 {track} {out.strip()}")
            body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [TEXT]}]}
            out = self.curl(
                "-H", "Content-Type: application/json", "-d", json.dumps(body), f"http://{http}/v2/models/{MODEL}/infer"
            )
            if '"outputs"' not in out:
                raise CheckFailed(f"{track}: V2 answer has no outputs: {out}")
            lines.append(f"V2 {track} {out.strip()}")
            out = self.client(self.app_image, "python", "-c", GRPC_CALL, grpc, MODEL, TEXT)
            lines.append(f"gRPC {track} {out.strip()}")
        for line in lines:
            self.log(line)
        return lines

    def served_versions(self, n: int, first: str) -> list[str]:
        """n V1 answers' versions through the Gateway, counted from the first answer by version ``first``."""
        url, host = self.gateway()
        self.log(f"{self.namespace}: {n} requests through {url} (Host: {host})")
        out = self.client(
            self.client_image,
            "sh",
            "-ec",
            VERSION_LOOP,
            "versions",
            url,
            host,
            str(n),
            first,
            json.dumps({"instances": [TEXT]}),
            timeout=max(600, n),
        )
        answers = [line.strip() for line in out.splitlines() if line.strip()]
        if len(answers) != n:
            raise CheckFailed(f"{len(answers)} of {n} requests through the Gateway were answered:\n{out[-2000:]}")
        return answers

    def split(self, weight: float, n: int = 1000, z: float = SPLIT_Z) -> str:
        """n requests through the Gateway: both versions answer and the canary's share is within z binomial
        standard deviations of ``weight`` %."""
        values = self.values()
        if not values["serving"]["canary"]["enabled"]:
            raise CheckFailed(f"no canary runs in {self.namespace}")
        stable, canary = (
            str(values["serving"]["stable"]["modelVersion"]),
            str(values["serving"]["canary"]["modelVersion"]),
        )
        counts = Counter(self.served_versions(n, canary))
        summary = split_verdict(counts, stable, canary, weight, z)
        self.log(summary)
        return summary

    def settle(self, timeout: float = 180) -> None:
        """Wait until no serving pod of the release is terminating: a pod that was told to stop keeps answering
        while it drains (preStop), so what answers is only settled once those pods are gone."""
        selectors = (
            f"app.kubernetes.io/instance={self.release},app.kubernetes.io/component=serving",
            f"serving.kserve.io/inferenceservice={self.release}",
        )
        deadline = time.monotonic() + timeout
        while True:
            terminating = [
                p["metadata"]["name"]
                for sel in selectors
                for p in self.get("pods", selector=sel) or []
                if p["metadata"].get("deletionTimestamp")
            ]
            if not terminating:
                return
            if time.monotonic() >= deadline:
                raise CheckFailed(f"pods still terminating after {timeout:.0f}s: {terminating}")
            time.sleep(1)

    def only(self, version: str, n: int = 50) -> None:
        """Once the release has settled, n answers through the Gateway, all from ``version``."""
        self.settle()
        counts = Counter(self.served_versions(n, version))
        if set(counts) != {version}:
            raise CheckFailed(f"answers not all from version {version}: {dict(counts)}")
        self.log(f"all {n} answers came from version {version}")

    def registry(self, decision: str | None = None) -> dict[str, str]:
        """MLflow holds a version behind the ``candidate`` alias with the gate's decision recorded on it."""
        out = self.curl(f"{self.mlflow_url}/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=candidate")
        version = json.loads(out)["model_version"]
        tags = {t["key"]: t["value"] for t in version.get("tags", [])}
        found = {
            "version": str(version["version"]),
            "run": version.get("run_id", ""),
            "decision": tags.get("gate.decision", ""),
            "reason": tags.get("gate.reason", ""),
        }
        self.log(
            f"registered model {MODEL} version {found['version']} (run {found['run']}): gate "
            f"{found['decision']}: {found['reason']}"
        )
        if not found["decision"]:
            raise CheckFailed("the gate decision is not recorded on the candidate version")
        if decision and found["decision"] != decision:
            raise CheckFailed(f"gate decision {found['decision']}, expected {decision}")
        return found

    def wait_job(self, job: str, timeout: float = 900) -> str:
        """Wait until the Job is Complete or Failed (polled with a deadline); return which."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conditions = (self.get("job", job) or {}).get("status", {}).get("conditions", [])
            done = [c["type"] for c in conditions if c["status"] == "True" and c["type"] in ("Complete", "Failed")]
            if done:
                return done[0]
            self.kubectl("wait", f"job/{job}", "--for=condition=Complete", "--timeout=10s", check=False, timeout=30)
        raise CheckFailed(f"job {job} did not finish within {timeout:.0f}s")

    def drift(self) -> dict[str, Any]:
        """A Job from the drift CronJob ends with a verdict (exit 0, 3 or 4) and writes its report."""
        job = f"drift-check-{int(time.time())}"
        self.kubectl("create", "job", f"--from=cronjob/{self.release}-drift", job)
        state = self.wait_job(job)
        pods = self.get("pods", selector=f"job-name={job}") or []
        codes = [
            s["state"]["terminated"]["exitCode"]
            for p in pods
            for s in p["status"].get("containerStatuses", [])
            if s["name"] == "drift" and "terminated" in s.get("state", {})
        ]
        out = self.kubectl("logs", f"job/{job}", "-c", "drift", "--tail=200", check=False).stdout
        code = codes[-1] if codes else None
        self.log(f"drift job {job}: {state}, exit {code}\n" + "\n".join(out.splitlines()[-10:]))
        if code not in DRIFT_VERDICTS:
            raise CheckFailed(f"drift job ended with exit {code} ({state}):\n{out[-3000:]}")
        # The job prints a JSON summary on stdout: {"verdict": ..., "report_html": "<path>", ...}.
        match = re.findall(r'"report_html":\s*"([^"]+)"', out)
        if not match:
            raise CheckFailed(f"the drift job printed no report path:\n{out[-3000:]}")
        report_path = match[-1].strip()
        result: dict[str, Any] = {"job": job, "exit_code": code, "report": report_path}
        values = self.values()
        if values["shipper"]["sink"]["type"] == "pvc":
            claim = values["shipper"]["sink"]["pvc"]["existingClaim"] or f"{self.release}-sink"
            report_json = f"{report_path.rsplit('/', 1)[0]}/report.json"
            text = self.client(
                self.client_image, "cat", report_json, volume=(claim, values["shipper"]["sink"]["pvc"]["mountPath"])
            )
            report = json.loads(text)
            if "groups" not in report:
                raise CheckFailed(f"{report_json} has no groups: {text[:600]}")
            result["groups"] = report["groups"]
            self.log(f"report {report_json}: {sum(g.get('n', 0) for g in report['groups'])} events judged")
        else:
            self.log(f"report {report_path} is in the MLflow artefact store (drift.logToMlflow)")
        return result

    def traffic(self, action: str) -> None:
        """``start``: a Deployment in the namespace sending varied V1 requests through the Gateway back to back (the
        live traffic an automatic rollout judges), waited for until it runs; ``stop``: delete it."""
        if action == "stop":
            self.kubectl("delete", "deployment", TRAFFIC, "--ignore-not-found", "--wait=false")
            return
        if action != "start":
            raise ValueError(f"traffic: start or stop, not {action!r}")
        url, host = self.gateway()
        self.log(f"{self.namespace}: traffic through {url} (Host: {host}) from deployment/{TRAFFIC}")
        n = len(TRAFFIC_TEXTS)
        bodies = [json.dumps({"instances": [TRAFFIC_TEXTS[(i + k) % n] for k in (0, 5, 11, 13)]}) for i in range(n)]
        pod = client_pod(TRAFFIC, self.client_image, ["sh", "-ec", TRAFFIC_LOOP, "traffic", url, host, *bodies])
        spec = pod["spec"]
        del spec["restartPolicy"]  # a Deployment's pods restart Always
        spec["containers"][0]["resources"]["limits"]["memory"] = "64Mi"
        labels = {"app.kubernetes.io/name": "kube-sentiment-traffic"}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": TRAFFIC, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}},
        }
        applied = subprocess.run(
            ["kubectl", "-n", self.namespace, "apply", "-f", "-"], input=json.dumps(deployment), capture_output=True,
            text=True, timeout=60, check=False, env=dict(os.environ if self.env is None else self.env),
        )
        if applied.returncode != 0:
            raise CheckFailed(f"cannot create deployment/{TRAFFIC}: {applied.stderr.strip()}")
        self.kubectl("rollout", "status", f"deployment/{TRAFFIC}", "--timeout=5m", timeout=320)

    def rollout(self, version: str, decision: str) -> dict[str, str]:
        """The last rollout of ``version`` in this environment is recorded: MLflow's ``rollout.<env>.*`` tags on the
        version, with ``decision`` as its decision, and ``kube-sentiment rollout`` Events in the namespace."""
        out = self.curl(f"{self.mlflow_url}/api/2.0/mlflow/model-versions/get?name={MODEL}&version={version}")
        tags = {t["key"]: t["value"] for t in json.loads(out)["model_version"].get("tags", [])}
        prefix = f"rollout.{self.namespace}."
        mine = {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}
        self.log(f"version {version}: " + ", ".join(f"{k}={v[:120]}" for k, v in sorted(mine.items())))
        if mine.get("decision") != decision:
            raise CheckFailed(f"rollout decision of version {version} is {mine.get('decision')}, expected {decision}")
        events = [e for e in self.get("events") or [] if e.get("source", {}).get("component") == ROLLOUT_EVENT_SOURCE
                  or e.get("reportingComponent") == ROLLOUT_EVENT_SOURCE]
        if not events:
            raise CheckFailed(f"no Events from {ROLLOUT_EVENT_SOURCE} in {self.namespace}")
        for e in events[-10:]:
            self.log(f"event {e.get('lastTimestamp') or e.get('eventTime')} {e['type']} {e['reason']}: {e['message']}")
        return mine



def client_pod(name: str, image: str, command: list[str], volume: tuple[str, str] | None = None) -> dict[str, Any]:
    """A one-shot client pod that passes the restricted Pod Security Standard (non-root, no privilege escalation,
    no capabilities, RuntimeDefault seccomp, no service account token), with bounded resources; ``volume`` =
    (claim, mount path) mounts a PersistentVolumeClaim read-only."""
    container: dict[str, Any] = {
        "name": "client",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if volume:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": volume[0], "readOnly": True}}]
        container["volumeMounts"] = [{"name": "data", "mountPath": volume[1], "readOnly": True}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "kube-sentiment-smoke"}},
        "spec": spec,
    }


def mlflow_helm_test(env: Mapping[str, str] | None = None) -> str:
    """``helm test`` of the MLflow release (namespace mlflow)."""
    return Release("mlflow", release="mlflow", env=env).helm_test()
