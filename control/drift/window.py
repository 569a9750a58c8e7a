"""The drift job's window: the prediction-log columns it needs, read with the event-log reader
(:func:`serving.eventlog.reader.read_window`), and the rows of each (model version, track) group."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from control.drift.settings import DriftSettings
from serving.eventlog.reader import Window, read_window

COLUMNS = ["id", "ts", "model_version", "track", "environment", "text", "text_length", "label", "confidence"]


def read(settings: DriftSettings, start: datetime, end: datetime) -> Window:
    """The de-duplicated predictions of ``[start, end)`` in the configured source (and environment)."""
    where = {"environment": settings.environment} if settings.environment is not None else None
    return read_window(settings.source, start, end, columns=COLUMNS, where=where,
                       endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)


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
