"""A sealed spool segment → the sink objects it becomes: partitioned Parquet files of its prediction events and of
its feedback events (the layouts of :mod:`serving.eventlog.parquet`) and one NDJSON file of its quarantined input.

One conversion path: the segment's event lines go through Arrow's JSON reader into the log schema in one call.
When some line does not fit (a field of the wrong type, an unreadable line), the lines are halved until the misfits
are isolated; those are quarantined with the reason and the others converted the same way. A line that is not an
event at all (no ``id``) means the spool itself is corrupt: ``ValueError``, and the flusher sets the segment aside.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from serving.eventlog.parquet import FEEDBACK, PREDICTIONS, dedupe, encode_parquet, partitions, quarantine_key
from serving.shipper.wire import (
    FEEDBACK_PREFIX,
    HALF_PREFIX,
    MARKER_PREFIX,
    POSITION_PREFIX,
    QUARANTINE_PREFIX,
    quarantine_record,
)

SCHEMA = PREDICTIONS.schema
#: Partition columns read from the events besides the schema's columns.
_PARTITION_COLUMNS = ("environment", "model_version")


class SinkObject(NamedTuple):
    """One object to write: its key in the sink, its bytes, and how many records it holds."""

    key: str
    data: bytes
    records: int


class _Misfit(ValueError):
    """Event lines that do not convert into the log schema."""


@dataclass
class _Lines:
    """A segment's lines sorted by kind; each event line with the ``received_at`` and ``source`` of its marker."""

    events: list[bytes] = field(default_factory=list)
    received: list[float | None] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[bytes] = field(default_factory=list)


def _sort_lines(lines: Sequence[bytes]) -> _Lines:
    out = _Lines()
    received_at: float | None = None
    source: str | None = None
    for line in lines:
        if not line.strip() or line.startswith((HALF_PREFIX, POSITION_PREFIX)):
            continue  # CloudEvent halves and journal positions are kept for a restart, not shipped
        try:
            if line.startswith(MARKER_PREFIX):
                marker = orjson.loads(line)
                received_at, source = marker["_t"], marker.get("_s")
            elif line.startswith(QUARANTINE_PREFIX):
                out.quarantined.append(orjson.loads(line))
            elif line.startswith(FEEDBACK_PREFIX):
                out.feedback.append(line)
            else:
                out.events.append(line)
                out.received.append(received_at)
                out.sources.append(source)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            out.quarantined.append(quarantine_record("unreadable spool line", line, received_at))
    return out


def _probabilities(column: pa.ChunkedArray) -> pa.Array:
    """The ``{class: probability}`` objects (read as a struct, one field per class seen) as a map column."""
    probs = column.combine_chunks()
    if not pa.types.is_struct(probs.type) or probs.null_count:
        raise _Misfit("'probabilities' is not an object of numbers in every event")
    names = [probs.type.field(i).name for i in range(probs.type.num_fields)]
    rows = len(probs)
    if not names:
        return pa.MapArray.from_arrays(pa.array(np.zeros(rows + 1, np.int32)), pa.array([], pa.string()),
                                       pa.array([], pa.float64()))
    matrix = np.column_stack([pc.fill_null(probs.field(i).cast(pa.float64()), np.nan).to_numpy()
                              for i in range(len(names))])
    present = ~np.isnan(matrix)
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    keys = np.tile(np.array(names, dtype=object), rows)[present.ravel()]
    return pa.MapArray.from_arrays(pa.array(offsets), pa.array(keys, pa.string()),
                                   pa.array(matrix.ravel()[present.ravel()], pa.float64()))


