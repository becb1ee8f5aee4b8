"""``scale-sched operator run`` as a child process: how the demo, the benchmark and the tests start it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# The CLI through the running interpreter, so a venv that is not on PATH still works.
SCALE_SCHED = [sys.executable, "-c", "from scale_scheduler.operator.cli import main; main()"]


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
            raise OperatorStartError(f"the operator exited with code {process.returncode}; its log ends:\n"
                                     f"{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise OperatorStartError(f"the operator was not healthy within {timeout:.0f} s; its log ends:\n"
                             f"{log_tail(log_path)}")
