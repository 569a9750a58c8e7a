"""``kube-sentiment feedback snapshot --out FILE``: the labelled production data of a window, for training.

The window's predictions (with their logged texts) joined to their feedback by :func:`control.quality.join.read_joined`
(the same rules as live quality), written as Parquet with the window, the sink and the join counts in the file's
metadata (key ``kube_sentiment.snapshot``), which training logs with the run. Predictions logged without their text
(``--log-text`` off) cannot be trained on; they are counted as ``without_text``. An empty snapshot is still written:
training with it is training without production data.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from control.feedback.settings import SnapshotSettings
from control.quality.join import read_joined
from model.data import SNAPSHOT_METADATA_KEY

log = logging.getLogger(__name__)
SCHEMA = pa.schema([("text", pa.string()), ("label", pa.string()), ("ts", pa.float64()),
                    ("prediction_id", pa.string()), ("model_version", pa.string()), ("predicted", pa.string()),
                    ("label_sources", pa.string())])


def run_snapshot(settings: SnapshotSettings) -> dict[str, Any]:
    """Write the snapshot file; the summary printed by the command."""
    start, end = settings.window_bounds()
    where = {"environment": settings.environment} if settings.environment is not None else None
    joined = read_joined(settings.sink, start, end, lateness=settings.lateness_delta(),
                         columns=("id", "ts", "model_version", "label", "text"), where=where,
                         endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    rows = joined.labelled
    with_text = rows[rows["text"].notna() & (rows["text"] != "")]
    frame = {
        "text": with_text["text"], "label": with_text["true_label"], "ts": with_text["ts"],
        "prediction_id": with_text["id"], "model_version": with_text["model_version"].astype(str),
        "predicted": with_text["label"], "label_sources": with_text["label_sources"],
    }
    table = pa.table({name: pa.array(list(frame[name]), type=SCHEMA.field(name).type) for name in SCHEMA.names})
    summary = {"sink": settings.sink, "environment": settings.environment, "start": start.isoformat(),
               "end": end.isoformat(), "lateness": settings.lateness, "predictions": len(joined.predictions),
               "join": joined.counts.as_dict(), "without_text": len(rows) - len(with_text), "rows": table.num_rows}
    table = table.replace_schema_metadata({SNAPSHOT_METADATA_KEY: json.dumps(summary).encode()})
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = settings.out.with_name(f".{settings.out.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(settings.out)
    if summary["without_text"]:
        log.warning("%d labelled predictions were logged without their text (log_text off) and are left out",
                    summary["without_text"])
    log.info("wrote %d labelled production rows to %s", table.num_rows, settings.out, extra={"rows": table.num_rows})
    return summary | {"out": str(settings.out)}

