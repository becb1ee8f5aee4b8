"""Expert iteration: who drives an episode and who labels it, the trainer's round, and `train --trainer` refusals."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from scale_scheduler.policy.cli import register
from scale_scheduler.policy.config import ExpertIterationConfig, NetworkConfig
from scale_scheduler.policy.episodes import EpisodeSpec, sample_episode
from scale_scheduler.policy.expert_iteration import ExpertIterationTrainer
from scale_scheduler.policy.labels import generate_labels
from scale_scheduler.policy.network import build_network, heft_prior
from scale_scheduler.policy.snapshot import PolicySnapshot
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.schedulers import make_heuristic
from typer.testing import CliRunner


def _episode(seed: int = 4) -> EpisodeSpec:
    return sample_episode(np.random.default_rng(seed), nodes=6, workflows=6, load=0.8)


def _response_time(episode: EpisodeSpec, scheduler_name: str) -> float:
    return simulate(
        episode.cluster, copy.deepcopy(episode.workflows), make_heuristic(scheduler_name), seed=episode.duration_seed
    ).avg_response_time


def test_without_a_student_the_teacher_drives_and_labels() -> None:
    episode = _episode()
    (labels,) = generate_labels([episode], teacher="least-loaded")
    assert labels.response_time == pytest.approx(_response_time(episode, "least-loaded"))
    assert len(labels.action) == len(labels.nodes) > 0


def test_a_student_drives_and_the_teacher_only_labels() -> None:
    """A fresh network is srpt-eft (HEFT's placement, srpt's order): with it driving, the episode is srpt-eft's,
    while the labels are the teacher's (least-loaded's) choices on those states, which differ from HEFT's."""
    episode = _episode()
    torch.manual_seed(0)
    network = NetworkConfig(hidden=32, heads=2)
    student = PolicySnapshot.of(build_network(network), network)
    (labels,) = generate_labels([episode], teacher="least-loaded", student=student)
    assert labels.response_time == pytest.approx(_response_time(episode, "srpt-eft"))
    heft_choices = [
        int(torch.where(torch.from_numpy(m), heft_prior(torch.from_numpy(n), 1.0), -torch.inf).argmax())
        for n, m in zip(labels.nodes, labels.mask, strict=True)
    ]
    assert labels.action != heft_choices


def _tiny_config(**overrides: object) -> ExpertIterationConfig:
    settings: dict[str, object] = {
        "nodes": 6,
        "workflows_per_episode": 6,
        "total_steps": 1,
        "episodes_per_round": 2,
        "eval_episodes": 1,
        "eval_workflows": 6,
        "eval_nodes": (6,),
        "network": NetworkConfig(hidden=32, heads=2),
        **overrides,
    }
    return ExpertIterationConfig.for_algo("scale", **settings)


def test_a_round_labels_fits_validates_and_resumes(tmp_path: Path) -> None:
    trainer = ExpertIterationTrainer(_tiny_config(teacher="least-loaded"), tmp_path)
    final = trainer.train()
    assert trainer.round == 1 and trainer.global_step == final["labels/decisions"] > 0
    assert 0.0 <= final["train/agreement_with_teacher"] <= 1.0
    assert final["eval/teacher_avg_response_time_n6"] > 0 and final["eval/base_avg_response_time_n6"] > 0
    assert (tmp_path / "model.pt").exists() and (tmp_path / "model_best.pt").exists()
    more = ExpertIterationTrainer(
        _tiny_config(teacher="least-loaded", total_steps=final["labels/decisions"] + 1), tmp_path
    )
    assert more.resume() and more.global_step == trainer.global_step and len(more.labels) == 2
    more.train()
    assert more.round == 2 and len(more.labels) == 4  # the second round's labels join the first's
    other = ExpertIterationTrainer(_tiny_config(teacher="heft"), tmp_path)
    with pytest.raises(ValueError, match="different config"):
        other.resume()


def _train(tmp_path: Path, *options: str) -> tuple[int, str]:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "run"), *options])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--trainer", "expert-iteration", "--teacher", "oracle"], "unknown teacher 'oracle'"),
        (["--policy", "sac", "--trainer", "expert-iteration"], "sac trains with sac"),
        (["--trainer", "expert-iteration", "--clip-coef", "0.1"], "--clip-coef does not apply to expert-iteration"),
        (["--policy", "crossattn", "--trainer", "expert-iteration", "--srr-kl", "0.5"], "trains without SRR"),
        (["--trainer", "expert-iteration", "--epochs", "0"], "Invalid value for --epochs: must be at least 1"),
        (["--load-low", "0.9", "--load-high", "0.5"], "--load-high: must be at least --load-low (0.9), got 0.5"),
        (["--nodes", "0"], "Invalid value for --nodes: must be at least 1, got 0"),
    ],
)
def test_train_refuses_what_it_cannot_do_naming_the_option_and_writing_nothing(
    tmp_path: Path, options: list[str], message: str
) -> None:
    code, output = _train(tmp_path, *options)
    assert code == 2 and message in " ".join(output.replace("│", " ").split()), output
    assert not (tmp_path / "run").exists()


def test_one_round_through_the_cli_beats_where_it_started(tmp_path: Path) -> None:
    """One round of behaviour cloning from the default teacher, through `train`, at a tiny size and one fixed
    seed: the validation response time falls below the untrained network's (srpt-eft: the HEFT prior with a zero
    residual, in srpt's order)."""
    code, output = _train(
        tmp_path,
        "--trainer",
        "expert-iteration",
        "--nodes",
        "6",
        "--workflows",
        "20",
        "--episodes-per-round",
        "4",
        "--steps",
        "1",
        "--eval-episodes",
        "2",
        "--eval-workflows",
        "20",
        "--json",
    )
    assert code == 0, output
    final = json.loads(output.strip().splitlines()[-1])["final"]
    assert final["eval/avg_response_time_n16"] < final["eval/base_avg_response_time_n16"]
