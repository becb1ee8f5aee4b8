"""The cluster as Kubernetes sees it, plus the performance profile the simulator needs.

``ClusterSpec`` is the single source of truth for nodes: the simulator runs on it, the local
control plane creates its Node objects from it, and the operator rebuilds it from live Node
objects (``from_kubectl_json``), whose labels name each node's class through a ``NodeMapping``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from .node_classes import (
    BUILTIN_MAPPING,
    GPU_COUNT_LABEL,
    NODE_CLASS_LABEL,
    PROFILES,
    Classification,
    NodeMapping,
    NodeProfile,
    describe_validation_error,
)
from .primitives import KINDS, PrimitiveKind

log = logging.getLogger(__name__)

ACCELERATOR_LABEL = "scale.dev/accelerator"
GPU_RESOURCE = "nvidia.com/gpu"

# Fixed mix of the generator: per 8 nodes, 1 large GPU, 2 small GPU, 2 CPU-large, 2 CPU-small, 1 memory.
CLASS_MIX: dict[str, float] = {
    "gpu-large": 1 / 8,
    "gpu-small": 2 / 8,
    "cpu-large": 2 / 8,
    "cpu-small": 2 / 8,
    "mem-optimised": 1 / 8,
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")


class NodeSpec(BaseModel):
    """One node: what Kubernetes allocates plus how fast it runs each primitive kind."""

    name: str
    node_class: str
    labels: dict[str, str] = Field(default_factory=dict)
    cpu_millicores: int = Field(gt=0)
    memory_bytes: int = Field(gt=0)
    gpus: int = Field(ge=0, default=0)
    pods: int = Field(gt=0, default=110)
    accelerator: str = "none"
    speed: dict[PrimitiveKind, float]
    prefill_tokens_per_second: float = Field(ge=0, default=0.0)
    decode_tokens_per_second: float = Field(ge=0, default=0.0)
    bandwidth_gbps: float = Field(gt=0)

    @field_validator("name")
    @classmethod
    def _dns_name(cls, name: str) -> str:
        if not _DNS_LABEL.match(name):
            raise ValueError(f"node name {name!r} is not a valid DNS subdomain")
        return name

    @classmethod
    def from_profile(
        cls, name: str, profile: NodeProfile, speed_factor: float = 1.0, labels: dict[str, str] | None = None
    ) -> NodeSpec:
        return cls(
            name=name,
            node_class=profile.node_class,
            labels={
                "kubernetes.io/hostname": name,
                NODE_CLASS_LABEL: profile.node_class,
                ACCELERATOR_LABEL: profile.accelerator,
                **(labels or {}),
            },
            cpu_millicores=profile.cpu_millicores,
            memory_bytes=profile.memory_bytes,
            gpus=profile.gpus,
            accelerator=profile.accelerator,
            speed={k: v * speed_factor for k, v in profile.speed.items()},
            prefill_tokens_per_second=profile.prefill_tokens_per_second * speed_factor,
            decode_tokens_per_second=profile.decode_tokens_per_second * speed_factor,
            bandwidth_gbps=profile.bandwidth_gbps,
        )

    def allocatable(self) -> dict[str, str]:
        """Allocatable resources as Kubernetes quantities (what a Node object's status carries)."""
        resources = {"cpu": f"{self.cpu_millicores}m", "memory": str(self.memory_bytes), "pods": str(self.pods)}
        if self.gpus:
            resources[GPU_RESOURCE] = str(self.gpus)
        return resources


class ClusterSpec(BaseModel):
    nodes: list[NodeSpec] = Field(min_length=1)

    @field_validator("nodes")
    @classmethod
    def _unique_names(cls, nodes: list[NodeSpec]) -> list[NodeSpec]:
        seen: set[str] = set()
        for node in nodes:
            if node.name in seen:
                raise ValueError(f"duplicate node name {node.name!r}")
            seen.add(node.name)
        return nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, mapping: NodeMapping = BUILTIN_MAPPING) -> ClusterSpec:
        """A node may be given in full, or by ``node_class`` (its profile fills the rest), or by labels alone
        (the mapping names its class from them, as it does for a live Node)."""
        data = yaml.safe_load(text)
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise ValueError("cluster spec YAML must be a mapping with a 'nodes' list")
        nodes = []
        for i, raw in enumerate(data["nodes"]):
            if isinstance(raw, dict) and "speed" not in raw:
                name = str(raw.get("name", f"nodes[{i}]"))
                labels = dict(raw.get("labels") or {})
                if "node_class" in raw:
                    base = NodeSpec.from_profile(
                        name, mapping.profile(str(raw["node_class"]), f"nodes[{i}]"), labels=labels
                    )
                else:  # only the node's own labels: the operator reads its class from them as this does
                    gpus = int(raw.get("gpus") or parse_quantity(labels.get(GPU_COUNT_LABEL, 0)))
                    classification = mapping.classify(labels, gpus, name)
                    warn_unmapped(name, classification)
                    base = NodeSpec.from_profile(name, classification.profile).model_copy(
                        update={
                            "labels": {"kubernetes.io/hostname": name, **labels},
                            "gpus": gpus or classification.profile.gpus,
                        }
                    )
                raw = {**base.model_dump(), **{k: v for k, v in raw.items() if k != "labels"}, "labels": base.labels}
            nodes.append(raw)
        return cls(nodes=nodes)

    @classmethod
    def from_kubectl_json(cls, doc: dict[str, Any] | str, mapping: NodeMapping = BUILTIN_MAPPING) -> ClusterSpec:
        """Read ``kubectl get nodes -o json`` (a NodeList or v1 List, or a list of Node dicts)."""
        data = json.loads(doc) if isinstance(doc, str) else doc
        items = data.get("items", []) if isinstance(data, dict) else data
        if not items:
            raise ValueError("no nodes in the kubectl output")
        return cls(nodes=[node_spec_from_object(item, mapping) for item in items])

    @classmethod
    def load(cls, path: str | Path, mapping: NodeMapping = BUILTIN_MAPPING) -> ClusterSpec:
        """Load a cluster spec from YAML, or from ``kubectl get nodes -o json`` output; OSError when the file
        cannot be read, ValueError with every problem on one line (each node by index and name) when it is not
        a cluster spec."""
        text = Path(path).read_text()
        data: Any = None
        try:
            if text.lstrip().startswith("{"):
                data = json.loads(text)
                if not isinstance(data, dict):
                    raise ValueError("a JSON cluster spec must be an object")
                if data.get("kind") in ("NodeList", "List") or "items" in data:
                    return cls.from_kubectl_json(data, mapping)
                return cls.model_validate(data)
            data = yaml.safe_load(text)
            return cls.from_yaml(text, mapping)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ValueError(f"not YAML: {getattr(error, 'problem', None) or error}{where}") from None
        except ValidationError as error:
            raise ValueError(describe_validation_error(error, data, {"nodes": "name"})) from None


