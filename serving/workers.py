"""Several server processes in one pod: ``--workers N`` (N > 1), one model load for all of them.

The parent process loads the model once, moves everything alive out of the garbage collector's sight
(``gc.freeze``, so collections in the workers do not write to the shared pages) and forks the workers. Each worker
inherits the loaded model copy-on-write: the model's arrays stay pages shared by every worker. A worker serves
REST and gRPC on sockets of its own bound to the pod's ports with ``SO_REUSEPORT``: the kernel spreads new
connections over the workers by their address hash. Each worker has its own micro-batcher, event journal file
(one writer per process, :mod:`serving.eventlog.journal`), mirror and metrics.

``/metrics`` answers for the whole pod (a scrape reaches one worker): each worker writes a snapshot of its
Prometheus registry to a directory they share every :data:`SNAPSHOT_INTERVAL_S`; the worker that answers a scrape
merges its live values with the others' snapshots (:func:`merge`). A dead worker's counters stay in the sum, so a
pod's counters never go backwards while it runs.

The parent runs no event loop, no thread and no gRPC, so forking stays safe. It replaces a worker that dies, stops
every worker and exits 1 when they keep dying (:data:`MAX_RESTARTS` within :data:`RESTART_WINDOW_S`), passes
SIGTERM and SIGINT on to the workers and exits with the first failing code one of them returned.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import orjson
from kserve.protocol.rest.server import RESTServer
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from model.errors import ConfigError, ExitCode
from serving.server import PredictorServer

log = logging.getLogger("serving.workers")

#: How often each worker writes its metrics snapshot (the staleness of the other workers' part of a scrape).
SNAPSHOT_INTERVAL_S = 1.0
#: Workers that may die within :data:`RESTART_WINDOW_S` before the pod gives up (exit 1) instead of replacing them.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
#: Gauges whose pod value is the sum over the workers; every other gauge is the largest worker's value (resident
#: memory too: the workers share the model's pages, so their sum would count them once per worker).
SUMMED_GAUGES = frozenset({"kube_sentiment_events_queued", "process_open_fds"})
_COUNTING = frozenset({"counter", "histogram", "summary"})
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEAD = "dead"  # the snapshot holding the sum of the dead workers' counters

Scope = MutableMapping[str, Any]


def check_free(ports: Iterable[int]) -> None:
    """Raise :class:`ConfigError` naming a port another process already listens on (the workers bind theirs with
    ``SO_REUSEPORT`` and would otherwise share it silently with a process of the same user)."""
    for port in ports:
        if port == 0:
            raise ConfigError("several workers share fixed ports: give --http_port and --grpc_port, not 0")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a connection in TIME_WAIT is no user
            try:
                probe.bind(("0.0.0.0", port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise ConfigError(f"port {port} is already in use by another process") from e
                raise


def reuseport_socket(port: int) -> socket.socket:
    """A listening TCP socket on ``0.0.0.0:port`` (KServe's REST address) that the other workers share."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY then
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class WorkerServer(PredictorServer):
    """The predictor's ModelServer for one of several workers: the REST server runs on a listening socket shared
    with the other workers (``SO_REUSEPORT``). gRPC shares its port the same way by gRPC's own default on Linux."""

    def _serve_rest(self) -> Coroutine[Any, Any, None]:
        return _serve_rest(self._rest(), reuseport_socket(self.http_port))


async def _serve_rest(rest: RESTServer, sock: socket.socket) -> None:
    import uvicorn

    rest.create_application()
    await uvicorn.Server(rest.config).serve(sockets=[sock])


# --- metrics of the pod ---------------------------------------------------------------------------------------

Family = tuple[str, str, str, list[tuple[str, dict[str, str], float]]]


def families(registry: CollectorRegistry = REGISTRY) -> list[Family]:
    """``(name, type, help, samples)`` of every metric family in ``registry``."""
    return as_families(registry.collect())


def write_snapshot(directory: Path, name: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Replace ``directory/<name>.json`` with this process's families, atomically."""
    tmp = directory / f".{name}.tmp"
    tmp.write_bytes(orjson.dumps(families(registry)))
    os.replace(tmp, directory / f"{name}.json")


def as_families(metrics: Iterable[Metric]) -> list[Family]:
    """``(name, type, help, samples)`` of each metric family."""
    return [(m.name, m.type, m.documentation, [(s.name, s.labels, s.value) for s in m.samples]) for m in metrics]


def _read_snapshots(directory: Path, skip: str) -> Iterator[tuple[bool, list[Family]]]:
    """``(alive, families)`` of every other worker's last snapshot, and of the dead workers' sum (``dead.json``)."""
    for path in sorted(directory.glob("*.json")):
        if path.stem == skip:
            continue
        with contextlib.suppress(FileNotFoundError, orjson.JSONDecodeError):  # replaced or retired meanwhile
            yield path.stem != DEAD, orjson.loads(path.read_bytes())


def merge(own: list[Family], others: Iterable[tuple[bool, list[Family]]]) -> list[Metric]:
    """The pod's metric families: counters, histograms and summaries summed over the workers (``_created``: the
    earliest), gauges summed for :data:`SUMMED_GAUGES` and the largest worker's value otherwise. A dead worker
    (``alive`` false) adds its counting families only."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], tuple[dict[str, str], float]]] = {}
    for alive, snapshot in [(True, own), *others]:
        for name, kind, doc, samples in snapshot:
            if not alive and kind not in _COUNTING:
                continue
            if name not in merged:
                merged[name] = Metric(name, doc, kind)
                values[name] = {}
            into = values[name]
            summed = kind in _COUNTING or name in SUMMED_GAUGES
            for sample, labels, value in samples:
                key = (sample, tuple(sorted(labels.items())))
                seen = into.get(key)
                if seen is None:
                    into[key] = (labels, value)
                elif sample.endswith("_created"):
                    into[key] = (labels, min(seen[1], value))
                else:
                    into[key] = (labels, seen[1] + value if summed else max(seen[1], value))
    for name, metric in merged.items():
        for (sample, _), (labels, value) in values[name].items():
            metric.add_sample(sample, labels, value)
    return list(merged.values())


class _Merged(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics


def pod_exposition(directory: Path, name: str, registry: CollectorRegistry = REGISTRY) -> bytes:
    """The text exposition of the pod's metrics, as seen from the worker ``name``."""
    merged = CollectorRegistry(auto_describe=False)
    merged.register(_Merged(merge(families(registry), _read_snapshots(directory, name))))
    return generate_latest(merged)


class PodMetrics:
    """ASGI middleware answering ``GET /metrics`` with the whole pod's metrics (:func:`pod_exposition`)."""

    def __init__(self, app: Callable[..., Awaitable[None]], directory: Path) -> None:
        self.app = app
        self.directory = directory

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            body = pod_exposition(self.directory, str(os.getpid()))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())]})
            await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
            return
        await self.app(scope, receive, send)


