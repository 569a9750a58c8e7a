"""``kube-sentiment feedback import FILE``: labels from a labelling tool or a backfill into the sink.

Every row is checked like an item of ``POST /v1/feedback`` (:func:`serving.eventlog.feedback.parse_items`: a
prediction id, a label among the model's classes, an optional source and time), then the rows are stored through the
shipper's own path: spool lines (:func:`serving.shipper.wire.parse_ndjson`) → sink objects
(:func:`serving.shipper.objects.segment_objects`, under ``feedback/``) → the sink's atomic ``put``. Importing a file
again stores nothing new for the reader: an item's event id depends only on its prediction id, source, label and
``at``, and the reader drops repeated ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from control.feedback.settings import ImportSettings
from model.errors import DataError, KubeSentimentError
from model.settings import DEFAULT_LABELS
from serving.eventlog.feedback import BadFeedback, FeedbackEvent, encode, parse_items
from serving.shipper.objects import segment_objects
from serving.shipper.sinks import SinkError, sink_at
from serving.shipper.wire import marker_line

log = logging.getLogger(__name__)
#: Rows stored per segment (one set of objects each).
SEGMENT_ROWS = 200_000
COLUMNS = ("id", "label", "source", "at")


def read_labels(path: Path, max_rows: int) -> pd.DataFrame:
    """The file's ``id``, ``label`` and (when present) ``source`` and ``at`` columns; ``DataError`` naming what is
    wrong."""
    if not path.is_file():
        raise DataError(f"feedback file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                                encoding="utf-8")
        else:
            raise DataError(f"unsupported feedback file format {suffix!r} of {path}: use .csv, .tsv or .parquet")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid UTF-8 ({e.reason} at byte {e.start})") from e
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("id", "label") if c not in frame.columns]
    if missing:
        raise DataError(f"{path} has no column(s) {missing}; its columns are {list(frame.columns)}")
    if len(frame) > max_rows:
        raise DataError(f"{path} has {len(frame)} rows; at most {max_rows} are imported at once (split the file)")
    return frame[[c for c in COLUMNS if c in frame.columns]]


def _items(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as feedback items; empty ``source``/``at`` cells mean "not given"."""
    items = []
    for row in frame.to_dict("records"):
        item = {k: v for k, v in row.items() if not (k in ("source", "at") and (v is None or v == "" or v != v))}
        if isinstance(item.get("at"), datetime):  # a Parquet timestamp column (naive: UTC)
            moment = item["at"]
            item["at"] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        elif isinstance(item.get("at"), str):
            text = item["at"].strip()
            try:
                item["at"] = float(text)
            except ValueError:
                item["at"] = text
        items.append(item)
    return items


def model_classes(settings: ImportSettings) -> tuple[str, ...]:
    """The classes labels are checked against: the setting, else the registry's version behind the alias, else
    the default labels."""
    if settings.classes:
        return settings.classes
    if not settings.tracking_uri:
        log.info("no classes and no tracking server given: labels are checked against %s", list(DEFAULT_LABELS))
        return DEFAULT_LABELS
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from model.artifacts import METADATA_FILE

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        version = client.get_model_version_by_alias(settings.registered_model, settings.alias)
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"{version.source}/{METADATA_FILE}",
                                                    tracking_uri=settings.tracking_uri)
    except MlflowException as e:
        raise KubeSentimentError(f"cannot read the classes of {settings.registered_model}@{settings.alias} at "
                                 f"{settings.tracking_uri}: {e.message}; pass --classes") from e
    classes = tuple(json.loads(Path(local).read_text())["classes"])
    log.info("labels are checked against the classes of %s version %s: %s", settings.registered_model,
             version.version, list(classes))
    return classes


def run_import(settings: ImportSettings) -> dict[str, Any]:
    """Check and store the file's labels; the summary printed by the command."""
    frame = read_labels(settings.file, settings.max_rows)
    classes = model_classes(settings)
    received = time.time()
    events: list[FeedbackEvent] = []
    invalid: list[str] = []
    for number, item in enumerate(_items(frame), start=2 if settings.file.suffix.lower() != ".parquet" else 1):
        try:
            events += parse_items([item], classes, default_source=settings.source, received=received,
                                  environment=settings.environment, max_items=1)
        except BadFeedback as e:
            problem = f"row {number}: {str(e).removeprefix('item 0: ').removeprefix('item 0 ')}"
            if not settings.skip_invalid:
                raise DataError(f"{settings.file} {problem}; nothing was stored (--skip-invalid stores the valid "
                                "rows)") from e
            invalid.append(problem)
    digest = hashlib.sha256(settings.file.read_bytes()).hexdigest()[:12]
    sink = sink_at(settings.sink, settings.s3_endpoint_url, settings.s3_region)
    stored = objects_written = repeats = 0
    for begin in range(0, len(events), SEGMENT_ROWS):
        chunk = events[begin:begin + SEGMENT_ROWS]
        segment_id = f"{time.time_ns()}-import-{digest}-{begin // SEGMENT_ROWS}"
        objects, duplicates = segment_objects(segment_id, [marker_line(received, "import"),
                                                           *map(encode, chunk)])
        try:
            for key, data, _ in objects:
                sink.put(key, data)
        except SinkError as e:
            raise KubeSentimentError(f"cannot write to the sink {settings.sink}: {e}") from e
        stored += len(chunk) - duplicates
        repeats += duplicates
        objects_written += len(objects)
    for problem in invalid[:20]:
        log.warning("skipped %s", problem)
    log.info("imported %d labels from %s into %s (%d invalid rows skipped)", stored, settings.file, settings.sink,
             len(invalid), extra={"stored": stored, "invalid": len(invalid)})
    return {"file": str(settings.file), "sink": settings.sink, "rows": len(frame), "stored": stored,
            "repeated_in_file": repeats, "invalid": len(invalid), "invalid_examples": invalid[:5],
            "objects": objects_written, "classes": list(classes)}
