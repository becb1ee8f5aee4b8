"""Node classes: the profile of each class (hardware and relative speeds) and how a real node's labels name one.

A profile says how fast a class of node runs each primitive kind, relative to the reference node (the
generator's ``gpu-large``, an A100-40GB server: speed 1.0, 6000 prefill and 60 decode tokens per second).
``PROFILES`` are the generator's five synthetic classes; ``HARDWARE_PROFILES`` name current accelerators, with
speeds scaled from public spec sheets (see ``_ACCELERATORS``). ``NodeMapping`` reads a Node's labels into a class:
the project label ``scale.dev/node-class`` wins, then the user's rules, then the built-in ones (NVIDIA GPU feature
discovery's ``nvidia.com/gpu.product``, GKE's accelerator label, well-known ``node.kubernetes.io/instance-type``
values); a node no rule matches gets the documented fallback (``gpu-small`` with GPUs, else ``cpu-small``) and is
reported as unmapped. docs/node-classes.md has the table and the mapping format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .primitives import GIB, KINDS, PrimitiveKind

NODE_CLASS_LABEL = "scale.dev/node-class"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB per GPU
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
FALLBACK_GPU_CLASS = "gpu-small"
FALLBACK_CPU_CLASS = "cpu-small"


class NodeProfile(BaseModel):
    """Hardware and speed of one node class; speeds are relative to a reference node (1.0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_class: str = Field(min_length=1)
    accelerator: str = "none"
    cpu_millicores: int = Field(gt=0)
    memory_bytes: int = Field(gt=0)
    gpus: int = Field(ge=0, default=0)
    speed: dict[PrimitiveKind, float]
    prefill_tokens_per_second: float = Field(ge=0, default=0.0)
    decode_tokens_per_second: float = Field(ge=0, default=0.0)
    bandwidth_gbps: float = Field(gt=0)

    @field_validator("speed")
    @classmethod
    def _every_kind_non_negative(cls, speed: dict[PrimitiveKind, float]) -> dict[PrimitiveKind, float]:
        # A kind left out would silently never run on the class: say 0 to mean that.
        missing = [kind.value for kind in KINDS if kind not in speed]
        if missing:
            raise ValueError(f"speed must give every kind (0 where it does not run); missing {', '.join(missing)}")
        negative = {kind.value: value for kind, value in speed.items() if value < 0}
        if negative:
            raise ValueError(f"speeds must be >= 0, got {negative}")
        return speed


def _profile(
    node_class: str,
    accelerator: str,
    cpu: int,
    gib: int,
    gpus: int,
    prefill: float,
    decode: float,
    gbps: float,
    speeds: tuple[float, ...],
) -> NodeProfile:
    return NodeProfile(
        node_class=node_class,
        accelerator=accelerator,
        cpu_millicores=cpu,
        memory_bytes=gib * GIB,
        gpus=gpus,
        prefill_tokens_per_second=prefill,
        decode_tokens_per_second=decode,
        bandwidth_gbps=gbps,
        speed=dict(zip(KINDS, speeds, strict=True)),
    )


# The node classes of the generator (the training distribution; their numbers stay as they are so that every
# result and checkpoint reproduces): one row per class. Speeds are per kind in KINDS order (llm_generate,
# llm_embed, retrieve, tool_call, code_exec); CPU-only classes decode no tokens.
# fmt: off
_PROFILE_ROWS: list[tuple[str, str, int, int, int, float, float, float, tuple[float, ...]]] = [
    # class          accelerator  cpu (m)  GiB  GPUs  prefill/s  decode/s  Gb/s  speeds
    ("gpu-large",     "a100",      32000,   256, 4,    6000.0,    60.0,     25.0, (1.0, 4.0, 1.2, 1.0, 1.2)),
    ("gpu-small",     "t4",        16000,   64,  2,    1500.0,    25.0,     10.0, (0.4, 2.0, 0.8, 1.0, 0.8)),
    ("cpu-large",     "none",      64000,   128, 0,    0.0,       0.0,      25.0, (0.0, 1.0, 1.0, 1.0, 1.5)),
    ("cpu-small",     "none",      8000,    16,  0,    0.0,       0.0,      5.0,  (0.0, 0.5, 0.6, 1.0, 0.7)),
    ("mem-optimised", "none",      16000,   512, 0,    0.0,       0.0,      25.0, (0.0, 0.8, 2.5, 1.0, 0.9)),
]
# fmt: on
PROFILES: dict[str, NodeProfile] = {row[0]: _profile(*row) for row in _PROFILE_ROWS}
# The policy's node-class feature is a one-hot over these five (trained checkpoints record that layout): any other
# class is shown to it as the nearest of them (``feature_tier``).
TIERS: tuple[str, ...] = tuple(PROFILES)

_REFERENCE = PROFILES["gpu-large"]
# The reference's accelerator on the same sheets: A100 SXM4 40GB, 312 dense BF16 TFLOPS, 1555 GB/s HBM2.
_REFERENCE_TFLOPS, _REFERENCE_MEMORY_GBPS = 312.0, 1555.0

# Approximate figures from the vendors' public spec sheets (SXM parts where there are several): dense BF16/FP16
# tensor TFLOPS (without sparsity) and GPU memory bandwidth in GB/s. Prefill is compute-bound, so a profile's prefill
# rate and embedding speed scale with TFLOPS; decode is memory-bandwidth-bound, so its decode rate (and the nominal
# llm_generate speed) scale with bandwidth. Good to a factor of about 1.5 for a given model and serving engine,
# which is what a prior needs; measured rates belong in a mapping's own profiles. The A10G has no NVIDIA sheet:
# its ~70 TFLOPS is AWS's published figure (the A10 is 125).
# Then the host: GPUs, CPU millicores, memory GiB and network Gb/s of a typical node (a real node's allocatable
# replaces the first three), and "large"/"small" host CPU speeds, taken from the generator's GPU classes.
# fmt: off
_ACCELERATORS: list[tuple[str, float, float, int, int, int, float, str]] = [
    # class      TFLOPS  mem GB/s  GPUs  cpu (m)  GiB   Gb/s   host
    ("b200",      2250.0, 8000.0,   8,    224000,  2048, 100.0, "large"),
    ("h200",      989.0,  4800.0,   8,    192000,  2048, 100.0, "large"),
    ("h100",      989.0,  3350.0,   8,    192000,  2048, 100.0, "large"),
    ("a100-80gb", 312.0,  2039.0,   8,    96000,   1152, 100.0, "large"),
    ("a100-40gb", 312.0,  1555.0,   8,    96000,   1152, 100.0, "large"),
    ("l40s",      362.0,  864.0,    4,    48000,   384,  50.0,  "large"),
    ("v100",      125.0,  900.0,    4,    32000,   244,  10.0,  "small"),
    ("a10g",      70.0,   600.0,    1,    16000,   64,   25.0,  "small"),
    ("l4",        121.0,  300.0,    1,    16000,   64,   25.0,  "small"),
    ("t4",        65.0,   320.0,    1,    16000,   64,   25.0,  "small"),
]
# fmt: on
_HOSTS = {"large": PROFILES["gpu-large"], "small": PROFILES["gpu-small"]}


def _hardware_profile(
    node_class: str, tflops: float, memory_gbps: float, gpus: int, cpu: int, gib: int, gbps: float, host: str
) -> NodeProfile:
    compute, bandwidth = tflops / _REFERENCE_TFLOPS, memory_gbps / _REFERENCE_MEMORY_GBPS
    host_speed = _HOSTS[host].speed
    speeds = (
        round(bandwidth, 3),
        round(_REFERENCE.speed[PrimitiveKind.LLM_EMBED] * compute, 3),
        *(host_speed[kind] for kind in KINDS[2:]),
    )
    prefill = round(_REFERENCE.prefill_tokens_per_second * compute)
    decode = round(_REFERENCE.decode_tokens_per_second * bandwidth, 1)
    return _profile(node_class, node_class, cpu, gib, gpus, prefill, decode, gbps, speeds)


HARDWARE_PROFILES: dict[str, NodeProfile] = {row[0]: _hardware_profile(*row) for row in _ACCELERATORS}
BUILTIN_PROFILES: dict[str, NodeProfile] = {**PROFILES, **HARDWARE_PROFILES}
_TIER_DECODE = _REFERENCE.decode_tokens_per_second
_MEMORY_OPTIMISED_GIB_PER_CORE = 16


def feature_tier(
    node_class: str, gpus: int, decode_tokens_per_second: float, cpu_millicores: float, memory_bytes: float
) -> str:
    """Which of the generator's five classes (``TIERS``) the policy's one-hot feature shows a node as: its own class
    if it is one of them; a GPU node decoding at least as fast as the reference as gpu-large, other GPU nodes as
    gpu-small; a CPU node with 16 GiB or more per core as mem-optimised, one of 32 cores or more as cpu-large,
    others as cpu-small."""
    if node_class in TIERS:
        return node_class
    if gpus > 0:
        return "gpu-large" if decode_tokens_per_second >= _TIER_DECODE else "gpu-small"
    if memory_bytes >= _MEMORY_OPTIMISED_GIB_PER_CORE * GIB * cpu_millicores / 1000:
        return "mem-optimised"
    return "cpu-large" if cpu_millicores >= 32000 else "cpu-small"


class ClassRule(BaseModel):
    """Nodes whose labels all match (each pattern a regular expression the whole value must match, ignoring
    case) are of class ``node_class``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_class: str = Field(min_length=1)
    labels: dict[str, str] = Field(min_length=1)

    @field_validator("labels")
    @classmethod
    def _patterns_compile(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, pattern in labels.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"label {key!r}: {pattern!r} is not a regular expression ({error})") from None
        return labels

    def matches(self, labels: dict[str, str]) -> bool:
        return all(
            key in labels and re.fullmatch(pattern, labels[key], re.IGNORECASE) is not None
            for key, pattern in self.labels.items()
        )


def _rules(label: str, pairs: list[tuple[str, str]]) -> list[ClassRule]:
    return [ClassRule(node_class=node_class, labels={label: pattern}) for node_class, pattern in pairs]


# Tried in order after the user's rules: the GPU product (what the node has) before the instance type (what it
# was ordered as). Instance types are a few well-known GPU and CPU families of AWS, GCP and Azure.
BUILTIN_RULES: list[ClassRule] = [
    # An A100 whose product name leaves out its memory: 80GB parts report about 81920 MiB.
    ClassRule(node_class="a100-80gb", labels={GPU_PRODUCT_LABEL: r"(NVIDIA-)?A100.*", GPU_MEMORY_LABEL: r"[6-9]\d{4}"}),
    *_rules(
        GPU_PRODUCT_LABEL,  # NVIDIA GPU feature discovery / GPU operator, e.g. NVIDIA-H100-80GB-HBM3
        [
            ("b200", r"(NVIDIA-)?B200.*"),
            ("h200", r"(NVIDIA-)?H200.*"),
            ("h100", r"(NVIDIA-)?H100.*"),
            ("a100-80gb", r"(NVIDIA-)?A100.*80GB.*"),
            ("a100-40gb", r"(NVIDIA-)?A100.*"),
            ("l40s", r"(NVIDIA-)?L40S.*"),
            ("l4", r"(NVIDIA-)?L4"),
            ("a10g", r"(NVIDIA-)?A10G"),
            ("t4", r"(Tesla-|NVIDIA-)?T4"),
            ("v100", r"(Tesla-|NVIDIA-)?V100.*"),
        ],
    ),
    *_rules(
        GKE_ACCELERATOR_LABEL,
        [
            ("b200", r"nvidia-b200"),
            ("h200", r"nvidia-h200-.*"),
            ("h100", r"nvidia-h100-.*"),
            ("a100-80gb", r"nvidia-a100-80gb"),
            ("a100-40gb", r"nvidia-tesla-a100"),
            ("l4", r"nvidia-l4"),
            ("t4", r"nvidia-tesla-t4"),
            ("v100", r"nvidia-tesla-v100"),
        ],
    ),
    *_rules(
        INSTANCE_TYPE_LABEL,
        [
            # AWS
            ("b200", r"p6-b200\..*"),
            ("h200", r"p5en?\..*"),
            ("h100", r"p5\..*"),
            ("a100-80gb", r"p4de\..*"),
            ("a100-40gb", r"p4d\..*"),
            ("l40s", r"g6e\..*"),
            ("l4", r"g6\..*"),
            ("a10g", r"g5\..*"),
            ("t4", r"g4dn\..*"),
            ("v100", r"p3(dn)?\..*"),
            ("cpu-large", r"[cm][5-8][a-z]*\.(8|12|16|24|32|48)xlarge|[cm][5-8][a-z]*\.metal.*"),
            ("cpu-small", r"[cm][5-8][a-z]*\..*"),
            ("mem-optimised", r"[rxz][1-8][a-z]*\..*"),
            # GCP
            ("b200", r"a4-highgpu-.*"),
            ("h200", r"a3-ultragpu-.*"),
            ("h100", r"a3-(high|mega|edge)gpu-.*"),
            ("a100-80gb", r"a2-ultragpu-.*"),
            ("a100-40gb", r"a2-(high|mega)gpu-.*"),
            ("l4", r"g2-standard-.*"),
            ("mem-optimised", r"(n[124]d?|c[234]d?)-highmem-.*|m[1-4]-.*"),
            ("cpu-large", r"(n[124]d?|c[234]d?|e2)-(standard|highcpu)-(32|48|64|80|96|128|176|192|224|360)"),
            ("cpu-small", r"(n[124]d?|c[234]d?|e2)-(standard|highcpu)-\d+"),
            # Azure
            ("h100", r"Standard_N[CD]\d+[a-z]*_H100_v5"),
            ("a100-80gb", r"Standard_ND96amsr_A100_v4|Standard_NC\d+ads_A100_v4"),
            ("a100-40gb", r"Standard_ND96asr_v4"),
            ("t4", r"Standard_NC\d+as_T4_v3"),
            ("v100", r"Standard_NC\d+s_v3"),
        ],
    ),
]


@dataclass(frozen=True)
class Classification:
    """A node's class, its profile, and why: ``source`` names the label or rule that decided, or the fallback."""

    node_class: str
    profile: NodeProfile
    source: str
    mapped: bool  # False: no label or rule named the class, the fallback did


class NodeMapping(BaseModel):
    """The user's additions to the built-in profiles and rules (a ``--node-profiles`` file, the chart's
    ``nodeProfiles`` value): their profiles add classes or replace built-in ones of the same name; their rules
    are tried before the built-in rules, in order."""

    model_config = ConfigDict(extra="forbid")

    profiles: list[NodeProfile] = Field(default_factory=list)
    rules: list[ClassRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> NodeMapping:
        seen: set[str] = set()
        for i, profile in enumerate(self.profiles):
            if profile.node_class in seen:
                raise ValueError(f"profiles[{i}] ({profile.node_class}): a second profile of that name")
            seen.add(profile.node_class)
        known = self.catalog
        for i, rule in enumerate(self.rules):
            if rule.node_class not in known:
                raise ValueError(
                    f"rules[{i}]: node_class {rule.node_class!r} is neither in profiles nor built in "
                    f"({', '.join(BUILTIN_PROFILES)})"
                )
        return self

    @property
    def catalog(self) -> dict[str, NodeProfile]:
        """Every class this mapping knows: the built-in profiles, then the user's (which win)."""
        return {**BUILTIN_PROFILES, **{profile.node_class: profile for profile in self.profiles}}

    def profile(self, node_class: str, where: str) -> NodeProfile:
        """The profile of ``node_class``; ValueError naming ``where`` (the node or entry) and the known classes."""
        catalog = self.catalog
        if node_class not in catalog:
            raise ValueError(f"{where}: unknown node class {node_class!r}; known: {', '.join(catalog)}")
        return catalog[node_class]

    def classify(self, labels: dict[str, str], gpus: int, node: str) -> Classification:
        """The class of a node with these labels and this many GPUs (``node`` names it in errors)."""
        override = labels.get(NODE_CLASS_LABEL)
        if override:
            profile = self.profile(override, f"node {node!r}: label {NODE_CLASS_LABEL}")
            return Classification(override, profile, f"label {NODE_CLASS_LABEL}", mapped=True)
        for rule in (*self.rules, *BUILTIN_RULES):
            if rule.matches(labels):
                matched = ", ".join(f"{key}={labels[key]}" for key in rule.labels)
                return Classification(rule.node_class, self.catalog[rule.node_class], matched, mapped=True)
        fallback = FALLBACK_GPU_CLASS if gpus > 0 else FALLBACK_CPU_CLASS
        return Classification(fallback, PROFILES[fallback], "fallback: no label or rule matched", mapped=False)

    @classmethod
    def from_yaml(cls, text: str, source: str = "node profiles") -> NodeMapping:
        """Parse and validate a mapping; ValueError naming ``source`` and each bad entry (as ``rules[2].labels``)."""
        try:
            data: Any = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"{source}: not YAML: {error}") from None
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a mapping with 'profiles' and/or 'rules' expected, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ValueError(f"{source}: {describe_validation_error(error, data, MAPPING_ENTRY_NAMES)}") from None

    @classmethod
    def load(cls, path: str | Path) -> NodeMapping:
        return cls.from_yaml(Path(path).read_text(), source=str(path))


# the lists of a node-profiles mapping, and the field that names an entry of each in an error message
MAPPING_ENTRY_NAMES = {"profiles": "node_class", "rules": "node_class"}


def describe_validation_error(error: ValidationError, data: Any, entry_names: dict[str, str]) -> str:
    """Each problem on one line, as ``profiles[0] (mi300x).speed.llm_generate: message``: an entry of one of the
    lists in ``entry_names`` by index and by the field that names it (the mapping's, a cluster spec's nodes)."""
    problems = []
    for problem in error.errors():
        location = list(problem["loc"])
        where = ""
        if len(location) >= 2 and location[0] in entry_names and isinstance(location[1], int):
            entries = data.get(location[0]) if isinstance(data, dict) else None
            entry = entries[location[1]] if isinstance(entries, list) and location[1] < len(entries) else None
            name = entry.get(entry_names[str(location[0])]) if isinstance(entry, dict) else None
            where = f"{location[0]}[{location[1]}]" + (f" ({name})" if name else "")
            location = location[2:]
        path = ".".join(str(part) for part in location)
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = f"unknown field {location[-1]!r}"
            path = ".".join(str(part) for part in location[:-1])
        problems.append(f"{where}{'.' if where and path else ''}{path}: {message}" if where or path else message)
    return "; ".join(problems)


BUILTIN_MAPPING = NodeMapping()

__all__ = [
    "BUILTIN_MAPPING",
    "BUILTIN_PROFILES",
    "BUILTIN_RULES",
    "Classification",
    "ClassRule",
    "FALLBACK_CPU_CLASS",
    "FALLBACK_GPU_CLASS",
    "GKE_ACCELERATOR_LABEL",
    "GPU_COUNT_LABEL",
    "GPU_MEMORY_LABEL",
    "GPU_PRODUCT_LABEL",
    "HARDWARE_PROFILES",
    "INSTANCE_TYPE_LABEL",
    "NODE_CLASS_LABEL",
    "NodeMapping",
    "NodeProfile",
    "PROFILES",
    "TIERS",
    "describe_validation_error",
    "feature_tier",
]