Model = TypeVar("Model", NodeSpec, NodeProfile)


def corrected(model: Model, run_time_ratios: Mapping[PrimitiveKind, float]) -> Model:
    """A node (or a class's profile) whose speed for each kind in ``run_time_ratios`` (observed / estimated run
    time there) is divided by that ratio, so the node model's estimates match what was observed. llm_generate's
    run time comes from the token rates, so its ratio divides those as well; no other kind reads them. The one
    place measured run times change the node model (the operator's live view, ``scale-sched calibrate``)."""
    if not run_time_ratios:
        return model
    update: dict[str, Any] = {
        "speed": {kind: speed / run_time_ratios.get(kind, 1.0) for kind, speed in model.speed.items()}
    }
    llm = run_time_ratios.get(PrimitiveKind.LLM_GENERATE)
    if llm is not None:
        update["prefill_tokens_per_second"] = model.prefill_tokens_per_second / llm
        update["decode_tokens_per_second"] = model.decode_tokens_per_second / llm
    return model.model_copy(update=update)


def parse_quantity(value: str | int | float) -> float:
    """Parse a Kubernetes resource quantity ('500m', '16Gi', '2', '1e3') into a plain number."""
    text = str(value).strip()
    suffixes = {
        "Ki": 1024,
        "Mi": 1024**2,
        "Gi": 1024**3,
        "Ti": 1024**4,
        "Pi": 1024**5,
        "Ei": 1024**6,
        "n": 1e-9,
        "u": 1e-6,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "P": 1e15,
        "E": 1e18,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            try:
                return float(text[: -len(suffix)]) * suffixes[suffix]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from None


def warn_unmapped(name: str, classification: Classification) -> None:
    """Log a node no label or rule maps (it gets the fallback class): never a silent guess."""
    if not classification.mapped:
        log.warning(
            "node %s matches no node-class rule: it gets the fallback class %s "
            "(add a rule to the node profiles, or the %s label; docs/node-classes.md)",
            name,
            classification.node_class,
            NODE_CLASS_LABEL,
        )


def classify_node_object(
    node: dict[str, Any], mapping: NodeMapping = BUILTIN_MAPPING
) -> tuple[NodeSpec, Classification]:
    """A Node object as a NodeSpec (resources from allocatable, speeds from the profile of the class its labels
    name) and how its class was decided; ValueError for a class label the mapping does not know."""
    meta = node.get("metadata", {})
    name = meta.get("name", "")
    labels: dict[str, str] = dict(meta.get("labels") or {})
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    # GPU capacity from allocatable; GPU feature discovery's count label where a node list lacks it
    gpus = int(parse_quantity(allocatable.get(GPU_RESOURCE) or labels.get(GPU_COUNT_LABEL) or 0))
    classification = mapping.classify(labels, gpus, name)
    profile = classification.profile
    spec = NodeSpec.from_profile(name, profile)
    spec = spec.model_copy(
        update={
            "labels": labels,
            "cpu_millicores": int(round(parse_quantity(allocatable.get("cpu", profile.cpu_millicores / 1000)) * 1000)),
            "memory_bytes": int(parse_quantity(allocatable.get("memory", profile.memory_bytes))),
            "gpus": gpus,
            "pods": int(parse_quantity(allocatable.get("pods", 110))),
        }
    )
    return spec, classification


def node_spec_from_object(node: dict[str, Any], mapping: NodeMapping = BUILTIN_MAPPING) -> NodeSpec:
    """``classify_node_object``'s NodeSpec; a node no rule maps is logged (it gets the fallback class)."""
    spec, classification = classify_node_object(node, mapping)
    warn_unmapped(spec.name, classification)
    return spec


def class_counts(n: int) -> dict[str, int]:
    """Nodes per class for n nodes: the fixed mix, rounded by largest remainder (deterministic)."""
    if n < 1:
        raise ValueError("a cluster needs at least one node")
    exact = {c: n * share for c, share in CLASS_MIX.items()}
    counts = {c: int(v) for c, v in exact.items()}
    order = sorted(CLASS_MIX, key=lambda c: (-(exact[c] - counts[c]), list(CLASS_MIX).index(c)))
    for c in order[: n - sum(counts.values())]:
        counts[c] += 1
    return counts


def heterogeneous(n: int, seed: int = 0, speed_jitter: float = 0.05) -> ClusterSpec:
    """Deterministic mixed cluster of n nodes; the seed varies each node's speed by a few percent."""
    rng = np.random.default_rng(seed)
    nodes: list[NodeSpec] = []
    for node_class, count in class_counts(n).items():
        for _ in range(count):
            factor = float(np.clip(rng.normal(1.0, speed_jitter), 0.8, 1.2))
            nodes.append(NodeSpec.from_profile(f"{node_class}-{len(nodes):03d}", PROFILES[node_class], factor))
    return ClusterSpec(nodes=nodes)


__all__ = [
    "ACCELERATOR_LABEL",
    "CLASS_MIX",
    "ClusterSpec",
    "GPU_RESOURCE",
    "KINDS",
    "NODE_CLASS_LABEL",
    "NodeMapping",
    "NodeProfile",
    "NodeSpec",
    "PROFILES",
    "class_counts",
    "classify_node_object",
    "corrected",
    "heterogeneous",
    "node_spec_from_object",
    "parse_quantity",
    "warn_unmapped",
]
