#!/usr/bin/env bash
# Types (mypy) and the import contracts (import-linter, in pyproject.toml). mypy reads the packages under the
# names they are imported by (simulator/ is scale_scheduler.simulator) through a tree of links in .typecheck/
# (ignored by git).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .typecheck/scale_scheduler
for package in simulator policy operator; do ln -sfn "../../$package" ".typecheck/scale_scheduler/$package"; done
echo "mypy"; .venv/bin/mypy
echo "lint-imports"; .venv/bin/lint-imports --no-cache
