"""Out-of-distribution scenarios: cluster mixes, workflow shapes and arrival patterns that training's generator
(``heterogeneous`` and generators.SHAPES at loads 0.5-0.9) never makes, each deterministic per seed.

The families are parameterised functions, so training can later draw other seeds or parameters from them;
``SCENARIOS`` fixes one combination per name, each changing one thing from the training distribution
(16 heterogeneous nodes, the five agentic shapes, Poisson arrivals at load 0.7) unless its point is a mix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np

from .cluster import CLASS_MIX, PROFILES, ClusterSpec, NodeProfile, NodeSpec, heterogeneous
from .generators import SHAPES, _llm, _step, generate_workload
from .primitives import PrimitiveKind
from .workflow import Primitive, Workflow

ClusterFamily = Callable[[int, int], ClusterSpec]  # (nodes, seed) -> cluster

GPU_CLASSES: tuple[str, ...] = tuple(c for c, p in PROFILES.items() if p.gpus > 0)
CPU_CLASSES: tuple[str, ...] = tuple(c for c, p in PROFILES.items() if p.gpus == 0)

# -- cluster-mix families -------------------------------------------------------------------------------------


def mix_counts(n: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Nodes per class for n nodes in the given shares, by largest remainder (``class_counts`` does this for
    the generator's fixed mix only)."""
    if n < 1:
        raise ValueError("a cluster needs at least one node")
    unknown = set(shares) - set(PROFILES)
    if unknown:
        raise ValueError(f"unknown node classes {sorted(unknown)}; known: {', '.join(PROFILES)}")
    total = sum(shares.values())
    exact = {c: n * shares.get(c, 0.0) / total for c in PROFILES}
    counts = {c: int(v) for c, v in exact.items()}
    order = sorted(PROFILES, key=lambda c: (-(exact[c] - counts[c]), list(PROFILES).index(c)))
    for c in order[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def with_a_gpu(counts: dict[str, int], shares: Mapping[str, float]) -> dict[str, int]:
    """``counts`` with one node of the largest class moved to the GPU class of largest share if there is no GPU
    node: LLM calls, which every agentic shape has, run only on GPU nodes."""
    if not any(counts[c] for c in GPU_CLASSES):
        counts[max(counts, key=counts.__getitem__)] -= 1
        counts[max(GPU_CLASSES, key=lambda c: shares.get(c, 0.0))] += 1
    return counts


def cluster_from_counts(
    counts: Mapping[str, int],
    rng: np.random.Generator,
    profiles: Mapping[str, NodeProfile] = PROFILES,
    speed_jitter: float = 0.05,
) -> ClusterSpec:
    """Nodes named, labelled and jittered as ``heterogeneous`` makes them, from any per-class counts."""
    nodes: list[NodeSpec] = []
    for node_class, count in counts.items():
        for _ in range(count):
            factor = float(np.clip(rng.normal(1.0, speed_jitter), 0.8, 1.2))
            nodes.append(NodeSpec.from_profile(f"{node_class}-{len(nodes):03d}", profiles[node_class], factor))
    return ClusterSpec(nodes=nodes)


def all_gpu(n: int, seed: int, large_share: float = 1 / 3) -> ClusterSpec:
    """Only GPU nodes: CPU-only steps compete with LLM calls for the GPU machines."""
    counts = mix_counts(n, {"gpu-large": large_share, "gpu-small": 1.0 - large_share})
    return cluster_from_counts(counts, np.random.default_rng(seed))


def cpu_heavy(n: int, seed: int, gpu_nodes: int = 1, gpu_class: str = "gpu-large") -> ClusterSpec:
    """``gpu_nodes`` GPU nodes, the rest CPU classes in the generator's proportions among themselves."""
    if not 1 <= gpu_nodes < n:
        raise ValueError(f"gpu_nodes must be in [1, {n - 1}] for {n} nodes, got {gpu_nodes}")
    if gpu_class not in GPU_CLASSES:
        raise ValueError(f"gpu_class must be one of {', '.join(GPU_CLASSES)}, got {gpu_class!r}")
    counts = mix_counts(n - gpu_nodes, {c: CLASS_MIX[c] for c in CPU_CLASSES})
    counts[gpu_class] = gpu_nodes
    return cluster_from_counts(counts, np.random.default_rng(seed))


def skewed(n: int, seed: int, dominant: str = "cpu-small", share: float = 0.8) -> ClusterSpec:
    """``share`` of the nodes in one class, the rest in the generator's proportions among the other classes."""
    if dominant not in PROFILES:
        raise ValueError(f"unknown node class {dominant!r}; known: {', '.join(PROFILES)}")
    others = 1.0 - CLASS_MIX[dominant]
    shares = {c: share if c == dominant else (1.0 - share) * CLASS_MIX[c] / others for c in PROFILES}
    return cluster_from_counts(with_a_gpu(mix_counts(n, shares), shares), np.random.default_rng(seed))


def random_mix(n: int, seed: int, concentration: float = 0.5) -> ClusterSpec:
    """Class shares drawn from a Dirichlet(concentration) per seed: small concentrations give lopsided mixes."""
    rng = np.random.default_rng(seed)
    shares = dict(zip(PROFILES, rng.dirichlet([concentration] * len(PROFILES)).tolist(), strict=True))
    return cluster_from_counts(with_a_gpu(mix_counts(n, shares), shares), rng)


def scaled_profile(profile: NodeProfile, work_factor: float, token_factor: float) -> NodeProfile:
    """The class with its per-kind speeds times ``work_factor`` and its token rates times ``token_factor``.

    The class name stays, so labels and the node-class feature still say which hardware it is (as a newer or
    older generation of the same class would)."""
    return profile.model_copy(
        update={
            "speed": {kind: speed * work_factor for kind, speed in profile.speed.items()},
            "prefill_tokens_per_second": profile.prefill_tokens_per_second * token_factor,
            "decode_tokens_per_second": profile.decode_tokens_per_second * token_factor,
        }
    )


def off_profile(
    n: int, seed: int, slow: tuple[float, float] = (0.3, 0.6), fast: tuple[float, float] = (1.6, 3.0)
) -> ClusterSpec:
    """The generator's mix, but each class's speeds and, separately, token rates scaled by a factor drawn
    log-uniformly from the slow or the fast band. Even with the 0.8-1.2 jitter on top, no node's speeds lie
    within the jitter ``heterogeneous`` applies to a profile, and the classes' relative speeds change too."""
    rng = np.random.default_rng(seed)

    def factor() -> float:
        low, high = slow if rng.random() < 0.5 else fast
        return float(np.exp(rng.uniform(math.log(low), math.log(high))))

    profiles = {c: scaled_profile(p, work_factor=factor(), token_factor=factor()) for c, p in PROFILES.items()}
    return cluster_from_counts(mix_counts(n, CLASS_MIX), rng, profiles)


# -- workflow-shape families ----------------------------------------------------------------------------------
# Non-LLM steps and LLM calls come from generators.py's _step and _llm, so work, token counts, requests and
# output sizes per kind are those of the five agentic shapes, and durations come from the same node model.


_AGENT_KINDS = (PrimitiveKind.LLM_GENERATE, PrimitiveKind.TOOL_CALL, PrimitiveKind.CODE_EXEC, PrimitiveKind.RETRIEVE)


def _agent_step(rng: np.random.Generator, name: str, weights: tuple[float, ...], depends_on: list[str]) -> Primitive:
    """A step of a kind drawn with ``weights`` over _AGENT_KINDS."""
    kind = _AGENT_KINDS[int(rng.choice(len(_AGENT_KINDS), p=weights))]
    return _llm(rng, name, depends_on) if kind is PrimitiveKind.LLM_GENERATE else _step(kind, rng, name, depends_on)


def long_chain(rng: np.random.Generator, name: str, length: int | None = None) -> Workflow:
    """A strictly sequential agent of 10-24 steps: no parallelism to exploit, only placement and transfers."""
    length = length or int(rng.integers(10, 25))
    steps = [
        _agent_step(rng, f"step-{i}", (0.4, 0.3, 0.15, 0.15), [f"step-{i - 1}"] if i else []) for i in range(length)
    ]
    return Workflow(name, steps, shape="long-chain")


def wide_tool_fanout(rng: np.random.Generator, name: str, width: int | None = None) -> Workflow:
    """One plan fanning out to 16-48 parallel tool calls, joined by one LLM call (plan-execute is 2-5 wide)."""
    width = width or int(rng.integers(16, 49))
    steps = [_llm(rng, "plan")]
    steps += [_step(PrimitiveKind.TOOL_CALL, rng, f"tool-{i}", ["plan"]) for i in range(width)]
    steps.append(_llm(rng, "join", [f"tool-{i}" for i in range(width)]))
    return Workflow(name, steps, shape="wide-tool-fanout")


def lattice(rng: np.random.Generator, name: str, rows: int | None = None, columns: int | None = None) -> Workflow:
    """A rows x columns grid, each cell after its upper and left neighbours: parallelism rises then falls
    along the anti-diagonals (a wavefront), unlike any fork-join shape."""
    rows = rows or int(rng.integers(3, 7))
    columns = columns or int(rng.integers(3, 7))
    steps = []
    for r in range(rows):
        for c in range(columns):
            parents = ([f"cell-{r - 1}-{c}"] if r else []) + ([f"cell-{r}-{c - 1}"] if c else [])
            steps.append(_agent_step(rng, f"cell-{r}-{c}", (0.3, 0.4, 0.2, 0.1), parents))
    return Workflow(name, steps, shape="lattice")


# Scientific workflows after the wfcommons / Pegasus recipes (Bharathi et al., "Characterization of scientific
# workflows", WORKS 2008): their stage structure, with task counts and durations cut to an agent's seconds.
# Task types map onto our kinds by role: data staging and lookups -> retrieve, heavy per-item computation ->
# code_exec, light per-item transforms and archiving -> tool_call, feature extraction -> llm_embed, and the
# global fitting / final analysis step -> llm_generate (the step an agent would give to a model).


def montage(rng: np.random.Generator, name: str, images: int | None = None) -> Workflow:
    """Montage: project each image, fit a difference per overlapping pair, one global background model,
    correct each image, then a serial tail (table, co-add, shrink, render)."""
    images = images or int(rng.integers(4, 13))
    columns = math.ceil(math.sqrt(images))
    pairs = [(i, i + 1) for i in range(images - 1) if (i + 1) % columns] + [
        (i, i + columns) for i in range(images - columns)
    ]
    steps = [_step(PrimitiveKind.CODE_EXEC, rng, f"project-{i}", []) for i in range(images)]
    steps += [_step(PrimitiveKind.TOOL_CALL, rng, f"diff-{a}-{b}", [f"project-{a}", f"project-{b}"]) for a, b in pairs]
    steps.append(_step(PrimitiveKind.TOOL_CALL, rng, "concat-fit", [f"diff-{a}-{b}" for a, b in pairs]))
    steps.append(_llm(rng, "background-model", ["concat-fit"]))
    steps += [
        _step(PrimitiveKind.CODE_EXEC, rng, f"background-{i}", ["background-model", f"project-{i}"])
        for i in range(images)
    ]
    steps.append(_step(PrimitiveKind.RETRIEVE, rng, "image-table", [f"background-{i}" for i in range(images)]))
    steps.append(_step(PrimitiveKind.CODE_EXEC, rng, "add", ["image-table"]))
    steps.append(_step(PrimitiveKind.TOOL_CALL, rng, "shrink", ["add"]))
    steps.append(_llm(rng, "render", ["shrink"]))
    return Workflow(name, steps, shape="montage")


def epigenomics(rng: np.random.Generator, name: str, lanes: int | None = None, chunks: int | None = None) -> Workflow:
    """Epigenomics: per lane, split the reads into chunks, run a four-step pipeline per chunk and merge the
    lane; then one global merge, index and pile-up (parallel pipelines between two funnels)."""
    lanes = lanes or int(rng.integers(1, 3))
    chunks = chunks or int(rng.integers(2, 7))
    pipeline = (
        ("filter", PrimitiveKind.TOOL_CALL),
        ("convert", PrimitiveKind.TOOL_CALL),
        ("encode", PrimitiveKind.LLM_EMBED),
        ("map", PrimitiveKind.CODE_EXEC),
    )
    steps = []
    for lane in range(lanes):
        steps.append(_step(PrimitiveKind.RETRIEVE, rng, f"split-{lane}", []))
        for chunk in range(chunks):
            previous = f"split-{lane}"
            for stage, kind in pipeline:
                steps.append(_step(kind, rng, f"{stage}-{lane}-{chunk}", [previous]))
                previous = f"{stage}-{lane}-{chunk}"
        steps.append(_step(PrimitiveKind.CODE_EXEC, rng, f"merge-{lane}", [f"map-{lane}-{c}" for c in range(chunks)]))
    steps.append(_step(PrimitiveKind.CODE_EXEC, rng, "merge", [f"merge-{lane}" for lane in range(lanes)]))
    steps.append(_step(PrimitiveKind.RETRIEVE, rng, "index", ["merge"]))
    steps.append(_llm(rng, "pileup", ["index"]))
    return Workflow(name, steps, shape="epigenomics")


def cybershake(
    rng: np.random.Generator, name: str, tensors: int | None = None, ruptures: int | None = None
) -> Workflow:
    """CyberShake: extract a few strain tensors, synthesise a seismogram per rupture from its tensor and a
    peak value per seismogram, then two wide fan-ins (archive the seismograms, summarise the hazard)."""
    tensors = tensors or int(rng.integers(1, 3))
    ruptures = ruptures or int(rng.integers(3, 11))
    steps = [_step(PrimitiveKind.RETRIEVE, rng, f"extract-{t}", []) for t in range(tensors)]
    synth = [f"synth-{t}-{r}" for t in range(tensors) for r in range(ruptures)]
    steps += [
        _step(PrimitiveKind.CODE_EXEC, rng, f"synth-{t}-{r}", [f"extract-{t}"])
        for t in range(tensors)
        for r in range(ruptures)
    ]
    steps += [_step(PrimitiveKind.TOOL_CALL, rng, f"peak-{s}", [s]) for s in synth]
    steps.append(_step(PrimitiveKind.TOOL_CALL, rng, "zip-seismograms", synth))
    steps.append(_llm(rng, "hazard-summary", [f"peak-{s}" for s in synth]))
    return Workflow(name, steps, shape="cybershake")


def seismology(rng: np.random.Generator, name: str, stations: int | None = None) -> Workflow:
    """Seismology: one deconvolution per station, all independent, then one sift over every result."""
    stations = stations or int(rng.integers(8, 33))
    steps = [_step(PrimitiveKind.CODE_EXEC, rng, f"deconvolve-{s}", []) for s in range(stations)]
    steps.append(_llm(rng, "sift", [f"deconvolve-{s}" for s in range(stations)]))
    return Workflow(name, steps, shape="seismology")


OOD_SHAPES: dict[str, Callable[..., Workflow]] = {
    "long-chain": long_chain,
    "wide-tool-fanout": wide_tool_fanout,
    "lattice": lattice,
    "montage": montage,
    "epigenomics": epigenomics,
    "cybershake": cybershake,
    "seismology": seismology,
}
# Every shape a scenario may name: the generator's five and the ones above.
SHAPE_LIBRARY: dict[str, Callable[..., Workflow]] = {**SHAPES, **OOD_SHAPES}

# -- scenarios ------------------------------------------------------------------------------------------------

SIZES: tuple[str, ...] = ("default", "tiny")
TINY_WORKFLOWS = 4
TINY_MAX_NODES = 16


@dataclass(frozen=True)
class Scenario:
    """A cluster family at a node count plus a workload: shapes, offered load, arrival pattern."""

    name: str
    description: str
    cluster: ClusterFamily
    nodes: int = 16
    workflows: int = 80  # enough that arrivals span several response times at N=16 (not only the warm-up)
    load: float = 0.7
    shapes: tuple[str, ...] = tuple(SHAPES)
    bursty: bool = False
    nodes_are_the_point: bool = False  # keep ``nodes`` at size "tiny" too

    def size(self, size: str | float = "default") -> tuple[int, int]:
        """(nodes, workflows) at ``size``: "default", "tiny" (a few workflows on at most 16 nodes unless the
        node count is the scenario's point), or a positive factor on the default number of workflows."""
        if size == "default":
            return self.nodes, self.workflows
        if size == "tiny":
            return (self.nodes if self.nodes_are_the_point else min(self.nodes, TINY_MAX_NODES)), TINY_WORKFLOWS
        if isinstance(size, int | float) and not isinstance(size, bool) and size > 0:
            return self.nodes, max(1, round(self.workflows * size))
        raise ValueError(f"unknown scenario size {size!r}; choose from {', '.join(SIZES)} or a positive factor")

    def build(self, seed: int, size: str | float = "default") -> tuple[ClusterSpec, list[Workflow]]:
        """The cluster and the workload of this seed; the same seed always gives the same pair."""
        nodes, workflows = self.size(size)
        cluster = self.cluster(nodes, seed)
        return cluster, generate_workload(
            cluster, workflows, self.load, seed, shapes=self.shapes, bursty=self.bursty, library=SHAPE_LIBRARY
        )


_SCIENCE = ("montage", "epigenomics", "cybershake", "seismology")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("all-gpu", "16 GPU nodes only (1/3 gpu-large, 2/3 gpu-small), the five agentic shapes", all_gpu),
        Scenario(
            "cpu-heavy-1gpu",
            "one gpu-large among 15 CPU nodes: every LLM call queues for the same 4 GPUs",
            partial(cpu_heavy, gpu_nodes=1),
        ),
        Scenario("skewed-mix", "80% cpu-small, the rest in the generator's proportions", skewed),
        Scenario(
            "off-profile-speeds",
            "the generator's mix with each class's speeds and token rates x0.3-0.6 or x1.6-3, drawn per seed",
            off_profile,
        ),
        Scenario(
            "tiny-8-nodes",
            "8 nodes in a Dirichlet(0.5) class mix drawn per seed",
            random_mix,
            nodes=8,
            nodes_are_the_point=True,
        ),
        # At the same per-node load 256 nodes take 16x the arrival rate: 40 workflows would all arrive within ~4 s
        # and measure only a cold, empty cluster (least-loaded 34 s there against 16 s in steady state); 480 span
        # ~45 s, a few response times, for ~1.5 s per episode of a learned policy.
        Scenario(
            "large-256-nodes",
            "256 nodes in a Dirichlet(0.5) class mix drawn per seed",
            random_mix,
            nodes=256,
            workflows=480,
            nodes_are_the_point=True,
        ),
        Scenario("long-chains", "strictly sequential agents of 10-24 steps", heterogeneous, shapes=("long-chain",)),
        Scenario(
            "wide-tool-fanout",
            "a plan fanning out to 16-48 parallel tool calls, one join",
            heterogeneous,
            shapes=("wide-tool-fanout",),
        ),
        Scenario("lattice", "3-6 x 3-6 grid DAGs: wavefront parallelism", heterogeneous, shapes=("lattice",)),
        Scenario(
            "montage",
            "Montage-like mosaics: project, pairwise diffs, one global fit, correct, serial tail",
            heterogeneous,
            shapes=("montage",),
        ),
        Scenario(
            "epigenomics",
            "Epigenomics-like: parallel 4-step pipelines between split and merge funnels",
            heterogeneous,
            shapes=("epigenomics",),
        ),
        Scenario(
            "science-mix",
            "Montage, Epigenomics, CyberShake and Seismology shapes mixed",
            heterogeneous,
            shapes=_SCIENCE,
        ),
        Scenario("low-load-0.3", "the five agentic shapes at offered load 0.3", heterogeneous, load=0.3),
        Scenario("high-load-0.95", "the five agentic shapes at offered load 0.95", heterogeneous, load=0.95),
        Scenario(
            "bursty",
            "the five agentic shapes at load 0.7 with bursty (hyper-exponential) arrivals",
            heterogeneous,
            bursty=True,
        ),
    ]
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}") from None


