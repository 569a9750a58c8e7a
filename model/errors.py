"""One error base for the training side; each carries the process exit code it maps to."""

from __future__ import annotations


class KubeSentimentError(Exception):
    """Base of every error this project raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


class DataError(KubeSentimentError):
    """The dataset is missing, unreadable or does not meet the contract (columns, labels, size)."""

    exit_code = 65  # EX_DATAERR


class ConfigError(KubeSentimentError):
    """A setting has a value that cannot work (unknown classifier, bad margin, ...)."""

    exit_code = 78  # EX_CONFIG


class ModelArtifactError(KubeSentimentError):
    """A model directory or registry URI does not hold a loadable kube-sentiment model."""

    exit_code = 66  # EX_NOINPUT


class TrackingUnavailableError(KubeSentimentError):
    """The MLflow tracking server stayed unreachable past the retry deadline."""

    exit_code = 69  # EX_UNAVAILABLE