def _publish(directory: Path, stop: threading.Event) -> None:
    """Each worker's snapshot writer (a daemon thread started in the worker)."""
    name = str(os.getpid())
    while not stop.wait(SNAPSHOT_INTERVAL_S):
        try:
            write_snapshot(directory, name)
        except OSError as e:
            log.warning("cannot write the metrics snapshot to %s: %s", directory, e)


def _stop_with_parent(parent: int) -> None:
    """Have the kernel send this worker SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), so no worker outlives
    a parent that was killed; exit at once if that already happened."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        log.warning("cannot ask for SIGTERM when the parent dies: errno %d", ctypes.get_errno())
    if os.getppid() != parent:
        os._exit(int(ExitCode.ERROR))


# --- the parent ------------------------------------------------------------------------------------------------


class Supervisor:
    """Forks the workers, replaces the ones that die, stops them all on SIGTERM/SIGINT."""

    def __init__(self, count: int, serve: Callable[[int], int], metrics_dir: Path) -> None:
        """``serve(index)`` runs one worker's server until it stops and returns its exit code."""
        self.count = count
        self.serve = serve
        self.metrics_dir = metrics_dir
        self.live: dict[int, int] = {}  # pid -> worker index
        self.stopping: int | None = None
        self.deaths: deque[float] = deque()

    def _on_signal(self, sig: int, _frame: Any) -> None:
        if self.stopping is None:
            log.info("stopping %d workers (%s)", len(self.live), signal.Signals(sig).name)
        self.stopping = sig
        for pid in list(self.live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _fork(self, index: int) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # no handler of ours runs in a child being born
        try:
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:
                self._child(index, parent)
            self.live[pid] = index
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        log.info("worker %d started (pid %d)", index, pid)

    def _child(self, index: int, parent: int) -> None:
        code = int(ExitCode.ERROR)
        try:
            for sig in _SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            _stop_with_parent(parent)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            stop = threading.Event()
            threading.Thread(target=_publish, args=(self.metrics_dir, stop), name="kube-sentiment-metrics",
                             daemon=True).start()
            code = self.serve(index)
            stop.set()
            with contextlib.suppress(OSError):
                write_snapshot(self.metrics_dir, str(os.getpid()))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(ExitCode.ERROR)
        except KeyboardInterrupt:
            code = 0
        except BaseException as e:  # a worker must never return into the parent's code
            log.exception("worker %d failed: %s: %s", index, type(e).__name__, e)
        finally:
            for handler in logging.getLogger().handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _retire(self, pid: int) -> None:
        """Keep a dead worker's counters in the pod's sum (its gauges go): added into the one ``dead.json`` of all
        dead workers, so the directory holds one file per live worker and one more."""
        path, dead = self.metrics_dir / f"{pid}.json", self.metrics_dir / f"{DEAD}.json"
        try:
            last = orjson.loads(path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return  # it died before its first snapshot: nothing counted yet
        try:
            before = orjson.loads(dead.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            before = []
        tmp = self.metrics_dir / f".{DEAD}.tmp"
        tmp.write_bytes(orjson.dumps(as_families(merge(before, [(False, last)]))))
        os.replace(tmp, dead)
        path.unlink()

    def run(self) -> int:
        """Fork the workers and wait for them; the parent's exit code."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        code = 0
        try:
            for index in range(self.count):
                self._fork(index)
            while self.live:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                index = self.live.pop(pid, -1)
                if index < 0:
                    continue
                self._retire(pid)
                exit_code = os.waitstatus_to_exitcode(status)
                if self.stopping is not None:
                    if exit_code != 0 and code == 0:
                        code = exit_code if exit_code > 0 else int(ExitCode.ERROR)
                    continue
                code = self._replace(index, pid, exit_code)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _replace(self, index: int, pid: int, exit_code: int) -> int:
        how = f"exit code {exit_code}" if exit_code >= 0 else f"signal {signal.Signals(-exit_code).name}"
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > RESTART_WINDOW_S:
            self.deaths.popleft()
        if len(self.deaths) > MAX_RESTARTS:
            log.error("worker %d (pid %d) stopped (%s): %d workers stopped within %.0fs; stopping the server",
                      index, pid, how, len(self.deaths), RESTART_WINDOW_S)
            self._on_signal(signal.SIGTERM, None)
            return int(ExitCode.ERROR)
        log.error("worker %d (pid %d) stopped (%s); starting another", index, pid, how)
        self._fork(index)
        return 0


def serve_workers(count: int, serve: Callable[[int], int],
                  metrics_dir: Path | None = None) -> int:
    """Run ``count`` workers, each ``serve(index)``, until they are stopped; the exit code.

    Puts the pod-wide ``/metrics`` (:class:`PodMetrics`) in front of KServe's app before the fork. The snapshot
    directory (default: a fresh temporary one) is removed at the end.
    """
    from kserve.model_server import app

    directory = metrics_dir or Path(tempfile.mkdtemp(prefix="kube-sentiment-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    app.add_middleware(PodMetrics, directory=directory)
    log.info("starting %d workers (pid %d supervises)", count, os.getpid())
    try:
        return Supervisor(count, serve, directory).run()
    finally:
        if metrics_dir is None:
            shutil.rmtree(directory, ignore_errors=True)
