"""Where the predictor meets KServe's server, through its public hooks only.

- :func:`model_aware_dataplane`: a ``DataPlane`` whose server readiness (``/v2/health/ready``, gRPC
  ``ServerReady``) also requires every registered model to be ready, whose model metadata carries the served
  version (REST ``versions``) and the model's ``platform`` string (version and classes, also over gRPC), and which
  refuses a V2 binary-extension body whose ``inference-header-content-length`` or JSON header is bad with a 400
  (KServe's own decoding answers those with a 500 and a reset connection).
- :func:`install_handlers`: FastAPI answers a body that does not parse as a V2 request with its own 422 and a
  nested ``detail`` list; this handler makes it the same 400 ``{"error": message}`` KServe gives every other bad
  input, with a message that names the bad part. A middleware answers what KServe's routes get wrong: a versioned
  V2 path (``/v2/models/<name>/versions/<v>/...``) is served when ``<v>`` is the loaded version and is a 404 naming
  it otherwise (KServe: 501 for any version); a method other than POST on ``:predict`` / ``:explain`` is a 405
  (KServe: a 404 for a model named ``sentiment:predict``). A V2 answer KServe sends as bytes without a
  ``content-type`` (the model's own JSON, the binary extension) gets ``application/json`` or, with binary
  tensors, ``application/octet-stream``.
- :class:`PredictorServer`: KServe's ModelServer whose gRPC server hands ``ModelInfer`` of a model that answers
  gRPC itself (:meth:`serving.model.SentimentModel.infer_grpc`) the message as it came, instead of converting it
  to an ``InferRequest``, calling the model through the DataPlane and converting the answer back: that generic path
  cost more than the model's own work (docs/benchmarks.md). Every other method, and a model without
  ``infer_grpc``, is KServe's servicer; errors are mapped by KServe's ``ExceptionToStatusInterceptor`` either way,
  called by each method rather than wrapped around every call. KServe's per-call ``grpc method: ...`` log
  interceptor is left out (one INFO line per call).
- :class:`ClientErrorLogs`: KServe logs every refused request at ERROR with its traceback; this filter turns the
  ones caused by the client (bad input, unknown model or version) into one INFO line and a not-ready model into one
  WARNING line. Tracebacks stay for server faults.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from concurrent import futures
from typing import Any

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from grpc import ServicerContext, aio
from kserve import ModelServer
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotReady
from kserve.model import BaseKServeModel
from kserve.model_repository import ModelRepository
from kserve.model_server import FASTAPI_APP_IMPORT_STRING
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import (
    GRPCInferenceServiceServicer,
    add_GRPCInferenceServiceServicer_to_server,
)
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferRequest
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.utils.utils import to_headers
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.bodies import JsonAnswer
from serving.errors import BadInput, UnknownVersion, status_of

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

_VERSIONED = re.compile(r"^/v2/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/infer|/ready)?/?$")
_V1_VERB = re.compile(r"^/v1/models/[^/]+:(?:predict|explain)$")


class _ModelAwareDataPlane(DataPlane):
    """KServe's DataPlane with model-aware server readiness, versioned model metadata and a strict decoder of the
    V2 binary extension."""

    async def ready(self) -> bool:
        """Ready when KServe says so and every registered model is ready (and there is at least one)."""
        if not await super().ready():
            return False
        models = list(self.model_registry.get_models().values())
        return bool(models) and all([await m.healthy() for m in models])

    async def model_metadata(self, model_name: str) -> dict[str, Any]:
        """KServe's metadata plus ``versions`` and the model's ``platform`` when it has them."""
        metadata = await super().model_metadata(model_name)
        model = self.get_model_from_registry(model_name)
        version = getattr(model, "version", None)
        if version:
            metadata["versions"] = [str(version)]
        platform = getattr(model, "platform", None)
        if isinstance(platform, str):
            metadata["platform"] = platform
        return metadata

    def decode_inference_request(self, body: bytes | InferenceRequest, headers: dict[str, str],
                                 model_name: str) -> InferRequest:
        """KServe's decoding, after checking what it takes on trust in a binary-extension body (a V2 REST body that
        is not ``application/json``): the header is a length within the body, the JSON part an inference request."""
        if not isinstance(body, bytes):
            return super().decode_inference_request(body, headers, model_name)
        raw = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        example = f"{INFERENCE_CONTENT_LENGTH_HEADER}: <bytes of the JSON part>"
        if raw is None:
            raise BadInput(f"a V2 body that is not application/json is the binary extension and needs the "
                           f"'{example}' header; send JSON with content-type application/json otherwise")
        raw = raw.strip()
        if not (raw.isascii() and raw.isdigit()) or int(raw) > len(body):
            raise BadInput(f"header {INFERENCE_CONTENT_LENGTH_HEADER} is {raw[:40]!r}; it must be the length in bytes "
                           f"of the JSON part, a whole number between 0 and the body's {len(body)} bytes")
        length = int(raw)
        try:
            InferenceRequest.model_validate(orjson.loads(body[:length]))
        except orjson.JSONDecodeError as e:
            raise BadInput(f"the JSON part of the binary V2 body ({length} bytes) is not valid JSON: {e}") from e
        except ValidationError as e:
            raise BadInput(_describe(e)) from e
        try:
            return InferRequest.from_bytes(body, length, model_name)
        except InvalidInput:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as e:  # a binary part that does not fit its header
            raise BadInput(f"the binary V2 body does not match its JSON part ({type(e).__name__}: {e})") from e


def model_aware_dataplane(registry: ModelRepository) -> DataPlane:
    """The DataPlane to give ``ModelServer.dataplane`` before ``start()``."""
    return _ModelAwareDataPlane(model_registry=registry)


def _describe(exc: RequestValidationError | ValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid V2 inference request: " + "; ".join(problems)


class _ProtocolGuard:
    """ASGI middleware in front of KServe's routes: versioned V2 paths and the method of V1 verbs (module
    docstring). Everything else passes through untouched."""

    def __init__(self, app: ASGIApp, model: Any) -> None:
        self.app = app
        self.model = model

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/v2/models/") and "/versions/" in path:
                match = _VERSIONED.match(path)
                model = self.model
                if match is not None:
                    if match["name"] == model.name and model.ready and match["version"] != model.version:
                        error = UnknownVersion(model.name, match["version"], model.version)
                        metrics = getattr(model, "_metrics", None)
                        if metrics is not None and match["rest"] == "/infer":
                            metrics.request("v2-rest", status_of(error))
                        _log_refusal(logging.INFO, "not_found", str(error))
                        await _respond(send, 404, {"error": str(error)})
                        return
                    # the served version, a model not loaded yet or another name: KServe's unversioned route
                    # answers (200, 503 or KServe's own 404)
                    unversioned = f"/v2/models/{match['name']}{match['rest'] or ''}"
                    scope = dict(scope, path=unversioned, raw_path=unversioned.encode())
            elif path.startswith("/v1/models/") and scope["method"] != "POST" and _V1_VERB.match(path):
                message = f"{scope['method']} is not allowed on {path}; send POST with a JSON body"
                await _respond(send, 405, {"error": message}, ((b"allow", b"POST"),))
                return
            if scope["method"] == "POST" and path.startswith("/v2/models/") and path.endswith("/infer"):
                await self.app(scope, receive, _with_content_type(send))
                return
        await self.app(scope, receive, send)


_BINARY_HEADER = INFERENCE_CONTENT_LENGTH_HEADER.lower().encode()


def _with_content_type(send: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """``send``, giving a V2 answer without a ``content-type`` one: KServe's endpoint drops it from the answers it
    sends as bytes (the model's JSON, the binary extension's JSON header and tensors)."""

    async def typed(message: Any) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            names = {name.lower() for name, _ in headers}
            if b"content-type" not in names:
                kind = b"application/octet-stream" if _BINARY_HEADER in names else b"application/json"
                message = {**message, "headers": [*headers, (b"content-type", kind)]}
        await send(message)

    return typed


async def _respond(send: Callable[[Any], Awaitable[None]], status: int, body: dict[str, Any],
                   headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


_SERVICE = "/inference.GRPCInferenceService/"


class _Servicer(InferenceServicer):
    """KServe's servicer, with ``ModelInfer`` of a model that has ``infer_grpc`` handed the message directly, and
    KServe's mapping of exceptions to status codes (``ExceptionToStatusInterceptor.handle_exception``) called by
    every method itself: as an interceptor it wraps every call, which costs as much as the mapping is rarely needed."""

    collect_every = 256
    """gRPC calls between two collections of the garbage collector's youngest generation (0: never). grpc.aio
    leaves five objects in a reference cycle per call (its method lookup's closure), which only the collector
    frees; at the predictor's ``gc_threshold`` (set for REST, which makes no cycles) they piled up and were freed in
    one ~100 ms pause every ~17,000 calls, stalling every call in flight (docs/benchmarks.md)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._errors = ExceptionToStatusInterceptor()
        self._calls = 0
        for name in vars(GRPCInferenceServiceServicer):
            if not name.startswith("_") and name != "ModelInfer":
                setattr(self, name, self._mapped(getattr(self, name), _SERVICE + name))

    def _mapped(self, method: Callable[[Any, ServicerContext], Awaitable[Any]], full_name: str
                ) -> Callable[[Any, ServicerContext], Awaitable[Any]]:
        async def call(request: Any, context: ServicerContext) -> Any:
            try:
                return await method(request, context)
            except Exception as e:
                await self._errors.handle_exception(e, request, context, full_name)
                raise  # handle_exception aborts the call; this is not reached

        return call

    async def ModelInfer(self, request: pb.ModelInferRequest, context: ServicerContext) -> pb.ModelInferResponse:
        self._calls += 1
        if self._calls == self.collect_every:  # the cycles of the calls since the last collection
            self._calls = 0
            gc.collect(0)
        try:
            model = self._data_plane.model_registry.get_model(request.model_name)
            answer = getattr(model, "infer_grpc", None)
            if answer is None:  # another model, or none of that name: KServe's path (and its NOT_FOUND)
                return await super().ModelInfer(request, context)
            return await answer(request, lambda: to_headers(context))  # type: ignore[no-any-return]
        except Exception as e:
            await self._errors.handle_exception(e, request, context, _SERVICE + "ModelInfer")
            raise  # handle_exception aborts the call; this is not reached


class _GrpcServer(GRPCServer):
    """KServe's gRPC server (same options, port and shutdown) with :class:`_Servicer` and no interceptors."""

    async def start(self, max_workers: int) -> None:
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            options=[(option, self._kwargs.get(option.replace(".", "_")))
                     for option in ("grpc.max_send_message_length", "grpc.max_receive_message_length")],
        )
        servicer = _Servicer(self._data_plane, self._model_repository_extension)
        add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"[::]:{self._port}")
        logging.getLogger("serving.server").info("gRPC server on port %d, %d threads", self._port, max_workers)
        await self._server.start()
        await self._server.wait_for_termination()


