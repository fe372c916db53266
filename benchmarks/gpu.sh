#!/usr/bin/env bash
# The GPU comparison (T5-Base and Llama-2-7B, every method) on one H100/H200 in bf16, random weights (valid for time and memory):
#   T5-Base, batch 32 x 256 tokens, and the Llama-2-7B architecture, batch 8 x 256 tokens;
#   methods: no prompt, PT-100, PT-25, LAMP (l=100, r=8, k=4), PEFT's own PT-100 and LoRA r=8 (q, v), and lamp's
#   LoRA r=8 (the same peft layers run by lamp's wrapper).
# About two minutes of device time; the two tables are printed last. Results go to $OUT/{t5,llama}/.
#
#   benchmarks/gpu.sh              # on the GPU machine
#   SMOKE=1 benchmarks/gpu.sh      # the same commands on tiny random models on the CPU, in seconds (tested)
#
# Environment: PYTHON (default .venv/bin/python, else python3), OUT (default runs/bench-gpu), EXTRA (more flags,
# e.g. EXTRA=--compile).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=${OUT:-runs/bench-gpu}
# lamp's own lora last: it changes the backbone in place, so a method after it would need a fresh one.
METHODS=(none pt:length=100 pt:length=25 lamp:length=100,rank=8,pool=4 peft-pt:length=100 peft-lora:r=8 lora:rank=8)

if [[ "${SMOKE:-0}" == "1" ]]; then
    T5=random:tiny-t5 LLAMA=random:tiny-llama
    T5_SHAPE=(--batch-size 2 --seq-len 16) LLAMA_SHAPE=(--batch-size 2 --seq-len 16)
    COMMON=(--device cpu --steps 1 --warmup 0 --isolate none)
else
    T5=random:t5-base LLAMA=random:llama2-7b
    T5_SHAPE=(--batch-size 32 --seq-len 256) LLAMA_SHAPE=(--batch-size 8 --seq-len 256)
    COMMON=(--device cuda --dtype bfloat16 --steps 10 --warmup 3 --isolate none)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" -m lamp bench --model "$T5" "${T5_SHAPE[@]}" "${COMMON[@]}" --methods "${METHODS[@]}" \
    --out "$OUT/t5" ${EXTRA:-} >/dev/null
# shellcheck disable=SC2086
"$PYTHON" -m lamp bench --model "$LLAMA" "${LLAMA_SHAPE[@]}" "${COMMON[@]}" --methods "${METHODS[@]}" \
    --out "$OUT/llama" ${EXTRA:-} >/dev/null

echo
cat "$OUT/t5/bench.txt"
echo
cat "$OUT/llama/bench.txt"
