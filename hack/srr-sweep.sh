#!/usr/bin/env bash
# SRR weight sweep (docs/policy.md, "SRR weights"): six N=16 training runs of 0.5 M decisions, seed 0, SWEEP_WORKERS at
# a time (default 2: about 13 min on 2 cores), then every run against HEFT and k8s-default at N = 16 and 48 (1 min),
# the evaluation on SWEEP_WORKERS Ray workers when that is more than 1 (docs/scale-out.md).
# Writes ${SWEEP_OUT:-docs/results/srr_sweep}/; the runs themselves go to ${SWEEP_DIR:-/tmp/srr-sweep}.
# SWEEP_STEPS, SWEEP_SEEDS and SWEEP_WORKFLOWS shrink it (the test suite runs a tiny one).
# Names: ca = CrossAttn (no SRR); sXX = SRR with both weights 0.XX; sdecorr = decorrelation 0.1 only; skl = KL 0.1 only.
# The training runs stay processes rather than Ray tasks: each is a resumable run directory with its own TensorBoard
# log and one sequential PPO loop (a core each at --threads 1), and a run's rollouts already go to Ray with
# `train --workers`; a process per run is the natural unit here, and the runs need not share a Ray.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${SWEEP_DIR:-/tmp/srr-sweep}
out=${SWEEP_OUT:-docs/results/srr_sweep}
workers=${SWEEP_WORKERS:-2}
if ! [[ $workers =~ ^[1-9][0-9]*$ ]]; then
  echo "SWEEP_WORKERS must be a positive whole number (got '$workers')" >&2
  exit 2
fi
mkdir -p "$runs"
train() {  # name algo [extra flags]
  local name=$1 algo=$2
  shift 2
  .venv/bin/scale-sched train --policy "$algo" --nodes 16 --steps "${SWEEP_STEPS:-500000}" --seed 0 \
    --out "$runs/$name" --groups 6 --rollouts 4 --eval-interval 10 "$@" --json > "$runs/$name.json"
  .venv/bin/scale-sched export-policy "$runs/$name" "$runs/export/$name"
}
specs=("ca crossattn" "s10 scale --srr-decorrelation 0.1 --srr-kl 0.1"
       "s03 scale --srr-decorrelation 0.03 --srr-kl 0.03" "s01 scale --srr-decorrelation 0.01 --srr-kl 0.01"
       "sdecorr scale --srr-decorrelation 0.1 --srr-kl 0" "skl scale --srr-decorrelation 0 --srr-kl 0.1")
running=0
for spec in "${specs[@]}"; do
  # shellcheck disable=SC2086  # word splitting of the run spec is intended
  train $spec &
  running=$((running + 1))
  if ((running == workers)); then
    wait -n  # a failed run fails the sweep (set -e)
    running=$((running - 1))
  fi
done
while ((running > 0)); do
  wait -n
  running=$((running - 1))
done
checkpoints=()
for name in ca s10 s03 s01 sdecorr skl; do checkpoints+=(--checkpoint "$name=$runs/export/$name"); done
parallel=()
if ((workers > 1)); then parallel=(--workers "$workers"); fi
.venv/bin/scale-sched evaluate --policies heft,k8s-default,ca,s10,s03,s01,sdecorr,skl "${checkpoints[@]}" \
  --nodes 16,48 --seeds "${SWEEP_SEEDS:-10}" --workflows "${SWEEP_WORKFLOWS:-100}" --pair s10:ca --pair s03:ca \
  --pair s01:ca --pair sdecorr:ca --pair skl:ca --pair ca:heft --out "$out" "${parallel[@]}"
