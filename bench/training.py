"""Decisions per second of training's producers of data, in-process and on Ray workers: PPO rollout collection
(the shipped SCALE policy sampling, groups of lock-stepped rollouts) and label generation (rollout-heft's choices
over whole episodes, policy/labels.py).

A benchmark, not a test: ``python bench/training.py`` prints a table, ``--json`` one JSON object with
``rollout_decisions_per_second`` and ``label_decisions_per_second`` per worker count, ``speedup`` (each count
against the first) and ``ray_start_seconds``. 1 worker runs in this process; more start a local Ray of that many
CPUs, whose start-up and first tasks (imports in fresh workers) are outside the timed part: in a long training
run they are paid once.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scale_scheduler.policy.checkpoint import load_model, shipped_checkpoint
from scale_scheduler.policy.episodes import EpisodeSpec, sample_episode
from scale_scheduler.policy.labels import generate_labels
from scale_scheduler.policy.network import NetworkConfig
from scale_scheduler.policy.parallel import Workers, connected
from scale_scheduler.policy.ppo import collect_rollouts
from scale_scheduler.policy.snapshot import PolicySnapshot


def episodes(count: int, nodes: int, workflows: int, seed: int) -> list[EpisodeSpec]:
    rng = np.random.default_rng(seed)
    return [sample_episode(rng, nodes, workflows, load=0.7) for _ in range(count)]


def measure(workers: Workers, policy: PolicySnapshot, args: argparse.Namespace) -> dict[str, float]:
    rollout_episodes = episodes(args.groups, args.nodes, args.workflows, args.seed)
    label_episodes = episodes(args.label_episodes, args.nodes, args.label_workflows, args.seed + 1)
    seeds = list(range(args.groups))
    started = time.perf_counter()
    with connected(workers):
        if workers.distributed:  # every worker imports torch and the simulator once before the clock starts
            warm = episodes(workers.count or 1, 4, 1, args.seed + 2)
            collect_rollouts(policy, warm, list(range(len(warm))), 1, workers=workers)
            generate_labels(warm, workers=workers)
        ray_start = time.perf_counter() - started
        timer = time.perf_counter()
        trajectories, _ = collect_rollouts(policy, rollout_episodes, seeds, args.rollouts, workers=workers)
        rollout_rate = sum(len(t.action) for t in trajectories) / (time.perf_counter() - timer)
        timer = time.perf_counter()
        labels = generate_labels(label_episodes, workers=workers)
        label_rate = sum(len(episode.action) for episode in labels) / (time.perf_counter() - timer)
    return {"rollout": rollout_rate, "label": label_rate, "ray_start": ray_start if workers.distributed else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (1 = in this process)")
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--groups", type=int, default=8, help="rollout groups (episodes), one unit of work each")
    parser.add_argument("--rollouts", type=int, default=4, help="lock-stepped rollouts per group")
    parser.add_argument("--workflows", type=int, default=20, help="workflows per rollout episode")
    parser.add_argument("--label-episodes", type=int, default=8, help="episodes labelled by rollout-heft")
    parser.add_argument("--label-workflows", type=int, default=4, help="workflows per labelled episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    counts = [int(count) for count in args.workers.split(",")]
    torch.set_num_threads(1)  # as training's default and each Ray worker: the comparison is per core
    model, config = load_model(shipped_checkpoint("scale"))
    policy = PolicySnapshot.of(model, NetworkConfig.from_dict(config["network"]))
    figures = {count: measure(Workers(count), policy, args) for count in counts}
    base = figures[counts[0]]
    report: dict[str, Any] = {
        "rollout_decisions_per_second": {str(c): f["rollout"] for c, f in figures.items()},
        "label_decisions_per_second": {str(c): f["label"] for c, f in figures.items()},
        "speedup": {kind: {str(c): f[kind] / base[kind] for c, f in figures.items()} for kind in ("rollout", "label")},
        "ray_start_seconds": {str(c): f["ray_start"] for c, f in figures.items() if c > 1},
        "config": vars(args) | {"workers": counts},
    }
    if args.json:
        print(json.dumps(report))
        return
    table = Table(title=f"training data per second at N={args.nodes} (speed-up against {counts[0]} worker(s))")
    for column in ("workers", "rollout decisions/s", "speed-up", "label decisions/s", "speed-up", "Ray start (s)"):
        table.add_column(column, justify="right")
    for count, figure in figures.items():
        table.add_row(
            str(count),
            f"{figure['rollout']:,.0f}",
            f"x{figure['rollout'] / base['rollout']:.2f}",
            f"{figure['label']:,.1f}",
            f"x{figure['label'] / base['label']:.2f}",
            f"{figure['ray_start']:.1f}" if count > 1 else "-",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