class PredictorServer(ModelServer):
    """KServe's ModelServer with :class:`_GrpcServer`: what its ``start`` does with one worker otherwise.
    ``server_args`` are the parsed flags (KServe's parser; the gRPC message size limits come from there)."""

    def __init__(self, server_args: Any, **options: Any) -> None:
        super().__init__(**options)
        self._server_args = server_args

    def start(self, models: list[BaseKServeModel]) -> None:
        self._register_and_check_atleast_one_model_is_ready(models)
        self.servers.append(self._serve_rest())
        if self.enable_grpc:
            self._grpc_server = _GrpcServer(self.grpc_port, self.dataplane, self.model_repository_extension,
                                            kwargs=vars(self._server_args), grace_period=self.grace_period)
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())

    def _rest(self) -> RESTServer:
        self._rest_server = RESTServer(
            FASTAPI_APP_IMPORT_STRING, self.dataplane, self.model_repository_extension, self.http_port,
            access_log_format=self.access_log_format, workers=1, grace_period=self.grace_period,
            event_loop=self.event_loop, timeout_keep_alive=self.timeout_keep_alive,
        )
        return self._rest_server

    def _serve_rest(self) -> Coroutine[Any, Any, None]:
        """The REST server's coroutine (a worker of several overrides it to share a listening socket)."""
        return self._rest().start()  # type: ignore[no-any-return]


