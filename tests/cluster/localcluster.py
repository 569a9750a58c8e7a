"""A local Kubernetes control plane for the cluster test tier: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes), all real binaries built by ``scripts/build-tools.sh``.

Every process listens on a free loopback port and keeps its state in one work directory; readiness is polled
with deadlines. Used by ``tests/cluster/conftest.py`` (session fixture) and by ``scripts/cluster-up.sh`` /
``scripts/cluster-down.sh`` through the small CLI at the bottom::

    python tests/cluster/localcluster.py up --workdir DIR --bin-dir BIN   # prints the kubeconfig path
    python tests/cluster/localcluster.py down --workdir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

#: Annotation that tells kwok which Node objects it owns.
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
#: The state file written next to the processes' logs; ``down`` reads it.
STATE_FILE = "cluster.json"
SERVICE_CIDR = "10.96.0.0/16"
START_ATTEMPTS = 3
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def _die_with_parent() -> None:
    """In the forked child: ask Linux for SIGKILL when the parent exits (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


class ClusterError(RuntimeError):
    """The local control plane could not be started, or a component failed while waiting for it."""


def free_port() -> int:
    """Return a currently unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``check`` until it is True; raise ``ClusterError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Component:
    """One started process: its name, command line and log file."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str], *, die_with_parent: bool) -> None:
        """Start the process in its own session (so ``down`` can stop its whole group). With ``die_with_parent``
        the kernel sends it SIGKILL when the starting process dies, so a killed test run leaks nothing."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent else None,
            )

    def check_alive(self) -> None:
        """Raise ``ClusterError`` with the log tail if the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ClusterError(
                f"{self.name} exited with code {self.process.returncode}; last log lines:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of this component's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _write_pki(pki: Path, advertise_address: str = "127.0.0.1") -> tuple[Path, Path, Path, Path]:
    """Create a CA, an API-server serving certificate for 127.0.0.1/localhost (and the advertise address), a client
    certificate the API server presents to kubelets (``apiserver-kubelet-client``) and a service-account key."""
    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_key(path: Path, private: rsa.RSAPrivateKey) -> None:
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-sentiment-test-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    service_ip = ipaddress.IPv4Network(SERVICE_CIDR)[1]  # the `kubernetes` Service's ClusterIP
    serving_key = key()
    serving_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(serving_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(service_ip),
                    *(
                        [x509.IPAddress(ipaddress.ip_address(advertise_address))]
                        if advertise_address != "127.0.0.1"
                        else []
                    ),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client_key = key()
    client_cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-kubelet-client"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(client_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (pki / "apiserver-kubelet-client.crt").write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    write_key(pki / "apiserver-kubelet-client.key", client_key)
    ca_crt, serving_crt = pki / "ca.crt", pki / "apiserver.crt"
    serving_key_path, sa_key_path = pki / "apiserver.key", pki / "sa.key"
    ca_crt.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    serving_crt.write_bytes(serving_cert.public_bytes(serialization.Encoding.PEM))
    write_key(serving_key_path, serving_key)
    write_key(sa_key_path, key())
    return ca_crt, serving_crt, serving_key_path, sa_key_path


def _kubeconfig(path: Path, *, server: str, ca_crt: Path, user: str, token: str) -> Path:
    """Write a kubeconfig (JSON is valid YAML) for one token user."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_crt)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class LocalCluster:
    """A running local control plane; ``start()`` it, use ``kubeconfig``, ``stop()`` it."""

    workdir: Path
    bin_dir: Path
    #: kwok fake nodes; 0 starts no kwok (the real-pods tier joins a real kubelet instead).
    nodes: int = 2
    #: Address the API server advertises (a real node's bridge address; loopback for the kwok tier).
    advertise_address: str = "127.0.0.1"
    #: Kill the components when this Python process dies (the pytest fixture); ``up`` leaves them running.
    die_with_parent: bool = True
    components: list[Component] = field(default_factory=list)
    kubeconfig: Path | None = None
    server: str = ""

    # -- helpers -----------------------------------------------------------------------------------------
    def _binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise ClusterError(f"{path} is missing; run scripts/build-tools.sh first")
        return str(path)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "ETCD"))}
        env["HOME"] = str(self.workdir)  # kwok and kubectl caches stay in the work directory
        return env

    def _launch(self, name: str, argv: list[str]) -> Component:
        component = Component(name=name, argv=argv, log=self.workdir / "logs" / f"{name}.log")
        component.start(self._env(), die_with_parent=self.die_with_parent)
        self.components.append(component)
        self._save_state()
        return component

    def _save_state(self) -> None:
        state = {
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "server": self.server,
            "processes": [
                {"name": c.name, "pid": c.process.pid, "binary": c.argv[0]} for c in self.components if c.process
            ],
        }
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2))

    def _wait_http(self, component: Component, url: str, *, timeout: float, ca: Path | None = None) -> None:
        context = ssl.create_default_context(cafile=str(ca)) if ca else None
        if url.startswith("https") and ca is None:
            context = ssl._create_unverified_context()  # self-signed health endpoints of cm/scheduler

        def ready() -> bool:
            component.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    return response.status == 200
            except (urllib.error.URLError, OSError):
                return False

        wait_until(ready, timeout=timeout, what=f"{component.name} at {url}")

    def kubectl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raise ``ClusterError`` with its output if it fails."""
        assert self.kubeconfig is not None
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self._env(),
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, *, timeout: float = 120) -> LocalCluster:
        """Start every component and wait until nodes are Ready and the default service account exists."""
        for name in BINARIES:
            if name != "kwok" or self.nodes:
                self._binary(name)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        ca_crt, serving_crt, serving_key, sa_key = _write_pki(self.workdir / "pki", self.advertise_address)
        # Free ports are picked, then bound by the component a moment later; another process on this machine may
        # take one in between. That shows as "address already in use" and is worth a fresh start with new ports.
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_etcd(timeout)
                self._start_apiserver(timeout, ca_crt, serving_crt, serving_key, sa_key)
                self._start_controllers(timeout, ca_crt, sa_key)
                if self.nodes:
                    self._start_kwok(timeout)
                return self
            except ClusterError as error:
                self.stop()
                if "address already in use" not in str(error) or attempt == START_ATTEMPTS:
                    raise
                shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _start_etcd(self, timeout: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        etcd = self._launch(
            "etcd",
            [
                self._binary("etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait_http(etcd, f"{self.etcd_url}/health", timeout=timeout)

    def _start_apiserver(
        self, timeout: float, ca_crt: Path, serving_crt: Path, serving_key: Path, sa_key: Path
    ) -> None:
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        tokens = {user: secrets.token_hex(16) for user in ("admin", "controller-manager", "scheduler", "kwok")}
        token_file = self.workdir / "pki" / "tokens.csv"
        token_file.write_text(
            "".join(f'{token},kube-sentiment-{user},{user},"system:masters"\n' for user, token in tokens.items())
        )
        apiserver = self._launch(
            "kube-apiserver",
            [
                self._binary("kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                f"--advertise-address={self.advertise_address}",
                f"--kubelet-client-certificate={ca_crt.parent / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={ca_crt.parent / 'apiserver-kubelet-client.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--secure-port={port}",
                f"--tls-cert-file={serving_crt}",
                f"--tls-private-key-file={serving_key}",
                f"--client-ca-file={ca_crt}",
                f"--token-auth-file={token_file}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--endpoint-reconciler-type=none",
            ],
        )
        self.kubeconfig = _kubeconfig(
            self.workdir / "kubeconfig",
            server=self.server,
            ca_crt=ca_crt,
            user="admin",
            token=tokens["admin"],
        )
        for user in ("controller-manager", "scheduler", "kwok"):
            _kubeconfig(
                self.workdir / f"{user}.kubeconfig",
                server=self.server,
                ca_crt=ca_crt,
                user=user,
                token=tokens[user],
            )
        self._save_state()
        self._wait_http(apiserver, f"{self.server}/readyz", timeout=timeout, ca=ca_crt)

    def _start_controllers(self, timeout: float, ca_crt: Path, sa_key: Path) -> None:
        cm_port, sched_port = free_port(), free_port()
        common = ["--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"]
        cm = self._launch(
            "kube-controller-manager",
            [
                self._binary("kube-controller-manager"),
                f"--kubeconfig={self.workdir / 'controller-manager.kubeconfig'}",
                f"--secure-port={cm_port}",
                f"--cert-dir={self.workdir / 'pki' / 'controller-manager'}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={ca_crt}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service,-route",
                *common,
            ],
        )
        scheduler = self._launch(
            "kube-scheduler",
            [
                self._binary("kube-scheduler"),
                f"--kubeconfig={self.workdir / 'scheduler.kubeconfig'}",
                f"--secure-port={sched_port}",
                f"--cert-dir={self.workdir / 'pki' / 'scheduler'}",
                *common,
            ],
        )
        self._wait_http(cm, f"https://127.0.0.1:{cm_port}/healthz", timeout=timeout)
        self._wait_http(scheduler, f"https://127.0.0.1:{sched_port}/healthz", timeout=timeout)

        def default_service_account() -> bool:
            cm.check_alive()
            try:
                self.kubectl("get", "serviceaccount", "default", "--namespace=default", timeout=10)
            except ClusterError:
                return False
            return True

        wait_until(default_service_account, timeout=timeout, what="the default service account")

    def _start_kwok(self, timeout: float) -> None:
        kwok = self._launch(
            "kwok",
            [
                self._binary("kwok"),
                f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{free_port()}",
                "--cidr=10.244.0.0/16",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        )
        for index in range(self.nodes):
            self._create_node(f"kwok-node-{index}")

        def nodes_ready() -> bool:
            kwok.check_alive()
            result = self.kubectl("get", "nodes", "-o", "json", timeout=10)
            items = json.loads(result.stdout)["items"]
            ready = [
                n
                for n in items
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            ]
            return len(ready) >= self.nodes

        wait_until(nodes_ready, timeout=timeout, what=f"{self.nodes} kwok nodes to become Ready")

    def _create_node(self, name: str) -> None:
        capacity = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {"capacity": capacity, "allocatable": capacity},
        }
        manifest = self.workdir / f"node-{name}.json"
        manifest.write_text(json.dumps(node))
        self.kubectl("apply", "-f", str(manifest))

    def stop(self, grace: float = 15) -> None:
        """Stop every component, newest first: SIGTERM to its process group, SIGKILL after ``grace``."""
        for component in reversed(self.components):
            if component.process is None or component.process.poll() is not None:
                continue
            _signal_group(component.process.pid, signal.SIGTERM)
            try:
                component.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(component.process.pid, signal.SIGKILL)
                component.process.wait(timeout=grace)
        self.components.clear()
        state = self.workdir / STATE_FILE
        state.unlink(missing_ok=True)

    def diagnostics(self) -> str:
        """Log tails of every component, for a failing test's report."""
        return "\n".join(f"--- {c.name} ({c.log}) ---\n{c.log_tail()}" for c in self.components)


@dataclass
class Cluster:
    """What a cluster test gets: the kubeconfig, the tools' bin dir, and helpers running kubectl and helm
    (helm keeps its cache and config in the work directory, never in the user's home)."""

    local: LocalCluster
    bin_dir: Path
    repo: Path

    @property
    def kubeconfig(self) -> Path:
        assert self.local.kubeconfig is not None
        return self.local.kubeconfig

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses: only this cluster's kubeconfig, helm state inside the work dir."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "HELM_"))}
        workdir = self.local.workdir
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            HOME=str(workdir),
            HELM_CACHE_HOME=str(workdir / "helm" / "cache"),
            HELM_CONFIG_HOME=str(workdir / "helm" / "config"),
            HELM_DATA_HOME=str(workdir / "helm" / "data"),
        )
        return env

    def run(self, *argv: str, check: bool = True, timeout: float = 180,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command against the cluster (``stdin``: its input); with ``check`` a failure raises with stdout and
        stderr."""
        result = subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=timeout, check=False,
                                input=stdin)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """kubectl against this cluster (see ``run``)."""
        return self.run("kubectl", *args, **kwargs)

    def helm(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """The pinned helm from the tools cache against this cluster (see ``run``)."""
        return self.run(str(self.bin_dir / "helm"), *args, **kwargs)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def stop_from_state(workdir: Path, grace: float = 15) -> int:
    """Stop the processes recorded in ``workdir``'s state file (``cluster-down``); return how many."""
    state_path = workdir / STATE_FILE
    if not state_path.exists():
        return 0
    state = json.loads(state_path.read_text())
    stopped = 0
    for entry in reversed(state["processes"]):
        pid = int(entry["pid"])
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue  # already gone
        if cmdline != entry["binary"]:
            continue  # the pid was reused by something else: never signal it
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            _signal_group(pid, signal.SIGKILL)
        stopped += 1
    state_path.unlink()
    return stopped


def main(argv: list[str] | None = None) -> int:
    """CLI for scripts/cluster-up.sh and scripts/cluster-down.sh."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the control plane in the background and print the kubeconfig path")
    up.add_argument("--workdir", type=Path, required=True)
    up.add_argument("--bin-dir", type=Path, required=True)
    up.add_argument("--crds", type=Path, action="append", default=[], help="CRD file or directory to install")
    up.add_argument("--apply", type=Path, action="append", default=[], help="manifest to apply after the CRDs")
    up.add_argument("--timeout", type=float, default=120)
    down = sub.add_parser("down", help="stop the control plane started with 'up'")
    down.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "down":
        print(f"stopped {stop_from_state(args.workdir)} processes", file=sys.stderr)
        return 0
    if (args.workdir / STATE_FILE).exists():
        print(f"cluster-up: {args.workdir} already holds a cluster; run cluster-down first", file=sys.stderr)
        return 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(workdir=args.workdir.resolve(), bin_dir=args.bin_dir.resolve(), die_with_parent=False)
    try:
        cluster.start(timeout=args.timeout)
        install_crds(cluster, args.crds, timeout=args.timeout)
        for manifest in args.apply:
            cluster.kubectl("apply", "--server-side", "-f", str(manifest), timeout=args.timeout)
    except ClusterError as error:
        print(f"cluster-up failed: {error}", file=sys.stderr)
        cluster.stop()
        return 1
    print(cluster.kubeconfig)
    return 0


def install_crds(cluster: LocalCluster, paths: list[Path], *, timeout: float = 120) -> None:
    """Server-side apply CRD files/directories and wait until every CRD is Established."""
    for path in paths:
        if not path.exists():
            raise ClusterError(f"CRD path {path} does not exist")
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path), timeout=timeout)
    if paths:
        cluster.kubectl(
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )


if __name__ == "__main__":
    sys.exit(main())
