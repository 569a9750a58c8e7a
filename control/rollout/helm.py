"""The Kubernetes target of a rollout: the ``kube-sentiment`` Helm release of one environment (namespace).

* state: the release's values (``helm get values --all``: stable, canary and shadow versions and shares) and status
  (revision, and when it was deployed: the current step's start), the lock on the serving object;
* changes: ``scripts/canary.sh`` (``shadow``, ``start``, ``weight``, ``promote``, ``rollback``), the same path a
  person takes, each a ``helm upgrade --reuse-values`` (or ``helm rollback``) waited for;
* the lock: the annotation ``kube-sentiment/rollout`` on the serving object (the InferenceService in kserve mode,
  the stable Deployment in deployment mode), set with the object's resourceVersion (compare-and-set: two drivers
  cannot both take it); ``canary.sh`` refuses to change a release whose lock belongs to another version;
* decisions: a Kubernetes Event on the serving object;
* :class:`JobAnalyzer`: the analysis as a Job in the namespace (where the sink and Prometheus are reachable),
  rendered from the chart (``templates/rollout/analysis-job.yaml``) with the release's values.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from control.rollout.driver import Candidate, Lock, RolloutBusy, TargetState
from control.rollout.policy import Step
from model.errors import ConfigError, DataError, KubeSentimentError, UnavailableError

log = logging.getLogger(__name__)

LOCK_ANNOTATION = "kube-sentiment/rollout"
RELEASE = "kube-sentiment"


class CommandFailed(KubeSentimentError):
    """helm, kubectl or canary.sh failed (exit 1): the message carries its stderr."""


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as Helm and Kubernetes write it (nanoseconds allowed), in UTC."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:  # Python parses at most microseconds
        head, rest = text.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    moment = datetime.fromisoformat(text)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _get(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


@dataclass
class Kube:
    """Runs helm, kubectl and scripts/canary.sh against one namespace."""

    namespace: str
    chart: Path = Path("helm/kube-sentiment")
    canary_script: Path = Path("scripts/canary.sh")
    helm: str = "helm"
    kubectl: str = "kubectl"
    timeout: str = "10m"
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *argv: str, stdin: str | None = None, check: bool = True,
            timeout_s: float = 1800) -> subprocess.CompletedProcess[str]:
        """Run a command; ``CommandFailed`` with its stderr when it fails and ``check``."""
        try:
            result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout_s,
                                    env=os.environ | {"KS_TIMEOUT": self.timeout} | self.env, check=False)
        except FileNotFoundError as e:
            raise ConfigError(f"{argv[0]} is not installed or not on PATH: {e}") from e
        except subprocess.TimeoutExpired as e:
            raise UnavailableError(f"{' '.join(argv[:4])} ... did not finish within {timeout_s:.0f}s") from e
        if check and result.returncode != 0:
            raise CommandFailed(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
        return result

    def kubectl_json(self, *args: str) -> Any:
        """``kubectl -n <ns> <args> -o json``, parsed."""
        return json.loads(self.run(self.kubectl, "-n", self.namespace, *args, "-o", "json").stdout)

    def canary(self, *args: str) -> None:
        """``scripts/canary.sh <ns> <args>``; its output goes to the log."""
        result = self.run("bash", str(self.canary_script), self.namespace, *args)
        for line in (result.stderr + result.stdout).strip().splitlines()[-5:]:
            log.info("canary.sh: %s", line)


class HelmTarget:
    """The release ``kube-sentiment`` in namespace ``environment``."""

    def __init__(self, kube: Kube, version: str) -> None:
        """``version``: the candidate this driver rolls out (canary.sh lets it change a locked release)."""
        self.kube = kube
        self.environment = kube.namespace
        kube.env = kube.env | {"KS_ROLLOUT_VERSION": version}

    # --- reading ------------------------------------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """The release's computed values."""
        result = self.kube.run(self.kube.helm, "-n", self.environment, "get", "values", RELEASE, "--all", "-o",
                               "json", check=False)
        if result.returncode != 0:
            raise ConfigError(f"no release {RELEASE} in namespace {self.environment}: {result.stderr.strip()}")
        values: dict[str, Any] = json.loads(result.stdout)
        return values

    def serving_object(self, values: dict[str, Any]) -> str:
        """``inferenceservice/<name>`` (kserve mode) or ``deployment/<name>-stable`` (deployment mode)."""
        name = (values.get("fullnameOverride") or RELEASE)[:40].rstrip("-")
        if _get(values, "serving.mode") == "kserve":
            return f"inferenceservices.serving.kserve.io/{name}"
        return f"deployment/{name}-stable"

    def _object(self, values: dict[str, Any]) -> dict[str, Any]:
        obj: dict[str, Any] = self.kube.kubectl_json("get", self.serving_object(values))
        return obj

    def state(self) -> TargetState:
        """Versions and shares from the values, revision and step start from the status, the lock."""
        values = self.values()
        status = json.loads(self.kube.run(self.kube.helm, "-n", self.environment, "status", RELEASE, "-o",
                                          "json").stdout)
        if status["info"]["status"] != "deployed":
            raise UnavailableError(f"release {RELEASE} in {self.environment} is {status['info']['status']}; "
                                   "another helm operation runs or failed")
        annotation = (self._object(values)["metadata"].get("annotations") or {}).get(LOCK_ANNOTATION)
        lock = Lock.from_json(annotation) if annotation else None
        candidates = []
        if _get(values, "serving.canary.enabled"):
            candidates.append(Candidate(str(_get(values, "serving.canary.modelVersion")), "canary",
                                        int(_get(values, "serving.canary.weight"))))
        if _get(values, "serving.shadow.enabled"):
            candidates.append(Candidate(str(_get(values, "serving.shadow.modelVersion")), "shadow",
                                        int(_get(values, "serving.shadow.percent"))))
        ours = [c for c in candidates if lock is not None and c.version == lock.version]
        chosen = (ours or candidates)[0] if candidates else None
        return TargetState(str(_get(values, "serving.stable.modelVersion")), chosen, str(status["version"]),
                           parse_time(status["info"]["last_deployed"]), lock)

    # --- the lock -----------------------------------------------------------------------------------------------
    def acquire(self, lock: Lock) -> None:
        """Annotate the serving object, conditional on its resourceVersion (compare-and-set)."""
        values = self.values()
        obj = self._object(values)
        held = (obj["metadata"].get("annotations") or {}).get(LOCK_ANNOTATION)
        if held:
            raise RolloutBusy(f"a rollout holds {self.environment}: {held}")
        result = self.kube.run(self.kube.kubectl, "-n", self.environment, "annotate", self.serving_object(values),
                               f"{LOCK_ANNOTATION}={lock.to_json()}",
                               f"--resource-version={obj['metadata']['resourceVersion']}", check=False)
        if result.returncode != 0:
            if "modified" in result.stderr or "conflict" in result.stderr.lower():
                raise RolloutBusy(f"another driver changed {self.serving_object(values)} while this one took the "
                                  f"lock: {result.stderr.strip()}")
            raise CommandFailed(f"cannot lock {self.serving_object(values)}: {result.stderr.strip()}")

    def update_lock(self, lock: Lock) -> None:
        """Overwrite the annotation."""
        self.kube.run(self.kube.kubectl, "-n", self.environment, "annotate", "--overwrite",
                      self.serving_object(self.values()), f"{LOCK_ANNOTATION}={lock.to_json()}")

    def release(self) -> None:
        """Remove the annotation."""
        self.kube.run(self.kube.kubectl, "-n", self.environment, "annotate", self.serving_object(self.values()),
                      f"{LOCK_ANNOTATION}-")

    # --- changes ------------------------------------------------------------------------------------------------
    def apply(self, version: str, step: Step) -> None:
        """``canary.sh shadow`` / ``start`` / ``weight``."""
        values = self.values()
        if step.track == "shadow":
            self.kube.canary("shadow", version, str(step.percent))
        elif _get(values, "serving.canary.enabled") and str(_get(values, "serving.canary.modelVersion")) == version:
            self.kube.canary("weight", str(step.percent))
        else:
            self.kube.canary("start", version, str(step.percent))

    def promote(self, version: str) -> None:
        """``canary.sh promote``."""
        self.kube.canary("promote")

    def rollback(self, revision: str) -> None:
        """``canary.sh rollback <revision>``."""
        self.kube.canary("rollback", revision)

    def event(self, reason: str, message: str, warning: bool) -> None:
        """A core/v1 Event on the serving object (logged, not raised, when it cannot be written)."""
        try:
            values = self.values()
            obj = self._object(values)
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            event = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{obj['metadata']['name']}-rollout-", "namespace": self.environment},
                "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
                                   "name": obj["metadata"]["name"], "namespace": self.environment,
                                   "uid": obj["metadata"]["uid"]},
                "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
                "source": {"component": "kube-sentiment-rollout"}, "reportingComponent": "kube-sentiment-rollout",
                "reportingInstance": os.uname().nodename[:128], "firstTimestamp": now, "lastTimestamp": now,
                "count": 1, "action": "Rollout",
            }
            self.kube.run(self.kube.kubectl, "create", "-f", "-", stdin=json.dumps(event))
        except KubeSentimentError as e:
            log.warning("cannot record the Event %s (%s)", reason, e)


