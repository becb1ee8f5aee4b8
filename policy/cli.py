"""`scale-sched train | evaluate | diagnose | export-policy`: the policy's commands.

torch, scipy and matplotlib are imported inside the commands so `scale-sched --help` stays fast.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import inspect
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from scale_scheduler.simulator.cli_aliases import old_name, resolve
from scale_scheduler.simulator.cli_options import (
    cluster_option,
    cluster_record,
    guard_option,
    load_cluster,
    node_profiles_option,
    rule_option,
)
from scale_scheduler.simulator.placement import DEFAULT_RULE, RULE_HELP

from .parallel import Workers, WorkersUnavailable, connected  # light: Ray itself is imported only when asked for
from .registry import CLUSTER_METHODS, LEARNED, LEARNED_METHODS, METHODS

console = Console(stderr=True)
# built from the registry (not a second list), an enum so that --help lists the choices
TrainPolicy = StrEnum("TrainPolicy", {name: name for name in LEARNED_METHODS})  # type: ignore[misc]
EXPERT_ITERATION = "expert-iteration"
TrainerName = StrEnum("TrainerName", {name: name for name in ("ppo", "sac", EXPERT_ITERATION)})  # type: ignore[misc]
# every method that also runs on a cluster (the lookahead references are slow and opt-in)
DEFAULT_EVAL_POLICIES = ",".join(CLUSTER_METHODS)
TRAINING_FILES = ("model.pt", "config.json", "metrics.jsonl", "TRAINING.md", "TRAINING.json")
WORKERS_HELP = (
    "run the work on Ray, at most this many units at a time (a local Ray of this many CPUs unless "
    "--ray-address); unset or 1: in this process. Same numbers either way (docs/scale-out.md)"
)
RAY_ADDRESS_HELP = "a running Ray cluster to run on: host:port of `ray start --head`, ray://host:port or auto"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def _connected(workers: Workers) -> Iterator[None]:
    """Ray for --workers/--ray-address (nothing otherwise); entered before anything is written, so that a refusal
    (one line, exit code 2) leaves nothing behind."""
    try:
        with connected(workers):
            yield
    except WorkersUnavailable as error:
        raise typer.BadParameter(str(error), param_hint="--workers/--ray-address") from None


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _write_training_record(out: Path, record: dict[str, Any]) -> None:
    (out / "TRAINING.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "TRAINING.md").write_text(
        f"# How this checkpoint was trained\n\n"
        f"- command: `{record['command']}`\n- seed: {record['seed']}\n"
        f"- decisions trained on: {record['global_step']}\n- wall time: {record['wall_seconds']:.0f} s"
        + (f" on {record['machine']}" if "machine" in record else "")
        + f"\n- git commit: {record['git_commit']}\n"
        + (
            f"- cluster: {record['train_config']['cluster_source']} (the spec is in TRAINING.json)\n"
            if record["train_config"].get("cluster_source")
            else ""
        )
        + f"- best validation avg response time at N={record['train_config']['nodes']}: "
        f"{record['best_validation_avg_response_time']:.3f} s (validation seeds are disjoint from evaluate's)\n"
        + (f"- stopped early {record['stopped_early']}\n" if "stopped_early" in record else "")
        + "\nFull configuration: TRAINING.json (`train_config`).\n"
    )


# Python types of the config fields `train` offers (the dataclasses annotate them as strings)
_FLAG_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
SRR_FIELDS = ("decorrelation_coef", "kl_coef")


def _config_classes() -> dict[str, tuple[str, type]]:
    """Every way to train, by label: each learned method with its own algorithm, and expert iteration;
    label -> (a method it trains, whose SRR flag decides whether the SRR weights apply; the config dataclass)."""
    from .config import ExpertIterationConfig, PPOConfig, SACConfig

    trainers = {"ppo": PPOConfig, "sac": SACConfig}
    own = {name: (name, trainers[method.trainer]) for name, method in LEARNED.items()}
    return {**own, EXPERT_ITERATION: ("scale", ExpertIterationConfig)}


def _applies(field_name: str, policy: str, config_class: type) -> bool:
    """Whether ``policy``'s config takes that setting; the SRR weights only where SRR is in the loss."""
    names = {f.name for f in dataclasses.fields(config_class) if "help" in f.metadata}
    return field_name in names and (field_name not in SRR_FIELDS or LEARNED[policy].srr)


