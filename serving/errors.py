"""Typed errors of the predictor, each a subclass of the KServe error that already maps it to a status code.

KServe maps its errors in one place (``kserve.errors`` handlers for REST, ``ExceptionToStatusInterceptor`` for
gRPC); subclassing them keeps that single mapping:

============================  =======  ================  ===========================================
error                         HTTP     gRPC              when
============================  =======  ================  ===========================================
:class:`BadInput`             400      INVALID_ARGUMENT  the request body does not meet the contract
:class:`NotReady`             503      UNAVAILABLE       the model is not loaded (yet)
:class:`Overloaded`           503      UNAVAILABLE       the micro-batching queue is full
``kserve.ModelNotFound``      404      NOT_FOUND         unknown model name (raised by KServe)
:class:`UnknownVersion`       404      NOT_FOUND         a model version this server does not serve
:class:`ModelLoadError`       exit 66  -                 start-up cannot load the model
:class:`RegistryUnreachable`  exit 69  -                 the registry stays unreachable at start-up
============================  =======  ================  ===========================================
"""

from __future__ import annotations

from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

from model.errors import ExitCode, ModelArtifactError


class BadInput(InvalidInput):
    """The request does not meet the input contract; the message names the bad value and what is accepted."""

    status = "invalid_argument"


class NotReady(ModelNotReady):
    """The model is not loaded (yet), or is loading."""

    status = "unavailable"

    def __init__(self, model_name: str, detail: str) -> None:
        """``detail`` says why the model is not ready."""
        super().__init__(model_name, detail)
        self.reason = self.error_msg  # the gRPC interceptor sends ``reason``


class Overloaded(NotReady):
    """More texts are waiting for computation than the configured bound."""


class UnknownVersion(ModelNotFound):
    """A request names a model version other than the one this server serves."""

    status = "not_found"

    def __init__(self, model_name: str, version: str, served: str) -> None:
        """``version``: what the request asked for; ``served``: the version loaded here."""
        super().__init__(model_name)
        self.reason = (f"model {model_name!r} has no version {version!r} on this server; it serves version "
                       f"{served!r} (or leave the version out)")


class ModelLoadError(ModelArtifactError):
    """The configured model cannot be resolved, downloaded or loaded (start-up fails with exit code 66)."""


class RegistryUnreachable(ModelLoadError):
    """The MLflow tracking server (or the artifact store behind it) stayed unreachable until the load deadline
    (start-up fails with exit code 69, not 66: nothing says the model is missing)."""

    exit_code = ExitCode.UNAVAILABLE


def status_of(exc: BaseException) -> str:
    """The ``status`` label of the request metric for an exception raised while serving a request."""
    status = getattr(exc, "status", None)
    if isinstance(status, str):
        return status
    if isinstance(exc, InvalidInput):
        return "invalid_argument"
    if isinstance(exc, ModelNotReady):
        return "unavailable"
    if isinstance(exc, ModelNotFound):
        return "not_found"
    return "internal"
