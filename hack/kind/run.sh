#!/usr/bin/env bash
# The end-to-end workflow: a cluster with N simulated nodes of the simulator's classes, the chart
# installed, the samples applied, placements and response times printed.
#
#   hack/kind/run.sh [--nodes 16|32|48] [--policy scale] [--keep]          local control plane (no Docker)
#   hack/kind/run.sh --kind [--nodes 16|32|48] [--image IMG] [--keep]      kind + KWOK (needs docker, kind)
#
# Without --kind this is `scale-sched demo`, which starts the project's own control plane.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
nodes=16; policy=scale; keep=0; use_kind=0
image="ghcr.io/scale-scheduler/scale-scheduler:dev"; name=scale-scheduler
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2;;
    --policy) policy="$2"; shift 2;;
    --image) image="$2"; shift 2;;
    --name) name="$2"; shift 2;;
    --keep) keep=1; shift;;
    --kind) use_kind=1; shift;;
    -h|--help) sed -n 2,9p "$0"; exit 0;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2;;
  esac
done
case "$nodes" in 16|32|48) ;; *) echo "--nodes must be 16, 32 or 48 (the evaluated cluster sizes)" >&2; exit 2;; esac
sched="${SCALE_SCHED:-$root/.venv/bin/scale-sched}"
python="${PYTHON:-$root/.venv/bin/python}"

if [ "$use_kind" = 0 ]; then
  args=(demo --nodes "$nodes" --policy "$policy")
  [ "$keep" = 1 ] && args+=(--keep)
  exec "$sched" "${args[@]}"
fi

for tool in docker kind kubectl helm; do
  command -v "$tool" > /dev/null || { echo "--kind needs $tool on PATH" >&2; exit 2; }
done
cleanup() { [ "$keep" = 1 ] || "$sched" cluster down --provider kind --name "$name"; }
trap cleanup EXIT

# A one-node kind cluster with kwok inside, our pod stages and N fake nodes of the simulator's classes.
"$sched" cluster up --provider kind --name "$name" --nodes "$nodes"
export KUBECONFIG; KUBECONFIG="${SCALE_SCHED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scale-sched}/kwok/clusters/$name/kubeconfig.yaml"

docker build -t "$image" "$root"
kind load docker-image "$image" --name "$name"
helm upgrade --install scale-scheduler "$root/charts/scale-scheduler" \
  --namespace scale-scheduler --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set policy="$policy" \
  --wait --timeout 5m

# The operator runs in the cluster now; the demo only applies the samples and reports.
"$sched" demo --kubeconfig "$KUBECONFIG" --operator-in-cluster --policy "$policy"