def _setting_options() -> dict[str, tuple[str, inspect.Parameter]]:
    """field name -> (flag, parameter): one option per config setting, its help and default(s) read from the
    dataclasses; None unless given, so each algorithm's own default applies."""
    classes = _config_classes()
    options: dict[str, tuple[str, inspect.Parameter]] = {}
    for config_class in dict.fromkeys(c for _, c in classes.values()):
        for field in dataclasses.fields(config_class):
            if "help" not in field.metadata or field.name in options:
                continue
            flag = field.metadata["flag"] or "--" + field.name.replace("_", "-")
            groups: dict[tuple[str, str], list[str]] = {}  # (help, default) -> the labels with them
            for label, (policy, policy_class) in classes.items():
                if _applies(field.name, policy, policy_class):
                    own = next(f for f in dataclasses.fields(policy_class) if f.name == field.name)
                    groups.setdefault(
                        (
                            own.metadata["help"],
                            f"{own.default:g}" if isinstance(own.default, float) else str(own.default),
                        ),
                        [],
                    ).append(label)
            help_text = _setting_help(groups, len(classes))
            kind = _FLAG_TYPES[str(field.type)]
            names = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
            option = typer.Option(None, *names, help=help_text, show_default=False, rich_help_panel="Training settings")
            options[field.name] = (
                flag,
                inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None),
            )
    return options


def _setting_help(groups: dict[tuple[str, str], list[str]], policies: int) -> str:
    """One help line: the setting's help and default, and which policies take it when not all do."""
    helps = {help_text for help_text, _ in groups}
    if len(groups) == 1 and len(next(iter(groups.values()))) == policies:
        ((help_text, default),) = groups
        return f"{help_text} (default {default})"
    if len(helps) == 1:
        return f"{helps.pop()} (" + "; ".join(f"{', '.join(p)}: {d}" for (_, d), p in groups.items()) + ")"
    return "; ".join(f"{', '.join(p)}: {h} (default {d})" for (h, d), p in groups.items())


