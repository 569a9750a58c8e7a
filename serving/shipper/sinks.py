"""Where sealed spool segments end up: a local directory (the embedded default) or S3-compatible storage."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Protocol

from serving.shipper.settings import ShipSettings


class SinkError(Exception):
    """Writing to the sink failed; the segment stays spooled and is retried."""


class Sink(Protocol):
    """Stores whole objects under keys like ``environment=local/model_version=3/date=.../x.parquet``."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically, replacing an existing object."""

    def describe(self) -> str:
        """Where the objects go, for logs."""


class LocalSink:
    """Objects as files under ``root``: written to a temporary name, fsync'ed, renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put(self, key: str, data: bytes) -> None:
        """Write ``root/key`` atomically (readers never see a partial object)."""
        target = self.root / key
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise SinkError(f"cannot write {target}: {e}") from e

    def describe(self) -> str:
        return f"local directory {self.root}"


class S3Sink:
    """Objects in an S3-compatible bucket (``endpoint_url`` for MinIO and friends; standard AWS credentials)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str = "us-east-1", client: Any = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"}),
        )

    def put(self, key: str, data: bytes) -> None:
        """``PutObject`` (atomic by S3 semantics; the same key is simply overwritten on a replay)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}{key}", Body=data)
        except (BotoCoreError, ClientError) as e:
            raise SinkError(f"cannot put s3://{self.bucket}/{self.prefix}{key}: {e}") from e

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} at {self.endpoint_url or 'AWS'}"


def build_sink(settings: ShipSettings) -> LocalSink | S3Sink:
    """The sink named by ``settings.sink``."""
    if settings.sink == "s3":
        if not settings.s3_bucket:
            from model.errors import ConfigError

            raise ConfigError("KS_SHIP_SINK=s3 needs KS_SHIP_S3_BUCKET")
        return S3Sink(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region)
    return LocalSink(settings.sink_dir)


def sink_at(location: str, endpoint_url: str | None = None, region: str = "us-east-1") -> LocalSink | S3Sink:
    """The sink at ``location``: ``s3://bucket/prefix`` or a local directory (what the readers take as ``source``)."""
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        return S3Sink(bucket, f"{prefix}/" if prefix else "", endpoint_url, region)
    return LocalSink(Path(location))
