"""The predictor's gRPC servicer on its own (the real server is driven by real clients in ``test_server.py``): the
collector's schedule for grpc.aio's per-call reference cycles, and KServe's status mapping called by the methods."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import grpc
import pytest
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.model_repository_extension import ModelRepositoryExtension

from serving.errors import BadInput
from serving.server import _Servicer


class _Aborted(Exception):
    pass


class _Context:
    """What the servicer uses of a ``grpc.aio.ServicerContext``."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self) -> tuple[Any, ...]:
        return ()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise _Aborted(details)


class _Model:
    """A model that answers gRPC itself, as ``SentimentModel.infer_grpc`` does."""

    name = "m"
    ready = True

    def __init__(self) -> None:
        self.calls = 0

    async def infer_grpc(self, request: pb.ModelInferRequest, metadata: Any) -> pb.ModelInferResponse:
        self.calls += 1
        if request.id == "bad":
            raise BadInput("input 'text'[0] is empty")
        return pb.ModelInferResponse(id=request.id, model_name=self.name)


def _servicer(model: _Model) -> _Servicer:
    registry = ModelRepository()
    registry.update(model)  # type: ignore[arg-type]
    return _Servicer(DataPlane(model_registry=registry), ModelRepositoryExtension(model_registry=registry))


def test_the_youngest_generation_is_collected_every_collect_every_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    collections: list[int] = []

    def collect(generation: int = 2) -> int:
        collections.append(generation)
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    model = _Model()
    servicer = _servicer(model)

    async def calls(n: int) -> None:
        for i in range(n):
            answer = await servicer.ModelInfer(pb.ModelInferRequest(model_name="m", id=str(i)), _Context())
            assert answer.id == str(i)

    asyncio.run(calls(2 * _Servicer.collect_every + 5))
    assert collections == [0, 0] and model.calls == 2 * _Servicer.collect_every + 5


def test_errors_get_kserves_status_codes() -> None:
    servicer = _servicer(_Model())

    async def refused(method: str, request: Any) -> tuple[grpc.StatusCode, str] | None:
        context = _Context()
        with pytest.raises(_Aborted):
            await getattr(servicer, method)(request, context)
        return context.aborted

    bad = asyncio.run(refused("ModelInfer", pb.ModelInferRequest(model_name="m", id="bad")))
    assert bad == (grpc.StatusCode.INVALID_ARGUMENT, "input 'text'[0] is empty")
    unknown = asyncio.run(refused("ModelInfer", pb.ModelInferRequest(model_name="nope")))
    assert unknown is not None and unknown[0] == grpc.StatusCode.NOT_FOUND and "nope" in unknown[1]
    metadata = asyncio.run(refused("ModelMetadata", pb.ModelMetadataRequest(name="nope")))
    assert metadata is not None and metadata[0] == grpc.StatusCode.NOT_FOUND
