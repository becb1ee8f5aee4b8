"""The SCALE network's contract: any N, permutation equivariance, masking, shapes, and HEFT at initialisation."""

from __future__ import annotations

import copy

import pytest
import torch
from scale_scheduler.policy.learned import LearnedScheduler
from scale_scheduler.policy.network import (
    MASKED_LOGIT,
    NetworkConfig,
    build_network,
    heft_prior,
    masked_distribution_terms,
)
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine, simulate
from scale_scheduler.simulator.features import NODE_FEATURES, PRIMITIVE_FEATURES, Observation
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.schedulers import make_heuristic


def random_batch(batch: int, nodes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    primitive = torch.randn(batch, PRIMITIVE_FEATURES, generator=generator)
    node_features = torch.randn(batch, nodes, NODE_FEATURES, generator=generator)
    mask = torch.rand(batch, nodes, generator=generator) > 0.3
    mask[:, 0] = True  # at least one feasible node per decision, as the engine guarantees
    return primitive, node_features, mask


@pytest.fixture
def scale_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(NetworkConfig(architecture="scale")).eval()


@pytest.mark.parametrize("nodes", [3, 16, 48, 257])
def test_scale_network_accepts_any_cluster_size(scale_network: torch.nn.Module, nodes: int) -> None:
    output = scale_network(*random_batch(4, nodes))
    assert output.logits.shape == (4, nodes)
    assert output.value.shape == (4,)
    assert output.features.shape == (4, NetworkConfig().hidden)
    assert torch.isfinite(output.logits).all() and torch.isfinite(output.value).all()


def test_shuffling_nodes_shuffles_logits_and_keeps_value(scale_network: torch.nn.Module) -> None:
    primitive, nodes, mask = random_batch(3, 20)
    permutation = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    base = scale_network(primitive, nodes, mask)
    shuffled = scale_network(primitive, nodes[:, permutation], mask[:, permutation])
    torch.testing.assert_close(shuffled.logits, base.logits[:, permutation], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(shuffled.value, base.value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shuffled.features, base.features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["scale", "mlp"])
@pytest.mark.parametrize("nodes", [5, 16, 48])
def test_infeasible_nodes_get_zero_probability(architecture: str, nodes: int) -> None:
    torch.manual_seed(0)
    network = build_network(NetworkConfig(architecture=architecture)).eval()
    primitive, node_features, mask = random_batch(6, nodes, seed=nodes)
    output = network(primitive, node_features, mask)
    probabilities = torch.softmax(output.logits, dim=-1)
    assert (probabilities[~mask] == 0).all()
    assert (output.logits[~mask] == MASKED_LOGIT).all()
    assert torch.allclose(probabilities.sum(-1), torch.ones(6))


def test_padding_does_not_change_real_nodes(scale_network: torch.nn.Module) -> None:
    primitive, nodes, mask = random_batch(2, 10)
    padded_nodes = torch.cat([nodes, torch.zeros(2, 6, NODE_FEATURES)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 6, dtype=torch.bool)], dim=1)
    base = scale_network(primitive, nodes, mask)
    padded = scale_network(primitive, padded_nodes, padded_mask)
    torch.testing.assert_close(padded.logits[:, :10], base.logits, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(padded.value, base.value, rtol=1e-5, atol=1e-5)


def test_learned_term_is_clipped_to_c(scale_network: torch.nn.Module) -> None:
    primitive, nodes, mask = random_batch(4, 12)
    logits = scale_network(primitive * 100, nodes * 100, mask).logits
    learned = logits - heft_prior(nodes * 100, NetworkConfig().heft_prior_temperature)
    assert learned[mask].abs().max() <= NetworkConfig().logit_clip + 1e-3
    assert torch.isfinite(logits).all()


def _decisions(nodes: int, seed: int, rule: PlacementRule) -> list[Observation]:
    """Observations HEFT meets on one episode (a mix of idle, busy, warm and cold nodes)."""
    cluster = heterogeneous(nodes, seed=seed)
    engine = Engine(cluster, generate_workload(cluster, 12, 0.8, seed=seed), seed=seed, rule=rule)
    heft, seen = make_heuristic("heft"), []
    while (observation := engine.next_decision()) is not None:
        seen.append(observation)
        engine.apply(heft.choose(observation))
    return seen


@pytest.mark.parametrize("rule", list(PlacementRule))
@pytest.mark.parametrize("architecture", ["scale", "mlp"])
def test_a_fresh_network_places_as_heft(architecture: str, rule: PlacementRule) -> None:
    """The residual head starts at zero: before any training, greedy placement is HEFT's on every state."""
    torch.manual_seed(0)
    network = build_network(NetworkConfig(architecture=architecture)).eval()
    heft = make_heuristic("heft")
    observations = [o for seed in (1, 2) for o in _decisions(12, seed, rule)]
    assert len(observations) > 50
    for observation in observations:
        policy = LearnedScheduler("fresh", network)
        chosen = policy.choose(observation)
        scores = heft.scores(observation)
        # the same node, or one HEFT scores equal up to float32 rounding of the features
        assert scores[chosen] == pytest.approx(scores[heft.choose(observation)], rel=1e-4, abs=1e-4)


def test_a_network_saved_before_the_prior_and_the_order_loads_as_it_was_trained() -> None:
    saved = {k: v for k, v in NetworkConfig().to_dict().items() if k not in ("heft_prior_temperature", "queue_order")}
    assert NetworkConfig.from_dict(saved).heft_prior_temperature == 0.0
    assert NetworkConfig.from_dict(saved).queue_order == "upward-rank"
    assert NetworkConfig.from_dict(NetworkConfig().to_dict()) == NetworkConfig()


def test_mlp_window_ignores_nodes_beyond_its_16_slots() -> None:
    torch.manual_seed(0)
    network = build_network(NetworkConfig(architecture="mlp")).eval()
    primitive, nodes, _ = random_batch(2, 48)
    mask = torch.ones(2, 48, dtype=torch.bool)
    logits = network(primitive, nodes, mask).logits
    assert ((logits > MASKED_LOGIT).sum(-1) == 16).all()


def test_entropy_is_normalised_by_log_feasible_count() -> None:
    for nodes in (4, 48):
        logits = torch.zeros(1, nodes)
        mask = torch.ones(1, nodes, dtype=torch.bool)
        _, entropy = masked_distribution_terms(logits, mask)
        assert entropy.item() == pytest.approx(1.0, abs=1e-5)  # uniform over feasible = 1 at any N
    one_choice = torch.tensor([[True, False, False]])
    _, entropy = masked_distribution_terms(torch.tensor([[0.0, MASKED_LOGIT, MASKED_LOGIT]]), one_choice)
    assert entropy.item() == 0.0


def test_a_fresh_network_schedules_an_episode_exactly_as_srpt_eft() -> None:
    """HEFT's placement (the prior) in srpt-eft's queue order (the default order): srpt-eft, decision for decision."""
    torch.manual_seed(0)
    cluster = heterogeneous(10, seed=5)
    workload = generate_workload(cluster, 15, 0.9, seed=5)
    fresh = LearnedScheduler("fresh", build_network(NetworkConfig()))
    learned = simulate(cluster, copy.deepcopy(workload), fresh, seed=5)
    srpt = simulate(cluster, copy.deepcopy(workload), make_heuristic("srpt-eft"), seed=5)
    assert learned.avg_response_time == srpt.avg_response_time


def test_an_unknown_queue_order_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown queue order 'fifo'; choose from upward-rank, srpt"):
        NetworkConfig(queue_order="fifo")
