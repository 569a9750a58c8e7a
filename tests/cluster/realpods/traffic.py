"""Continuous, bounded client traffic through the Gateway, from the test process: V1 REST over HTTP and V2 ModelInfer
over gRPC, every answer counted by outcome and by the model version that served it.

Used by the real-pods tier while releases change (canary start, promote, roll back, rolling updates): the figure
that matters is the number of requests that did not get a 2xx (or gRPC OK) answer. Every loop stops on ``stop()``,
after ``max_seconds``, or after ``max_requests`` per worker, whichever comes first; requests go only to the Gateway
address given (the node's bridge address).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as rpc

TEXT = "I love this product, it works great"


@dataclass
class Tally:
    """Outcomes of one protocol's requests."""

    sent: int = 0
    ok: int = 0
    failed: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    #: The first failures, with what was seen (status and body, or the error).
    failures: list[str] = field(default_factory=list)
    #: x-request-id of every request answered 2xx (HTTP, when the traffic tags its requests).
    acknowledged: list[str] = field(default_factory=list)
    #: Failures per second of the clock (HH:MM:SS): when they happened.
    failure_seconds: Counter[str] = field(default_factory=Counter)

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.sent} sent, {self.ok} ok, {self.failed} failed (non-2xx or errors), "
            f"versions {dict(self.versions)}"
        )


class Traffic:
    """Start with ``start()``; ``stop()`` returns the tallies (``"http"``, ``"grpc"``)."""

    def __init__(
        self,
        http_url: str,
        http_host: str,
        grpc_target: str | None = None,
        grpc_authority: str | None = None,
        *,
        model: str = "sentiment",
        http_workers: int = 2,
        grpc_workers: int = 1,
        pause_s: float = 0.02,
        max_seconds: float = 1800,
        max_requests: int = 200_000,
        request_ids: str | None = None,
    ) -> None:
        self.http_url, self.http_host = http_url.rstrip("/"), http_host
        self.grpc_target, self.grpc_authority = grpc_target, grpc_authority
        self.model = model
        self.pause_s, self.max_seconds, self.max_requests = pause_s, max_seconds, max_requests
        self.request_ids = request_ids
        self.tallies = {"http": Tally(), "grpc": Tally()}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._http, args=(i,), daemon=True) for i in range(http_workers)]
        if grpc_target:
            self._threads += [threading.Thread(target=self._grpc, daemon=True) for _ in range(grpc_workers)]
        self._deadline = 0.0

    def start(self) -> Traffic:
        self._deadline = time.monotonic() + self.max_seconds
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> dict[str, Tally]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.snapshot()

    def snapshot(self) -> dict[str, Tally]:
        with self._lock:
            return {
                k: Tally(
                    t.sent,
                    t.ok,
                    t.failed,
                    Counter(t.versions),
                    list(t.failures),
                    list(t.acknowledged),
                    Counter(t.failure_seconds),
                )
                for k, t in self.tallies.items()
            }

    def _running(self, sent: int) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline and sent < self.max_requests

    def _record(self, protocol: str, ok: bool, version: str = "", failure: str = "", request_id: str = "") -> None:
        with self._lock:
            tally = self.tallies[protocol]
            tally.sent += 1
            if ok:
                tally.ok += 1
                tally.versions[version] += 1
                if request_id:
                    tally.acknowledged.append(request_id)
            else:
                tally.failed += 1
                tally.failure_seconds[time.strftime("%X")] += 1
                if len(tally.failures) < 20:
                    tally.failures.append(failure)

    def _http(self, worker: int) -> None:
        url = f"{self.http_url}/v1/models/{self.model}:predict"
        body = {"instances": [TEXT]}
        sent = 0
        with httpx.Client(timeout=30, headers={"Host": self.http_host}) as client:
            while self._running(sent):
                sent += 1
                request_id = f"{self.request_ids}-{worker}-{sent}" if self.request_ids else ""
                headers = {"x-request-id": request_id} if request_id else {}
                try:
                    response = client.post(url, json=body, headers=headers)
                except httpx.HTTPError as error:
                    self._record("http", False, failure=f"{time.strftime('%X')} {type(error).__name__}: {error}")
                else:
                    if 200 <= response.status_code < 300:
                        self._record("http", True, str(response.json().get("model_version", "")), request_id=request_id)
                    else:
                        failure = f"{time.strftime('%X')} HTTP {response.status_code}: {response.text[:200]}"
                        self._record("http", False, failure=failure)
                self._stop.wait(self.pause_s)

    def _grpc(self) -> None:
        assert self.grpc_target is not None
        options = [("grpc.default_authority", self.grpc_authority)] if self.grpc_authority else []
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[TEXT.encode()])
        )
        request = pb.ModelInferRequest(model_name=self.model, inputs=[tensor])
        sent = 0
        with grpc.insecure_channel(self.grpc_target, options=options) as channel:
            stub = rpc.GRPCInferenceServiceStub(channel)
            while self._running(sent):
                sent += 1
                try:
                    answer = stub.ModelInfer(request, timeout=30)
                except grpc.RpcError as error:
                    self._record("grpc", False, failure=f"{time.strftime('%X')} {error.code()}: {error.details()}")
                else:
                    self._record("grpc", True, answer.model_version)
                self._stop.wait(self.pause_s)
