"""Where the predictor meets KServe's server, through its public hooks only.

- :func:`model_aware_dataplane`: a ``DataPlane`` whose server readiness (``/v2/health/ready``, gRPC
  ``ServerReady``) also requires every registered model to be ready, and whose model metadata carries the served
  version (REST ``versions``) and the model's ``platform`` string (version and classes, also over gRPC).
- :func:`install_handlers`: FastAPI answers a body that does not parse as a V2 request with its own 422 and a
  nested ``detail`` list; this handler makes it the same 400 ``{"error": message}`` KServe gives every other bad
  input, with a message that names the bad part.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from starlette.exceptions import HTTPException as StarletteHTTPException


class _ModelAwareDataPlane(DataPlane):
    """KServe's DataPlane with model-aware server readiness and versioned model metadata."""

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


def model_aware_dataplane(registry: ModelRepository) -> DataPlane:
    """The DataPlane to give ``ModelServer.dataplane`` before ``start()``."""
    return _ModelAwareDataPlane(model_registry=registry)


def _describe(exc: RequestValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "invalid V2 inference request: " + "; ".join(problems)


def install_handlers(model: Any) -> None:
    """Register our handlers on KServe's FastAPI app (``kserve.model_server.app``) before the server starts."""
    from kserve.model_server import app

    async def validation_error(request: Request, exc: RequestValidationError) -> ORJSONResponse:
        metrics = getattr(model, "_metrics", None)
        if metrics is not None:
            protocol = "v2-rest" if request.url.path.startswith("/v2/") else "v1"
            metrics.request(protocol, "invalid_argument")
        return ORJSONResponse(status_code=400, content={"error": _describe(exc)})

    async def http_error(request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "the request body cannot be parsed: it must be UTF-8 JSON"
        return ORJSONResponse(status_code=exc.status_code, content={"error": str(detail)}, headers=exc.headers)

    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
