#!/usr/bin/env bash
# Sets up a fresh machine: a virtual environment with scale-scheduler and its test tools, and the
# Kubernetes control-plane binaries built from Go modules (cached outside the repository).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[dev]'
hack/cluster/build.sh
echo "ready: .venv/bin/scale-sched --help"