def _log_refusal(level: int, status: str, message: str) -> None:
    logging.getLogger("serving.requests").log(level, "request refused (%s): %s", status, message,
                                              extra={"status": status})


class ClientErrorLogs(logging.Filter):
    """On KServe's logger: a refused request's record becomes one line, at INFO when the client caused it (bad
    input, unknown model or version: 4xx / INVALID_ARGUMENT, NOT_FOUND), at WARNING when the model is not ready
    (503 / UNAVAILABLE); a server fault keeps its ERROR level and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, InvalidInput | ModelNotFound):
            level = logging.INFO
        elif isinstance(exc, ModelNotReady | ServerNotReady):
            level = logging.WARNING
        else:
            return True
        status = status_of(exc)
        record.msg, record.args = "request refused (%s): %s", (status, str(exc))
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.status = status
        return logging.getLogger(record.name).isEnabledFor(level)


def install_handlers(model: Any) -> None:
    """Register our handlers and middleware on KServe's FastAPI app (``kserve.model_server.app``) and our log
    filter on KServe's logger, before the server starts."""
    from kserve.model_server import app

    async def validation_error(request: Request, exc: RequestValidationError) -> JsonAnswer:
        metrics = getattr(model, "_metrics", None)
        if metrics is not None:
            protocol = "v2-rest" if request.url.path.startswith("/v2/") else "v1"
            metrics.request(protocol, "invalid_argument")
        message = _describe(exc)
        _log_refusal(logging.INFO, "invalid_argument", message)
        return JsonAnswer(status_code=400, content={"error": message})

    async def http_error(request: Request, exc: StarletteHTTPException) -> JsonAnswer:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "the request body cannot be parsed: it must be UTF-8 JSON"
        return JsonAnswer(status_code=exc.status_code, content={"error": str(detail)}, headers=exc.headers)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(_ProtocolGuard, model=model)
    kserve_logger = logging.getLogger("kserve")
    if not any(isinstance(f, ClientErrorLogs) for f in kserve_logger.filters):
        kserve_logger.addFilter(ClientErrorLogs())
