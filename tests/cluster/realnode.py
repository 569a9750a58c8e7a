"""A real single-node Kubernetes cluster on this machine, for the real-pods tier (``tests/cluster/realpods``) and
``scripts/cluster-up.sh --real``.

On top of the local control plane of ``localcluster.py`` (etcd, kube-apiserver, controller-manager, scheduler; no
kwok) it starts, as host processes, everything a node and the platform need:

* an isolated Linux bridge for the pods (no default route in pods, FORWARD traffic leaving the bridge dropped, no
  masquerade), containerd with runc and the CNI bridge/host-local/loopback/portmap plugins (Debian packages);
* kubelet and kube-proxy (iptables mode) at the pinned Kubernetes version; CoreDNS for ``cluster.local`` on the
  bridge address (no upstream: names outside the cluster do not resolve) behind the ``kube-dns`` Service;
* a default StorageClass with static ``local`` PersistentVolumes made here;
* the images of ``scripts/build-images.sh`` imported into containerd's ``k8s.io`` namespace (nothing is ever
  pulled);
* the KServe controller manager (Standard mode, Gateway API ingress) with its webhooks served on loopback with a
  certificate made here, and Traefik as the Gateway API implementation (GatewayClass ``traefik``), both built from
  their Go modules by ``scripts/build-tools.sh``.

Everything it changes on the host is recorded in a state file; ``down`` (or the next ``up`` after a crash) removes
every process, mount, iptables chain, cgroup and interface and restores the sysctls, and ``leftovers()`` says what,
if anything, remains.

    python tests/cluster/realnode.py check                      # exit 0, or 69 with the reason on stderr
    python tests/cluster/realnode.py up --workdir DIR --bin-dir BIN --images-env FILE --kserve-module DIR --crds DIR...
    python tests/cluster/realnode.py down [--workdir DIR]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).parent))

from localcluster import ClusterError, Component, LocalCluster, free_port, install_crds, wait_until

#: Exit code of ``check`` (and of the scripts) when this machine cannot run a node (the model/ table's 69).
EXIT_UNAVAILABLE = 69
BRIDGE = "ks-br0"
POD_SUBNET = ipaddress.IPv4Network("10.245.0.0/24")
NODE_IP = str(POD_SUBNET[1])
SERVICE_CIDR = "10.96.0.0/16"
DNS_IP = "10.96.0.10"
NODE_NAME = "ks-node"
ISOLATE_CHAIN = "KS-ISOLATE"
CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")
CONTAINERD_STATE = Path("/run/containerd")
#: The one place a running (or crashed) real node is recorded, so a later ``up`` or ``down`` finds it.
STATE_FILE = Path("/run/kube-sentiment-node/state.json")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
CNI_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
HOST_PROGRAMS = (
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "iptables",
    "ip6tables",
    "ip",
    "ipset",
    "conntrack",
    "nft",
)
TOOL_BINARIES = ("kubelet", "kube-proxy", "coredns", "kserve-manager", "traefik")
#: Sysctls that kubelet, kube-proxy or this module change; their values are restored by ``down``.
SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
KSERVE_NAMESPACE = "kserve"
GATEWAY_CLASS = "traefik"
#: Gateway listeners (name, port) and the Traefik entry points that serve them, on the bridge address.
GATEWAY_PORTS = {"http": 80, "grpc": 8081}
#: Static local PersistentVolumes created for the default StorageClass.
VOLUMES = 16


class NodeUnavailable(RuntimeError):
    """This machine cannot run a real node (not root, a package or kernel feature is missing, another runtime)."""


def _run(*argv: str, check: bool = True, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")
    return result


def _cni_dir() -> Path | None:
    return next((d for d in CNI_DIRS if all((d / p).exists() for p in CNI_PLUGINS)), None)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def _read_sysctl(name: str) -> str | None:
    try:
        return _sysctl_path(name).read_text().strip()
    except OSError:
        return None


def _write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        _sysctl_path(name).write_text(value)


def why_unavailable(bin_dir: Path | None = None, *, platform: bool = True) -> str | None:
    """Why this machine cannot run the real node now, or None when it can."""
    if os.geteuid() != 0:
        return "the real node needs root (containerd, kubelet, iptables, a bridge)"
    missing = [p for p in HOST_PROGRAMS if shutil.which(p) is None]
    if missing:
        return f"missing programs {', '.join(missing)}: run scripts/realnode-deps.sh (Debian packages)"
    if _cni_dir() is None:
        return f"CNI plugins {', '.join(CNI_PLUGINS)} not found in {', '.join(map(str, CNI_DIRS))}"
    if shutil.which("modprobe"):  # modules may be built in, or loadable
        _run("modprobe", "overlay", check=False)
        _run("modprobe", "br_netfilter", check=False)
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlay filesystem (containerd's overlayfs snapshotter)"
    if not _sysctl_path("net/bridge/bridge-nf-call-iptables").exists():
        return "the kernel has no br_netfilter (Service traffic between pods on one bridge)"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup file system at /sys/fs/cgroup"
    if CONTAINERD_SOCKET.exists() and not STATE_FILE.exists():
        return f"{CONTAINERD_SOCKET} exists: another containerd runs on this machine; it is left alone"
    if bin_dir is not None:
        needed = TOOL_BINARIES if platform else ("kubelet", "kube-proxy", "coredns")
        absent = [b for b in needed if not os.access(bin_dir / b, os.X_OK)]
        if absent:
            return f"{', '.join(absent)} missing in {bin_dir}: run scripts/build-tools.sh --real-node"
    return None


# --- certificates -------------------------------------------------------------------------------------------------
def _self_signed(directory: Path, common_name: str, *, ips: list[str], dns: list[str]) -> tuple[Path, Path]:
    """A self-signed serving certificate (its own CA) for ``ips``/``dns``: (tls.crt, tls.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    sans += [x509.DNSName(d) for d in dns]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    crt, key_path = directory / "tls.crt", directory / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return crt, key_path


# --- host state: what exists before, what is left after -----------------------------------------------------------
def _iptables_lines(binary: str) -> set[str]:
    lines: set[str] = set()
    for table in ("filter", "nat", "mangle", "raw"):
        result = _run(binary, "-w", "-t", table, "-S", check=False)
        lines |= {f"{table} {line}" for line in result.stdout.splitlines()}
    return lines


def _links() -> set[str]:
    return {line.split()[1].split("@")[0].rstrip(":") for line in _run("ip", "-o", "link", "show").stdout.splitlines()}


def _mounts() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def _netns() -> set[str]:
    return {p.name for p in Path("/run/netns").iterdir()} if Path("/run/netns").is_dir() else set()


def host_snapshot() -> dict[str, list[str]]:
    """What the node could leave behind: iptables rules, links, mounts, network namespaces."""
    return {
        "iptables": sorted(_iptables_lines("iptables")),
        "ip6tables": sorted(_iptables_lines("ip6tables")),
        "links": sorted(_links()),
        "mounts": sorted(_mounts()),
        "netns": sorted(_netns()),
    }


def _our_processes(pids: list[dict[str, Any]]) -> list[int]:
    """Live pids among the recorded ones (same binary) plus every containerd shim of our socket."""
    alive = []
    for entry in pids:
        with contextlib.suppress(OSError):
            argv0 = Path(f"/proc/{entry['pid']}/cmdline").read_bytes().split(b"\0")[0].decode()
            if argv0 == entry["binary"]:
                alive.append(int(entry["pid"]))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = proc.joinpath("cmdline").read_bytes().split(b"\0")
            if (
                argv[0].decode(errors="replace").endswith("containerd-shim-runc-v2")
                and str(CONTAINERD_SOCKET).encode() in argv
            ):
                alive.append(int(proc.name))
    return alive


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (our own children stay zombies until reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cgroup_dirs() -> list[Path]:
    """Every kubepods cgroup directory (all v1 hierarchies, or the v2 tree), deepest first."""
    roots = [p / "kubepods" for p in Path("/sys/fs/cgroup").iterdir() if (p / "kubepods").is_dir()]
    if Path("/sys/fs/cgroup/kubepods").is_dir():
        roots.append(Path("/sys/fs/cgroup/kubepods"))
    found: list[Path] = []
    for root in roots:
        found += [Path(d) for d, _, _ in os.walk(root)]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def _kill_pod_processes(*, shims: bool = False) -> None:
    """SIGKILL every process in the kubepods cgroups (and the containerd shims) until none is left (bounded)."""
    for _ in range(50):
        pids: set[int] = set()
        for directory in _cgroup_dirs():
            with contextlib.suppress(OSError):
                pids |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        if shims:
            pids |= set(_our_processes([]))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def leftovers(before: dict[str, list[str]] | None) -> list[str]:
    """What a stopped node left on the host compared with ``before`` (every kind listed), empty when clean."""
    found: list[str] = []
    if before is not None:
        after = host_snapshot()
        for kind, lines in after.items():
            new = sorted(set(lines) - set(before.get(kind, [])))
            found += [f"{kind}: {line}" for line in new]
    found += [f"process: {pid}" for pid in _our_processes([])]
    found += [f"cgroup: {d}" for d in _cgroup_dirs()]
    for path in (CONTAINERD_STATE, STATE_FILE):
        if path.exists():
            found.append(f"path: {path}")
    return found


def _remove_chains(binary: str, prefixes: tuple[str, ...]) -> None:
    """Delete every jump to, and every chain named with, one of ``prefixes`` in every table."""
    for table in ("filter", "nat", "mangle", "raw"):
        rules = _run(binary, "-w", "-t", table, "-S", check=False).stdout.splitlines()
        chains = [r.split()[1] for r in rules if r.startswith("-N ") and r.split()[1].startswith(prefixes)]
        for rule in rules:
            parts = shlex.split(rule)
            if (
                parts[:1] == ["-A"]
                and parts[1] not in chains
                and any(f"-j {c}" in rule or f"-g {c}" in rule for c in chains)
            ):
                _run(binary, "-w", "-t", table, "-D", *parts[1:], check=False)
        for chain in chains:
            _run(binary, "-w", "-t", table, "-F", chain, check=False)
        for chain in chains:
            _run(binary, "-w", "-t", table, "-X", chain, check=False)


def _unmount_under(prefixes: list[str]) -> None:
    for _ in range(5):
        targets = sorted(
            (m for m in _mounts() if any(m == p or m.startswith(p.rstrip("/") + "/") for p in prefixes)),
            key=lambda m: m.count("/"),
            reverse=True,
        )
        if not targets:
            return
        for target in targets:
            if _run("umount", target, check=False).returncode != 0:
                _run("umount", "-l", target, check=False)


def cleanup_host(state: dict[str, Any], *, grace: float = 10) -> None:
    """Undo everything recorded in ``state`` (idempotent; safe after a crash): processes, pod processes and their
    cgroups, mounts, network namespaces, iptables chains, the bridge, sysctls, runtime directories."""
    # 1. Our host processes: SIGTERM to every group (newest first), then SIGKILL what is left after ``grace``.
    pids = [pid for entry in reversed(state.get("processes", [])) for pid in _our_processes([entry])]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # 2. Pod processes (in the kubepods cgroups) and the containerd shims; then the empty cgroups.
    _kill_pod_processes(shims=True)
    for directory in _cgroup_dirs():
        with contextlib.suppress(OSError):
            directory.rmdir()
    # 3. Mounts of kubelet, containerd and the pods' network namespaces.
    netns = [f"/run/netns/{n}" for n in _netns() if n.startswith("cni-")]
    roots = [str(CONTAINERD_STATE), *state.get("mount_roots", []), *netns]
    _unmount_under(roots)
    for path in netns:
        with contextlib.suppress(OSError):
            Path(path).unlink()
    # 4. iptables: kube-proxy's KUBE-* chains, CNI's CNI-* chains, our isolation chain.
    for binary in ("iptables", "ip6tables"):
        _remove_chains(binary, ("KUBE-", "CNI-", ISOLATE_CHAIN))
    nft = _run("nft", "list", "tables", check=False).stdout
    for family, table in re.findall(r"^table (\S+) (kube-proxy)$", nft, flags=re.M):
        _run("nft", "delete", "table", family, table, check=False)
    # 5. Interfaces: anything still enslaved to the bridge, then the bridge.
    if BRIDGE in _links():
        for line in _run("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout.splitlines():
            _run("ip", "link", "delete", line.split()[1].split("@")[0].rstrip(":"), check=False)
        _run("ip", "link", "delete", BRIDGE, check=False)
    # 6. Sysctls as they were, runtime directories, kubelet's log links into our work directory.
    for name, value in state.get("sysctls", {}).items():
        if value is not None:
            _write_sysctl(name, value)
    shutil.rmtree(CONTAINERD_STATE, ignore_errors=True)
    if not state.get("netns_dir_existed", True):
        with contextlib.suppress(OSError):
            Path("/run/netns").rmdir()
    workdir = state.get("workdir")
    if workdir and Path("/var/log/containers").is_dir():
        for link in Path("/var/log/containers").iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(workdir):
                    link.unlink()
    STATE_FILE.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        STATE_FILE.parent.rmdir()


@dataclass
class RealCluster:
    """The control plane plus a real node and the platform (KServe, Traefik); ``start()``, use, ``stop()``."""

    workdir: Path
    bin_dir: Path
    images_env: Path
    crds: list[Path] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    #: Persistent containerd root (imported images survive restarts: a cached start imports nothing).
    containerd_root: Path = Path.home() / ".cache" / "kube-sentiment" / "node" / "containerd"
    die_with_parent: bool = True
    kserve_config: Path | None = None
    #: Start the KServe controller and Traefik too (False: only the node, e.g. to debug it).
    platform: bool = True
    local: LocalCluster | None = None
    components: list[Component] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        assert self.local is not None and self.local.kubeconfig is not None
        return self.local.kubeconfig

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    def _save(self) -> None:
        procs = [c for c in self.components if c.process is not None]
        if self.local is not None:
            procs = [*self.local.components, *procs]
        self.state["processes"] = [
            {"name": c.name, "pid": c.process.pid, "binary": c.argv[0]} for c in procs if c.process
        ]
        self.state["workdir"] = str(self.workdir)
        STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        STATE_FILE.write_text(json.dumps(self.state, indent=1))

    def _launch(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        component = Component(name=name, argv=argv, log=self.workdir / "logs" / f"{name}.log")
        base = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
        component.start({**base, **(env or {})}, die_with_parent=self.die_with_parent)
        self.components.append(component)
        self._save()
        return component

    def kubectl(self, *args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return _run("kubectl", f"--kubeconfig={self.kubeconfig}", *args, timeout=timeout, input=stdin)

    def apply(self, objects: list[dict[str, Any]]) -> None:
        """Server-side apply of objects, as one List."""
        items = {"apiVersion": "v1", "kind": "List", "items": objects}
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(items))

    def _step(self, name: str, start: float) -> None:
        self.timings[name] = round(time.monotonic() - start, 1)
        print(f"[realnode] {name}: {self.timings[name]}s", file=sys.stderr)

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self, *, timeout: float = 300) -> RealCluster:
        if reason := why_unavailable(self.bin_dir, platform=self.platform):
            raise NodeUnavailable(reason)
        if STATE_FILE.exists():  # a previous run crashed: clean up what it left first
            print(f"[realnode] cleaning up a previous node ({STATE_FILE})", file=sys.stderr)
            cleanup_host(json.loads(STATE_FILE.read_text()))
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.state = {
            "before": host_snapshot(),
            "sysctls": {name: _read_sysctl(name) for name in SYSCTLS},
            "mount_roots": [str(self.workdir), str(self.containerd_root)],
            "netns_dir_existed": Path("/run/netns").exists(),
        }
        self._save()
        try:
            t = time.monotonic()
            self._network()
            self._step("network", t)
            t = time.monotonic()
            self.local = LocalCluster(
                workdir=self.workdir,
                bin_dir=self.bin_dir,
                nodes=0,
                advertise_address=NODE_IP,
                die_with_parent=self.die_with_parent,
            )
            self.local.start(timeout=timeout)
            self._save()
            install_crds(self.local, self.crds, timeout=timeout)
            for manifest in self.manifests:
                self.local.kubectl("apply", "--server-side", "-f", str(manifest), timeout=timeout)
            self._step("control plane", t)
            t = time.monotonic()
            self._containerd(timeout)
            self._step("containerd", t)
            t = time.monotonic()
            self._import_images(timeout)
            self._step("images", t)
            t = time.monotonic()
            self._kubelet(timeout)
            self._kube_proxy(timeout)
            self._dns(timeout)
            self._storage()
            self._step("node", t)
            if self.platform:
                t = time.monotonic()
                self._kserve(timeout)
                self._traefik(timeout)
                self._step("kserve and gateway", t)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> list[str]:
        """Stop everything (kubelet before containerd, the node before the control plane), kill what is left in the
        pods' cgroups, clean the host; return what is left behind (empty when clean). The pods are not deleted
        through the API first: their network namespaces, addresses (kept in the work directory) and veths go with
        their processes."""
        kubelet = next((c for c in self.components if c.name == "kubelet"), None)
        if kubelet is not None and kubelet.process is not None and kubelet.process.poll() is None:
            kubelet.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                kubelet.process.wait(timeout=15)
            kubelet.process.kill()
        if any(c.name == "containerd" and c.process and c.process.poll() is None for c in self.components):
            self._purge_containers()
        before = self.state.get("before")
        self.state["processes"] = [
            {"name": c.name, "pid": c.process.pid, "binary": c.argv[0]}
            for c in [*(self.local.components if self.local else []), *self.components]
            if c.process is not None
        ]
        cleanup_host(self.state)
        for c in self.components:
            if c.process is not None:
                with contextlib.suppress(Exception):
                    c.process.wait(timeout=5)
        if self.local is not None:
            self.local.components.clear()
        self.components.clear()
        return leftovers(before)

    def _purge_containers(self) -> None:
        """With kubelet stopped: kill every pod process, then delete containerd's tasks and containers (sandboxes
        included), so the persistent containerd root holds images only and the next start recovers no pod."""
        _kill_pod_processes()
        for task in self._ctr_ids("tasks", "ls", "-q"):
            _run("ctr", "--namespace", "k8s.io", "tasks", "delete", "--force", task, check=False, timeout=60)
        for container in self._ctr_ids("containers", "ls", "-q"):
            _run("ctr", "--namespace", "k8s.io", "containers", "rm", container, check=False, timeout=60)

    def _ctr_ids(self, *args: str) -> list[str]:
        result = _run("ctr", "--namespace", "k8s.io", *args, check=False, timeout=60)
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]

    def diagnostics(self) -> str:
        parts = [self.local.diagnostics()] if self.local else []
        parts += [f"--- {c.name} ({c.log}) ---\n{c.log_tail(60)}" for c in self.components]
        return "\n".join(parts)

    # -- network -------------------------------------------------------------------------------------------------
    def _network(self) -> None:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/{POD_SUBNET.prefixlen}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        _write_sysctl("net/ipv4/ip_forward", "1")
        _write_sysctl("net/bridge/bridge-nf-call-iptables", "1")
        # Pods talk to each other, to Services (DNAT to pods on the bridge) and to the host's bridge address; any
        # forwarded packet that enters or leaves through another interface is dropped: no route out of the host.
        _run("iptables", "-w", "-N", ISOLATE_CHAIN)
        _run("iptables", "-w", "-A", ISOLATE_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN")
        _run("iptables", "-w", "-A", ISOLATE_CHAIN, "-i", BRIDGE, "-j", "DROP")
        _run("iptables", "-w", "-A", ISOLATE_CHAIN, "-o", BRIDGE, "-j", "DROP")
        _run("iptables", "-w", "-I", "FORWARD", "1", "-j", ISOLATE_CHAIN)
        cni = self.workdir / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "1.0.0",
            "name": "kube-sentiment",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(POD_SUBNET), "gateway": NODE_IP}]],
                        # Routes only to the pod subnet (on-link) and the Service range: no default route.
                        "routes": [{"dst": SERVICE_CIDR}],
                        "dataDir": str(self.workdir / "cni-ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (cni / "10-kube-sentiment.conflist").write_text(json.dumps(conflist, indent=1))

    # -- containerd and images -----------------------------------------------------------------------------------
    def _containerd(self, timeout: float) -> None:
        self.images = dict(line.split("=", 1) for line in self.images_env.read_text().splitlines() if "=" in line)
        root = self.containerd_root
        root.mkdir(parents=True, exist_ok=True)
        cni_dir = _cni_dir()
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{root}"
state = "{CONTAINERD_STATE}"
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"
[{cri}]
  sandbox_image = "{self.images["KS_IMAGE_PAUSE"]}"
  # Without it every pod fails ("can't get final child's PID from pipe"): the sandbox lacks CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_unprivileged_ports = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{cni_dir}"
  conf_dir = "{self.workdir / "cni"}"
  max_conf_num = 1
"""
        path = self.workdir / "containerd.toml"
        path.write_text(config)
        containerd = self._launch("containerd", [shutil.which("containerd") or "containerd", "--config", str(path)])

        def up() -> bool:
            containerd.check_alive()
            return CONTAINERD_SOCKET.exists() and _run("ctr", "version", check=False, timeout=10).returncode == 0

        wait_until(up, timeout=timeout, what="containerd")

    def _ctr(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return _run("ctr", "--namespace", "k8s.io", *args, timeout=timeout)

    def image_digest(self, ref: str) -> str:
        """The manifest digest containerd holds for ``ref`` (what a ``repo:tag@digest`` reference pins)."""
        for line in self._ctr("images", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == ref:
                return parts[2]
        raise ClusterError(f"image {ref} is not in containerd's k8s.io namespace")

    def _import_images(self, timeout: float) -> None:
        present = {line.split()[0] for line in self._ctr("images", "ls").stdout.splitlines()[1:] if line.strip()}
        keep: set[str] = set()
        for name in ("PAUSE", "DEBIAN", "APP"):
            ref, archive = self.images[f"KS_IMAGE_{name}"], self.images[f"KS_ARCHIVE_{name}"]
            if ref not in present:
                self._ctr("images", "import", "--snapshotter", "overlayfs", archive, timeout=timeout * 2)
            digest = self.images[f"KS_DIGEST_{name}"] = self.image_digest(ref)
            # What a registry pull leaves behind: the repository@digest name, by which CRI finds a reference that
            # pins the digest (repository:tag@digest) without pulling.
            by_digest = f"{ref.rsplit(':', 1)[0]}@{digest}"
            if by_digest not in present:
                self._ctr("images", "tag", "--force", ref, by_digest)
            keep |= {ref, by_digest}
        stale = [ref for ref in present if ref.startswith("localhost/kube-sentiment/") and ref not in keep]
        if stale:  # images of earlier builds: their layers would fill the persistent root
            self._ctr("images", "rm", *stale)

    # -- kubelet, kube-proxy, DNS, storage -----------------------------------------------------------------------
    def _kubelet(self, timeout: float) -> None:
        assert self.local is not None
        pki = self.workdir / "pki"
        kubelet_dir = self.workdir / "kubelet"
        (kubelet_dir / "pods-logs").mkdir(parents=True, exist_ok=True)
        resolv = self.workdir / "resolv.conf"
        resolv.write_text("# pods of this node resolve cluster names only (CoreDNS has no upstream)\n")
        healthz = free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "clusterDNS": [DNS_IP],
            "clusterDomain": "cluster.local",
            "resolvConf": str(resolv),
            "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
            "podLogsDir": str(kubelet_dir / "pods-logs"),
            # Nothing here can be pulled again: never collect images, never evict for a busy shared disk.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
            "serializeImagePulls": False,
            "maxPods": 110,
            "shutdownGracePeriod": "0s",
        }
        path = self.workdir / "kubelet.yaml"
        path.write_text(json.dumps(config, indent=1))
        kubelet = self._launch(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={path}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={kubelet_dir}",
                f"--cert-dir={kubelet_dir / 'pki'}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                "--node-labels=kube-sentiment/real-node=true",
                "--v=1",
            ],
        )

        def ready() -> bool:
            kubelet.check_alive()
            result = self.kubectl("get", "node", NODE_NAME, "-o", "json", timeout=10) if self._node_exists() else None
            if result is None:
                return False
            conditions = json.loads(result.stdout)["status"].get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_until(ready, timeout=timeout, what=f"node {NODE_NAME} Ready", interval=1)

    def _node_exists(self) -> bool:
        return (
            _run(
                "kubectl", f"--kubeconfig={self.kubeconfig}", "get", "node", NODE_NAME, check=False, timeout=10
            ).returncode
            == 0
        )

    def _kube_proxy(self, timeout: float) -> None:
        healthz, metrics = free_port(), free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "hostnameOverride": NODE_NAME,
            "bindAddress": NODE_IP,
            "healthzBindAddress": f"127.0.0.1:{healthz}",
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            "clusterCIDR": str(POD_SUBNET),
            "nodePortAddresses": [f"{NODE_IP}/32"],
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
            # 0: leave the host's conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        }
        path = self.workdir / "kube-proxy.yaml"
        path.write_text(json.dumps(config, indent=1))
        proxy = self._launch("kube-proxy", [str(self.bin_dir / "kube-proxy"), f"--config={path}", "--v=1"])
        self._wait_http(proxy, f"http://127.0.0.1:{healthz}/healthz", timeout)
        # kube-proxy inserts its jumps at the top of FORWARD once it has synced; then the isolation chain goes back in
        # front of them (kube-proxy only re-adds its own jumps when they are missing).
        wait_until(
            lambda: "KUBE-FORWARD" in _run("iptables", "-w", "-S", "FORWARD").stdout,
            timeout=timeout,
            what="kube-proxy's FORWARD rules",
        )
        _run("iptables", "-w", "-D", "FORWARD", "-j", ISOLATE_CHAIN)
        _run("iptables", "-w", "-I", "FORWARD", "1", "-j", ISOLATE_CHAIN)

    def _wait_http(self, component: Component, url: str, timeout: float) -> None:
        assert self.local is not None
        self.local._wait_http(component, url, timeout=timeout)

    def _dns(self, timeout: float) -> None:
        ready = free_port()
        corefile = self.workdir / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.kubeconfig} local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
}}
"""
        )
        coredns = self._launch("coredns", [str(self.bin_dir / "coredns"), "-conf", str(corefile)])
        self.apply(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                    "spec": {
                        "clusterIP": DNS_IP,
                        "ports": [
                            {"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                        ],
                    },
                },
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": "kube-dns-host",
                        "namespace": "kube-system",
                        "labels": {
                            "kubernetes.io/service-name": "kube-dns",
                            "endpointslice.kubernetes.io/managed-by": "kube-sentiment.realnode",
                        },
                    },
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    ],
                },
            ]
        )
        self._wait_http(coredns, f"http://127.0.0.1:{ready}/ready", timeout)

    def _storage(self) -> None:
        objects: list[dict[str, Any]] = [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Retain",
            }
        ]
        for index in range(VOLUMES):
            path = self.workdir / "volumes" / f"pv-{index:02d}"
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": f"ks-local-{index:02d}"},
                    "spec": {
                        "capacity": {"storage": "20Gi"},
                        "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "local",
                        "local": {"path": str(path)},
                        "nodeAffinity": {
                            "required": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}
                                        ]
                                    }
                                ]
                            }
                        },
                    },
                }
            )
        self.apply(objects)

    # -- KServe ----------------------------------------------------------------------------------------------------
    def _kserve(self, timeout: float) -> None:
        assert self.kserve_config is not None, "kserve_config: the module's config/ directory"
        ns = KSERVE_NAMESPACE
        self.kubectl("create", "namespace", ns)
        configmap = yaml.safe_load((self.kserve_config / "configmap" / "inferenceservice.yaml").read_text())
        data = configmap["data"]
        deploy = json.loads(data["deploy"])
        deploy["defaultDeploymentMode"] = "Standard"
        data["deploy"] = json.dumps(deploy)
        ingress = json.loads(data["ingress"])
        ingress.update(enableGatewayApi=True, kserveIngressGateway=f"{ns}/kserve-ingress-gateway")
        data["ingress"] = json.dumps(ingress)
        data.pop("_example", None)
        configmap["metadata"]["namespace"] = ns
        self.apply([configmap])
        port = free_port()
        tmp = self.workdir / "kserve-tmp"
        certs = tmp / "k8s-webhook-server" / "serving-certs"
        crt, _ = _self_signed(certs, "kserve-webhook", ips=["127.0.0.1"], dns=["localhost"])
        probe, metrics = free_port(), free_port()
        manager = self._launch(
            "kserve-manager",
            [
                str(self.bin_dir / "kserve-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--webhook-port={port}",
                f"--health-probe-addr=127.0.0.1:{probe}",
                f"--metrics-addr=127.0.0.1:{metrics}",
                "--leader-elect=false",
            ],
            env={"POD_NAMESPACE": ns, "TMPDIR": str(tmp)},
        )
        ca_bundle = base64.b64encode(crt.read_bytes()).decode()
        webhooks = []
        for doc in yaml.safe_load_all((self.kserve_config / "webhook" / "manifests.yaml").read_text()):
            if not doc:
                continue
            doc["metadata"].pop("creationTimestamp", None)
            for hook in doc.get("webhooks", []):
                path = hook["clientConfig"]["service"].get("path", "/")
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle}
            webhooks.append(doc)
        self._wait_http(manager, f"http://127.0.0.1:{probe}/readyz", timeout)
        wait_until(lambda: _port_open("127.0.0.1", port), timeout=timeout, what="the KServe webhook port")
        self.apply(webhooks)

    # -- Traefik (Gateway API) -------------------------------------------------------------------------------------
    def _traefik(self, timeout: float) -> None:
        ping = free_port()
        argv = [
            str(self.bin_dir / "traefik"),
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
            "--log.level=INFO",
            "--log.nocolor=true",
            "--accesslog=false",
            "--providers.kubernetesgateway=true",
            f"--providers.kubernetesgateway.statusaddress.ip={NODE_IP}",
            f"--entrypoints.traefik.address=127.0.0.1:{ping}",
            "--ping=true",
            "--ping.entrypoint=traefik",
        ]
        for name, port in GATEWAY_PORTS.items():
            argv.append(f"--entrypoints.{name}.address={NODE_IP}:{port}")
        traefik = self._launch("traefik", argv, env={"KUBECONFIG": str(self.kubeconfig)})
        routes_from_env = {
            "namespaces": {"from": "Selector", "selector": {"matchLabels": {"kube-sentiment/gateway-access": "true"}}}
        }
        gateways = [
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS},
                "spec": {"controllerName": "traefik.io/gateway-controller"},
            },
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "kube-sentiment", "namespace": "gateway"},
                "spec": {
                    "gatewayClassName": GATEWAY_CLASS,
                    "listeners": [
                        {
                            "name": "http",
                            "protocol": "HTTP",
                            "port": GATEWAY_PORTS["http"],
                            "allowedRoutes": {"kinds": [{"kind": "HTTPRoute"}], **routes_from_env},
                        },
                        {
                            "name": "grpc",
                            "protocol": "HTTP",
                            "port": GATEWAY_PORTS["grpc"],
                            "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}], **routes_from_env},
                        },
                    ],
                },
            },
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": {"name": "kserve-ingress-gateway", "namespace": KSERVE_NAMESPACE},
                "spec": {
                    "gatewayClassName": GATEWAY_CLASS,
                    "listeners": [
                        {
                            "name": "http",
                            "protocol": "HTTP",
                            "port": GATEWAY_PORTS["http"],
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        },
                    ],
                },
            },
        ]
        self.apply(gateways)
        self._wait_http(traefik, f"http://127.0.0.1:{ping}/ping", timeout)
        for ns, name in (("gateway", "kube-sentiment"), (KSERVE_NAMESPACE, "kserve-ingress-gateway")):
            self.kubectl(
                "-n",
                ns,
                "wait",
                "--for=condition=Programmed",
                f"gateway/{name}",
                f"--timeout={int(timeout)}s",
                timeout=timeout + 10,
            )