def _train(
    policy: TrainPolicy = typer.Option(
        TrainPolicy("scale"),
        help="the learned method to train: PPO (+SRR) for scale, crossattn, ppo-mlp, ppo-mlp-srr; discrete SAC for sac",
    ),
    out: Path = typer.Option(..., help="run directory (checkpoints, TensorBoard, metrics); resumed if it exists"),
    threads: int = typer.Option(1, help="torch CPU threads (1 lets two runs share a 2-core machine)"),
    workers: int | None = typer.Option(None, min=1, help="PPO: " + WORKERS_HELP + "; the gradient step stays here"),
    ray_address: str | None = typer.Option(None, help=RAY_ADDRESS_HELP),
    trainer_name: TrainerName | None = typer.Option(
        None,
        "--trainer",
        help="how to train: the method's own algorithm (ppo, or sac for sac; the default), or expert-iteration: "
        "distil --teacher's choices on the states the policy visits (DAgger; the PPO methods' networks)",
    ),
    cluster_file: Path | None = cluster_option(),
    node_profiles: Path | None = node_profiles_option(),
    as_json: bool = typer.Option(False, "--json", help="print the final metrics as JSON"),
    algo: TrainPolicy | None = old_name("--algo", "--policy"),
    **settings: Any,
) -> None:
    """Train a policy: PPO (+SRR), discrete SAC or expert iteration from a teacher; resumable, TensorBoard scalars.

    Every training setting's default is its algorithm's config (policy/config.py); a setting the chosen
    algorithm does not have is refused."""
    name = resolve(policy, algo, "--policy", "--algo", TrainPolicy("scale")).value
    own = LEARNED[name].trainer
    trainer_kind = trainer_name.value if trainer_name else own
    if trainer_kind != own and not (trainer_kind == EXPERT_ITERATION and own == "ppo"):
        ppo_methods = ", ".join(p for p, method in LEARNED.items() if method.trainer == "ppo")
        raise typer.BadParameter(
            f"{name} trains with {own}; expert-iteration trains {ppo_methods}", param_hint="--trainer"
        )
    label = EXPERT_ITERATION if trainer_kind == EXPERT_ITERATION else name
    config_class = _config_classes()[label][1]
    flags = {field: flag for field, (flag, _) in _setting_options().items()}
    given = {field: value for field, value in settings.items() if value is not None}
    if set(given) & set(SRR_FIELDS) and not LEARNED[name].srr:
        with_srr = " and ".join(p for p, method in LEARNED.items() if method.srr)
        raise typer.BadParameter(
            f"{name!r} trains without SRR; the SRR weights apply to {with_srr}",
            param_hint="/".join(flags[f] for f in SRR_FIELDS),
        )
    for field in given:
        if not _applies(field, name, config_class):
            takers = ", ".join(label for label, (p, c) in _config_classes().items() if _applies(field, p, c))
            raise typer.BadParameter(
                f"{flags[field]} does not apply to {label} ({config_class.__name__} has no such "
                f"setting); it applies to {takers}",
                param_hint=flags[field],
            )
    cluster = load_cluster(cluster_file, node_profiles, "nodes" in given)
    if cluster is not None:  # the config carries the spec: a resumed run and the training record need no file
        given.update(cluster=cluster.model_dump(mode="json"), cluster_source=str(cluster_file))
    if "rule" in given:
        given["rule"] = rule_option(given["rule"]).value
    if "teacher" in given and given["teacher"] not in METHODS:
        raise typer.BadParameter(
            f"unknown teacher {given['teacher']!r}; choose from {', '.join(METHODS)}", param_hint="--teacher"
        )
    if trainer_kind == "sac" and ((workers or 1) > 1 or ray_address):
        raise typer.BadParameter(
            "sac updates after every decision of one engine: no rollouts to fan out "
            "(--workers and --ray-address apply to the PPO algos and expert iteration)",
            param_hint="--workers",
        )
    import torch

    from .config import ExpertIterationConfig, PPOConfig, SACConfig, SettingError
    from .expert_iteration import ExpertIterationTrainer
    from .ppo import Trainer
    from .sac import SACTrainer

    torch.set_num_threads(threads)
    command = "scale-sched " + " ".join(sys.argv[1:])
    commit = _git_commit()  # the code that runs is the code at the start: commits made during a long run are not it
    rollout_workers = Workers(workers, ray_address)
    trainer: Trainer | SACTrainer | ExpertIterationTrainer
    try:
        if trainer_kind == "sac":
            sac_config = SACConfig(**given)
            trainer = SACTrainer(sac_config, out, command)
            steps, nodes = sac_config.total_steps, sac_config.nodes
        elif trainer_kind == EXPERT_ITERATION:
            expert_config = ExpertIterationConfig.for_algo(name, **given)
            trainer = ExpertIterationTrainer(expert_config, out, command, rollout_workers)
            steps, nodes = expert_config.total_steps, expert_config.nodes
        else:
            ppo_config = PPOConfig.for_algo(name, **given)
            trainer = Trainer(ppo_config, out, command, rollout_workers)
            steps, nodes = ppo_config.total_steps, ppo_config.nodes
    except SettingError as error:
        raise typer.BadParameter(str(error), param_hint=flags[error.field]) from None
    if trainer.resume():
        console.print(f"resuming {out} at decision {trainer.global_step}")
    with _connected(rollout_workers), _progress() as progress:
        task = progress.add_task(f"train {name} ({trainer_kind})", total=steps, completed=trainer.global_step)

        def on_progress(step: int, stats: dict[str, float]) -> None:
            shown = stats.get(f"eval/avg_response_time_n{nodes}", stats.get("rollout/avg_response_time", float("nan")))
            progress.update(
                task, completed=step, description=f"train {name} ({trainer_kind}; response time {shown:.2f} s)"
            )

        final = trainer.train(on_progress)
    record = {
        **trainer.training_record(),
        "git_commit": commit,
        "machine": f"CPU, {threads} torch thread(s)",
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_training_record(Path(out), record)
    if as_json:
        print(json.dumps({"out": str(out), "final": final, "training": record}))
    else:
        console.print(f"done: {out} ({record['wall_seconds']:.0f} s, {record['global_step']} decisions)")


def train_command() -> Callable[..., None]:
    """``_train`` with one keyword option per config setting, so typer sees them as ordinary parameters."""
    fixed = [
        p
        for p in inspect.signature(_train, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    generated = [parameter for _, parameter in _setting_options().values()]

    @functools.wraps(_train)
    def train(**options: Any) -> None:
        _train(**options)

    train.__signature__ = inspect.Signature([*fixed, *generated])  # type: ignore[attr-defined]
    train.__annotations__ = {p.name: p.annotation for p in (*fixed, *generated)}
    return train


def export_policy(
    run: Path = typer.Argument(..., help="a training run directory"),
    destination: Path = typer.Argument(..., help="checkpoint directory to write (e.g. policy/checkpoints/scale)"),
    best: bool = typer.Option(True, "--best/--final", help="the best-validation weights, or the last ones"),
) -> None:
    """Copy a run's weights, config and training record into a small self-describing checkpoint directory."""
    source_weights = run / ("model_best.pt" if best else "model.pt")
    if not source_weights.exists():
        raise typer.BadParameter(f"{source_weights} not found: is {run} a finished `scale-sched train` run?")
    if not (run / "TRAINING.json").exists():  # stopped before the end: the record saved with each checkpoint
        config = json.loads((run / "config.json").read_text())
        record = {
            key: config[key]
            for key in (
                "command",
                "seed",
                "train_config",
                "global_step",
                "wall_seconds",
                "best_validation_avg_response_time",
            )
            if key in config
        }
        # the machine is not in a stopped run's config: left out rather than guessed
        record.update(
            git_commit=_git_commit(),
            stopped_early=f"at decision {record.get('global_step')} of "
            f"{record.get('train_config', {}).get('total_steps')}",
        )
        _write_training_record(run, record)
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source_weights, destination / "model.pt")
    for name in TRAINING_FILES[1:]:
        if (run / name).exists():
            shutil.copyfile(run / name, destination / name)
    record_path = destination / "TRAINING.json"
    if record_path.exists():
        record = json.loads(record_path.read_text())
        record["exported_weights"] = "best validation" if best else "final"
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        with (destination / "TRAINING.md").open("a") as handle:
            handle.write(f"\nWeights: the {'best-validation' if best else 'final'} ones of the run.\n")
    console.print(f"exported {source_weights} -> {destination}")


def _parse_checkpoints(values: list[str]) -> dict[str, str]:
    overrides = {}
    for value in values:
        name, separator, path = value.partition("=")
        if not separator or not path:
            raise typer.BadParameter(f"{value!r} is not NAME=PATH", param_hint="--checkpoint")
        overrides[name] = path
    return overrides


def evaluate(
    policies: str = typer.Option(
        DEFAULT_EVAL_POLICIES,
        help=f"comma-separated policies: any of {', '.join(METHODS)}, or a name given a --checkpoint",
    ),
    nodes: str | None = typer.Option(
        None,
        show_default=False,
        help="comma-separated sizes of generated clusters (default 16,32,48); not with --cluster",
    ),
    cluster_file: Path | None = cluster_option(),
    node_profiles: Path | None = node_profiles_option(),
    seeds: int = typer.Option(5, help="seeds per (N, regime); each seed is a cluster + workload + durations"),
    workflows: int = typer.Option(60, help="workflows per evaluation episode (drained to the end)"),
    load: float = typer.Option(0.7, help="offered load fraction of the base (16-node) regime"),
    checkpoint: list[str] = typer.Option([], help="NAME=PATH: another checkpoint for a learned method, or a new name"),
    pair: list[str] = typer.Option(["scale:crossattn"], help="A:B paired comparisons to report (A - B per N)"),
    out: Path | None = typer.Option(None, help="write CSV, markdown tables, JSON and PNG plots here"),
    rule: str = typer.Option(DEFAULT_RULE.value, help=RULE_HELP),
    suite: str | None = typer.Option(
        None,
        help="'ood' for every out-of-distribution scenario, or comma-separated scenario names "
        "(simulator/scenarios.py): each method per scenario with its ratio to that scenario's best heuristic, "
        "instead of the N sweep (--nodes, --workflows, --load and --pair do not apply)",
    ),
    size: str = typer.Option(
        "default", help="--suite only: scenario size, default, tiny or a factor on the number of workflows"
    ),
    optimality: int = typer.Option(
        0,
        min=0,
        help="also run every method on this many small instances "
        "(6 nodes, 6 workflows) beside max(LB1, LB2) and the CP-SAT optimum",
    ),
    cp_sat_work: float = typer.Option(
        20.0,
        min=0.1,
        help="CP-SAT's deterministic work limit per small instance "
        "(roughly seconds on one idle core; the same result on a busy machine)",
    ),
    workers: int | None = typer.Option(
        None, min=1, help=WORKERS_HELP + "; a unit is one (N, regime, seed) cell, or with --suite one (scenario, seed)"
    ),
    ray_address: str | None = typer.Option(None, help=RAY_ADDRESS_HELP),
    guard: float = typer.Option(
        0.0,
        min=0.0,
        help="wrap every policy in the guard: a choice estimated to finish "
        "more than GUARD times later than the best candidate is replaced "
        "(0 = off); results report the share replaced",
    ),
    as_json: bool = typer.Option(False, "--json", help="print {'results': [...]} as JSON on stdout"),
    methods: str | None = old_name("--methods", "--policies"),
) -> None:
    """Run every method on identical workloads per (N, regime, seed) and compare them with 95% CIs; with --suite,
    per out-of-distribution scenario against the best heuristic."""
    import torch
    from scale_scheduler.simulator.schedulers import HEURISTICS

    from .evaluation import (
        EvaluationPlan,
        best_heuristic_comparison,
        markdown_paired,
        markdown_table,
        paired_comparison,
        results_as_dicts,
        run_evaluation,
        summarise,
    )

    methods = resolve(policies, methods, "--policies", "--methods", DEFAULT_EVAL_POLICIES)
    torch.set_num_threads(1)
    overrides = _parse_checkpoints(checkpoint)
    placement_rule = rule_option(rule)
    guard_option(guard)
    make = _method_maker(overrides, guard)
    chosen = Workers(workers, ray_address)
    cluster = load_cluster(cluster_file, node_profiles, nodes is not None)
    if suite is not None:
        if cluster is not None:
            raise typer.BadParameter(
                "each scenario brings its own cluster; give one of them", param_hint="--suite/--cluster"
            )
        _evaluate_suite(suite, _split(methods), seeds, size, placement_rule, make, out, as_json, chosen)
        return
    plan = (
        EvaluationPlan.on_cluster(_split(methods), cluster, seeds, workflows, load, placement_rule)
        if cluster is not None
        else EvaluationPlan(
            _split(methods), [int(n) for n in _split(nodes or "16,32,48")], seeds, workflows, load, rule=placement_rule
        )
    )
    for method in plan.methods:  # an unknown method or checkpoint fails here, not in a worker
        make(method)
    with _connected(chosen), _progress() as progress:
        task = progress.add_task("evaluate", total=plan.episodes())
        results = run_evaluation(plan, make, on_episode=lambda _: progress.advance(task), workers=chosen)
    summary = summarise(results)
    paired = []
    for comparison in pair:
        method, _, reference = comparison.partition(":")
        if {method, reference} <= set(plan.methods):
            paired.extend(paired_comparison(results, method, reference))
    heuristics = [m for m in plan.methods if m in HEURISTICS]
    versus_heuristic = best_heuristic_comparison(results, "scale", heuristics) if "scale" in plan.methods else []
    document = {
        "results": [
            {
                k: row[k]
                for k in (
                    "method",
                    "nodes",
                    "regime",
                    "avg_response_time",
                    "avg_response_time_ci95",
                    "p95_response_time",
                    "completed_primitives",
                    "avg_slowdown",
                    "lower_bound",
                    "ratio_to_lower_bound",
                )
            }
            for row in summary
        ],
        "paired": paired,
        "scale_vs_best_heuristic": versus_heuristic,
        "config": {
            "methods": plan.methods,
            "nodes": plan.nodes,
            "seeds": seeds,
            "workflows": workflows,
            "load": load,
            "rule": placement_rule.value,
            "checkpoints": overrides,
            "cluster": cluster_record(cluster_file, cluster),
        },
    }
    optimality_markdown = ""
    if optimality:
        document["optimality"], optimality_markdown = _optimality(
            plan.methods, make, optimality, cp_sat_work, placement_rule
        )
    if out is not None:
        _write_evaluation(
            out,
            plan,
            results_as_dicts(results),
            summary,
            document,
            markdown_table(summary),
            markdown_paired(paired + versus_heuristic),
            overrides,
        )
        if optimality_markdown:
            (out / "optimality.md").write_text(optimality_markdown + "\n")
    if as_json:
        print(json.dumps(document))
        return
    table = Table(title=f"avg response time (s), mean [95% CI] over {seeds} seeds, {workflows} workflows/episode")
    for column in ("N", "regime", "method", "avg resp [CI]", "p95", "completed", "slowdown"):
        table.add_column(column)
    for row in sorted(summary, key=lambda r: (r["nodes"], r["regime"], r["avg_response_time"])):
        low, high = row["avg_response_time_ci95"]
        table.add_row(
            str(row["nodes"]),
            row["regime"],
            row["method"],
            f"{row['avg_response_time']:.2f} [{low:.2f}, {high:.2f}]",
            f"{row['p95_response_time']:.2f}",
            f"{row['completed_primitives']:.1f}",
            f"{row['avg_slowdown']:.2f}",
        )
    Console().print(table)
    if paired or versus_heuristic:
        Console().print(markdown_paired(paired + versus_heuristic))
    if optimality_markdown:
        Console().print(optimality_markdown)


def _method_maker(overrides: dict[str, str], guard: float = 0.0) -> Any:  # Callable[[str], Scheduler]
    """Schedulers by name, each in the guard when ``guard`` > 0; it pickles (names, absolute checkpoint paths and
    the factor), so Ray workers build their own."""
    from scale_scheduler.simulator.guard import Guarded

    from .registry import make_scheduler

    checkpoints = {name: str(Path(path).resolve()) for name, path in overrides.items()}

    def make(method: str) -> Any:
        try:
            scheduler = make_scheduler(method, checkpoints.get(method))
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--policies") from None
        return Guarded(scheduler, guard) if guard else scheduler

    return make


def _optimality(
    methods: list[str], make: Any, instances: int, cp_sat_work: float, rule: Any
) -> tuple[dict[str, Any], str]:
    """Every method on ``instances`` small instances (seeds 0..K-1) beside max(LB1, LB2) and CP-SAT's optimum."""
    from .optimality import optimality_report, optimality_table, small_instances

    console.print(f"CP-SAT on {instances} small instances (work limit {cp_sat_work:g} each) ...")
    # the wall-clock limit is only a safety net: the work limit makes the result reproducible
    rows = optimality_report(
        methods,
        make,
        small_instances(range(instances)),
        time_limit_s=30 * cp_sat_work,
        work_limit=cp_sat_work,
        simulate_kwargs={"rule": rule},
    )
    document = {
        "instances": [
            {
                "instance": row.instance,
                "lb1": row.lower_bound.critical_path,
                "lb2": row.lower_bound.capacity,
                "cp_sat_objective": row.optimum.objective,
                "cp_sat_bound": row.optimum.best_bound,
                "cp_sat_status": row.optimum.status,
                "cp_sat_proven_gap": row.optimum.proven_gap,
                "response_times": row.response_times,
            }
            for row in rows
        ],
        "mean_gap_to_cp_sat": {m: float(sum(row.gap_to_optimum(m) for row in rows) / len(rows)) for m in methods},
        "mean_ratio_to_lower_bound": {
            m: float(sum(row.ratio_to_bound(m) for row in rows) / len(rows)) for m in methods
        },
    }
    return document, optimality_table(rows)


def _scenario_size(text: str) -> str | float:
    """ "default", "tiny", or a factor on the number of workflows (the scenario checks it is positive)."""
    try:
        return float(text)
    except ValueError:
        return text


def _evaluate_suite(
    suite: str,
    methods: list[str],
    seeds: int,
    size: str,
    rule: Any,
    make: Any,
    out: Path | None,
    as_json: bool,
    workers: Workers,
) -> None:
    from scale_scheduler.simulator.scenarios import SCENARIOS, get_scenario

    from .suite import markdown_suite_table, plot_suite_ratios, run_suite, summarise_suite

    names = list(SCENARIOS) if suite == "ood" else _split(suite)
    try:
        scenarios = [get_scenario(name) for name in names]
    except ValueError as error:
        raise typer.BadParameter(f"{error} (or 'ood' for all of them)", param_hint="--suite") from None
    scale = _scenario_size(size)
    try:
        for scenario in scenarios:
            scenario.size(scale)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--size") from None
    for method in methods:  # an unknown method fails before any simulation
        make(method)
    total = len(names) * seeds * len(methods)
    with _connected(workers), _progress() as progress:
        task = progress.add_task("suite", total=total)
        episodes = run_suite(
            names,
            methods,
            range(seeds),
            make,
            size=scale,
            simulate_kwargs={"rule": rule},
            on_episode=lambda e: progress.update(task, advance=1, description=f"{e.scenario} {e.method}"),
            workers=workers,
        )
    summary = summarise_suite(episodes)
    table = markdown_suite_table(summary)
    document = {
        "suite": summary,
        "config": {"scenarios": names, "methods": methods, "seeds": seeds, "size": size, "rule": rule.value},
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "suite.json").write_text(json.dumps(document, indent=2) + "\n")
        (out / "suite.md").write_text(table)
        plot_suite_ratios(summary, out / "suite_ratios.png")
        console.print(f"wrote {out}/: suite.json suite.md suite_ratios.png")
    if as_json:
        print(json.dumps(document))
    else:
        Console().print(table)


def _write_evaluation(
    out: Path,
    plan: Any,
    raw: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    document: dict[str, Any],
    table: str,
    paired: str,
    overrides: dict[str, str],
) -> None:
    from . import plots
    from .checkpoint import shipped_checkpoint
    from .registry import LEARNED_METHODS
    from .run import METRICS_FILE

    out.mkdir(parents=True, exist_ok=True)
    with (out / "episodes.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(raw[0]))
        writer.writeheader()
        writer.writerows(raw)
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*summary[0].keys(), "ci95_low", "ci95_high"])
        writer.writeheader()
        for row in summary:
            writer.writerow(
                {
                    **row,
                    "ci95_low": row["avg_response_time_ci95"][0],
                    "ci95_high": row["avg_response_time_ci95"][1],
                    "avg_response_time_ci95": "",
                }
            )
    (out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "table.md").write_text(table + "\n" + paired)
    if plan.cluster is not None:  # the spec itself beside the results: they can be repeated without the file
        (out / "cluster.yaml").write_text(plan.cluster.to_yaml())
    else:  # one given cluster is one size: nothing to plot against N
        plots.metric_vs_nodes(
            summary, "avg_response_time", "average response time (s)", out / "response_time_vs_nodes.png"
        )
        plots.metric_vs_nodes(summary, "completed_primitives", "completed primitives", out / "completed_vs_nodes.png")
    runs = {}
    for method in plan.methods:
        if method in LEARNED_METHODS or method in overrides:
            directory = Path(overrides[method]) if method in overrides else shipped_checkpoint(method)
            if (directory / METRICS_FILE).exists():
                runs[method] = directory / METRICS_FILE
    plots.training_curves(runs, out / "training_curves.png")
    plots.training_curves(runs, out / "training_curves_n48.png", key="eval/normalised_vs_heft_n48")
    written = "episodes.csv summary.csv results.json table.md" + (" cluster.yaml" if plan.cluster is not None else "")
    console.print(f"wrote {out}/: {written} *.png")


def diagnose(
    policies: str = typer.Option(
        "scale,crossattn",
        help=f"learned policies to inspect: any of {', '.join(LEARNED_METHODS)}, or a name given a --checkpoint",
    ),
    nodes: str = typer.Option("16,32,48,96", help="cluster sizes"),
    seeds: int = typer.Option(3),
    workflows: int = typer.Option(40),
    checkpoint: list[str] = typer.Option([], help="NAME=PATH to use another checkpoint"),
    out: Path | None = typer.Option(None, help="write drift.md, drift.json and feature_drift.png here"),
    as_json: bool = typer.Option(False, "--json"),
    models: str | None = old_name("--models", "--policies"),
) -> None:
    """Attention-feature statistics (mean, variance, |off-diagonal correlation|) per N, with and without SRR."""
    import torch

    from . import plots
    from .checkpoint import load_model, shipped_checkpoint
    from .diagnostics import feature_drift, markdown_drift

    models = resolve(policies, models, "--policies", "--models", "scale,crossattn")
    torch.set_num_threads(1)
    overrides = _parse_checkpoints(checkpoint)
    loaded = {name: load_model(overrides.get(name) or shipped_checkpoint(name))[0] for name in _split(models)}
    rows = feature_drift(loaded, [int(n) for n in _split(nodes)], seeds, workflows)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "drift.md").write_text(markdown_drift(rows))
        (out / "drift.json").write_text(json.dumps(rows, indent=2) + "\n")
        plots.feature_drift(rows, out / "feature_drift.png")
    if as_json:
        print(json.dumps({"features": rows}))
    else:
        Console().print(markdown_drift(rows))


def register(app: typer.Typer, panel: str | None = None) -> None:
    app.command("train", rich_help_panel=panel)(train_command())
    app.command(rich_help_panel=panel)(evaluate)
    app.command(rich_help_panel=panel)(diagnose)
    app.command("export-policy", rich_help_panel=panel)(export_policy)


if __name__ == "__main__":
    # `python -m scale_scheduler.policy.cli ...`: the policy commands alone, without the other areas' imports
    standalone = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(standalone)
    standalone()
