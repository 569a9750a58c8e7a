"""Native load generators of ``bench/serve_bench.py``: wrk for V1 and V2 REST, ghz for V2 gRPC.

A Python client (asyncio HTTP, ``grpc.aio``) saturates its core below what the servers answer, so its "ceiling"
was partly its own (docs/benchmarks.md). These drive the same closed loop from C (wrk) and Go (ghz), one core each:

- **wrk** (Debian ``wrk`` 4.1.0), not h2load, for HTTP/1.1: its Lua script (``bench/wrk_load.lua``) sends the
  cell's 500 different request bodies in turn on every connection, as real traffic varies (h2load's ``-d`` sends
  one body for the whole run, which keeps the predictor's lookups in cache), and hands back in ``done()`` the
  whole latency histogram (µs resolution), not only percentiles. The servers speak HTTP/1.1 only (uvicorn), so
  h2load's HTTP/2 is no advantage. wrk's ``-d`` counts whole seconds, so a turn is ended by SIGINT (wrk then stops
  within its 100 ms timer tick and reports its own measured time, which req/s uses).
- **ghz** (built by ``scripts/build-tools.sh ghz`` from its Go module, version pinned in ``k8s/versions.env``) for
  gRPC: one HTTP/2 connection carrying ``c`` calls, like a ``grpc.aio`` channel, sending the cell's 500 messages
  round robin (count-delimited binary, parsed once); the service is described by a protoset built from the
  installed ``kserve`` package's own descriptor (KServe's ModelServer enables no reflection and ships no .proto).
  ``-O json`` gives every call's end time, latency and status, so the first ``settle_s`` of a turn is cut out
  exactly as the Python client did.

**Latency.** wrk 4 applies a coordinated-omission correction to its histogram before ``done()`` sees it (every
latency above twice the mean interval per connection adds synthetic samples below it; ``stats_correct`` in wrk's
``src/stats.c``): its percentiles then describe requests that a schedule it did not run would have sent, raise
p99, and cannot be set beside ghz's or the Python client's. :func:`wrk_uncorrected` inverts the correction exactly
(the interval follows from wrk's own counts), so every tool reports the plain client-side latency of every request
it sent. A server's turns are combined by merging these raw
distributions: its p50 and p99 are over all its measured requests (as before), beside the median over its turns
of each turn's p99/p50 (:class:`Tally`).

**The load generator's own CPU** is read from ``/proc/<pid>/stat`` (user + system, all threads) over its measured
window and divided by that window's wall time: a saturated generator shows as ~100 % of its core, and then the
cell measures the generator, not the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

WRK_SCRIPT = Path(__file__).with_name("wrk_load.lua")
WRK_MARK = "KS_WRK "  # prefix of the one JSON line the Lua script's done() prints
GHZ_CALL = "inference.GRPCInferenceService.ModelInfer"


class LoadGenError(RuntimeError):
    """A load generator failed or printed something this module cannot read; the message says what."""


# --- finding the tools ------------------------------------------------------------------------------------------


def wrk_binary() -> Path | None:
    """The wrk on PATH (Debian/Ubuntu: ``apt-get install wrk``), or None."""
    found = shutil.which("wrk")
    return Path(found) if found else None


def ghz_binary() -> Path | None:
    """ghz from the pinned tools (``scripts/build-tools.sh ghz``), else one on PATH, else None."""
    from tests.support import tools_bin

    built = tools_bin() / "ghz"
    if built.is_file() and os.access(built, os.X_OK):
        return built
    found = shutil.which("ghz")
    return Path(found) if found else None


def tool_version(binary: Path) -> str:
    """``wrk 4.1.0-3+b2`` or ``ghz 0.121.0``: the tool's name and version as it prints them."""
    flag = "-v" if binary.name == "wrk" else "--version"
    done = subprocess.run([str(binary), flag], capture_output=True, text=True, timeout=30, check=False)
    words = (done.stdout + done.stderr).split()  # ghz prints its version on stderr
    if binary.name == "wrk" and len(words) > 1:  # "wrk debian/4.1.0-3+b2 [epoll] Copyright ..."
        return f"wrk {words[1].rsplit('/', 1)[-1]}"
    return f"{binary.name} {words[0].lstrip('v')}" if words else binary.name


