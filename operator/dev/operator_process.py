"""``scale-sched operator run`` as a child process: the one way the demo, the benchmarks and the tests start it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

# The CLI through the running interpreter, so a venv that is not on PATH still works.
SCALE_SCHED = [sys.executable, "-c", "from scale_scheduler.operator.cli import main; main()"]
STOP_SECONDS = 20.0  # SIGTERM, then SIGKILL after this long


class OperatorStartError(RuntimeError):
    """The operator exited or never answered /healthz; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(process: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float) -> None:
    """Return once the operator's /healthz answers 200; OperatorStartError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OperatorStartError(
                f"the operator exited with code {process.returncode}; its log ends:\n{log_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise OperatorStartError(
        f"the operator was not healthy within {timeout:.0f} s; its log ends:\n{log_tail(log_path)}"
    )


class OperatorProcess:
    """``scale-sched operator run`` with its output in a log file; ``kill()`` is SIGKILL, as a crashed pod dies.

    ``namespace`` None serves every namespace; a tuple of names serves those. The extender is off; metrics only with
    ``metrics=True`` (on ``metrics_port``). The log goes to ``log_path``, else to a new temporary file."""

    def __init__(
        self,
        kubeconfig: str | Path,
        namespace: str | tuple[str, ...] | None = None,
        *,
        policy: str = "least-loaded",
        time_scale: float = 20.0,
        metrics: bool = False,
        extra: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        learn_estimates: bool = False,
    ) -> None:
        self.health_port = free_port()
        self.metrics_port = free_port() if metrics else 0
        if log_path is None:
            descriptor, name = tempfile.mkstemp(prefix="scale-sched-operator-", suffix=".log")
            os.close(descriptor)  # the child writes through its own handle, opened below
            log_path = Path(name)
        self.log_path = log_path
        served = (namespace,) if isinstance(namespace, str) else namespace or ()
        scope = [arg for name in served for arg in ("--namespace", name)] or ["--all-namespaces"]
        # Off unless asked: learned run times would carry over from one test's operator to the next one's on a
        # shared cluster. On, they are kept in POD_NAMESPACE when ``env`` gives one (as in a pod), else in the first
        # served namespace.
        learning = []
        if learn_estimates:
            learning = [f"--estimates-namespace={(env or {}).get('POD_NAMESPACE') or (served or ('default',))[0]}"]
        command = [
            *SCALE_SCHED,
            "operator",
            "run",
            "--kubeconfig",
            str(kubeconfig),
            *scope,
            "--policy",
            policy,
            "--time-scale",
            str(time_scale),
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--extender-port",
            "0",
            *(learning or ["--no-learn-estimates"]),
            *extra,
        ]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )

    def log(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def wait_healthy(self, timeout: float = 120.0) -> None:
        wait_healthy(self.process, self.health_port, self.log_path, timeout)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (kopf finishes its handlers and exits), SIGKILL if it has not within ``STOP_SECONDS``."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def running_operator(
    kubeconfig: str | Path,
    namespace: str | tuple[str, ...] | None = None,
    *,
    timeout: float = 120.0,
    policy: str = "least-loaded",
    time_scale: float = 20.0,
    metrics: bool = False,
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    learn_estimates: bool = False,
) -> Iterator[OperatorProcess]:
    """An ``OperatorProcess`` that answers /healthz for the block, stopped after it (OperatorStartError if it
    exits or is not healthy within ``timeout``)."""
    operator = OperatorProcess(
        kubeconfig,
        namespace,
        policy=policy,
        time_scale=time_scale,
        metrics=metrics,
        extra=extra,
        env=env,
        log_path=log_path,
        learn_estimates=learn_estimates,
    )
    try:
        operator.wait_healthy(timeout)
        yield operator
    finally:
        operator.stop()