# -- the world: what training draws from ----------------------------------------------------------------------

WORLD_NODES: tuple[int, int] = (8, 128)
WORLD_BURSTY_SHARE = 0.3


def draw_world(
    rng: np.random.Generator, workflows_per_16_nodes: int, load: tuple[float, float]
) -> tuple[ClusterSpec, list[Workflow], float]:
    """One training episode from the world rather than one generator: a node count log-uniform in ``WORLD_NODES``,
    a cluster from one of the families above with its parameters drawn too (class mixes, GPU scarcity, speeds
    and token rates slower and faster than any built-in profile), one to five shapes of the whole library, a load
    drawn from ``load`` and bursty arrivals a ``WORLD_BURSTY_SHARE`` of the time. Workflows scale with the nodes,
    so a large cluster sees a steady state and not only its warm-up. Every seed is drawn from ``rng``: the suite's
    fixed seeds (0, 1, ...) are never chosen on purpose. Returns the cluster, the workload and the load."""
    low, high = WORLD_NODES
    nodes = int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))
    seed = int(rng.integers(2**31))
    families: list[Callable[[], ClusterSpec]] = [
        lambda: heterogeneous(nodes, seed),
        lambda: all_gpu(nodes, seed, large_share=float(rng.uniform(0.1, 0.9))),
        lambda: cpu_heavy(
            nodes, seed, gpu_nodes=int(rng.integers(1, max(2, nodes // 8) + 1)), gpu_class=str(rng.choice(GPU_CLASSES))
        ),
        lambda: skewed(nodes, seed, dominant=str(rng.choice(list(PROFILES))), share=float(rng.uniform(0.5, 0.9))),
        lambda: random_mix(nodes, seed, concentration=float(rng.uniform(0.3, 2.0))),
        lambda: off_profile(nodes, seed),
    ]
    cluster = families[int(rng.integers(len(families)))]()
    shapes = [str(s) for s in rng.choice(list(SHAPE_LIBRARY), size=int(rng.integers(1, 6)), replace=False)]
    offered = float(rng.uniform(*load))
    bursty = bool(rng.random() < WORLD_BURSTY_SHARE)
    workflows = max(workflows_per_16_nodes, round(workflows_per_16_nodes * nodes / 16))
    workload = generate_workload(
        cluster, workflows, offered, int(rng.integers(2**31)), shapes=shapes, bursty=bursty, library=SHAPE_LIBRARY
    )
    return cluster, workload, offered
