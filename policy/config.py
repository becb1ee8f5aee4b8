"""Training and network settings, one dataclass per algorithm: the single home of every default.

`scale-sched train` generates its options from the fields that carry help (``setting``), so no number is
written twice; this module imports neither torch nor the trainers, so generating them keeps `--help` fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from scale_scheduler.simulator.cluster import ClusterSpec
from scale_scheduler.simulator.placement import DEFAULT_RULE, RULE_HELP, PlacementRule
from scale_scheduler.simulator.schedulers import queue_order

from .registry import LEARNED

# SRR's default weights: the decorrelation term is a mean over D(D-1) pairs (in [0, 1]) and the KL term a
# mean over D dimensions, so both are O(1) like PPO's losses.
DEFAULT_DECORRELATION_COEF = 0.1
DEFAULT_KL_COEF = 0.1


def setting(default: Any, help: str, flag: str | None = None) -> Any:
    """A config field that `scale-sched train` offers as an option: its default lives here and only here."""
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass
class NetworkConfig:
    """Architecture hyper-parameters; saved as config.json beside every checkpoint."""

    architecture: str = "scale"  # "scale" (cross-attention pointer) or "mlp" (fixed window)
    hidden: int = 64
    heads: int = 4
    layers: int = 2  # cross-attention layers (paper: 2)
    logit_clip: float = 10.0  # C in C·tanh(·)
    window: int = 16  # the MLP's fixed number of node slots
    # τ of the HEFT prior: logit_i = -log(1 + HEFT's estimated finish on node i) / τ + f_θ(i), with f_θ zero at
    # initialisation, so a fresh policy places exactly as HEFT does and training learns the corrections; 0: no prior
    heft_prior_temperature: float = 0.1
    # the order ready primitives wait in while the network places them (simulator QUEUE_ORDERS): part of the
    # policy, so training, evaluation and the operator use the same; srpt-eft's, the best heuristic's
    queue_order: str = "srpt"

    def __post_init__(self) -> None:
        queue_order(self.queue_order)  # an unknown order fails when the config is made, naming the choices

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        # networks saved before the prior and the order existed were trained without a prior, in HEFT's order
        return cls(**{"heft_prior_temperature": 0.0, "queue_order": "upward-rank", **data})


class SettingError(ValueError):
    """A training setting out of its range; ``field`` names it, so `train` can name the option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def at_least(config: object, minimum: float, *fields: str) -> None:
    for name in fields:
        value = getattr(config, name)
        if value < minimum:
            raise SettingError(name, f"must be at least {minimum:g}, got {value:g}")


# algo name -> (architecture, SRR on), for the learned methods PPO trains
PPO_ALGOS: dict[str, tuple[str, bool]] = {
    name: (method.architecture, method.srr) for name, method in LEARNED.items() if method.trainer == "ppo"
}


