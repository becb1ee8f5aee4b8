"""LLM token counts sampled from distributions fitted to the Azure 2023 LLM inference trace.

The fitted numbers live in calibration/azure_tokens.json (made by calibration/fit_azure_tokens.py;
data: Azure/AzurePublicDataset, Patel et al., Splitwise, ISCA 2024, CC-BY-4.0). Context and generated
tokens are drawn independently: their log-correlation in the trace is below 0.1 for both services.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

import numpy as np

SERVICES = ("code", "conv")


@cache
def _tables() -> dict[str, dict[str, np.ndarray]]:
    raw = json.loads(resources.files("scale_scheduler.simulator").joinpath("calibration/azure_tokens.json").read_text())
    return {
        service: {
            column: np.log(np.asarray(fit["quantiles"], dtype=float))
            for column, fit in raw["services"][service].items()
            if column in ("context", "generated")
        }
        for service in SERVICES
    }


def sample_tokens(rng: np.random.Generator, service: str = "conv") -> tuple[int, int]:
    """(context tokens, generated tokens) of one LLM call of ``service`` ("code" or "conv"), by inverse
    CDF over the trace's percentile table with log-linear interpolation between percentiles."""
    if service not in SERVICES:
        raise ValueError(f"unknown token service {service!r}; choose from {', '.join(SERVICES)}")
    table = _tables()[service]
    grid = np.linspace(0.0, 1.0, 101)
    u = rng.random(2)
    context = float(np.exp(np.interp(u[0], grid, table["context"])))
    generated = float(np.exp(np.interp(u[1], grid, table["generated"])))
    return max(int(round(context)), 1), max(int(round(generated)), 1)