@dataclass
class JobAnalyzer:
    """``rollout analyze`` as a Job in the namespace, rendered from the chart with the release's values; its
    decision comes back in the pod's termination message (``--summary-file /dev/termination-log``)."""

    kube: Kube
    deadline_s: float = 900.0
    poll_s: float = 2.0

    def __call__(self, track: str, stable: str, candidate: str, start: datetime,
                 end: datetime) -> tuple[str, str, dict[str, Any]]:
        """Run one analysis; ``UnavailableError`` when the Job does not finish in time."""
        kube = self.kube
        values = HelmTarget(kube, candidate).values()
        name = f"{RELEASE}-analysis-{uuid.uuid4().hex[:8]}"
        args = ["rollout", "analyze", "--track", track, "--stable-version", stable, "--candidate-version", candidate,
                "--start", start.isoformat(), "--end", end.isoformat(), "--environment", kube.namespace,
                "--summary-file", "/dev/termination-log", "--json-logs"]
        with tempfile.TemporaryDirectory() as tmp:
            values_file = Path(tmp) / "values.json"
            values_file.write_text(json.dumps(values))
            manifest = kube.run(kube.helm, "template", RELEASE, str(kube.chart), "-n", kube.namespace, "-f",
                                str(values_file), "--set-json",
                                f"rollout.analysisRun={json.dumps({'name': name, 'args': args})}",
                                "--show-only", "templates/rollout/analysis-job.yaml").stdout
        kube.run(kube.kubectl, "-n", kube.namespace, "create", "-f", "-", stdin=manifest)
        try:
            return self._wait(name)
        finally:
            kube.run(kube.kubectl, "-n", kube.namespace, "delete", "job", name, "--wait=false",
                     "--cascade=background", check=False)

    def _wait(self, name: str) -> tuple[str, str, dict[str, Any]]:
        give_up = time.monotonic() + self.deadline_s
        while time.monotonic() < give_up:
            pods = self.kube.kubectl_json("get", "pods", "-l", f"job-name={name}")["items"]
            for pod in pods:
                for status in pod.get("status", {}).get("containerStatuses", []):
                    done = status.get("state", {}).get("terminated")
                    if done is not None:
                        return self._result(name, done)
            time.sleep(self.poll_s)  # poll interval of a deadline-bounded wait
        raise UnavailableError(f"analysis Job {name} did not finish within {self.deadline_s:.0f}s")

    @staticmethod
    def _result(name: str, terminated: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        code = int(terminated.get("exitCode", 1))
        message = terminated.get("message") or ""
        try:
            summary = json.loads(message)
        except ValueError:
            raise DataError(f"analysis Job {name} exited {code} without a decision: {message[-500:]}") from None
        if summary.get("exit_code") != code:
            raise DataError(f"analysis Job {name} exited {code} but its summary says {summary.get('exit_code')}")
        return summary["decision"], summary["reason"], summary
