"""bench/loadgen.py: reading wrk's and ghz's output and adding a server's turns up (no process started here)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

from bench import loadgen
from bench.loadgen import (
    LoadGenError,
    Tally,
    Turn,
    _epoch_ns,
    _varint,
    drive,
    parse_ghz,
    parse_wrk,
    percentiles,
    wait_idle,
    wrk_expected_interval,
    wrk_uncorrected,
)


def wrk_correct(histogram: dict[int, int], expected: int) -> dict[int, int]:
    """wrk 4.1.0's ``stats_correct`` (src/stats.c), line for line, over a dense array as wrk keeps it."""
    top = max(histogram)
    data = [0] * (top + 1)
    for value, count in histogram.items():
        data[value] += count
    for n in range(expected * 2, top + 1):
        count, m = data[n], n - expected
        while count and m > expected:
            data[m] += count
            m -= expected
    return {value: count for value, count in enumerate(data) if count}


def test_uncorrected_worked_example() -> None:
    # interval 10 µs: 25 adds one at 15; 31 (x2) adds two at 21 and two at 11; 5 and 12 are below 2 x 10.
    original = {5: 3, 12: 1, 25: 1, 31: 2}
    corrected = wrk_correct(original, 10)
    assert corrected == {5: 3, 11: 2, 12: 1, 15: 1, 21: 2, 25: 1, 31: 2}
    assert wrk_uncorrected(corrected, 10) == Counter(original)


@pytest.mark.parametrize("seed", range(20))
def test_uncorrected_inverts_wrk_on_random_histograms(seed: int) -> None:
    rng = random.Random(seed)
    expected = rng.randint(1, 400)
    original = Counter(int(rng.lognormvariate(6, 0.8)) + 1 for _ in range(rng.randint(1, 3000)))
    assert wrk_uncorrected(wrk_correct(dict(original), expected), expected) == original


def test_uncorrected_without_correction_keeps_the_histogram() -> None:
    assert wrk_uncorrected({40: 2, 900: 1}, 0) == Counter({40: 2, 900: 1})


def test_uncorrected_refuses_a_histogram_wrk_cannot_have_written() -> None:
    with pytest.raises(LoadGenError, match="not a corrected one"):
        wrk_uncorrected({15: 1, 25: 3}, 10)  # 25 would have added 3 at 15


def test_expected_interval_is_wrk_integer_arithmetic() -> None:
    assert wrk_expected_interval(duration_us=600_123, requests=1_000, connections=8) == 600_123 // 125
    assert wrk_expected_interval(duration_us=600_000, requests=7, connections=8) == 0  # wrk skips the correction


def wrk_output(original: dict[int, int], duration_us: int, connections: int, **errors: int) -> str:
    requests = sum(original.values())
    corrected = wrk_correct(original, wrk_expected_interval(duration_us, requests, connections))
    line = {"duration_us": duration_us, "requests": requests,
            "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0} | errors,
            "latency_us": [[v, c] for v, c in sorted(corrected.items())]}
    return (f"Running 2s test @ http://127.0.0.1:1/v2/models/sentiment/infer\n  1 threads and {connections} "
            f"connections\n  ...\nKS_WRK {json.dumps(line)}\n")


def test_parse_wrk_reads_the_done_line_and_undoes_the_correction() -> None:
    original = {1500: 400, 1800: 500, 2600: 90, 9000: 10}
    turn = parse_wrk(wrk_output(original, 512_000, 8, status=3, read=1), connections=8)
    assert (turn.requests, turn.errors, turn.seconds) == (1000, 4, 0.512)
    assert turn.latencies_us == Counter(original)


