#!/usr/bin/env bash
# SRR weight sweep (docs/policy.md, "SRR weights"): six N=16 training runs of 0.5 M decisions, seed 0, two at a
# time (about 13 min on 2 cores), then every run against HEFT and k8s-default at N = 16 and 48 (1 min).
# Writes ${SWEEP_OUT:-docs/results/srr_sweep}/; the runs themselves go to ${SWEEP_DIR:-/tmp/srr-sweep}.
# SWEEP_STEPS, SWEEP_SEEDS and SWEEP_WORKFLOWS shrink it (the test suite runs a tiny one).
# Names: ca = CrossAttn (no SRR); sXX = SRR with both weights 0.XX; sdecorr = decorrelation 0.1 only; skl = KL 0.1 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${SWEEP_DIR:-/tmp/srr-sweep}
out=${SWEEP_OUT:-docs/results/srr_sweep}
mkdir -p "$runs"
train() {  # name algo [extra flags]
  local name=$1 algo=$2
  shift 2
  .venv/bin/scale-sched train --algo "$algo" --nodes 16 --steps "${SWEEP_STEPS:-500000}" --seed 0 \
    --out "$runs/$name" --groups 6 --rollouts 4 --eval-interval 10 "$@" --json > "$runs/$name.json"
  .venv/bin/scale-sched export-policy "$runs/$name" "$runs/export/$name"
}
two() {  # two training runs side by side, each given as "name algo [flags]"; fails if either fails
  # shellcheck disable=SC2086  # word splitting of the run specs is intended
  train $1 & local first=$!
  # shellcheck disable=SC2086
  train $2 & local second=$!
  wait "$first"
  wait "$second"
}
two "ca crossattn" "s10 scale --srr-decorrelation 0.1 --srr-kl 0.1"
two "s03 scale --srr-decorrelation 0.03 --srr-kl 0.03" "s01 scale --srr-decorrelation 0.01 --srr-kl 0.01"
two "sdecorr scale --srr-decorrelation 0.1 --srr-kl 0" "skl scale --srr-decorrelation 0 --srr-kl 0.1"
checkpoints=()
for name in ca s10 s03 s01 sdecorr skl; do checkpoints+=(--checkpoint "$name=$runs/export/$name"); done
.venv/bin/scale-sched evaluate --methods heft,k8s-default,ca,s10,s03,s01,sdecorr,skl "${checkpoints[@]}" \
  --nodes 16,48 --seeds "${SWEEP_SEEDS:-10}" --workflows "${SWEEP_WORKFLOWS:-100}" --pair s10:ca --pair s03:ca \
  --pair s01:ca --pair sdecorr:ca --pair skl:ca --pair ca:heft --out "$out"
