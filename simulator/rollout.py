"""rollout-heft: HEFT improved by one step of lookahead in the simulator (a rollout algorithm).

At each decision the top-k candidate nodes by HEFT's estimated finish are each tried in a fork of the engine,
which then runs HEFT forward; the node whose future costs least wins. The cost is the one the episode is
judged by, the response time of the workflows in flight: the integral of their number over the rollout, plus
``Engine.estimated_remaining_response`` where it stops early. Forks see only what a scheduler knows
(``Engine.fork(future_seed)``: no arrivals to come, true durations redrawn), and every candidate of a
decision sees the same draws (common random numbers), so their difference is the decision's alone.

HEFT's own choice is always among the candidates and wins ties, so with exact rollouts this is never worse
than HEFT (Bertsekas' cost improvement); with sampled ones only on average. It needs the simulator: on a live
cluster there is nothing to fork.

``rollout-heft-clairvoyant`` rolls out the episode's true future instead (its arrivals and true durations, one
rollout per candidate): no scheduler can know that, so it is a ceiling for lookahead, not a method to deploy.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from .engine import Engine
from .features import Observation
from .schedulers import HeftScheduler, Scheduler, ShortestRemainingScheduler

# Defaults, chosen on seeds 100-103 (40 workflows, load 0.8; neither evaluate's seeds 0-9 nor the tests'), as
# avg response time / HEFT's: 4 samples x 32 decisions 0.974 at N=8 and 0.985 at N=16; 2 samples 1.015 at N=16;
# 8 samples x 16 decisions 1.013; sampled arrivals (4 per rollout) 1.024. The true future reaches 0.885 at N=16,
# and knowing only the true durations (no arrivals) 0.893, while the true arrivals with sampled durations give
# 1.043: what lookahead gains here comes from knowing how long things really take, which no scheduler does.
TOP_K = 4
SAMPLES = 4
HORIZON_DECISIONS = 32


class RolloutHeftScheduler(HeftScheduler):
    name = "rollout-heft"

    def __init__(
        self,
        top_k: int = TOP_K,
        samples: int = SAMPLES,
        horizon: int = HORIZON_DECISIONS,
        arrivals: int = 0,
        clairvoyant: bool = False,
    ) -> None:
        if top_k < 1 or samples < 1 or horizon < 0 or arrivals < 0:
            raise ValueError(
                f"rollout-heft needs top_k >= 1, samples >= 1, horizon >= 0, arrivals >= 0 "
                f"(got {top_k}, {samples}, {horizon}, {arrivals})"
            )
        if clairvoyant and arrivals:
            raise ValueError("a clairvoyant rollout plays the true arrivals; sampled ones do not apply")
        self.top_k, self.horizon, self.arrivals = top_k, horizon, arrivals
        self.clairvoyant = clairvoyant
        self.samples = 1 if clairvoyant else samples  # the true future is one: nothing to average
        if clairvoyant:
            self.name = "rollout-heft-clairvoyant"
        self.base = HeftScheduler()
        self.decisions = 0  # numbers each decision's draws: reproducible per episode
        self.rollouts = 0  # forks run, for cost reports

    def reset(self, seed: int | None = None) -> None:
        self.decisions = 0

    def scores(self, observation: Observation) -> np.ndarray:
        """HEFT's scores, except that the top-k candidates score minus their rollout cost (and above the rest)."""
        if observation.fork is None:
            raise RuntimeError(
                "rollout-heft looks ahead in the simulator and cannot place on a live cluster; "
                "use heft or a learned policy there"
            )
        heft = np.where(observation.candidates, super().scores(observation), -np.inf)
        ranked = np.argsort(-heft, kind="stable")
        top = ranked[: min(self.top_k, int(observation.candidates.sum()))]
        self.decisions += 1
        if len(top) < 2:
            return heft
        costs = np.zeros(len(top))
        for sample in range(self.samples):
            future = None if self.clairvoyant else self.decisions * self.samples + sample
            # the future drawn once per sample; each candidate plays an exact copy of it (the same draws), the
            # last one the drawn engine itself
            drawn = observation.fork(future, self.arrivals)
            for j, node in enumerate(top):
                costs[j] += self._rollout(drawn if j == len(top) - 1 else drawn.fork(), int(node))
        self.rollouts += len(top) * self.samples
        # every other candidate scores below the worst of the top; ties go to HEFT's order
        scores = np.where(observation.candidates, heft - heft[top].min() - costs.max() - 1.0, -np.inf)
        scores[top] = -costs - 1e-9 * np.arange(len(top))
        return scores

    def _rollout(self, engine: Engine, node: int) -> float:
        """Seconds of response time the workflows in flight accrue from now if ``node`` is chosen, then HEFT."""
        engine.reward_since_last()  # start the integral here
        engine.apply(node)
        for _ in range(self.horizon):
            observation = engine.next_decision()
            if observation is None:
                return -engine.reward_since_last()
            engine.apply(self.base.choose(observation))
        return -engine.reward_since_last() + engine.estimated_remaining_response()


class RolloutSrptScheduler(RolloutHeftScheduler):
    """rollout-heft in srpt-eft's queue order: the workflow with the least work not yet started first. Forks keep
    the engine's order, so the rollouts play srpt-eft forward: a one-step improvement of srpt-eft."""

    name = "rollout-srpt-eft"
    priority = ShortestRemainingScheduler.priority


# schedulers that look ahead in the simulator: offered wherever the simulator runs, never on a live cluster
LOOKAHEAD: dict[str, Callable[[], Scheduler]] = {
    "rollout-heft": RolloutHeftScheduler,
    "rollout-srpt-eft": RolloutSrptScheduler,
    "rollout-heft-clairvoyant": partial(RolloutHeftScheduler, clairvoyant=True),
}
