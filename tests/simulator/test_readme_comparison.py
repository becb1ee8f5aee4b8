"""The README's side-by-side heuristic comparison: its commands run, and the figures it quotes are theirs."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from scale_scheduler.operator.dev.operator_process import SCALE_SCHED

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_heuristic_comparison_commands_print_the_quoted_figures() -> None:
    commands = [
        line.split(maxsplit=1)[1]
        for line in README.splitlines()
        if line.startswith(".venv/bin/scale-sched simulate") and "--policies" in line
    ]
    assert len(commands) == 2, "the README shows the comparison on 16 and on 48 nodes"
    quoted = re.search(r"Average response time then \(s, N=16 / N=48\): (.*?)\(p95", README, re.S)
    assert quoted, "the README quotes the comparison's figures"
    figures = {
        name: (float(small), float(large))
        for name, small, large in re.findall(r"([\w-]+)\s+([\d.]+) / ([\d.]+)", quoted.group(1))
    }
    measured: dict[str, list[float]] = {}
    for command in commands:
        done = subprocess.run(
            [*SCALE_SCHED, *shlex.split(command), "--json"], capture_output=True, text=True, timeout=300, check=True
        )
        for policy, result in json.loads(done.stdout)["policies"].items():
            measured.setdefault(policy.lower(), []).append(round(result["avg_response_time"], 1))
    assert {name.lower(): list(pair) for name, pair in figures.items()} == measured
