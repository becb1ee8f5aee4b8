"""Where the checkout is: dev tooling reads charts, samples and build scripts from it (never installed)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
