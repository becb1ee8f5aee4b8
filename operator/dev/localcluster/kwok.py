"""The local cluster: genuine Kubernetes components as local processes, started by ``kwokctl --runtime binary``.

kwokctl already does the process management, PKI, flags and kubeconfig; this module feeds it our
locally built binaries (hack/cluster/build.sh), a configuration binding everything to 127.0.0.1,
our KWOK stages (stages.yaml), then creates the simulator's nodes and waits until they are Ready.
Each cluster lives in its own kwokctl directory (``<cache>/kwok/clusters/<name>``), so several can
coexist; ``down`` stops exactly the processes kwokctl started for that name.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from scale_scheduler.operator.dev.repo import REPO_ROOT
from scale_scheduler.simulator.cluster import ClusterSpec

from .nodes import node_list

STAGES_FILE = Path(__file__).with_name("stages.yaml")
BUILD_SCRIPT = REPO_ROOT / "hack" / "cluster" / "build.sh"
INFO_FILE = "scale-sched.json"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


class ClusterError(RuntimeError):
    """The local cluster could not be started, found or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    kubeconfig: Path
    bin_dir: Path
    nodes: int
    state_dir: Path

    def to_json(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def cache_dir() -> Path:
    """Where builds and cluster state live; the same rule as hack/cluster/build.sh."""
    if os.environ.get("SCALE_SCHED_CACHE"):
        return Path(os.environ["SCALE_SCHED_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scale-sched"


def kwok_workdir() -> Path:
    return cache_dir() / "kwok"


def state_dir(name: str) -> Path:
    return kwok_workdir() / "clusters" / name


def ensure_binaries(progress: Callable[[str], None] | None = None) -> Path:
    """The directory of the built control-plane binaries, building them first if needed (minutes, once).

    ``$SCALE_SCHED_BIN_DIR`` overrides; otherwise hack/cluster/build.sh (which pins the versions and
    returns at once when its cached build is complete) prints the directory.
    """
    if os.environ.get("SCALE_SCHED_BIN_DIR"):
        directory = Path(os.environ["SCALE_SCHED_BIN_DIR"])
        if not (directory / "kwokctl").exists():
            raise ClusterError(
                f"$SCALE_SCHED_BIN_DIR={directory} has no kwokctl; unset it or run hack/cluster/build.sh"
            )
        return directory
    if not BUILD_SCRIPT.exists():
        raise ClusterError(
            f"{BUILD_SCRIPT} not found: the local cluster is built from a source checkout; set "
            "$SCALE_SCHED_BIN_DIR to a directory with kube-apiserver, kube-scheduler, kwokctl, ... instead"
        )
    if progress:
        progress(
            "control-plane binaries: the cached build, or a build from Go modules (first time: about 8 minutes) ..."
        )
    env = {**os.environ, "SCALE_SCHED_CACHE": str(cache_dir())}
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise ClusterError(f"building the control-plane binaries failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def kwokctl_config() -> str:
    """kwokctl configuration: components on 127.0.0.1 only, plus our stages."""
    options = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {"bindAddress": "127.0.0.1"},
    }
    return yaml.safe_dump(options) + "---\n" + STAGES_FILE.read_text()


def create_command(
    name: str, bin_dir: Path, config: Path, *, scheduler_config: Path | None, kube_scheduler: bool, wait_seconds: int
) -> list[str]:
    command = [
        str(bin_dir / "kwokctl"),
        "--name",
        name,
        "create",
        "cluster",
        "--runtime",
        "binary",
        "--config",
        str(config),
        "--kube-apiserver-binary",
        str(bin_dir / "kube-apiserver"),
        "--kube-controller-manager-binary",
        str(bin_dir / "kube-controller-manager"),
        "--kube-scheduler-binary",
        str(bin_dir / "kube-scheduler"),
        "--kwok-controller-binary",
        str(bin_dir / "kwok"),
        "--etcd-binary",
        str(bin_dir / "etcd"),
        "--kube-authorization=true",
        "--disable-qps-limits",
        # Our kubeconfig is the cluster's own file; leave the user's ~/.kube/config alone.
        "--kubeconfig",
        "",
        "--wait",
        f"{wait_seconds}s",
    ]
    if not kube_scheduler:
        command += ["--disable", "kube-scheduler"]
    elif scheduler_config is not None:
        command += ["--kube-scheduler-config", str(Path(scheduler_config).resolve())]
    return command


def _env(bin_dir: Path) -> dict[str, str]:
    # kwokctl looks for kubectl on PATH (and would download one otherwise).
    return {**os.environ, "KWOK_WORKDIR": str(kwok_workdir()), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def log_tails(name: str, lines: int = 15) -> str:
    """The last lines of each component's log, for error messages."""
    parts = []
    for log in sorted(state_dir(name).glob("logs/*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
    return "\n".join(parts) or "(no component logs were written)"


@contextmanager
def _creation_lock() -> Iterator[None]:
    """One ``kwokctl create`` at a time on this machine: every kwokctl process probes ports downward from
    32767, so two creations at once pick the same ports. Held until the components have bound theirs."""
    kwok_workdir().mkdir(parents=True, exist_ok=True)
    with open(kwok_workdir() / "create.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def up(
    name: str,
    spec: ClusterSpec,
    *,
    scheduler_config: Path | None = None,
    kube_scheduler: bool = True,
    timeout: float = 300.0,
    progress: Callable[[str], None] | None = None,
) -> ClusterInfo:
    """Start a cluster with ``spec``'s nodes; returns once every node is Ready and pods can be created.
    Never half-created: on any failure the cluster is removed again and the error carries the components' log tails."""
    say = progress or (lambda _message: None)
    if scheduler_config is not None and not Path(scheduler_config).is_file():
        raise ClusterError(f"--scheduler-config {scheduler_config}: no such file")
    bin_dir = ensure_binaries(say)
    directory = state_dir(name)
    if directory.exists():
        raise ClusterError(
            f"a cluster named {name!r} already exists ({directory}); "
            f"stop it with `scale-sched cluster down --name {name}` or pick another --name"
        )
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="scale-sched-kwokctl-") as tmp:
        config = Path(tmp) / "kwokctl.yaml"
        config.write_text(kwokctl_config())
        command = create_command(
            name,
            bin_dir,
            config,
            scheduler_config=scheduler_config,
            kube_scheduler=kube_scheduler,
            wait_seconds=max(int(timeout), 1),
        )
        say(
            f"starting etcd, kube-apiserver, kube-controller-manager{', kube-scheduler' if kube_scheduler else ''}"
            f" and kwok for cluster {name!r} ..."
        )
        try:
            with _creation_lock():
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    env=_env(bin_dir),
                    timeout=max(deadline - time.monotonic(), 1),
                    check=False,
                )
        except subprocess.TimeoutExpired:
            tails = log_tails(name)
            _delete(name, bin_dir)
            raise ClusterError(
                f"cluster {name!r} was not up within {timeout:.0f} s (removed again); component logs:\n{tails}"
            ) from None
        if done.returncode != 0:
            tails = log_tails(name)
            _delete(name, bin_dir)
            raise ClusterError(
                f"kwokctl could not create cluster {name!r} (removed again):\n"
                f"{done.stderr[-2000:]}\ncomponent logs:\n{tails}"
            )
    info = ClusterInfo(
        name=name, kubeconfig=directory / "kubeconfig.yaml", bin_dir=bin_dir, nodes=len(spec.nodes), state_dir=directory
    )
    try:
        say(f"creating {len(spec.nodes)} simulated nodes ...")
        kubectl(info, "apply", "-f", "-", stdin=json.dumps(node_list(spec)))
        _wait_nodes_ready(info, {n.name for n in spec.nodes}, deadline)
        _wait_default_service_account(info, deadline)
    except (ClusterError, subprocess.TimeoutExpired) as error:
        tails = log_tails(name)
        _delete(name, bin_dir)
        raise ClusterError(f"cluster {name!r}: {error} (removed again); component logs:\n{tails}") from None
    (directory / INFO_FILE).write_text(json.dumps(info.to_json(), indent=2))
    return info


def kubectl(info: ClusterInfo, *args: str, stdin: str | None = None, timeout: float = 120.0) -> str:
    done = subprocess.run(
        [str(info.bin_dir / "kubectl"), "--kubeconfig", str(info.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _wait_until(ready: Callable[[], bool], deadline: float) -> bool:
    """Poll ``ready()`` every half second until it holds (True) or ``deadline`` (monotonic) passes (False)."""
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.5)
    return False


def _wait_nodes_ready(info: ClusterInfo, names: set[str], deadline: float) -> None:
    not_ready = set(names)

    def all_ready() -> bool:
        listed = json.loads(kubectl(info, "get", "nodes", "-o", "json"))["items"]
        not_ready.clear()
        not_ready.update(names - {n["metadata"]["name"] for n in listed if _ready(n)})
        return not not_ready

    if not _wait_until(all_ready, deadline):
        raise ClusterError(
            f"{len(not_ready)} node(s) never became Ready (e.g. {sorted(not_ready)[:3]}); kwok did not pick them up"
        )


def _wait_default_service_account(info: ClusterInfo, deadline: float, namespace: str = "default") -> None:
    """Until kube-controller-manager has made it, the ServiceAccount admission plugin refuses every pod of the
    namespace ("serviceaccount default not found")."""
    if not _wait_until(
        lambda: "default" in kubectl(info, "get", "serviceaccounts", "-n", namespace, "-o", "name"), deadline
    ):
        raise ClusterError(
            f"kube-controller-manager never created the default ServiceAccount of namespace "
            f"{namespace}; pods cannot be created there"
        )


def create_namespace(info: ClusterInfo, name: str, timeout: float = 60.0) -> None:
    """Create namespace ``name`` and return once pods can be created in it."""
    kubectl(info, "create", "namespace", name)
    _wait_default_service_account(info, time.monotonic() + timeout, name)


def wait_established(info: ClusterInfo, crd: str, timeout: float = 60.0) -> None:
    """Until the CRD serves. Polled: `kubectl wait --for=condition=Established` fails at once, instead of
    waiting, on a CRD so new that it has no status.conditions yet."""
    query = '{.status.conditions[?(@.type=="Established")].status}'
    if not _wait_until(
        lambda: kubectl(info, "get", f"crd/{crd}", "-o", f"jsonpath={query}").strip() == "True",
        time.monotonic() + timeout,
    ):
        raise ClusterError(f"CRD {crd} was not Established within {timeout:.0f}s")


def load(name: str) -> ClusterInfo:
    """The running cluster ``name`` as ``up`` described it."""
    path = state_dir(name) / INFO_FILE
    if not path.exists():
        raise ClusterError(
            f"no cluster named {name!r} (looked in {state_dir(name)}); "
            f"start one with `scale-sched cluster up --name {name}`"
        )
    raw = json.loads(path.read_text())
    return ClusterInfo(
        name=raw["name"],
        kubeconfig=Path(raw["kubeconfig"]),
        bin_dir=Path(raw["bin_dir"]),
        nodes=int(raw["nodes"]),
        state_dir=Path(raw["state_dir"]),
    )


def names() -> list[str]:
    root = kwok_workdir() / "clusters"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def component_pids(name: str) -> dict[str, int]:
    """Component -> pid from kwokctl's pid files (the processes it started for this cluster)."""
    pids = {}
    for pid_file in state_dir(name).glob("pids/*.pid"):
        try:
            pids[pid_file.stem] = int(pid_file.read_text().strip())
        except ValueError:
            continue
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; it is not running.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


@dataclass(frozen=True)
class _Launch:
    """How a running component was started: enough to start it again the same way."""

    argv: list[str]
    cwd: str
    env: dict[str, str]

    @classmethod
    def of(cls, pid: int) -> _Launch:
        proc = Path(f"/proc/{pid}")
        argv = [part.decode() for part in (proc / "cmdline").read_bytes().split(b"\0") if part]
        env = dict(
            entry.decode(errors="replace").split("=", 1)
            for entry in (proc / "environ").read_bytes().split(b"\0")
            if b"=" in entry
        )
        return cls(argv, os.readlink(proc / "cwd"), env)


def _launch(info: ClusterInfo, component: str, launch: _Launch) -> subprocess.Popen[bytes]:
    with open(info.state_dir / "logs" / f"{component}.log", "ab") as log:
        process = subprocess.Popen(
            launch.argv, cwd=launch.cwd, env=launch.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (info.state_dir / "pids" / f"{component}.pid").write_text(str(process.pid))  # `down` stops it by this
    return process


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ports(launch: _Launch) -> list[int]:
    """The ports a component listens on, from its flags (kube-apiserver and the controllers: --secure-port;
    etcd: its client and peer URLs)."""
    ports = []
    for arg in launch.argv:
        flag, _, value = arg.partition("=")
        if flag == "--secure-port":
            ports.append(int(value))
        elif flag in ("--listen-client-urls", "--listen-peer-urls"):
            ports += [int(url.rsplit(":", 1)[1]) for url in value.split(",") if url.rsplit(":", 1)[-1].isdigit()]
    return ports


def _kill(pid: int, launch: _Launch, deadline: float) -> None:
    """SIGKILL, then wait until the process is gone and its ports are closed: a killed Go process's main thread
    shows as a zombie while its other threads, holding the listeners, still exit."""
    os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: not alive(pid) and not any(_port_open(port) for port in _ports(launch)), deadline)


RESTARTABLE = ("kube-apiserver", "etcd")


def restart(info: ClusterInfo, component: str, timeout: float = 120.0) -> float:
    """Kill ``component`` (kube-apiserver or etcd; SIGKILL, as a crash) and start it again with the same command
    line: same ports, same data, so every object is still there. Returns once kube-apiserver answers /readyz
    again (which checks etcd), with the seconds it did not.

    kube-controller-manager and kube-scheduler are started again too, so the cluster is whole at a known moment:
    they exit on their own whenever their leader lease could not be renewed for 10 s. kwok-controller is left
    running (its informers reconnect): it holds the nodes' leases, and a new one would move no pod until those
    expired (200 s). Holds the creation lock meanwhile: a ``kwokctl create`` elsewhere on this machine would
    otherwise take the free ports."""
    if component not in RESTARTABLE:
        raise ClusterError(f"can restart one of {', '.join(RESTARTABLE)}, not {component!r}")
    pids = component_pids(info.name)
    launches = {name: _Launch.of(pid) for name, pid in pids.items() if alive(pid)}
    if component not in launches:
        raise ClusterError(f"cluster {info.name!r}: {component} is not running; nothing to restart")
    deadline = time.monotonic() + timeout
    with _creation_lock():
        _kill(pids[component], launches[component], deadline)
        down_at = time.monotonic()
        process = _launch(info, component, launches[component])

        def answers() -> bool:
            nonlocal process
            if process.poll() is not None:  # it could not start (a port not free yet): again
                process = _launch(info, component, launches[component])
                return False
            try:
                return kubectl(info, "get", "--raw", "/readyz", timeout=5).strip() == "ok"
            except (ClusterError, subprocess.TimeoutExpired):
                return False

        if not _wait_until(answers, deadline):
            raise ClusterError(
                f"{component} restarted, but kube-apiserver did not answer within {timeout:.0f}s:\n"
                f"{log_tails(info.name)}"
            )
        outage = time.monotonic() - down_at
    for name in ("kube-controller-manager", "kube-scheduler"):
        if name in launches:
            if alive(pids[name]):
                _kill(pids[name], launches[name], deadline)
            _launch(info, name, launches[name])
    return outage


def status(name: str) -> dict[str, Any]:
    """Which of the cluster's components are running, with their pids."""
    pids = component_pids(name)
    info_path = state_dir(name) / INFO_FILE
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return {
        "name": name,
        "state_dir": str(state_dir(name)),
        "kubeconfig": info.get("kubeconfig"),
        "nodes": info.get("nodes"),
        "components": {c: {"pid": pid, "running": alive(pid)} for c, pid in sorted(pids.items())},
    }


def _delete(name: str, bin_dir: Path) -> None:
    pids = component_pids(name)
    subprocess.run(
        [str(bin_dir / "kwokctl"), "--name", name, "delete", "cluster", "--kubeconfig", ""],
        capture_output=True,
        text=True,
        env=_env(bin_dir),
        timeout=120,
        check=False,
    )
    # kwokctl stops its components by pid; make sure nothing outlives it (e.g. a half-started cluster).
    deadline = time.monotonic() + 10
    for pid in pids.values():
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(state_dir(name), ignore_errors=True)


def down(name: str) -> None:
    """Stop every process of cluster ``name`` and remove its state."""
    if not state_dir(name).exists():
        raise ClusterError(f"no cluster named {name!r}; running clusters: {', '.join(names()) or 'none'}")
    _delete(name, ensure_binaries())