def _convert(events: Sequence[bytes], received: Sequence[float | None], sources: Sequence[str | None]) -> pa.Table:
    """Event lines as one table of the log schema plus the partition columns; ``_Misfit`` when one does not fit."""
    try:
        raw = pajson.read_json(io.BytesIO(b"\n".join(events)), read_options=pajson.ReadOptions(block_size=1 << 24))
        if "id" not in raw.column_names or raw.column("id").null_count:
            raise _Misfit("an event has no 'id'")
        if "probabilities" not in raw.column_names:
            raise _Misfit("an event has no 'probabilities'")
        columns = []
        for column in SCHEMA:
            if column.name == "probabilities":
                columns.append(_probabilities(raw.column("probabilities")))
            elif column.name == "received_at":
                columns.append(pa.array(received, pa.float64()))
            elif column.name == "source":
                columns.append(pa.array(sources, pa.string()))
            elif column.name in raw.column_names:
                columns.append(raw.column(column.name).cast(column.type))
            else:
                columns.append(pa.nulls(len(events), column.type))
        table = pa.Table.from_arrays(columns, schema=SCHEMA)
        for name in _PARTITION_COLUMNS:
            value = raw.column(name).cast(pa.string()) if name in raw.column_names else pa.nulls(len(events),
                                                                                                   pa.string())
            table = table.append_column(name, value)
        return table
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise _Misfit(str(e)) from e


def _events_table(lines: _Lines) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The events that fit the schema as one table, and a quarantine record for each line that does not."""
    try:
        return _convert(lines.events, lines.received, lines.sources), []
    except _Misfit as e:
        if len(lines.events) == 1:
            line = lines.events[0]
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                return _empty(), [quarantine_record("unreadable spool line", line, lines.received[0])]
            if not isinstance(obj, dict) or "id" not in obj:
                raise ValueError(f"spool line is neither a record nor an event with an id: {line[:200]!r}") from e
            reason = f"field types do not fit the log schema: {e}"
            return _empty(), [quarantine_record(reason, line, lines.received[0])]
    half = len(lines.events) // 2
    parts = [_events_table(_Lines(lines.events[a:b], lines.received[a:b], lines.sources[a:b]))
             for a, b in ((0, half), (half, len(lines.events)))]
    return pa.concat_tables([t for t, _ in parts]), [q for _, bad in parts for q in bad]


def _empty() -> pa.Table:
    table = SCHEMA.empty_table()
    for name in _PARTITION_COLUMNS:
        table = table.append_column(name, pa.array([], pa.string()))
    return table


def _feedback_table(lines: Sequence[bytes]) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Feedback lines (checked at ingest) as a table of the feedback schema plus ``environment``; a line that does
    not fit is quarantined with the reason."""
    schema = FEEDBACK.schema.append(pa.field("environment", pa.string()))
    errors = (orjson.JSONDecodeError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError, AttributeError)
    try:
        return pa.Table.from_pylist([orjson.loads(line) for line in lines], schema=schema), []
    except errors:
        pass  # isolate the misfits, one line at a time (rare: every line was checked at ingest)
    rows: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for line in lines:
        try:
            row = orjson.loads(line)
            pa.Table.from_pylist([row], schema=schema)
            rows.append(row)
        except errors as e:
            bad.append(quarantine_record(f"feedback line does not fit the feedback schema: {e}", line, None))
    return pa.Table.from_pylist(rows, schema=schema), bad


def segment_objects(segment_id: str, lines: Sequence[bytes]) -> tuple[list[SinkObject], int]:
    """The sink objects of a segment's spool lines, and the number of repeated event ids dropped.

    Keys depend only on the segment id and content, so shipping a segment twice overwrites the same objects
    instead of duplicating records.
    """
    sorted_lines = _sort_lines(lines)
    table, misfits = _events_table(sorted_lines) if sorted_lines.events else (_empty(), [])
    table, duplicates = dedupe(table)
    objects = [SinkObject(PREDICTIONS.object_key(partition, segment_id),
                          encode_parquet(table.take(pa.array(rows)).select(SCHEMA.names)), len(rows))
               for partition, rows in sorted(partitions(table).items())]
    labels, bad_labels = _feedback_table(sorted_lines.feedback)
    labels, repeats = dedupe(labels)
    objects += [SinkObject(FEEDBACK.object_key(partition, segment_id),
                           encode_parquet(labels.take(pa.array(rows)).select(FEEDBACK.schema.names)), len(rows))
                for partition, rows in sorted(partitions(labels, FEEDBACK).items())]
    duplicates += repeats
    quarantined = sorted_lines.quarantined + misfits + bad_labels
    if quarantined:
        body = b"".join(orjson.dumps(q) + b"\n" for q in quarantined)
        objects.append(SinkObject(quarantine_key(segment_id, quarantined[0].get("received_at")), body,
                                  len(quarantined)))
    return objects, duplicates
