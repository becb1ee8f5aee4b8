#!/usr/bin/env bash
# The house rules, as CI and pre-commit run them: lint, format, types, import contracts; exit code 1 on the
# first rule broken. `hack/lint.sh --fix` lets ruff fix and format what it can first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "${1:-}" = "--fix" ]; then
  .venv/bin/ruff check --fix --quiet .
  .venv/bin/ruff format --quiet .
fi
echo "ruff check"; .venv/bin/ruff check .
echo "ruff format --check"; .venv/bin/ruff format --check .
hack/typecheck.sh