# --- one turn's results, and a server's turns combined ------------------------------------------------------------


@dataclass
class Turn:
    """What one measured turn against one server gave."""

    requests: int
    """Answers received in the measured window (errors included)."""
    errors: int
    """Non-200 answers, failed calls and socket errors in the window."""
    seconds: float
    """Length of the measured window."""
    latencies_us: Counter[int]
    """Latency in µs -> number of requests, for the requests sent in the window."""
    cpu_s: float | None = None
    """User + system CPU seconds the load generator used over ``cpu_wall_s`` (None: not measured)."""
    cpu_wall_s: float | None = None


def percentiles(latencies_us: Mapping[int, int], qs: Sequence[float]) -> list[float]:
    """Percentiles (numpy's linear interpolation, as over the raw list) of a latency histogram, in µs."""
    values = np.fromiter(latencies_us.keys(), dtype=np.int64, count=len(latencies_us))
    counts = np.fromiter(latencies_us.values(), dtype=np.int64, count=len(latencies_us))
    return [float(x) for x in np.percentile(np.repeat(values, counts), qs)]


@dataclass
class Tally:
    """A server's measured turns within a cell, added up."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_us: Counter[int] = field(default_factory=Counter)
    turn_tails: list[float] = field(default_factory=list)  # p99 / p50 of each measured turn
    cpu_s: float = 0.0
    cpu_wall_s: float = 0.0

    def add(self, turn: Turn) -> None:
        """Count one turn in."""
        self.requests += turn.requests
        self.errors += turn.errors
        self.seconds += turn.seconds
        self.latencies_us.update(turn.latencies_us)
        if turn.latencies_us:
            p50, p99 = percentiles(turn.latencies_us, (50, 99))
            self.turn_tails.append(p99 / p50 if p50 > 0 else math.nan)
        if turn.cpu_s is not None and turn.cpu_wall_s:
            self.cpu_s += turn.cpu_s
            self.cpu_wall_s += turn.cpu_wall_s

    def result(self, per_request: int, loadgen: str) -> dict[str, Any]:
        """req/s = all requests over all measured time; p50 and p99 over every measured request (all turns'
        latencies merged); ``p99_over_p50_typical_turn`` = the median over turns of each turn's p99/p50;
        ``client_cpu`` = the load generator's CPU over its measured time (1.0 = one core saturated)."""
        if not self.latencies_us or self.seconds <= 0:
            raise LoadGenError(f"{loadgen}: no request was measured ({self.requests} answers, {self.errors} errors)")
        p50, p99 = percentiles(self.latencies_us, (50, 99))
        return {
            "requests": self.requests, "errors": self.errors, "seconds": self.seconds,
            "rps": self.requests / self.seconds, "texts_per_s": self.requests * per_request / self.seconds,
            "p50_ms": p50 / 1000, "p99_ms": p99 / 1000,
            "p99_over_p50_typical_turn": float(statistics.median(self.turn_tails)),
            "loadgen": loadgen, "client_cpu": self.cpu_s / self.cpu_wall_s if self.cpu_wall_s else None,
        }


# --- wrk -----------------------------------------------------------------------------------------------------------


def wrk_expected_interval(duration_us: int, requests: int, connections: int) -> int:
    """The interval wrk 4's correction assumes: its run time over requests per connection (integer division, as in
    ``wrk.c``); 0 when wrk skips the correction."""
    per_connection = requests // connections
    return duration_us // per_connection if per_connection > 0 else 0


