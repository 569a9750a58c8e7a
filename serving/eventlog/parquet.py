"""How logged events are stored in the sink: the Parquet schema, the hive partitioning, object names, encoding.

The shipper writes with this module and every reader (:mod:`serving.eventlog.reader`) reads with it, so the layout
has one owner. A sink (a local directory or ``s3://bucket/prefix``) holds::

    <log directory><environment=e>/model_version=<v>/date=<YYYY-mm-dd>/hour=<HH>/<segment id>.parquet
    quarantine/date=<YYYY-mm-dd>/<segment id>.ndjson       input that broke the contract, with the reason

Partition values are path-safe (:func:`safe_partition_value`); ``date`` and ``hour`` are the UTC time of the event
(``ts``). Object names depend only on the segment and its content, so writing a segment twice overwrites the same
objects. Each kind of event log is an :class:`EventLog`; predictions live at the sink's root, feedback (ground-truth
labels, :mod:`serving.eventlog.feedback`) under ``feedback/``::

    feedback/environment=<e>/date=<YYYY-mm-dd>/hour=<HH>/<segment id>.parquet

A new kind gets its own directory, schema and entry in :data:`EVENT_LOGS`, and is read with the same reader.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Columns of every prediction Parquet object (the partition columns live in the object key, not in the file).
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("request_id", pa.string()),
        ("ts", pa.float64()),
        ("received_at", pa.float64()),
        ("model_name", pa.string()),
        ("track", pa.string()),
        ("protocol", pa.string()),
        ("source", pa.string()),
        ("schema", pa.string()),
        ("text", pa.string()),
        ("text_sha256", pa.string()),
        ("text_length", pa.int32()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
        ("latency_ms", pa.float64()),
        ("probabilities", pa.map_(pa.string(), pa.float64())),
        ("mirror_of", pa.string()),
    ]
)
#: Hive partition keys of the prediction log, outermost first.
PARTITION_KEYS = ("environment", "model_version", "date", "hour")
#: Directory of the quarantined input, beside the event logs.
QUARANTINE_DIRECTORY = "quarantine"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Partition = tuple[str, ...]


@dataclass(frozen=True)
class EventLog:
    """One kind of event log in a sink: where its objects are, their columns and how they are partitioned."""

    kind: str
    """The event type (``prediction``)."""
    directory: str
    """Key prefix under the sink's root (``""``: at the root; otherwise ending with ``/``)."""
    schema: pa.Schema
    """Columns of each object."""
    partition_keys: tuple[str, ...]
    """Hive partition keys of the object keys, outermost first; ``date`` and ``hour`` are the UTC time of ``ts``."""
    id_column: str = "id"
    """Unique id of an event; a repeated id is the same event delivered twice."""
    time_column: str = "ts"
    """Event time, Unix epoch seconds."""

    def partitioning_schema(self) -> pa.Schema:
        """The partition keys as string columns (how a reader sees them)."""
        return pa.schema([(key, pa.string()) for key in self.partition_keys])

    def object_key(self, partition: Partition, segment_id: str) -> str:
        """``<directory><key>=<value>/.../<segment_id>.parquet``."""
        return f"{self.directory}{partition_path(partition, self.partition_keys)}/{segment_id}.parquet"


PREDICTIONS = EventLog("prediction", "", PARQUET_SCHEMA, PARTITION_KEYS)
#: Columns of every feedback Parquet object (``environment``, ``date`` and ``hour`` live in the object key).
FEEDBACK_PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("prediction_id", pa.string()),
        ("label", pa.string()),
        ("source", pa.string()),
        ("at", pa.float64()),
        ("ts", pa.float64()),
        ("schema", pa.string()),
    ]
)
#: Ground-truth labels of logged predictions: ``ts`` is when the label was received, ``at`` when it was given.
FEEDBACK = EventLog("feedback", "feedback/", FEEDBACK_PARQUET_SCHEMA, ("environment", "date", "hour"))
#: Every event log a sink may hold, by kind.
EVENT_LOGS: dict[str, EventLog] = {PREDICTIONS.kind: PREDICTIONS, FEEDBACK.kind: FEEDBACK}


def safe_partition_value(value: Any) -> str:
    """A partition value safe in a path and an S3 key: ``[A-Za-z0-9._-]``, others replaced by ``_``."""
    text = _UNSAFE.sub("_", str(value))
    return text if text.strip(".") else "_"


def partition_path(partition: Partition, keys: tuple[str, ...] = PARTITION_KEYS) -> str:
    """``environment=<e>/model_version=<v>/date=<d>/hour=<h>``."""
    return "/".join(f"{k}={v}" for k, v in zip(keys, partition, strict=True))


def _hour_partition(hour: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(hour * 3600.0, UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def partitions(table: pa.Table, log: EventLog = PREDICTIONS) -> dict[Partition, np.ndarray]:
    """Row indices (ascending) of each partition of ``table``, whose columns include the log's non-time partition
    keys (a missing value is ``unknown``) and its time column (a missing time is now)."""
    n = table.num_rows
    if n == 0:
        return {}
    keys = [k for k in log.partition_keys if k not in ("date", "hour")]
    hours = np.floor(pc.fill_null(table.column(log.time_column), time.time()).to_numpy() / 3600.0).astype(np.int64)
    codes, dictionaries = [], []
    for key in keys:
        column = table.column(key) if key in table.column_names else pa.nulls(n, pa.string())
        encoded = pc.fill_null(column.cast(pa.string()), "unknown").combine_chunks().dictionary_encode()
        codes.append(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        dictionaries.append([safe_partition_value(v) for v in encoded.dictionary.to_pylist()])
    combined = np.stack([*codes, hours], axis=1)
    unique, inverse = np.unique(combined, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
    groups: dict[Partition, list[np.ndarray]] = {}
    for i, row in enumerate(unique):
        values = {key: dictionaries[j][row[j]] for j, key in enumerate(keys)}
        values["date"], values["hour"] = _hour_partition(int(row[-1]))
        partition = tuple(values[key] for key in log.partition_keys)
        groups.setdefault(partition, []).append(order[bounds[i] : bounds[i + 1]])
    return {p: np.sort(np.concatenate(rows)) for p, rows in groups.items()}


def dedupe(table: pa.Table, id_column: str = "id") -> tuple[pa.Table, int]:
    """Keep the first row of each id; return the table and the number of repeats dropped (a client that retried a
    batch the shipper had accepted delivers the same events twice)."""
    if table.num_rows == 0 or pc.count_distinct(table.column(id_column)).as_py() == table.num_rows:
        return table, 0
    indexed = table.select([id_column]).append_column("_row", pa.array(np.arange(table.num_rows)))
    rows = np.sort(indexed.group_by(id_column).aggregate([("_row", "min")]).column("_row_min").to_numpy())
    return table.take(pa.array(rows)), table.num_rows - len(rows)


def encode_parquet(table: pa.Table) -> bytes:
    """Parquet bytes, zstd-compressed, dictionary-encoded strings."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", use_dictionary=True, write_statistics=True)
    return buffer.getvalue()


def quarantine_key(segment_id: str, received_at: float | None) -> str:
    """Object key of a segment's quarantined input (dated by when the first of it was received)."""
    day = datetime.fromtimestamp(float(received_at or 0), UTC).strftime("%Y-%m-%d")
    return f"{QUARANTINE_DIRECTORY}/date={day}/{segment_id}.ndjson"
