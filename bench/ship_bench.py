"""Benchmark: prediction events per second through one shipper process into the local sink.

    .venv/bin/python bench/ship_bench.py [--events 200000] [--batch 500] [--clients 4]

Starts ``python -m serving.shipper`` on a free port with a temporary spool and sink, posts pre-built NDJSON batches
from client threads over keep-alive connections, and waits until ``ks_ship_events_written_total`` says every event
is in the sink (end-to-end: fsync'ed spool, Parquet objects written). The baseline, measured in the same run, is
the naive design: one file written and fsync'ed per event. The shipper is measured three times: fed events over HTTP,
fed over HTTP the one-line-per-request records the predictor makes (single-text requests, text logging off), which it
expands into events itself, and reading those records from journal files the way the predictor in its pod hands them
over (``serving.eventlog.journal``: written by this process in 1 MiB appends, as the predictor's emitter does). Prints
a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import free_port  # noqa: E402  (after the path insert, for `python bench/ship_bench.py`)


def metric(port: int, name: str) -> float:
    """Sum of a metric's samples."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {what}")


def _record_lines(batch: list) -> list[bytes]:  # type: ignore[type-arg]
    """The predictor's request records of ``batch`` (one single-text request per event, text logging off)."""
    import numpy as np

    from serving.eventlog.events import RequestEncoder

    first = batch[0]
    encoder = RequestEncoder(first["model_name"], first["model_version"], first["track"], first["environment"],
                             tuple(first["probabilities"]), log_text=False)
    return [encoder.line(e["request_id"], e["ts"], e["protocol"], [e["text"]],
                         np.array([list(e["probabilities"].values())]), e["latency_ms"]) for e in batch]


def _records(batch: list) -> bytes:  # type: ignore[type-arg]
    """The request records of ``batch`` as an NDJSON body."""
    return b"".join(line + b"\n" for line in _record_lines(batch))


def _start_shipper(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "KS_SHIP_HOST": "127.0.0.1", "KS_SHIP_PORT": str(port),
           "KS_SHIP_SPOOL_DIR": str(workdir / "spool"), "KS_SHIP_SINK_DIR": str(workdir / "sink"),
           "KS_SHIP_SEGMENT_MAX_AGE_S": "1", "KS_SHIP_JSON_LOGS": "true", "KS_SHIP_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "serving.shipper"], cwd=REPO, env=env)
    wait_for(lambda: metric(port, "ks_ship_events_written_total") == 0, 60, "the shipper")
    return proc, port


def bench_journal(n_events: int, workdir: Path) -> dict[str, float]:
    """Events/s end to end when the shipper reads the predictor's journal: request records appended to journal files
    (1 MiB appends, 8 MiB files, like the predictor's defaults) while the shipper runs, until all are in the sink."""
    from serving.eventlog.journal import JournalWriter
    from tests.support.events import events

    proc, port = _start_shipper(workdir)
    try:
        lines = _record_lines(events(n_events, prefix="journal-"))
        writer = JournalWriter(workdir / "spool" / "journal", 1 << 34, 8 * 1024 * 1024)
        started = time.perf_counter()
        batch: list[bytes] = []
        size = 0
        for line in lines:
            batch.append(line)
            size += len(line) + 1
            if size >= 1024 * 1024:
                writer.append(batch)
                batch, size = [], 0
        writer.append(batch)
        writer.close()
        written = time.perf_counter() - started
        wait_for(lambda: metric(port, "ks_ship_events_written_total") >= n_events, 300, "the sink to hold every event")
        return {"events": n_events, "write_s": written, "e2e_s": time.perf_counter() - started}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def bench_shipper(n_events: int, batch: int, clients: int, workdir: Path, records: bool = False) -> dict[str, float]:
    """Events/s through a real shipper process (ingest acknowledged, and end-to-end into the sink), fed events or
    request records."""
    from tests.support.events import events, ndjson

    proc, port = _start_shipper(workdir)
    try:
        per_client = n_events // clients // batch
        encode = _records if records else ndjson
        bodies = [[encode(events(batch, start=(c * per_client + b) * batch, prefix=f"c{c}-"))
                   for b in range(per_client)] for c in range(clients)]
        total = per_client * batch * clients
        errors: list[str] = []

        def client(c: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for body in bodies[c]:
                conn.request("POST", "/v1/events", body=body, headers={"Content-Type": "application/x-ndjson"})
                response = conn.getresponse()
                response.read()
                if response.status != 202:
                    errors.append(str(response.status))
            conn.close()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        acked = time.perf_counter() - started
        wait_for(lambda: metric(port, "ks_ship_events_written_total") >= total, 300, "the sink to hold every event")
        written = time.perf_counter() - started
        if errors:
            raise SystemExit(f"{len(errors)} batches refused: {errors[:5]}")
        return {"events": total, "ack_s": acked, "e2e_s": written}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def bench_naive(n_events: int, workdir: Path) -> dict[str, float]:
    """The naive shipper: each event in its own file, fsync'ed (what 'durable before ack' costs done simply)."""
    import orjson

    from tests.support.events import events

    target = workdir / "naive"
    target.mkdir()
    batch = events(n_events, prefix="naive-")
    started = time.perf_counter()
    for event in batch:
        fd = os.open(target / f"{event['id']}.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, orjson.dumps(event))
        os.fsync(fd)
        os.close(fd)
    return {"events": n_events, "e2e_s": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--naive-events", type=int, default=3000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ks-ship-bench-") as tmp:
        ours = bench_shipper(args.events, args.batch, args.clients, Path(tmp) / "events")
        recs = bench_shipper(args.events, args.batch, args.clients, Path(tmp) / "records", records=True)
        journal = bench_journal(args.events, Path(tmp) / "journal")
        naive = bench_naive(args.naive_events, Path(tmp))
    load = os.getloadavg()[0]
    print(f"\nship_bench on {platform.node()} ({os.cpu_count()} CPUs, load average {load:.1f}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| shipper | events | seconds | events/s | goal |")
    print("|---|---:|---:|---:|---:|")
    print(f"| kube-sentiment ship, acknowledged (fsync'ed spool), batch {args.batch}, {args.clients} clients "
          f"| {ours['events']} | {ours['ack_s']:.2f} | {ours['events'] / ours['ack_s']:,.0f} | 20,000 |")
    print(f"| kube-sentiment ship, end-to-end into the local sink (Parquet) | {ours['events']} | {ours['e2e_s']:.2f} "
          f"| {ours['events'] / ours['e2e_s']:,.0f} | 20,000 |")
    print(f"| kube-sentiment ship fed request records (what the predictor sends), acknowledged | {recs['events']} "
          f"| {recs['ack_s']:.2f} | {recs['events'] / recs['ack_s']:,.0f} | 20,000 |")
    print(f"| kube-sentiment ship fed request records, end-to-end into the local sink | {recs['events']} "
          f"| {recs['e2e_s']:.2f} | {recs['events'] / recs['e2e_s']:,.0f} | 20,000 |")
    print(f"| kube-sentiment ship reading the predictor's journal files, end-to-end into the local sink "
          f"| {journal['events']} | {journal['e2e_s']:.2f} | {journal['events'] / journal['e2e_s']:,.0f} | 20,000 |")
    print(f"| baseline: one fsync'ed file per event | {naive['events']} | {naive['e2e_s']:.2f} "
          f"| {naive['events'] / naive['e2e_s']:,.0f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