def wrk_uncorrected(corrected: Mapping[int, int], expected: int) -> Counter[int]:
    """Undo wrk 4's coordinated-omission correction of a latency histogram (µs -> count).

    ``stats_correct`` adds, for every recorded latency ``n >= 2 * expected``, one sample at each of ``n - expected``,
    ``n - 2 * expected``, ... while above ``expected``. So a value ``m > expected`` gained exactly the original counts
    of ``m + expected``, ``m + 2 * expected``, ... : walking each residue class modulo ``expected`` from the top, the
    original count is the corrected one minus the originals already seen above it.
    """
    if expected <= 0:
        return Counter({v: c for v, c in corrected.items() if c})
    out: Counter[int] = Counter()
    above: dict[int, int] = {}  # residue modulo expected -> original requests at larger values of that residue
    for value in sorted(corrected, reverse=True):
        count = corrected[value]
        if value > expected:
            residue = value % expected
            count -= above.get(residue, 0)
            if count < 0:
                raise LoadGenError(f"wrk histogram is not a corrected one for interval {expected} µs (at {value} µs)")
            above[residue] = above.get(residue, 0) + count
        if count:
            out[value] = count
    return out


def parse_wrk(stdout: str, connections: int) -> Turn:
    """The turn printed by ``bench/wrk_load.lua``'s ``done()`` (the line starting ``KS_WRK``), uncorrected."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith(WRK_MARK)), None)
    if line is None:
        raise LoadGenError(f"wrk printed no {WRK_MARK.strip()} line; its output ends: {stdout[-800:]!r}")
    data = json.loads(line[len(WRK_MARK):])
    duration_us, requests = int(data["duration_us"]), int(data["requests"])
    corrected = Counter({int(v): int(c) for v, c in data["latency_us"]})
    latencies = wrk_uncorrected(corrected, wrk_expected_interval(duration_us, requests, connections))
    errors = sum(int(n) for n in data["errors"].values())
    return Turn(requests, errors, duration_us / 1e6, latencies)


# --- ghz -----------------------------------------------------------------------------------------------------------

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def _epoch_ns(stamp: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fractional digits (Go's ``time.Time``)."""
    match = _RFC3339.match(stamp)
    if not match:
        raise LoadGenError(f"ghz timestamp {stamp!r} is not RFC 3339")
    whole = dt.datetime.fromisoformat(match[1] + ("+00:00" if match[3] == "Z" else match[3]))
    return int(whole.timestamp()) * 1_000_000_000 + int((match[2] or "").ljust(9, "0"))


def parse_ghz(report: Mapping[str, Any], settle_s: float) -> Turn:
    """The turn in a ghz ``-O json`` report, leaving out its first ``settle_s`` (load, not measurement).

    ghz reports each call's end time and latency: calls sent from ``settle_s`` after the first call on give the
    latencies; calls ended in that window are the requests and errors; the window ends at the last answer."""
    details = report.get("details") or []
    if not details:
        raise LoadGenError(f"ghz reported no call (count {report.get('count')}, "
                           f"errors {report.get('errorDistribution')})")
    ends = np.array([_epoch_ns(d["timestamp"]) for d in details], dtype=np.int64)
    latencies = np.array([int(d["latency"]) for d in details], dtype=np.int64)
    starts = ends - latencies
    measured_from = int(starts.min()) + round(settle_s * 1e9)
    answered = ends >= measured_from
    sent = starts >= measured_from
    failed = np.array([bool(d.get("error")) or d.get("status", "OK") != "OK" for d in details])
    window = int(ends.max()) - measured_from
    if window <= 0:
        raise LoadGenError(f"ghz turn shorter than its settle time ({settle_s} s)")
    micros = np.rint(latencies[sent] / 1000).astype(np.int64)
    return Turn(int(answered.sum()), int((answered & failed).sum()), window / 1e9,
                Counter(dict(zip(*(a.tolist() for a in np.unique(micros, return_counts=True)), strict=True))))


# --- running the tools -----------------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (all its threads), from ``/proc/<pid>/stat``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields 3.. ; utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.perf_counter()))  # the turn's length, the point of a timed load run


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise LoadGenError(f"{process.args!r} did not finish within {timeout_s:.0f} s") from None


