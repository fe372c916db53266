"""`lamp bench`: trainable parameters, train-step time, memory and inference latency per method, on one batch.

Every registered method (`lamp.methods.REGISTRY`) runs the step the trainer runs: forward with labels on the last
position(s) (`logits_to_keep` from `lamp.data.collate_train`), backward, AdamW step. How it runs comes from its
config's declaration (`lamp.bench.runners`):

- a method lamp's wrapper runs (`Harness.LAMP`) goes through `lamp.wrap`, the trainer's own forward. One that
  declares nothing to train (`none`, the bare backbone) gets a one-parameter gain on the input embeddings instead:
  a prompt method must back-propagate through every layer down to the input, and the gain pays exactly that floor.
- a method PEFT's own model runs (`Harness.PEFT`: `peft-pt`, PEFT's PromptTuning; `peft-lora`, PEFT's LoRA on its
  default targets, the attention query and value projections) goes through `peft.get_peft_model`, called as PEFT
  users call it (labels in, logits at every position), or with `logits=needed` given the same `logits_to_keep`
  as lamp. lamp's own `lora` (the same peft layers, run by lamp's wrapper and trainer) is a wrapper method.

Peak memory is CUDA's max allocated on a GPU. On a CPU it is the process's peak RSS while measuring; by default
each method runs in a fresh process (`isolate="process"`) so one method's freed-but-kept memory never counts
for the next. Random-weight models (`random:<architecture>`, see `lamp.architectures`) are honest for time and
memory, which depend only on shapes.

Modules: `config` (BenchConfig, method specs), `runners` (one per harness), `measure` (one method: timing, memory,
latency), `isolation` (a fresh process per method), `run` (every method, pooled rows), `report` (table, json, png).
"""

from __future__ import annotations

from lamp.bench.config import ISOLATE, BenchConfig, MethodSpec, parse_method
from lamp.bench.measure import load_backbone, measure_method, synthetic_batch
from lamp.bench.report import format_table, plot_bench, write_outputs
from lamp.bench.run import run_bench, summarise
from lamp.bench.runners import GainOnlyConfig, InputGain, make_runner

__all__ = [
    "ISOLATE",
    "BenchConfig",
    "GainOnlyConfig",
    "InputGain",
    "MethodSpec",
    "format_table",
    "load_backbone",
    "make_runner",
    "measure_method",
    "parse_method",
    "plot_bench",
    "run_bench",
    "summarise",
    "synthetic_batch",
    "write_outputs",
]