def module_dir(module: str, version: str) -> Path:
    """The directory of ``module@version`` in the Go module cache (downloaded through the module proxy if needed)."""
    result = _run("go", "mod", "download", "-json", f"{module}@{version}", timeout=900)
    return Path(json.loads(result.stdout)["Dir"])


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def main(argv: list[str] | None = None) -> int:
    """CLI for scripts/cluster-up.sh --real and scripts/cluster-down.sh."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="exit 0 when a node can start here, else 69 with the reason")
    check.add_argument("--bin-dir", type=Path)
    up = sub.add_parser("up", help="start control plane, node, KServe and Traefik; print the kubeconfig path")
    up.add_argument("--workdir", type=Path, required=True)
    up.add_argument("--bin-dir", type=Path, required=True)
    up.add_argument("--images-env", type=Path, required=True)
    up.add_argument("--kserve-module", type=Path, required=True, help="github.com/kserve/kserve module directory")
    up.add_argument("--crds", type=Path, action="append", default=[], help="CRD folder (scripts/build-tools.sh --crds)")
    up.add_argument("--apply", type=Path, action="append", default=[])
    up.add_argument("--timeout", type=float, default=300)
    sub.add_parser("down", help="stop the node and clean the host")
    args = parser.parse_args(argv)
    if args.command == "check":
        reason = why_unavailable(args.bin_dir)
        if reason:
            print(reason, file=sys.stderr)
            return EXIT_UNAVAILABLE
        return 0
    if args.command == "down":
        if not STATE_FILE.exists():
            print("no real node is running", file=sys.stderr)
            return 0
        state = json.loads(STATE_FILE.read_text())
        cleanup_host(state)
        left = leftovers(state.get("before"))
        for line in left:
            print(f"left behind: {line}", file=sys.stderr)
        return 1 if left else 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    cluster = RealCluster(
        workdir=args.workdir.resolve(),
        bin_dir=args.bin_dir.resolve(),
        images_env=args.images_env,
        crds=args.crds,
        manifests=args.apply,
        kserve_config=args.kserve_module / "config",
        die_with_parent=False,
    )
    try:
        cluster.start(timeout=args.timeout)
    except NodeUnavailable as error:
        print(f"real node unavailable: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (ClusterError, subprocess.SubprocessError) as error:
        print(f"real node failed: {error}\n{cluster.diagnostics()}", file=sys.stderr)
        return 1
    print(cluster.kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
