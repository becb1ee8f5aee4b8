"""Primitive kinds of agentic workflows and their default pod resource requests.

A primitive is one step of a workflow DAG that runs as one pod. Its kind decides what
hardware it can use and how its duration is computed (see ``node_model``).
"""

from __future__ import annotations

from enum import StrEnum

GIB = 1024**3
MIB = 1024**2


class PrimitiveKind(StrEnum):
    LLM_GENERATE = "llm_generate"
    LLM_EMBED = "llm_embed"
    RETRIEVE = "retrieve"
    TOOL_CALL = "tool_call"
    CODE_EXEC = "code_exec"


KINDS: tuple[PrimitiveKind, ...] = tuple(PrimitiveKind)
KIND_INDEX: dict[PrimitiveKind, int] = {kind: i for i, kind in enumerate(KINDS)}

# Default requests as a pod would state them: (cpu millicores, memory bytes, nvidia.com/gpu).
DEFAULT_REQUESTS: dict[PrimitiveKind, tuple[int, int, int]] = {
    PrimitiveKind.LLM_GENERATE: (2000, 16 * GIB, 1),
    PrimitiveKind.LLM_EMBED: (2000, 4 * GIB, 0),
    PrimitiveKind.RETRIEVE: (1000, 12 * GIB, 0),
    PrimitiveKind.TOOL_CALL: (250, 256 * MIB, 0),
    PrimitiveKind.CODE_EXEC: (4000, 4 * GIB, 0),
}

# Reference work, in seconds on a node of speed 1.0, for kinds whose work is not token-driven.
DEFAULT_WORK_SECONDS: dict[PrimitiveKind, float] = {
    PrimitiveKind.LLM_EMBED: 1.5,
    PrimitiveKind.RETRIEVE: 1.0,
    PrimitiveKind.TOOL_CALL: 2.0,
    PrimitiveKind.CODE_EXEC: 4.0,
}

# One-off cost the first time a kind runs on a node: image pull, model or index load.
COLD_START_SECONDS: dict[PrimitiveKind, float] = {
    PrimitiveKind.LLM_GENERATE: 20.0,
    PrimitiveKind.LLM_EMBED: 6.0,
    PrimitiveKind.RETRIEVE: 4.0,
    PrimitiveKind.TOOL_CALL: 1.0,
    PrimitiveKind.CODE_EXEC: 3.0,
}