@dataclass
class TrainingConfig:
    """What every trainer shares: the run's size, its episodes, its rule and its validation."""

    algo: str = ""
    seed: int = setting(0, "seed of the model, the episodes and the sampling")
    nodes: int = setting(16, "size of the generated training clusters; not with --cluster")
    total_steps: int = setting(200_000, "scheduling decisions to train on (all environments together)", "--steps")
    workflows_per_episode: int = setting(20, "workflows per training episode", "--workflows")
    load_low: float = setting(0.5, "lowest offered load (fraction of capacity), drawn uniformly per arrival sequence")
    load_high: float = setting(0.9, "highest offered load, drawn uniformly per arrival sequence")
    world: bool = setting(
        False,
        "draw each episode from the world mix instead of --nodes and the generator: 8-128 nodes, the "
        "out-of-distribution suite's cluster and shape families with parameters and seeds of their own, bursty "
        "arrivals (simulator/scenarios.py draw_world)",
    )
    gamma: float = setting(0.99, "discount per decision")
    # the operator must run the same rule
    rule: str = setting(DEFAULT_RULE.value, RULE_HELP + " Training episodes run under it; the checkpoint records it.")
    eval_episodes: int = setting(2, "validation episodes per size")
    eval_workflows: int = setting(40, "workflows per validation episode")
    eval_load: float = setting(0.7, "offered load of the validation episodes")
    eval_nodes: tuple[int, ...] = (16, 48)  # validation sizes (the first one picks the best model)
    # `train --cluster`: the cluster every training and validation episode runs on instead of the generator's at
    # --nodes (a ClusterSpec as JSON, so that config.json and the training record carry it, and the file it came
    # from); it sets nodes and the one validation size to its own
    cluster: dict[str, Any] | None = None
    cluster_source: str = ""

    def __post_init__(self) -> None:
        """Refuse sizes and loads no run can use, before anything is written."""
        if self.cluster is not None:
            if self.world:
                raise SettingError("world", "the world mix draws its own clusters: give --world or --cluster")
            self.nodes = len(ClusterSpec.model_validate(self.cluster).nodes)
            self.eval_nodes = (self.nodes,)
        at_least(self, 1, "nodes", "total_steps", "workflows_per_episode", "eval_episodes", "eval_workflows")
        at_least(self, 1e-3, "load_low", "eval_load")
        if self.load_high < self.load_low:
            raise SettingError("load_high", f"must be at least --load-low ({self.load_low:g}), got {self.load_high:g}")
        if not 0.0 < self.gamma <= 1.0:
            raise SettingError("gamma", f"must be in (0, 1], got {self.gamma:g}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cluster_spec(self) -> ClusterSpec | None:
        """The ``cluster`` to run on, None for the generator's."""
        return None if self.cluster is None else ClusterSpec.model_validate(self.cluster)


@dataclass
class PPOConfig(TrainingConfig):
    """PPO's settings; each one with help is a `scale-sched train` option (policy/cli.py generates them)."""

    algo: str = "scale"
    groups: int = setting(4, "distinct arrival sequences per rollout")
    # K = groups * rollouts_per_group rollouts per iteration
    rollouts_per_group: int = setting(4, "rollouts replaying each arrival sequence", "--rollouts")
    learning_rate: float = setting(3e-4, "Adam's learning rate")
    anneal_lr: bool = setting(True, "anneal the learning rate linearly to 5 % over the run")
    gae_lambda: float = setting(0.95, "GAE's lambda")
    update_epochs: int = setting(4, "passes over each iteration's decisions")
    minibatch_size: int = setting(256, "decisions per gradient step")
    clip_coef: float = setting(0.2, "PPO's ratio clip")
    value_coef: float = setting(0.5, "weight of the value loss")
    # on entropy / log(#feasible), so it weighs the same at any N
    entropy_coef: float = setting(0.01, "weight of the entropy bonus (normalised by log #feasible nodes)")
    max_grad_norm: float = setting(0.5, "gradient norm clip")
    srr: bool = True
    decorrelation_coef: float = setting(
        DEFAULT_DECORRELATION_COEF, "SRR: weight of the decorrelation loss", "--srr-decorrelation"
    )
    kl_coef: float = setting(DEFAULT_KL_COEF, "SRR: weight of the KL penalty toward N(0, 1)", "--srr-kl")
    eval_interval: int = setting(5, "iterations between validations and checkpoints")
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "groups", "rollouts_per_group", "update_epochs", "eval_interval")
        at_least(self, 2, "minibatch_size")

    @classmethod
    def for_algo(cls, algo: str, **overrides: Any) -> PPOConfig:
        if algo not in PPO_ALGOS:
            raise ValueError(f"unknown PPO algo {algo!r}; choose from {', '.join(PPO_ALGOS)}")
        architecture, srr = PPO_ALGOS[algo]
        network = overrides.pop("network", None) or NetworkConfig(architecture=architecture)
        return cls(algo=algo, srr=srr, network=network, **overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PPOConfig:
        data = dict(data)
        data["network"] = NetworkConfig.from_dict(data["network"])
        data["eval_nodes"] = tuple(data["eval_nodes"])
        # configs written before the rule existed trained on per-node FIFO queues: the node-queues rule
        data.setdefault("rule", PlacementRule.NODE_QUEUES.value)
        return cls(**data)


@dataclass
class SACConfig(TrainingConfig):
    """SAC's settings; each one with help is a `scale-sched train` option (policy/cli.py generates them)."""

    algo: str = "sac"
    envs: int = setting(8, "engines stepped in lock-step")
    buffer_size: int = setting(50_000, "replay buffer capacity (decisions)")
    learning_starts: int = setting(2_000, "decisions collected before the first update")
    batch_size: int = setting(128, "transitions per gradient step")
    updates_per_step: int = setting(1, "gradient steps per lock-step (i.e. per --envs decisions)")
    tau: float = setting(0.005, "Polyak averaging rate of the target critics")
    actor_lr: float = setting(3e-4, "the actor's (and temperature's) learning rate")
    critic_lr: float = setting(3e-4, "the critics' learning rate")
    target_entropy_fraction: float = setting(0.3, "target entropy as a fraction of log(#feasible nodes)")
    eval_interval: int = setting(2_000, "decisions between validations and checkpoints")
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(architecture="mlp"))

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "envs", "buffer_size", "batch_size", "updates_per_step", "eval_interval")


@dataclass
class ExpertIterationConfig(TrainingConfig):
    """Expert iteration's settings (`train --trainer expert-iteration`); the network and SRR are the method's."""

    algo: str = "scale"
    total_steps: int = setting(20_000, "teacher-labelled decisions to collect over all rounds", "--steps")
    teacher: str = setting("rollout-srpt-eft", "the scheduler whose choices the network learns (any simulator method)")
    episodes_per_round: int = setting(
        8, "episodes labelled per round (the first round the teacher drives them, then the network does)"
    )
    epochs: int = setting(4, "passes over every label collected so far after each round")
    learning_rate: float = setting(3e-4, "Adam's learning rate")
    minibatch_size: int = setting(256, "decisions per gradient step")
    max_grad_norm: float = setting(0.5, "gradient norm clip")
    srr: bool = True
    decorrelation_coef: float = setting(
        DEFAULT_DECORRELATION_COEF, "SRR: weight of the decorrelation loss", "--srr-decorrelation"
    )
    kl_coef: float = setting(DEFAULT_KL_COEF, "SRR: weight of the KL penalty toward N(0, 1)", "--srr-kl")
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 1, "episodes_per_round", "epochs")
        at_least(self, 2, "minibatch_size")

    @classmethod
    def for_algo(cls, algo: str, **overrides: Any) -> ExpertIterationConfig:
        if algo not in PPO_ALGOS:
            raise ValueError(
                f"expert iteration trains the softmax policies {', '.join(PPO_ALGOS)}; {algo!r} is not one of them"
            )
        architecture, srr = PPO_ALGOS[algo]
        network = overrides.pop("network", None) or NetworkConfig(architecture=architecture)
        return cls(algo=algo, srr=srr, network=network, **overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExpertIterationConfig:
        data = dict(data)
        data["network"] = NetworkConfig.from_dict(data["network"])
        data["eval_nodes"] = tuple(data["eval_nodes"])
        return cls(**data)
