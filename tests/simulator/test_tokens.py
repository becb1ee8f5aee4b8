"""Token counts follow the Azure 2023 trace fit; the committed fit matches the raw trace when present."""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from scale_scheduler.simulator.tokens import sample_tokens

# the fitting script is a committed tool, not part of the installed package: load it from its path
_SCRIPT = Path(__file__).resolve().parents[2] / "simulator" / "calibration" / "fit_azure_tokens.py"
_spec = importlib.util.spec_from_file_location("fit_azure_tokens", _SCRIPT)
fitting = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fitting)
DEFAULT_DATA, SERVICES, fit = fitting.DEFAULT_DATA, fitting.SERVICES, fitting.fit


def _committed() -> dict:
    return json.loads(
        resources.files("scale_scheduler.simulator").joinpath("calibration/azure_tokens.json").read_text()
    )


@pytest.mark.parametrize("service", ["code", "conv"])
def test_sampled_medians_match_the_fitted_percentiles(service: str) -> None:
    rng = np.random.default_rng(0)
    draws = np.array([sample_tokens(rng, service) for _ in range(4000)])
    fitted = _committed()["services"][service]
    for column, name in enumerate(("context", "generated")):
        assert np.median(draws[:, column]) == pytest.approx(fitted[name]["quantiles"][50], rel=0.1)


def test_unknown_service_is_rejected_with_the_choices() -> None:
    with pytest.raises(ValueError, match="code, conv"):
        sample_tokens(np.random.default_rng(0), "chat")


@pytest.mark.skipif(
    not all((DEFAULT_DATA / f).exists() for f in SERVICES.values()),
    reason=f"Azure 2023 trace not found at {DEFAULT_DATA} (shared data folder absent)",
)
def test_committed_fit_is_what_the_script_computes_from_the_trace() -> None:
    # Floats to 1e-9 relative: the last bits of a sum depend on the numpy build's summation order.
    def close(a: object, b: object) -> bool:
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
        if isinstance(a, float) or isinstance(b, float):
            return a == pytest.approx(b, rel=1e-9, abs=1e-12)
        return a == b

    assert close(fit(DEFAULT_DATA)["services"], _committed()["services"])
