"""The KServe model: V1 and V2 (REST and gRPC) inference over the trained TF-IDF + linear pipeline.

One :class:`SentimentModel` per process. ``load()`` resolves the one artefact named by the settings, builds the
inference path (:mod:`serving.fastpath`, exact against sklearn or not used), checks it on a warm-up batch and only
then sets ``ready``. Requests go through :meth:`SentimentModel.__call__` (KServe's ``InferenceModel`` entry point):
validate -> micro-batch (:mod:`serving.batching`) -> response, then metrics and a prediction event. The model never
sees HTTP: it raises the typed errors of :mod:`serving.errors`, which KServe maps to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from cloudevents.sdk.converters.util import has_binary_headers
from kserve import Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.model import InferenceVerb
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import CollectorRegistry

from model.artifacts import ModelBundle, load_model_dir
from model.errors import ModelArtifactError
from serving import kernels
from serving.batching import MicroBatcher
from serving.emitter import EventContext, EventEmitter
from serving.errors import BadInput, ModelLoadError, NotReady, UnknownVersion, status_of
from serving.eventlog.journal import JournalWriter
from serving.explain import Explainer
from serving.fastpath import TABLES_FILE, WARMUP_TEXTS, FastPath, ProbaFn, Warmup, build_proba_fn
from serving.loader import load as load_artefact
from serving.metrics import ServingMetrics
from serving.mirror import Mirror
from serving.settings import ServeSettings

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

INPUT_NAME = "text"
LABEL_OUTPUT = "label"
PROBA_OUTPUT = "probabilities"
ID_OUTPUT = "id"
#: Response header carrying the request id; each text's prediction id is ``<request id>:<index>``.
REQUEST_ID_HEADER = "x-request-id"
PLATFORM = "kube-sentiment/sklearn"
JSON_CONTENT_TYPES = frozenset(
    # what V1 accepts as JSON: KServe's JSON types, any parameters, no type at all, and curl's default
    ("application/json", "application/cloudevents+json", "application/ld+json", "application/octet-stream", "",
     "application/x-www-form-urlencoded")
)
_JSON_TYPE = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean", type(None): "null", bytes: "bytes"}


def _json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _is_cloudevent(headers: dict[str, str] | None) -> bool:
    """A CloudEvents request, by the test KServe's data plane applies (binary-mode headers or the structured content
    type): KServe answers it in kind."""
    if not headers:
        return False
    return has_binary_headers(headers) or headers.get("content-type", "") == "application/cloudevents+json"


def _raw_bytes(value: bytes) -> bytes:
    """One element of a V2 BYTES tensor in raw (binary) form: its length as 4 bytes little-endian, then the bytes."""
    return len(value).to_bytes(4, "little") + value


def _trim_heap() -> None:
    """Hand the C heap's free pages back to the kernel (glibc's ``malloc_trim``; a no-op elsewhere): what loading
    freed (the pipeline, the tables' temporaries) stops counting as resident."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class SentimentModel(Model):
    """Sentiment classifier served over V1 REST, V2 REST and V2 gRPC by ``kserve.ModelServer``."""

    def __init__(self, settings: ServeSettings, registry: CollectorRegistry | None = None) -> None:
        """Nothing is loaded here; ``registry`` is the Prometheus registry (default: the one on ``/metrics``)."""
        super().__init__(settings.model_name)
        self.settings = settings
        self._registry = registry
        self._loading = False
        self.load_error: str | None = None
        self.load_exit_code = int(ModelLoadError.exit_code)
        self.source = ""
        """What was loaded: the pinned registry URI (``models:/name/7``) or the local model directory."""
        self.model_dir: Path | None = None
        """The loaded model directory (the explainer reads it again)."""
        self.version = settings.model_version or "unloaded"
        self.classes: tuple[str, ...] = ()
        self.inference_path = "none"
        self._proba: ProbaFn | None = None
        self._metrics: ServingMetrics | None = None
        self._batcher: MicroBatcher | None = None
        self._emitter: EventEmitter | None = None
        self._mirror: Mirror | None = None
        self._pipeline: Pipeline | None = None  # kept only while sklearn serves
        self._from_tables = False
        self._explainer: Explainer | None = None
        self._explainer_lock = asyncio.Lock()
        self._classes_arr = np.array([], dtype=object)

    def _proba_fn(self, bundle: ModelBundle, source: str) -> tuple[ProbaFn, str]:
        """What serves: the fast path from the directory's tables (nothing unpickled, no scikit-learn imported) or
        built from the pipeline, checked on the warm-up texts; sklearn itself when the fast path cannot be exact
        (the reason is returned) or disagrees."""
        self._from_tables = False
        tables = bundle.path / TABLES_FILE
        if self.settings.fast_path and tables.is_file():
            fast, warmup, why = FastPath.load(tables, bundle.model_file, bundle.classes)
            if fast is not None and warmup is not None:
                why = warmup.problem(fast)
                if not why:
                    self._from_tables = True
                    return fast, ""
                why = f"the fast path from {tables} {why}"
            log.warning("%s; reading the pickle instead", why)
        try:
            pipeline = bundle.pipeline
        except ModelArtifactError as e:  # unpickled only now: a broken pickle fails the load here
            raise ModelLoadError(str(e)) from e
        proba, reason = build_proba_fn(pipeline, allow_fast=self.settings.fast_path)
        try:
            warmup = Warmup(WARMUP_TEXTS, np.asarray(pipeline.predict_proba(list(WARMUP_TEXTS)), dtype=np.float64))
        except Exception as e:  # a model that cannot predict must not become ready
            raise ModelLoadError(f"warm-up prediction of {source} failed: {type(e).__name__}: {e}") from e
        problem = warmup.problem(proba)  # the first fast call also compiles the kernels (or loads numba's cache)
        if problem:
            reason = f"fast path {problem}"
            log.error("%s; serving with sklearn's predict_proba", reason)
            proba = build_proba_fn(pipeline, allow_fast=False)[0]
        return proba, reason

    # --- lifecycle ------------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Load the configured artefact, warm up, set ``ready``. Raises :class:`ModelLoadError` naming what failed.

        KServe also calls this on a request for a model that is not ready; while a background load runs that is
        answered with :class:`NotReady` instead of a second load.
        """
        if self.ready:
            return True
        if self._loading:
            raise NotReady(self.name, "the model is still loading")
        self._loading = True
        try:
            self._load()
        except ModelLoadError as e:
            self.load_error = str(e)
            self.load_exit_code = int(e.exit_code)
            raise
        finally:
            self._loading = False
        return self.ready

    def _load(self) -> None:
        s = self.settings
        started = time.perf_counter()
        loaded = load_artefact(s)
        bundle = loaded.bundle
        kernels.choose(s.kernels)
        if s.fast_path and s.kernels == "aot":
            try:
                kernels.compiled()
            except kernels.KernelsUnavailable as e:
                raise ModelLoadError(str(e)) from e
        proba, reason = self._proba_fn(bundle, loaded.source)
        if reason:
            log.info("inference path: sklearn (%s)", reason)
        else:
            log.info("inference path: fast, kernels %s, tables from %s", kernels.compiled().kind,
                     TABLES_FILE if self._from_tables else "the pipeline")
        self.source, self.model_dir = loaded.source, bundle.path
        # the fast path holds its own tables: the pipeline (mostly its vocabularies: ~40 MB with the production
        # model) is not kept beside them; the explainer reads the model directory again on its first use
        self._pipeline = None if proba.kind == "fast" else bundle.pipeline
        self.version = loaded.version
        self.classes = bundle.classes
        del loaded, bundle  # from here on only the fast path (or the sklearn path) holds the model
        self._classes_arr = np.array(self.classes, dtype=object)
        self._class_raw = [_raw_bytes(str(c).encode()) for c in self.classes]
        self._grpc_templates: dict[int, pb.ModelInferResponse] = {}  # per text count (bounded by max_texts)
        self.inference_path = proba.kind
        self._proba = proba
        metrics = ServingMetrics(self.name, self.version, s.track, self._registry)
        metrics.set_info(s.environment, proba.kind, self.classes)
        self._metrics = metrics

        def on_batch(probs: np.ndarray) -> None:
            metrics.batch(len(probs), probs.argmax(axis=1).tolist())

        self._batcher = MicroBatcher(
            proba.predict_proba, self.name, s.max_batch_texts, s.max_queued_texts, on_batch=on_batch
        )
        if s.events_dir is not None:
            context = EventContext(self.name, self.version, s.track, s.environment, self.classes, s.log_text)
            journal = JournalWriter(s.events_dir, s.events_max_bytes, s.events_file_bytes)
            self._emitter = EventEmitter(
                journal, context, metrics, s.events_queue_size, s.events_batch_size, s.events_flush_interval_s
            )
        if s.mirror_url:
            self._mirror = Mirror(s.mirror_url, self.name, s.mirror_percent, self._registry, s.mirror_queue_size,
                                  s.mirror_concurrency, s.mirror_timeout_s, flush_interval_s=s.mirror_flush_interval_s)
        if self._pipeline is None:
            _trim_heap()  # the pipeline has no reference cycles: it was freed when the last name went
        self.ready = True
        log.info(
            "model %s version %s ready (%s path, classes %s) in %.2fs",
            self.name, self.version, proba.kind, list(self.classes), time.perf_counter() - started,
            extra={"model_name": self.name, "model_version": self.version, "source": self.source},
        )

    def start(self) -> None:
        """KServe's default marks the model ready here; readiness is ``load()``'s alone."""

    def stop(self) -> None:
        """Stop answering (readiness goes false); ``main`` drains queued events once the loop has stopped."""
        self.ready = False

    @property
    def metrics(self) -> ServingMetrics | None:
        """The model's metrics (``None`` until it is loaded)."""
        return self._metrics

    @property
    def emitter(self) -> EventEmitter | None:
        """The prediction event emitter (``None`` when events are off or the model is not loaded)."""
        return self._emitter

    # --- metadata --------------------------------------------------------------------------------------------

    @property
    def platform(self) -> str:
        """V2 ``platform`` string; carries version and classes because gRPC metadata has no other place for them."""
        return f"{PLATFORM};version={self.version};classes={','.join(self.classes)}"

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the one input: UTF-8 texts."""
        return [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the outputs: labels, class probabilities in class order, prediction ids."""
        return [
            {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": PROBA_OUTPUT, "datatype": "FP32", "shape": [-1, len(self.classes)]},
            {"name": ID_OUTPUT, "datatype": "BYTES", "shape": [-1]},
        ]

    # --- inference -------------------------------------------------------------------------------------------

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> tuple[Any, dict[str, str]]:
        """Validate, classify (micro-batched), answer in the request's protocol, then record metrics and events."""
        started = time.perf_counter()
        is_v2 = isinstance(body, InferRequest)
        protocol = ("v2-grpc" if body.from_grpc else "v2-rest") if is_v2 else "v1"
        metrics = self._metrics
        try:
            if not self.ready or metrics is None or self._batcher is None:
                raise NotReady(self.name, self.load_error or "the model is not loaded yet")
            if verb is InferenceVerb.EXPLAIN:
                return await self._explain(protocol, body, headers, started), {}
            if verb is not InferenceVerb.PREDICT:
                raise BadInput(f"{verb.name.lower()} is not supported by model {self.name!r}; use predict")
            if is_v2 and body.model_version and body.model_version != self.version:
                raise UnknownVersion(self.name, body.model_version, self.version)  # gRPC names it in the message
            texts = self._v1_texts(body, headers) if protocol == "v1" else self._v2_texts(body)
            probs = await self._batcher.submit(texts)
        except Exception as e:
            if metrics is not None:
                metrics.request(protocol, status_of(e))
            raise
        # every text's id is <request id>:<index>, the id of its logged event and what feedback refers to
        given = (body.id if is_v2 else None) or (headers or {}).get("x-request-id")
        request_id = given or os.urandom(16).hex()
        if protocol == "v2-grpc":
            response: Any = self._v2_grpc_response(request_id, probs)
        elif is_v2 and not (body.use_binary_outputs or body.request_outputs or _is_cloudevent(headers)):
            response = self._v2_rest_json(request_id, probs)
        elif is_v2:
            response = self._v2_response(body, request_id, self._classes_arr[probs.argmax(axis=1)], probs)
        else:
            response = self._v1_response(self._classes_arr[probs.argmax(axis=1)], probs, request_id)
        return response, {REQUEST_ID_HEADER: self._record(protocol, given, request_id, texts, probs, started)}

    async def infer_grpc(self, request: pb.ModelInferRequest, metadata: Callable[[], dict[str, str]]
                         ) -> pb.ModelInferResponse:
        """gRPC ``ModelInfer`` of this model, answered straight from the message (``serving.server``'s servicer
        calls it instead of KServe's conversion to an ``InferRequest`` and back, which cost more than the model's
        own work: docs/benchmarks.md): the same checks, errors, answer, metrics and events as :meth:`__call__`.
        ``metadata`` gives the call's metadata, read only when the message carries no request id."""
        started = time.perf_counter()
        metrics = self._metrics
        try:
            if not self.ready or metrics is None or self._batcher is None:
                raise NotReady(self.name, self.load_error or "the model is not loaded yet")
            if request.model_version and request.model_version != self.version:
                raise UnknownVersion(self.name, request.model_version, self.version)
            texts = _plain_grpc_texts(request)
            if texts is None:  # anything but the plain form: KServe's conversion, and every message of ours
                InferenceServicer.validate_grpc_request(request)
                texts = self._v2_texts(InferRequest.from_grpc(request))
            else:
                texts = self._check_texts(texts, f"input {INPUT_NAME!r}")
            probs = await self._batcher.submit(texts, now_if_idle=True)  # gRPC calls come one per loop iteration
        except Exception as e:
            if metrics is not None:
                metrics.request("v2-grpc", status_of(e))
            raise
        given = request.id or metadata().get(REQUEST_ID_HEADER)
        request_id = given or os.urandom(16).hex()
        response = self._v2_grpc_response(request_id, probs)
        self._record("v2-grpc", given, request_id, texts, probs, started)
        return response

    def _record(self, protocol: str, given: str | None, request_id: str, texts: list[str], probs: np.ndarray,
                started: float) -> str:
        """Metrics, the prediction event and the mirrored copy of an answered request; the id its events carry
        (the answer's own id, or ``<id>.shadow`` for the copy a shadow predictor answered)."""
        elapsed = time.perf_counter() - started
        self._metrics.success(protocol, elapsed, len(texts))  # type: ignore[union-attr]
        mirror_of = None
        if self.settings.track == "shadow" and given:  # a copy the Gateway sent: its id is the live request's
            mirror_of, request_id = given, f"{given}.shadow"
        if self._emitter is not None:
            self._emitter.submit(request_id, protocol, texts, probs, elapsed * 1000.0, mirror_of)
        if self._mirror is not None:
            self._mirror.submit(request_id, protocol, texts)
        return request_id

    async def answer_copy(self, mirror_of: str, protocol: str, texts: Any) -> None:
        """Answer a copy of request ``mirror_of`` sent by a predictor's mirror (``serving.mirror``): validated and
        computed like a request, its events logged with ``mirror_of``; the answer goes nowhere."""
        started = time.perf_counter()
        metrics = self._metrics
        if not self.ready or metrics is None or self._batcher is None:
            raise NotReady(self.name, self.load_error or "the model is not loaded yet")
        try:
            if not isinstance(texts, list):
                raise BadInput(f"texts is {_json_type(texts)}; it must be an array of strings")
            probs = await self._batcher.submit(self._check_texts(texts, "texts"))
        except (InvalidInput, ModelNotReady) as e:
            metrics.request(protocol, status_of(e))
            raise
        elapsed = time.perf_counter() - started
        metrics.success(protocol, elapsed, len(texts))
        if self._emitter is not None:
            self._emitter.submit(f"{mirror_of}.shadow", protocol, texts, probs, elapsed * 1000.0, mirror_of)

    async def _explain(
        self, protocol: str, body: Any, headers: dict[str, str] | None, started: float
    ) -> dict[str, Any]:
        """V1 ``:explain``: the :predict answer of every text plus, per class, the features that pushed its score
        (:mod:`serving.explain`); validated like :predict, computed with sklearn in a worker thread, no prediction
        event."""
        if protocol != "v1":
            raise BadInput("explain is a V1 verb: POST /v1/models/<name>:explain {\"instances\": [\"text\", ...]}")
        texts = self._v1_texts(body, headers)
        explainer = await self._get_explainer()
        probs = np.asarray(self._proba.predict_proba(texts))  # type: ignore[union-attr]
        response = self._v1_response(self._classes_arr[probs.argmax(axis=1)], probs)
        explanations = await asyncio.to_thread(explainer.explain, texts)
        for prediction, explanation in zip(response["predictions"], explanations, strict=True):
            prediction["explanation"] = explanation
        self._metrics.success(protocol, time.perf_counter() - started, len(texts))  # type: ignore[union-attr]
        return response

    async def _get_explainer(self) -> Explainer:
        """The explainer, built on first use (in a worker thread: with the fast path serving, the pipeline is read
        again from the model directory, 0.2 s with the production model here)."""
        async with self._explainer_lock:
            if self._explainer is None:
                self._explainer = await asyncio.to_thread(self._build_explainer)
        return self._explainer

    def _build_explainer(self) -> Explainer:
        pipeline = self._pipeline
        if pipeline is None:
            assert self.model_dir is not None
            pipeline = load_model_dir(self.model_dir).pipeline
        return Explainer(pipeline)

    def _check_texts(self, items: list[Any], where: str) -> list[str]:
        """Every item a non-blank string of valid Unicode within the length limit, and not too many; else
        :class:`BadInput`. (A lone surrogate, which JSON's ``\\ud800`` escapes can carry, is not valid Unicode: no
        protocol accepts it, so its events can always be recorded.)"""
        n = len(items)
        if n == 0:
            raise BadInput(f"{where} is empty; send between 1 and {self.settings.max_texts} texts")
        if n > self.settings.max_texts:
            raise BadInput(f"{where} has {n} texts; at most {self.settings.max_texts} are accepted per request")
        limit = self.settings.max_text_chars
        for i, text in enumerate(items):
            if type(text) is not str:
                raise BadInput(f"{where}[{i}] is {_json_type(text)}; every item must be a string")
            if len(text) > limit:
                raise BadInput(f"{where}[{i}] has {len(text)} characters; at most {limit} are accepted")
            if not text or text.isspace():
                raise BadInput(f"{where}[{i}] is empty or only whitespace; every text needs some content")
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError as e:
                    raise BadInput(
                        f"{where}[{i}] is not valid Unicode: a lone surrogate U+{ord(text[e.start]):04X} at "
                        f"character {e.start}; send UTF-8 texts"
                    ) from e
        return items

    def _v1_texts(self, body: Any, headers: dict[str, str] | None) -> list[str]:
        """The texts of a V1 body ``{"instances": [text, ...]}`` (decoded by KServe, or raw bytes)."""
        if isinstance(body, bytes):
            # KServe decodes JSON only for an exact ``application/json``; ``application/json; charset=utf-8`` and
            # curl's default form type arrive here as bytes.
            content_type = (headers or {}).get("content-type", "").split(";")[0].strip().lower()
            if content_type not in JSON_CONTENT_TYPES:
                raise BadInput(
                    f"content type {content_type!r} is not supported; send application/json "
                    '{"instances": ["text", ...]}'
                )
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError as e:
                raise BadInput(f"the body is not valid JSON ({e}); send {{\"instances\": [\"text\", ...]}}") from e
        if not isinstance(body, dict):
            raise BadInput(f'the body is {_json_type(body)}; send a JSON object {{"instances": ["text", ...]}}')
        if "instances" not in body:
            raise BadInput(f'the body has no "instances" (keys: {sorted(body)[:10]}); send {{"instances": [...]}}')
        instances = body["instances"]
        if not isinstance(instances, list):
            raise BadInput(f'"instances" is {_json_type(instances)}; it must be an array of strings')
        return self._check_texts(instances, "instances")

    def _v2_texts(self, request: InferRequest) -> list[str]:
        """The texts of the one BYTES input of shape ``[n]`` (or ``[n, 1]``) of a V2 request."""
        inputs = request.inputs
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            names = [str(i.name)[:100] for i in inputs[:10]]
            got = f"{len(inputs)} inputs {names}" if len(inputs) != 1 else f"input {names[0]!r}"
            raise BadInput(f"expected one input named {INPUT_NAME!r} (BYTES, shape [n]); got {got}")
        tensor = inputs[0]
        where = f"input {tensor.name!r}"
        if tensor.datatype != "BYTES":
            raise BadInput(f"{where} has datatype {tensor.datatype}; expected BYTES (UTF-8 texts)")
        shape = list(tensor.shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(
            type(d) is not int or d < 0 for d in shape
        ):
            raise BadInput(f"{where} has shape {shape}; expected [n] (or [n, 1]) with n texts")
        data = tensor.data
        if not data and shape[0] > 0 and tensor._raw_data is None:  # KServe keeps raw tensor bytes there
            raise BadInput(
                f"{where} has shape {shape} but no BYTES data; send the texts in 'data' (REST), "
                "'contents.bytes_contents' or 'raw_input_contents' (gRPC)"
            )
        if not data and shape[0] > 0:  # gRPC raw_input_contents / REST binary extension
            try:
                data = tensor.as_numpy().reshape(-1).tolist()
            except Exception as e:  # malformed raw tensor bytes
                raise BadInput(f"{where} has malformed raw BYTES contents: {e}") from e
        elif not isinstance(data, list):
            raise BadInput(f"{where} data is {_json_type(data)}; expected an array of strings")
        elif len(shape) == 2 and data and isinstance(data[0], list):
            if not all(isinstance(row, list) and len(row) == 1 for row in data):
                raise BadInput(f"{where} data does not match shape {shape}")
            data = [row[0] for row in data]
        if len(data) != shape[0]:
            raise BadInput(f"{where} has shape {shape} but {len(data)} items; the first dimension must match")
        texts: list[Any] = data
        if any(type(t) is bytes for t in data):
            texts = []
            for i, item in enumerate(data):
                if type(item) is bytes:
                    try:
                        item = item.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise BadInput(
                            f"{where}[{i}] is not valid UTF-8 ({e.reason} at byte {e.start}); send UTF-8 texts"
                        ) from e
                texts.append(item)
        return self._check_texts(texts, where)

    def _v1_response(self, labels: np.ndarray, probs: np.ndarray, request_id: str | None = None) -> dict[str, Any]:
        """``{"predictions": [{"id", "label", "probabilities": {class: p}}], "model_name", "model_version"}`` (no
        ``id`` without a request id: an answer that is not logged has nothing to refer to)."""
        classes = self.classes
        rows = probs.tolist()
        if request_id is None:
            return {
                "predictions": [{"label": label, "probabilities": dict(zip(classes, row, strict=True))}
                                for label, row in zip(labels.tolist(), rows, strict=True)],
                "model_name": self.name,
                "model_version": self.version,
            }
        return {
            "predictions": [
                {"id": f"{request_id}:{i}", "label": label, "probabilities": dict(zip(classes, row, strict=True))}
                for i, (label, row) in enumerate(zip(labels.tolist(), rows, strict=True))
            ],
            "model_name": self.name,
            "model_version": self.version,
        }

    def _v2_grpc_response(self, request_id: str, probs: np.ndarray) -> pb.ModelInferResponse:
        """The outputs of :meth:`_v2_response` as KServe's ``to_grpc()`` sends them (raw contents, each tensor's
        ``binary_data_size``), built straight from the arrays: KServe's servicer passes a ``ModelInferResponse``
        through as it is, and its generic conversion cost more than the model's own work (docs/serving.md). The
        message is a copy of a template per text count, which protobuf makes faster than building the tensors anew."""
        n = len(probs)
        class_raw = self._class_raw
        raws = (
            b"".join([class_raw[i] for i in probs.argmax(axis=1).tolist()]),
            probs.astype(np.float32).tobytes(),
            b"".join([_raw_bytes(f"{request_id}:{i}".encode()) for i in range(n)]),
        )
        template = self._grpc_templates.get(n)
        if template is None:
            template = pb.ModelInferResponse(model_name=self.name, model_version=self.version)
            for name, datatype, shape in (
                (LABEL_OUTPUT, "BYTES", [n]), (PROBA_OUTPUT, "FP32", [n, len(class_raw)]), (ID_OUTPUT, "BYTES", [n])
            ):
                template.outputs.add(name=name, datatype=datatype, shape=shape)
            self._grpc_templates[n] = template
        response = pb.ModelInferResponse()
        response.CopyFrom(template)
        response.id = request_id
        for tensor, raw in zip(response.outputs, raws, strict=True):
            tensor.parameters["binary_data_size"].int64_param = len(raw)
        response.raw_output_contents.extend(raws)
        return response

    def _v2_rest_json(self, request_id: str, probs: np.ndarray) -> bytes:
        """The JSON body KServe's REST endpoint sends for :meth:`_v2_response` (``to_rest()``, then FastAPI's
        encoding of its ``InferenceResponse``), built straight from the arrays: the endpoint sends bytes as they
        are, where its generic conversion and two passes of pydantic cost more than the model's own work.
        ``serving.server`` gives the answer its ``content-type``, which KServe drops from bytes answers."""
        n = len(probs)
        return orjson.dumps({
            "model_name": self.name,
            "model_version": self.version,
            "id": request_id,
            "parameters": None,
            "outputs": [
                {"name": LABEL_OUTPUT, "shape": [n], "datatype": "BYTES", "parameters": None,
                 "data": self._classes_arr[probs.argmax(axis=1)].tolist()},
                # FP32 as KServe writes it: each float32 value as the double it widens to
                {"name": PROBA_OUTPUT, "shape": [n, len(self.classes)], "datatype": "FP32", "parameters": None,
                 "data": probs.astype(np.float32).ravel().tolist()},
                {"name": ID_OUTPUT, "shape": [n], "datatype": "BYTES", "parameters": None,
                 "data": [f"{request_id}:{i}" for i in range(n)]},
            ],
        })

    def _v2_response(
        self, request: InferRequest, request_id: str, labels: np.ndarray, probs: np.ndarray
    ) -> InferResponse:
        """Outputs ``label`` (BYTES ``[n]``), ``probabilities`` (FP32 ``[n, classes]``) and ``id`` (BYTES ``[n]``,
        each text's prediction id)."""
        n = len(labels)
        outputs = [
            InferOutput(LABEL_OUTPUT, [n], "BYTES", data=labels),
            InferOutput(PROBA_OUTPUT, [n, len(self.classes)], "FP32", data=probs.astype(np.float32)),
            InferOutput(ID_OUTPUT, [n], "BYTES", data=np.array([f"{request_id}:{i}" for i in range(n)], dtype=object)),
        ]
        return InferResponse(
            response_id=request_id,
            model_name=self.name,
            model_version=self.version,
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )


def _plain_grpc_texts(request: pb.ModelInferRequest) -> list[str] | None:
    """The texts of a ``ModelInferRequest`` in the form clients send (one BYTES input named ``text`` of shape
    ``[n]`` or ``[n, 1]``, its ``n`` items valid UTF-8 in ``contents``), else ``None``: any other form, right or
    wrong, goes through KServe's conversion and :meth:`SentimentModel._v2_texts`, which say what is wrong."""
    if len(request.inputs) != 1 or request.raw_input_contents:
        return None
    tensor = request.inputs[0]
    items = tensor.contents.bytes_contents
    shape = tensor.shape
    if (tensor.name != INPUT_NAME or tensor.datatype != "BYTES" or not items
            or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] != len(items)):
        return None
    try:
        return [item.decode("utf-8") for item in items]
    except UnicodeDecodeError:
        return None
