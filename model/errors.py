"""The exit-code table of every ``kube-sentiment`` process, and the error base that carries a code.

Every command (``train``, ``serve``, ``ship``, ``drift``, ``loop`` and those to come) exits with a member of
:class:`ExitCode`; the README's process table documents it. An error raised on purpose is a
:class:`KubeSentimentError` whose ``exit_code`` is the code its process exits with (``model.process`` maps it).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes shared by all commands (the 6x/78 ones are the BSD ``sysexits.h`` codes)."""

    OK = 0
    """Done (for ``train``: the candidate was promoted; for ``drift``: no drift)."""
    ERROR = 1
    """Internal error: a bug or an unexpected failure (a traceback is logged)."""
    USAGE = 2
    """The command line cannot be parsed: unknown flag, missing flag value (argparse's own code)."""
    DRIFT = 3
    """A verdict, not a failure: drift detected."""
    ROLLBACK = 3
    """A verdict, not a failure: roll back (the rollout analysis' name for the same code as ``DRIFT``)."""
    INSUFFICIENT_DATA = 4
    """A verdict, not a failure: too little data to decide."""
    HOLD = 4
    """A verdict, not a failure: hold (the rollout analysis' name for the same code as ``INSUFFICIENT_DATA``)."""
    GATE_REFUSED = 10
    """A verdict, not a failure: the promotion gate refused the candidate."""
    BAD_DATA = 65
    """EX_DATAERR: the input data is missing, unreadable or breaks its contract."""
    NO_INPUT = 66
    """EX_NOINPUT: a model directory, registry version or reference profile is missing or corrupt."""
    UNAVAILABLE = 69
    """EX_UNAVAILABLE: a service (MLflow tracking server, object store) stayed unreachable past its deadline."""
    BUSY = 75
    """EX_TEMPFAIL: another operation holds what this one needs (a rollout in progress in that environment)."""
    BAD_CONFIG = 78
    """EX_CONFIG: a setting (flag or environment variable) has a value that cannot work."""


class KubeSentimentError(Exception):
    """Base of every error this project raises on purpose. ``exit_code`` is what the process exits with."""

    exit_code: ExitCode = ExitCode.ERROR


class DataError(KubeSentimentError):
    """The dataset is missing, unreadable or does not meet the contract (columns, labels, size)."""

    exit_code = ExitCode.BAD_DATA


class ConfigError(KubeSentimentError):
    """A setting has a value that cannot work (unknown classifier, bad margin, ...)."""

    exit_code = ExitCode.BAD_CONFIG


class ModelArtifactError(KubeSentimentError):
    """A model directory or registry URI does not hold a loadable kube-sentiment model."""

    exit_code = ExitCode.NO_INPUT


class UnavailableError(KubeSentimentError):
    """A service this process depends on stayed unreachable past the retry deadline."""

    exit_code = ExitCode.UNAVAILABLE


class TrackingUnavailableError(UnavailableError):
    """The MLflow tracking server stayed unreachable past the retry deadline."""
