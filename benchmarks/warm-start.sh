#!/usr/bin/env bash
# LAMP from a short PT warm start, on the quality recipe's terms (benchmarks/quality.yaml: SST-2, natural format,
# batch 16, validation every 25 steps on 300 rows, test once at the best step). PT-25 trains for WARM steps; LAMP
# (l=100, r=8, k=4) then starts from its prompt (`lamp train --init-from`: each PT row written 4 times, so the model
# first sees PT-25's prompt up to the rank-8 truncation) and trains the rest of the STEPS=150 budget. Compare the
# LAMP run's test score with quality.yaml's SST-2 seed-0 LAMP and PT-25 cells.
#
#   benchmarks/warm-start.sh                    # WARM=30 SEED=0 OUT=runs/warm-start; a finished stage is kept
#
# Environment: LAMP (default .venv/bin/lamp), MODEL (default smollm2-135m), WARM, STEPS (the whole budget, default
# 150), SEED, OUT, DATA (default ../shared/data), EXTRA (more `lamp train` flags for both stages).
set -euo pipefail
cd "$(dirname "$0")/.."
LAMP=${LAMP:-.venv/bin/lamp}
MODEL=${MODEL:-smollm2-135m}
WARM=${WARM:-30}
STEPS=${STEPS:-150}
SEED=${SEED:-0}
OUT=${OUT:-runs/warm-start}
DATA=${DATA:-../shared/data}
common=(--task sst2 --model "$MODEL" --format natural --data-dir "$DATA" --seed "$SEED" --batch-size 16
        --eval-batch-size 32 --max-eval-examples 300 --max-length 256 --no-zero-shot)
# shellcheck disable=SC2206  # EXTRA is a list of flags
common+=(${EXTRA:-})

stage() {  # OUT_DIR ARGS...: run `lamp train` unless that folder already holds a finished run
    local out=$1; shift
    if [[ -f "$out/results.json" ]]; then echo "$out: finished earlier"; return; fi
    local resume=(); [[ -d "$out" ]] && resume=(--resume)
    "$LAMP" train "${common[@]}" "$@" --out "$out" "${resume[@]}"
}

stage "$OUT/pt25-$WARM" --method pt --length 25 --lr 0.01 --max-steps "$WARM" --eval-every "$WARM"
stage "$OUT/lamp-from-pt25-$WARM" --init-from "$OUT/pt25-$WARM/adapter" --rank 8 --pool 4 --lr 0.03 \
    --max-steps $((STEPS - WARM)) --eval-every 25
