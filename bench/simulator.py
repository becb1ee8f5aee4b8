"""Scheduling decisions per second of the engine with least-loaded, at N = 16, 48, 256, 1024.

A benchmark, not a test: ``python bench/simulator.py`` prints a table, ``--json`` one JSON object
``{"decisions_per_second": {"16": ..., ...}}``. Workload generation is outside the timed part;
building the engine (per-primitive estimates, duration draws) is inside it.
"""

from __future__ import annotations

import argparse
import json
import time

from rich.console import Console
from rich.table import Table
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.schedulers import make_heuristic

SIZES = (16, 48, 256, 1024)


def decisions_per_second(nodes: int, workflows: int, seed: int) -> float:
    cluster = heterogeneous(nodes, seed=seed)
    workload = generate_workload(cluster, workflows, load=0.7, seed=seed)
    scheduler = make_heuristic("least-loaded")
    scheduler.reset(seed)
    started = time.perf_counter()  # the engine's per-workflow preparation counts: it is part of each decision's cost
    engine = Engine(cluster, workload, seed, priority=scheduler.priority)
    decisions = 0
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
        decisions += 1
    return decisions / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=400, help="workflows per run (~6 decisions each)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rates = {str(n): decisions_per_second(n, args.workflows, args.seed) for n in SIZES}
    if args.json:
        print(json.dumps({"decisions_per_second": rates}))
        return
    table = Table(title=f"engine + least-loaded, {args.workflows} workflows, load 0.7")
    for column in ("nodes", "decisions/s", "us/decision"):
        table.add_column(column, justify="right")
    for n, rate in rates.items():
        table.add_row(n, f"{rate:,.0f}", f"{1e6 / rate:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
