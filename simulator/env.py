"""Gymnasium environment over the engine: one step = one placement decision, for any node count.

Observation: ``{"primitive": float32[PRIMITIVE_FEATURES], "nodes": float32[N, NODE_FEATURES],
"mask": bool[N]}``; ``info["observation"]`` carries the full :class:`Observation` (estimates only).
Action: a node index; ``mask`` holds the nodes that may be picked now under the placement ``rule``
(``Observation.candidates``), any other raises ``ValueError``.

Reward: minus the integral over simulated time, since the previous decision, of the number of
arrived and unfinished workflows. Summed over an episode this is exactly minus the total workflow
response time, so maximising the return minimises the mean response time; the per-step signal
arrives as soon as a delay happens instead of only when a workflow completes.

N varies between episodes (``reset(options={"nodes": 48})``), so the observation space's node
dimension is declared for the current episode; a pointer-style policy handles any N.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .cluster import ClusterSpec, heterogeneous
from .engine import Engine
from .extras import require
from .features import NODE_FEATURES, PRIMITIVE_FEATURES, Observation
from .generators import generate_workload
from .placement import DEFAULT_RULE, PlacementRule, parse_rule
from .workflow import Workflow

if TYPE_CHECKING:
    import gymnasium
    from gymnasium import spaces
else:  # the env is for users' own agents (our trainers drive Engine directly): Gymnasium is in the train extra
    gymnasium = require("gymnasium", "train")
    spaces = require("gymnasium.spaces", "train")


class SchedulingEnv(gymnasium.Env):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        nodes: int = 16,
        workflows: int = 50,
        load: float = 0.7,
        seed: int | None = None,
        shapes: list[str] | None = None,
        rule: PlacementRule | str = DEFAULT_RULE,
    ):
        self.nodes, self.workflows, self.load, self.shapes = nodes, workflows, load, shapes
        self.rule = parse_rule(rule)
        self._seed = seed
        self._episode_rng = np.random.default_rng(seed)
        self.engine: Engine | None = None
        self.cluster: ClusterSpec | None = None
        self._set_spaces(nodes)

    def _set_spaces(self, n: int) -> None:
        self.observation_space = spaces.Dict(
            {
                "primitive": spaces.Box(-np.inf, np.inf, (PRIMITIVE_FEATURES,), np.float32),
                "nodes": spaces.Box(-np.inf, np.inf, (n, NODE_FEATURES), np.float32),
                "mask": spaces.MultiBinary(n),
            }
        )
        self.action_space = spaces.Discrete(n)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._episode_rng = np.random.default_rng(seed)
        options = options or {}
        episode_seed = int(self._episode_rng.integers(2**31))
        self.nodes = int(options.get("nodes", self.nodes))
        self.workflows = int(options.get("workflows", self.workflows))
        self.load = float(options.get("load", self.load))
        cluster: ClusterSpec = options.get("cluster") or heterogeneous(self.nodes, seed=episode_seed)
        self.nodes = len(cluster.nodes)
        workload: list[Workflow] = options.get("workload") or generate_workload(
            cluster, self.workflows, self.load, seed=episode_seed, shapes=self.shapes
        )
        duration_seed = int(options.get("duration_seed", episode_seed))
        self.cluster = cluster
        self.engine = Engine(cluster, workload, seed=duration_seed, rule=self.rule)
        self._set_spaces(self.nodes)
        observation = self.engine.next_decision()
        if observation is None:
            raise ValueError("the workload has no primitive to schedule; give at least one workflow")
        return self._encode(observation), {"observation": observation}

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.engine is None:
            raise RuntimeError("call reset() before step()")
        self.engine.apply(int(action))
        observation = self.engine.next_decision()
        reward = self.engine.reward_since_last()
        if observation is None:
            result = self.engine.result()
            empty = {
                "primitive": np.zeros(PRIMITIVE_FEATURES, np.float32),
                "nodes": np.zeros((self.nodes, NODE_FEATURES), np.float32),
                "mask": np.zeros(self.nodes, bool),
            }
            return empty, reward, True, False, {"observation": None, "result": result}
        return self._encode(observation), reward, False, False, {"observation": observation}

    @staticmethod
    def _encode(observation: Observation) -> dict[str, np.ndarray]:
        return {
            "primitive": observation.primitive_features.astype(np.float32, copy=False),
            "nodes": observation.node_features.astype(np.float32, copy=False),
            "mask": observation.candidates.copy(),
        }
