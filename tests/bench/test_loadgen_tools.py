"""bench/loadgen.py against a real server: wrk and ghz drive the bench's no-op ``kserve.ModelServer`` for one short
turn each and their output is read (skipped, saying how to get them, where the tools are missing)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.loadgen import Ghz, Wrk, ghz_binary, tool_version, wrk_binary
from bench.serve_bench import _grpc_messages, _http_bodies, _http_path, _kserve_protoset, _ready_after
from tests.support import REPO, free_port, http_ok, stop, wait_until

pytestmark = pytest.mark.integration

TEXTS = ["the service was great", "awful, never again", "it arrived on tuesday"]
CORES = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))


@pytest.fixture(scope="module")
def noop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """The benchmark's no-op server (a real ModelServer) on free ports: (http port, grpc port)."""
    http_port, grpc_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("noop") / "noop.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve_bench", "serve", "--kind", "noop", "--model_dir", str(log.parent),
             "--http_port", str(http_port), "--grpc_port", str(grpc_port)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert process.poll() is None, f"the no-op server exited: {log.read_text(errors='replace')[-2000:]}"
            return http_ok(f"http://127.0.0.1:{http_port}/v2/models/sentiment/ready")

        wait_until(up, 120, "the no-op server")
        yield http_port, grpc_port
    finally:
        stop(process)


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_wrk_turn_counts_every_answer_once(noop_server: tuple[int, int], tmp_path: Path, protocol: str) -> None:
    binary = wrk_binary()
    if binary is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    wrk = Wrk(binary, tool_version(binary), CORES, _http_path(protocol), _http_bodies(protocol, TEXTS, 2, 10), 4,
              tmp_path)
    turn = wrk.turn(noop_server[0], seconds=0.4, settle_s=0.1)
    assert turn.requests > 10 and turn.errors == 0
    assert sum(turn.latencies_us.values()) == turn.requests  # the coordinated-omission correction undone
    assert 0.3 < turn.seconds < 0.8  # SIGINT at 0.4 s, wrk stops within its 100 ms tick
    assert turn.cpu_s is not None and turn.cpu_wall_s and 0 <= turn.cpu_s <= turn.cpu_wall_s * 1.1


def test_ghz_turn_reads_every_call(noop_server: tuple[int, int], tmp_path: Path) -> None:
    binary = ghz_binary()
    if binary is None:
        pytest.skip("ghz is not built (scripts/build-tools.sh ghz)")
    messages = [m.SerializeToString() for m in _grpc_messages(TEXTS, 2)]
    ghz = Ghz(binary, tool_version(binary), CORES, _kserve_protoset(), messages, 4, tmp_path)
    turn = ghz.turn(noop_server[1], seconds=0.4, settle_s=0.1)
    assert turn.requests > 10 and turn.errors == 0
    assert 0.3 < turn.seconds < 1.0
    assert sum(turn.latencies_us.values()) <= turn.requests + 4  # calls sent in the window (in flight at its start)
    assert turn.cpu_s is not None and turn.cpu_wall_s


def test_start_up_is_timed_to_the_first_ready_answer(tmp_path: Path) -> None:
    seconds, resident_mb = _ready_after(
        [sys.executable, "-m", "bench.serve_bench", "serve", "--kind", "noop", "--model_dir", str(tmp_path)],
        {}, tmp_path / "start.log")
    assert 0 < seconds < 180 and 50 < resident_mb < 2000  # a Python process with kserve imported
