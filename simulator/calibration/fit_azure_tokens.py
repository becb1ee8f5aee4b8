"""Fit LLM token-count distributions to the Azure 2023 LLM inference trace; writes azure_tokens.json.

Data: Azure/AzurePublicDataset, AzureLLMInferenceTrace_{code,conv}.csv (Patel et al., "Splitwise:
Efficient generative LLM inference using phase splitting", ISCA 2024), CC-BY-4.0. The raw rows are
never committed; only the fitted numbers are.

For each service (code completion, conversation) and column (ContextTokens, GeneratedTokens) we store
a lognormal fit (mu, sigma of log tokens: a compact summary for the docs) and a 101-point empirical
quantile table, which the simulator samples by inverse CDF with log-linear interpolation: the trace is
not lognormal in its tails (e.g. many code requests generate very few tokens), and the table keeps that.

    python simulator/calibration/fit_azure_tokens.py [DATA_DIR]
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

# The team's shared data folder sits beside the checkout; $SCALE_SCHED_SHARED_DATA points elsewhere
# (CI clones the repository into a temporary directory).
DEFAULT_DATA = (
    Path(os.environ.get("SCALE_SCHED_SHARED_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data")
    / "azure-llm-inference-2023"
)
SERVICES = {"code": "AzureLLMInferenceTrace_code.csv", "conv": "AzureLLMInferenceTrace_conv.csv"}
COLUMNS = {"ContextTokens": "context", "GeneratedTokens": "generated"}


def fit_column(values: np.ndarray) -> dict[str, object]:
    positive = values[values > 0]
    logs = np.log(positive)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "lognormal": {"mu": float(logs.mean()), "sigma": float(logs.std())},
        "quantiles": [int(round(q)) for q in np.quantile(np.maximum(values, 1), np.linspace(0, 1, 101))],
    }


def fit(data_dir: Path) -> dict[str, object]:
    services = {}
    for service, filename in SERVICES.items():
        path = data_dir / filename
        if not path.exists():
            raise SystemExit(f"{path} not found: pass the folder holding the Azure 2023 trace CSVs")
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        fitted: dict[str, object] = {
            name: fit_column(np.array([float(r[column]) for r in rows])) for column, name in COLUMNS.items()
        }
        context = np.array([float(r["ContextTokens"]) for r in rows])
        generated = np.array([float(r["GeneratedTokens"]) for r in rows])
        fitted["log_correlation"] = float(np.corrcoef(np.log1p(context), np.log1p(generated))[0, 1])
        services[service] = fitted
    return {
        "source": "Azure/AzurePublicDataset AzureLLMInferenceTrace_code.csv and _conv.csv (November 2023)",
        "citation": "Patel et al., Splitwise: Efficient generative LLM inference using phase splitting, ISCA 2024",
        "license": "CC-BY-4.0",
        "script": "simulator/calibration/fit_azure_tokens.py",
        "services": services,
    }


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DATA
    out = Path(__file__).with_name("azure_tokens.json")
    out.write_text(json.dumps(fit(data_dir), indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
