"""Read a time window of prediction logs from the shipper's sink, fast: Parquet via a pyarrow dataset with
hive partition pruning on ``environment``/``date``/``hour``, then a ``ts`` filter and de-duplication by ``id``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from model.errors import DataError

log = logging.getLogger(__name__)

COLUMNS = ["id", "ts", "model_version", "track", "environment", "text", "text_length", "label", "confidence"]
PARTITIONING = ds.partitioning(
    pa.schema([("environment", pa.string()), ("model_version", pa.string()), ("date", pa.string()),
               ("hour", pa.string())]),
    flavor="hive",
)


@dataclass(frozen=True)
class Window:
    """The de-duplicated records of the window and how many repeats were dropped."""

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
    return None, source


def _partition_filter(start: datetime, end: datetime) -> ds.Expression:
    """Keep the (date, hour) partitions overlapping ``[start, end)``; string order is time order here."""
    hours: list[tuple[str, str]] = []
    moment = start.replace(minute=0, second=0, microsecond=0)
    while moment < end and len(hours) <= 24 * 62:
        hours.append((moment.strftime("%Y-%m-%d"), moment.strftime("%H")))
        moment += timedelta(hours=1)
    if len(hours) > 24 * 62:  # a very long window: prune by date range only
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
    assert expr is not None
    return expr


def read_window(source: str, start: datetime, end: datetime, environment: str | None = None,
                endpoint_url: str | None = None, region: str = "us-east-1") -> Window:
    """Records with ``start <= ts < end`` from the sink at ``source`` (local directory or ``s3://``)."""
    fs, path = _filesystem(source, endpoint_url, region)
    try:
        dataset = ds.dataset(path, format="parquet", partitioning=PARTITIONING, filesystem=fs,
                             exclude_invalid_files=False, ignore_prefixes=[".", "_", "quarantine"])
    except (FileNotFoundError, OSError) as e:
        raise DataError(f"cannot open prediction logs at {source}: {e}") from e
    if not dataset.files:
        log.warning("no prediction logs at %s", source)
        return Window(_empty(), start, end, 0, 0)
    expr = _partition_filter(start, end)
    if environment is not None:
        expr = expr & (ds.field("environment") == environment)
    expr = expr & (ds.field("ts") >= start.timestamp()) & (ds.field("ts") < end.timestamp())
    fragments = list(dataset.get_fragments(filter=expr))
    if not fragments:
        return Window(_empty(), start, end, 0, 0)
    table = dataset.to_table(columns=COLUMNS, filter=expr, use_threads=True)
    table, duplicates = dedupe(table)
    log.info("read %d records (%d repeats dropped) from %d file(s)", table.num_rows, duplicates, len(fragments),
             extra={"records": table.num_rows, "files": len(fragments)})
    return Window(table, start, end, duplicates, len(fragments))


def _empty() -> pa.Table:
    """An empty table with the window's columns."""
    types = {"id": pa.string(), "ts": pa.float64(), "model_version": pa.string(), "track": pa.string(),
             "environment": pa.string(), "text": pa.string(), "text_length": pa.int32(), "label": pa.string(),
             "confidence": pa.float64()}
    return pa.table({c: pa.array([], type=t) for c, t in types.items()})


def dedupe(table: pa.Table) -> tuple[pa.Table, int]:
    """Drop rows repeating an earlier row's ``id`` (a client that retried a batch the shipper had accepted)."""
    if table.num_rows == 0:
        return table, 0
    distinct = pc.count_distinct(table.column("id")).as_py()
    if distinct == table.num_rows:
        return table, 0
    indexed = table.select(["id"]).append_column("_row", pa.array(np.arange(table.num_rows)))
    first = indexed.group_by("id").aggregate([("_row", "min")]).column("_row_min")
    rows = np.sort(first.to_numpy())
    return table.take(pa.array(rows)), table.num_rows - len(rows)


def group_indices(table: pa.Table) -> dict[tuple[str, str], np.ndarray]:
    """Row indices of each ``(model_version, track)`` group."""
    if table.num_rows == 0:
        return {}
    version = table.column("model_version").combine_chunks().dictionary_encode()
    track = pc.fill_null(table.column("track"), "unknown").combine_chunks().dictionary_encode()
    v_codes = version.indices.to_numpy(zero_copy_only=False)
    t_codes = track.indices.to_numpy(zero_copy_only=False)
    combined = v_codes.astype(np.int64) * (len(track.dictionary) + 1) + t_codes
    order = np.argsort(combined, kind="stable")
    keys, starts = np.unique(combined[order], return_index=True)
    groups = {}
    for key, begin, stop in zip(keys, starts, [*starts[1:], len(order)], strict=True):
        v, t = divmod(int(key), len(track.dictionary) + 1)
        groups[(str(version.dictionary[v]), str(track.dictionary[t]))] = np.sort(order[begin:stop])
    return groups
