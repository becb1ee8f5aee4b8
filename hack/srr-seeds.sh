#!/usr/bin/env bash
# The paper's question asked again in the expert-iteration regime (docs/policy.md, "SRR under expert iteration"):
# SCALE (SRR) and CrossAttn (no SRR) each trained with expert iteration from the HEFT prior on SEEDS_RUNS training
# seeds (default 5, seeds 0..4; SEEDS_STEPS labelled decisions each, default 8000: about 4 min a run on a busy core),
# SEEDS_WORKERS runs at a time (default 1), then every run against HEFT and srpt-eft at N = 16, 48 and 96 on the
# same evaluation seeds, each SCALE seed paired with the CrossAttn run of the same training seed, and `diagnose`'s
# attention-feature statistics of every run (diagnose/).
# Writes ${SEEDS_OUT:-docs/results/srr_seeds}/; the runs themselves go to ${SEEDS_DIR:-/tmp/srr-seeds}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=${SEEDS_DIR:-/tmp/srr-seeds}
out=${SEEDS_OUT:-docs/results/srr_seeds}
workers=${SEEDS_WORKERS:-1}
count=${SEEDS_RUNS:-5}
for name in SEEDS_WORKERS SEEDS_RUNS; do
  if ! [[ ${!name:-1} =~ ^[1-9][0-9]*$ ]]; then
    echo "$name must be a positive whole number (got '${!name}')" >&2
    exit 2
  fi
done
mkdir -p "$runs"
train() {  # name policy seed
  .venv/bin/scale-sched train --policy "$2" --trainer expert-iteration --nodes 16 --steps "${SEEDS_STEPS:-8000}" \
    --seed "$3" --out "$runs/$1" --json > "$runs/$1.json"
  .venv/bin/scale-sched export-policy "$runs/$1" "$runs/export/$1"
}
running=0
for ((seed = 0; seed < count; seed++)); do
  for spec in "s$seed scale" "ca$seed crossattn"; do
    # shellcheck disable=SC2086  # word splitting of the run spec is intended
    train $spec "$seed" &
    running=$((running + 1))
    if ((running == workers)); then
      wait -n  # a failed run fails the whole comparison (set -e)
      running=$((running - 1))
    fi
  done
done
while ((running > 0)); do
  wait -n
  running=$((running - 1))
done
policies=heft,srpt-eft
checkpoints=()
pairs=()
for ((seed = 0; seed < count; seed++)); do
  policies+=",s$seed,ca$seed"
  checkpoints+=(--checkpoint "s$seed=$runs/export/s$seed" --checkpoint "ca$seed=$runs/export/ca$seed")
  pairs+=(--pair "s$seed:ca$seed")
done
.venv/bin/scale-sched evaluate --policies "$policies" "${checkpoints[@]}" --nodes 16,48,96 \
  --seeds "${SEEDS_EVAL:-10}" --workflows "${SEEDS_WORKFLOWS:-100}" "${pairs[@]}" --pair s0:heft --pair ca0:heft \
  --out "$out"
.venv/bin/scale-sched diagnose --policies "${policies#heft,srpt-eft,}" "${checkpoints[@]}" --nodes 16,48,96 \
  --out "$out/diagnose"