@contextlib.contextmanager
def _started(command: list[str], **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """The load generator's process, killed if it still runs when the block ends (an error mid-turn)."""
    process = subprocess.Popen(command, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _nothing() -> None:
    """No wait."""


class Generator(Protocol):
    """A native load generator bound to a cell (protocol, concurrency, request bodies)."""

    label: str

    def warm(self, port: int, seconds: float) -> None:
        """Load the server on ``port`` for ``seconds``, measuring nothing."""

    def turn(self, port: int, seconds: float, settle_s: float, drained: Callable[[], None] = _nothing) -> Turn:
        """Load the server on ``port`` for ``settle_s`` (not measured), then measure ``seconds``; ``drained`` waits
        until the server has answered what a stopped run left in its queue."""


class Wrk:
    """wrk on one core with one thread and ``connections`` kept-alive connections, POSTing ``bodies`` in turn."""

    def __init__(self, binary: Path, label: str, core: str, path: str, bodies: Sequence[bytes], connections: int,
                 workdir: Path) -> None:
        self.binary, self.label, self.core, self.path, self.connections = binary, label, core, path, connections
        if any(b"\n" in body for body in bodies):
            raise ValueError("wrk request bodies are read one per line: a body holds a newline")
        self.bodies_file = workdir / f"wrk-bodies-{os.getpid()}-{id(self)}.ndjson"
        self.bodies_file.write_bytes(b"\n".join(bodies) + b"\n")

    def _run(self, port: int, seconds: float) -> tuple[str, float | None, float]:
        """Run wrk for ``seconds`` (ended by SIGINT); its output, CPU seconds and wall seconds until then."""
        command = ["taskset", "-c", self.core, str(self.binary), "-t1", f"-c{self.connections}",
                   f"-d{math.ceil(seconds) + 1}s", "--timeout", "5s", "-s", str(WRK_SCRIPT),
                   f"http://127.0.0.1:{port}{self.path}"]
        with tempfile.TemporaryFile() as out:
            started = time.perf_counter()
            with _started(command, stdout=out, stderr=subprocess.STDOUT,
                          env=os.environ | {"KS_WRK_BODIES": str(self.bodies_file)}) as process:
                _sleep_until(started + seconds)
                cpu, wall = cpu_seconds(process.pid), time.perf_counter() - started
                process.send_signal(signal.SIGINT)  # wrk's -d counts whole seconds; it stops within 100 ms
                _stop(process, seconds + 60)
            out.seek(0)
            return out.read().decode(errors="replace"), cpu, wall

    def warm(self, port: int, seconds: float) -> None:
        self._run(port, seconds)

    def turn(self, port: int, seconds: float, settle_s: float, drained: Callable[[], None] = _nothing) -> Turn:
        """A settle run (load, not measured: the server was idle while the others had their turns), then the
        measured run. wrk cannot leave out the start of a run, so these are two runs, with ``drained`` between
        them: the requests the settle run left in flight must not eat into the measured run."""
        if settle_s > 0:
            self._run(port, settle_s)
            drained()
        out, cpu, wall = self._run(port, seconds)
        turn = parse_wrk(out, self.connections)
        turn.cpu_s, turn.cpu_wall_s = cpu, (wall if cpu is not None else None)
        return turn


class Ghz:
    """ghz on one core: ``concurrency`` calls in flight on one connection, sending ``messages`` round robin."""

    def __init__(self, binary: Path, label: str, core: str, protoset: bytes, messages: Sequence[bytes],
                 concurrency: int, workdir: Path) -> None:
        self.binary, self.label, self.core, self.concurrency = binary, label, core, concurrency
        stem = workdir / f"ghz-{os.getpid()}-{id(self)}"
        self.protoset_file = stem.with_suffix(".protoset")
        self.protoset_file.write_bytes(protoset)
        self.messages_file = stem.with_suffix(".bin")
        self.messages_file.write_bytes(b"".join(_varint(len(m)) + m for m in messages))  # count-delimited
        self.report_file = stem.with_suffix(".json")

    def warm(self, port: int, seconds: float) -> None:
        self._run(port, seconds, 0.0)

    def turn(self, port: int, seconds: float, settle_s: float, drained: Callable[[], None] = _nothing) -> Turn:
        """One ghz run of ``settle_s + seconds``; its first ``settle_s`` is cut out of the report (one run: nothing
        is left in flight between settling and measuring, so ``drained`` is not needed)."""
        stderr, returncode, cpu, wall = self._run(port, seconds, settle_s)
        if not self.report_file.is_file():
            raise LoadGenError(f"ghz wrote no report (exit {returncode}): {stderr[-800:]}")
        turn = parse_ghz(json.loads(self.report_file.read_text()), settle_s)
        turn.cpu_s, turn.cpu_wall_s = cpu, wall
        return turn

    def _run(self, port: int, seconds: float, settle_s: float) -> tuple[str, int, float | None, float | None]:
        """Run ghz for ``settle_s + seconds``: its stderr, exit code, and CPU and wall seconds after ``settle_s``."""
        self.report_file.unlink(missing_ok=True)
        command = ["taskset", "-c", self.core, str(self.binary), "--insecure", "--protoset", str(self.protoset_file),
                   "--call", GHZ_CALL, "--binary-file", str(self.messages_file), "-c", str(self.concurrency),
                   "--connections", "1", "-z", f"{settle_s + seconds:.3f}s", "--duration-stop", "wait",
                   "-O", "json", "-o", str(self.report_file), f"127.0.0.1:{port}"]
        with tempfile.TemporaryFile() as errors:
            started = time.perf_counter()
            with _started(command, stdout=subprocess.DEVNULL, stderr=errors) as process:
                _sleep_until(started + settle_s)
                cpu0, wall0 = cpu_seconds(process.pid), time.perf_counter()
                _sleep_until(started + settle_s + seconds)
                cpu1, wall1 = cpu_seconds(process.pid), time.perf_counter()
                _stop(process, seconds + 60)
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
        return stderr, process.returncode, cpu, (wall1 - wall0 if cpu is not None else None)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def wait_idle(pid: int, quiet_s: float = 0.05, deadline_s: float = 30.0) -> None:
    """Wait until process ``pid`` used no CPU for ``quiet_s`` (bounded by ``deadline_s``). A native generator stopped
    mid-turn leaves its connections' requests in the server's queue; a slow server (the baseline: 32 requests of
    ~25 ms) would still be computing them, on the shared server core, during the next server's turn."""
    give_up = time.monotonic() + deadline_s
    before = cpu_seconds(pid)
    while before is not None and time.monotonic() < give_up:
        time.sleep(quiet_s)  # the quiet interval that defines idle, bounded by the deadline
        now = cpu_seconds(pid)
        if now is None or now == before:
            return
        before = now


def drive(generator: Generator, ports: Sequence[int], seconds: float, slice_s: float, warmup_s: float,
          settle_s: float, pids: Sequence[int] | None = None) -> list[Tally]:
    """Interleaved turns: every server gets a ``warmup_s`` turn (not measured), then the servers take turns of
    ``slice_s`` (each after ``settle_s`` of unmeasured load) until each has had ``seconds``. With the servers'
    ``pids``, each turn starts only once the previous server is idle (:func:`wait_idle`)."""
    tallies = [Tally() for _ in ports]
    idle: list[Callable[[], None]] = [functools.partial(wait_idle, pid) for pid in pids] if pids else [
        _nothing] * len(ports)
    for i, port in enumerate(ports):
        generator.warm(port, warmup_s)
        idle[i]()
    for _ in range(max(1, round(seconds / slice_s))):
        for i, (port, tally) in enumerate(zip(ports, tallies, strict=True)):
            tally.add(generator.turn(port, slice_s, settle_s, idle[i]))
            idle[i]()
    return tallies
