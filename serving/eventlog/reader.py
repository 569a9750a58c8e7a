"""Read a time window of an event log from a sink (a local directory or ``s3://bucket/prefix``), fast.

Parquet through a pyarrow dataset: hive partition pruning on the partition keys (``date``/``hour`` from the
window, plus any ``where`` on a partition key), a filter on the event time, then de-duplication by id (a retried
batch delivers the same events twice). Generic over the kind of event log (:class:`~serving.eventlog.parquet.
EventLog`): the drift job reads predictions with it, and so will live quality (feedback) and rollout analysis::

    window = read_window("s3://bucket/predictions", start, end, where={"environment": "production",
                         "track": ["stable", "canary"]}, columns=["id", "ts", "label", "confidence"],
                         endpoint_url="http://minio:9000")
    window.table  # a pyarrow Table (window.table.to_pandas() for a DataFrame)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from model.errors import DataError, UnavailableError
from serving.eventlog.parquet import EVENT_LOGS, PREDICTIONS, QUARANTINE_DIRECTORY, EventLog, dedupe

log = logging.getLogger(__name__)

#: Longest window pruned hour by hour; longer ones are pruned by date only.
_MAX_HOURS = 24 * 62


@dataclass(frozen=True)
class Window:
    """The de-duplicated events of ``[start, end)``, how many repeats were dropped and how many files were read."""

    table: pa.Table
    start: datetime
    end: datetime
    duplicates: int
    files: int


def _filesystem(source: str, endpoint_url: str | None, region: str) -> tuple[Any, str]:
    """``(pyarrow filesystem or None, path)`` for a local directory or an ``s3://`` source."""
    if source.startswith("s3://"):
        import pyarrow.fs as pafs

        scheme = "http" if endpoint_url and endpoint_url.startswith("http://") else "https"
        endpoint = endpoint_url.split("://", 1)[1] if endpoint_url else None
        fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme=scheme, region=region)
        return fs, source.removeprefix("s3://").rstrip("/")
    return None, source.rstrip("/")


def time_partition_filter(start: datetime, end: datetime) -> ds.Expression:
    """Keep the (date, hour) partitions overlapping ``[start, end)``; string order is time order here."""
    hours: list[tuple[str, str]] = []
    moment = start.replace(minute=0, second=0, microsecond=0)
    while moment < end and len(hours) <= _MAX_HOURS:
        hours.append((moment.strftime("%Y-%m-%d"), moment.strftime("%H")))
        moment += timedelta(hours=1)
    if len(hours) > _MAX_HOURS:  # a very long window: prune by date range only
        return (ds.field("date") >= start.strftime("%Y-%m-%d")) & (ds.field("date") <= end.strftime("%Y-%m-%d"))
    days: dict[str, list[str]] = {}
    for day, hour in hours:
        days.setdefault(day, []).append(hour)
    expr: ds.Expression | None = None
    for day, day_hours in days.items():
        part = ds.field("date") == day
        if len(day_hours) < 24:
            part = part & ds.field("hour").isin(day_hours)
        expr = part if expr is None else expr | part
    return expr if expr is not None else ds.scalar(False)


def _where(where: Mapping[str, str | Sequence[str]]) -> ds.Expression | None:
    expr: ds.Expression | None = None
    for column, wanted in where.items():
        part = ds.field(column) == wanted if isinstance(wanted, str) else ds.field(column).isin(list(wanted))
        expr = part if expr is None else expr & part
    return expr


def empty_table(columns: Sequence[str], event_log: EventLog = PREDICTIONS) -> pa.Table:
    """An empty table with ``columns`` typed as ``event_log`` stores them."""
    schema = pa.unify_schemas([event_log.schema, event_log.partitioning_schema()])
    return pa.table({c: pa.array([], type=schema.field(c).type) for c in columns})


def read_window(
    source: str,
    start: datetime,
    end: datetime,
    *,
    event_log: EventLog = PREDICTIONS,
    columns: Sequence[str] | None = None,
    where: Mapping[str, str | Sequence[str]] | None = None,
    filter: ds.Expression | None = None,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
) -> Window:
    """Events of ``event_log`` (default: predictions) with ``start <= ts < end`` from the sink at ``source``,
    de-duplicated by id.

    ``columns``: what to read (default: every column of the log and its partition keys); ``where``: equality (or
    membership, for a sequence) on any column, partition keys included (``{"environment": "production"}``);
    ``filter``: any further pyarrow dataset expression; ``endpoint_url``, ``region``: of an S3-compatible store.
    ``DataError`` (exit 65) when the source cannot be read, ``UnavailableError`` (exit 69) when an ``s3://`` source
    cannot be reached. A log kept under its own directory (feedback) that does not exist yet is an empty window.
    """
    kind, keys = event_log.kind, event_log.partition_keys
    wanted = list(columns) if columns is not None else [*event_log.schema.names, *keys]
    fs, root = _filesystem(source, endpoint_url, region)
    path = f"{root}/{event_log.directory.rstrip('/')}" if event_log.directory else root
    others = [o.directory.strip("/") for o in EVENT_LOGS.values() if o.directory and o is not event_log]
    partitioning = ds.partitioning(event_log.partitioning_schema(), flavor="hive")
    # The log's schema, not the first file's: a column added in a later minor version reads as null from older files.
    schema = pa.unify_schemas([event_log.schema, event_log.partitioning_schema()])
    try:
        dataset = ds.dataset(path, format="parquet", partitioning=partitioning, filesystem=fs, schema=schema,
                             exclude_invalid_files=False, ignore_prefixes=[".", "_", QUARANTINE_DIRECTORY, *others])
    except FileNotFoundError as e:
        if event_log.directory and (fs is not None or Path(root).is_dir()):
            log.warning("no %s log at %s (no %s in it yet)", kind, source, event_log.directory)
            return Window(empty_table(wanted, event_log), start, end, 0, 0)
        raise DataError(f"cannot open the {kind} log at {source}: {e}") from e
    except OSError as e:
        if fs is not None:
            raise UnavailableError(f"cannot reach the {kind} log at {source}: {e}") from e
        raise DataError(f"cannot open the {kind} log at {source}: {e}") from e
    if not dataset.files:
        log.warning("no %s log at %s", kind, source)
        return Window(empty_table(wanted, event_log), start, end, 0, 0)
    expr = time_partition_filter(start, end) if {"date", "hour"} <= set(keys) else ds.scalar(True)
    for extra in (_where(where or {}), filter):
        if extra is not None:
            expr = expr & extra
    ts = ds.field(event_log.time_column)
    expr = expr & (ts >= start.timestamp()) & (ts < end.timestamp())
    fragments = list(dataset.get_fragments(filter=expr))
    if not fragments:
        return Window(empty_table(wanted, event_log), start, end, 0, 0)
    read = wanted if event_log.id_column in wanted else [*wanted, event_log.id_column]
    table = dataset.to_table(columns=read, filter=expr, use_threads=True)
    table, duplicates = dedupe(table, event_log.id_column)
    if read != wanted:
        table = table.select(wanted)
    log.info("read %d %s events (%d repeats dropped) from %d file(s)", table.num_rows, kind, duplicates,
             len(fragments), extra={"records": table.num_rows, "files": len(fragments)})
    return Window(table, start, end, duplicates, len(fragments))