def test_parse_wrk_without_its_line_says_what_wrk_printed() -> None:
    with pytest.raises(LoadGenError, match="unable to connect"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n", connections=8)


def ghz_report(spans_ms: list[tuple[float, float, str]], t0: str = "2026-12-02T05:10:00") -> dict[str, object]:
    """A ghz ``-O json`` report of calls given as (start ms, latency ms, status) after ``t0`` (UTC)."""
    base = _epoch_ns(t0 + "Z")
    details = []
    for start_ms, latency_ms, status in spans_ms:
        end = base + round((start_ms + latency_ms) * 1e6)
        secs, nanos = divmod(end, 1_000_000_000)
        stamp = np.datetime64(secs, "s").astype(str) + f".{nanos:09d}".rstrip("0").rstrip(".") + "Z"
        details.append({"timestamp": stamp, "latency": round(latency_ms * 1e6), "status": status,
                        "error": "" if status == "OK" else "rpc error"})
    return {"count": len(details), "details": details}


def test_parse_ghz_leaves_out_the_settle_time() -> None:
    report = ghz_report([(0, 2, "OK"), (50, 60, "OK"), (100, 3, "OK"), (101, 5, "Unavailable"), (150, 4, "OK")])
    turn = parse_ghz(report, settle_s=0.1)
    # measured from 100 ms: three calls sent in the window give latencies; four ended in it (one sent before)
    assert turn.latencies_us == Counter({3000: 1, 5000: 1, 4000: 1})
    assert (turn.requests, turn.errors) == (4, 1)
    assert turn.seconds == pytest.approx(0.054)  # the last answer at 154 ms


def test_parse_ghz_without_calls_says_so() -> None:
    with pytest.raises(LoadGenError, match="no call"):
        parse_ghz({"count": 0, "details": None, "errorDistribution": {"connection refused": 8}}, settle_s=0.1)


@pytest.mark.parametrize(("stamp", "nanos"), [
    ("2026-12-02T05:10:00Z", 0),
    ("2026-12-02T05:10:00.5Z", 500_000_000),
    ("2026-12-02T05:10:00.123456789Z", 123_456_789),
    ("2026-12-02T06:10:00.000000001+01:00", 1),
])
def test_epoch_ns_reads_go_times(stamp: str, nanos: int) -> None:
    assert _epoch_ns(stamp) - _epoch_ns("2026-12-02T05:10:00Z") == nanos


def test_varint_is_protobuf_length_prefix() -> None:
    assert [_varint(n) for n in (0, 1, 127, 128, 300)] == [b"\0", b"\1", b"\x7f", b"\x80\x01", b"\xac\x02"]


def test_tally_merges_raw_latencies_and_weighs_time() -> None:
    first = [1000] * 90 + [5000] * 10
    second = [2000] * 45 + [3000] * 5
    tally = Tally()
    tally.add(Turn(100, 0, 0.5, Counter(first), cpu_s=0.2, cpu_wall_s=0.5))
    tally.add(Turn(50, 2, 0.5, Counter(second), cpu_s=0.3, cpu_wall_s=0.5))
    result = tally.result(per_request=4, loadgen="wrk 4.1.0")
    both = np.array(first + second)
    assert result["p50_ms"] == pytest.approx(np.percentile(both, 50) / 1000)
    assert result["p99_ms"] == pytest.approx(np.percentile(both, 99) / 1000)
    assert (result["requests"], result["errors"], result["rps"], result["texts_per_s"]) == (150, 2, 150.0, 600.0)
    turn_tails = [np.percentile(first, 99) / np.percentile(first, 50), np.percentile(second, 99) / 2000]
    assert result["p99_over_p50_typical_turn"] == pytest.approx(np.median(turn_tails))
    assert result["client_cpu"] == pytest.approx(0.5)
    assert result["loadgen"] == "wrk 4.1.0"


def test_tally_without_cpu_reports_none() -> None:
    tally = Tally()
    tally.add(Turn(10, 0, 0.1, Counter({100: 10})))
    assert tally.result(1, "ghz 0.121.0")["client_cpu"] is None


def test_tally_with_nothing_measured_fails_loudly() -> None:
    with pytest.raises(LoadGenError, match="no request was measured"):
        Tally().result(1, "wrk")


def test_percentiles_of_a_histogram_match_the_raw_list() -> None:
    rng = random.Random(1)
    raw = [rng.randint(50, 5000) for _ in range(999)]
    assert percentiles(Counter(raw), (50, 99)) == pytest.approx(list(np.percentile(raw, [50, 99])))



def test_wait_idle_waits_while_the_process_computes_and_not_once_it_sleeps() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    asleep = subprocess.Popen(["sleep", "30"])
    try:
        started = time.monotonic()
        wait_idle(busy.pid, quiet_s=0.2, deadline_s=1.0)
        assert time.monotonic() - started >= 1.0  # never idle: held until the deadline
        started = time.monotonic()
        wait_idle(asleep.pid, quiet_s=0.2, deadline_s=20.0)
        assert time.monotonic() - started < 10  # idle at once
    finally:
        for process in (busy, asleep):
            process.kill()
            process.wait()


def test_drive_interleaves_turns_and_waits_for_each_server_to_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(loadgen, "wait_idle", lambda pid: events.append(f"idle {pid}"))

    class Fake:
        label = "fake"

        def warm(self, port: int, seconds: float) -> None:
            events.append(f"warm {port}")

        def turn(self, port: int, seconds: float, settle_s: float, drained: Any = None) -> Turn:
            events.append(f"settle {port}")
            drained()
            events.append(f"measure {port}")
            return Turn(10, 0, seconds, Counter({1000: 10}))

    tallies = drive(Fake(), [8001, 8002], seconds=1.0, slice_s=0.5, warmup_s=1.0, settle_s=0.1, pids=[11, 22])
    assert [t.requests for t in tallies] == [20, 20]
    one_round = ["settle 8001", "idle 11", "measure 8001", "idle 11", "settle 8002", "idle 22", "measure 8002",
                 "idle 22"]
    assert events == ["warm 8001", "idle 11", "warm 8002", "idle 22", *one_round, *one_round]
