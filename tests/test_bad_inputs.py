"""Every bad input to every command: exit code 2, one line on stderr naming the problem, no traceback, and no file
that existed before the command changed.

Each row is an argv line and a regex its one error line must match. ``{name}`` in either stands for a file of the
`world` fixture (in the regex, the escaped path; write a literal brace as ``{{``). Adding a row is one line; a row
that needs a new kind of file adds it to `world`. Rows should fail before a model loads where the input allows it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import lamp
from lamp.adapter import CONFIG, WEIGHTS, save_adapter
from lamp.backbones import load_model
from lamp.cli import main
from lamp.tasks import TaskSpec
from lamp.tasks.sources import Packaged

from .conftest import make_llama, make_tokenizer

# Arguments that keep a train row small if its bad value were ever accepted: tiny model and data, fresh output.
TRAIN_NO_METHOD = "train --model {model} --data-dir {data} --max-steps 2 --batch-size 2 --out {fresh}"
TRAIN = TRAIN_NO_METHOD + " --method pt --length 2"
EVAL = "eval --task polarity --data-dir {data}"
PREDICT = "predict --adapter {adapter}"
BENCH = "bench --model random:tiny-llama --methods none --isolate none --out {fresh}"
NOT_A_RUN = r"{not_a_run} holds files that are not a lamp run: choose another --out; lamp never deletes them$"

OWN = TRAIN + " --template 'review {{text}}' --label-words negative,positive --train-file"  # a user task's flags

ROWS = [
    # ---- train: options of TrainConfig (flags and YAML), its data, its --init-from adapter, its output ----
    pytest.param(TRAIN + " --task nope", r"unknown task 'nope'; known tasks: cola", id="train-unknown-task"),
    pytest.param(
        TRAIN + " --method nope",
        r"unknown method 'nope' \(did you mean 'none'\?\): choose one of lamp",
        id="train-unknown-method",
    ),
    # a misspelt name asks "did you mean" wherever names are looked up (tasks, methods, options, keys, choices)
    pytest.param(TRAIN + " --task SST-2", r"unknown task 'SST-2' \(did you mean 'sst2'\?\); known", id="typo-task"),
    pytest.param(
        TRAIN + " --method lmap", r"unknown method 'lmap' \(did you mean 'lamp'\?\): choose", id="typo-method"
    ),
    pytest.param(
        TRAIN + " --set lenght=2",
        r"method 'pt' has no option lenght \(did you mean 'length'\?\): its",
        id="typo-option",
    ),
    pytest.param(TRAIN + " --init Vocab", r"unknown init 'Vocab' \(did you mean 'vocab'\?\): choose", id="typo-init"),
    pytest.param("train --config {yaml_typo}", r"unknown keys max_step \(did you mean 'max_steps'\?\)", id="typo-key"),
    pytest.param(
        "train --config {yaml_typo_format}", r"unknown --format 'natual' \(did you mean 'natural'", id="typo-fmt"
    ),
    pytest.param(
        TRAIN + " --task {own}/typo.yaml", r"unknown keys tempalte \(did you mean 'template'\?\)", id="typo-task-key"
    ),
    pytest.param(
        "compare --methods lamp ptt --out {fresh}", r"unknown method 'ptt' \(did you mean 'pt'", id="typo-cmp"
    ),
    pytest.param(
        "bench --model random:tiny-llama --methods peft-lroa --out {fresh}",
        r"unknown method 'peft-lroa' in 'peft-lroa' \(did you mean 'pe",
        id="typo-bench",
    ),
    pytest.param(  # was: PEFT's message with the whole LlamaModel printed over 30 lines, after the weights loaded
        TRAIN_NO_METHOD + " --method lora --set target_modules=model",
        r"target_modules \['model'\] \(Target module LlamaModel is not a layer type LoRA wraps\): the backbone's "
        r"linear layers are down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj; pass some",
        id="lora-target-not-a-layer",
    ),
    pytest.param(
        TRAIN_NO_METHOD + " --method lora --set target_modules=qproj",
        r"target_modules \['qproj'\] \(Target modules \{{'qproj'\}} not found in the base model\): the backbone's",
        id="lora-target-none",
    ),
    pytest.param(  # was: refused when the lora row started, after the rows before it were measured
        "bench --model random:tiny-llama --methods none lora:target_modules=qproj --out {fresh}",
        r"^lamp bench: error: lora:target_modules=qproj: LoRA cannot be applied with target_modules \['qproj'\]",
        id="bench-lora-target",
    ),
    pytest.param(  # was: refused when the first lora cell started, after the floors had scored
        "compare --config {recipe_lora_targets} --out {fresh}",
        r"LoRA cannot be applied with target_modules \['qproj'\]",
        id="compare-lora-target",
    ),
    pytest.param(TRAIN + " --lr nan", r"--lr must be a finite number in \(0, 1e\+06\], got nan$", id="train-lr-nan"),
    pytest.param(TRAIN + " --lr inf", r"--lr must be a finite number in \(0, 1e\+06\], got inf$", id="train-lr-inf"),
    pytest.param(  # was: a traceback from torch's Adam (lr / (1 - beta1) overflows float32) after the model loaded
        TRAIN + " --lr 3e38", r"--lr must be a finite number in \(0, 1e\+06\], got 3e\+38$", id="train-lr-overflow"
    ),
    pytest.param(
        "compare --lrs lamp=1e7 --out {fresh}",
        r"lrs of lamp must hold finite numbers in \(0, 1e\+06\]",
        id="cmp-lr-big",
    ),
    pytest.param(
        TRAIN + " --lr=-0.1", r"--lr must be a finite number in \(0, 1e\+06\], got -0.1$", id="train-lr-negative"
    ),
    pytest.param(TRAIN + " --weight-decay nan", r"--weight-decay must be a finite number >= 0, got nan", id="wd-nan"),
    pytest.param(TRAIN + " --weight-decay=-1", r"--weight-decay must be a finite number >= 0, got -1.0", id="wd-neg"),
    pytest.param(TRAIN + " --max-grad-norm nan", r"--max-grad-norm must be a finite number >= 0", id="clip-nan"),
    pytest.param(TRAIN + " --max-grad-norm inf", r"--max-grad-norm must be a finite number >= 0", id="clip-inf"),
    pytest.param(TRAIN + " --seed=-1", r"--seed must be an integer from 0 to 4294967295, got -1", id="train-seed"),
    pytest.param(TRAIN + " --seed 4294967296", r"--seed must be an integer from 0 to", id="train-seed-too-big"),
    pytest.param(TRAIN + " --eval-batch-size 0", r"--eval-batch-size must be a positive integer", id="eval-batch-0"),
    pytest.param(TRAIN + " --max-eval-examples 0", r"--max-eval-examples must be a positive integer", id="max-eval-0"),
    pytest.param(TRAIN + " --max-eval-examples=-3", r"--max-eval-examples must be a positive integer", id="max-eval"),
    pytest.param(
        TRAIN + " --warmup-steps 5", r"--warmup-steps must be an integer from 0 to --max-steps \(2\)", id="wu"
    ),
    pytest.param(TRAIN + " --batch-size 2.5", r"argument --batch-size: invalid int value: '2.5'", id="batch-frac"),
    pytest.param("train --config {yaml_batch}", r"--batch-size must be a positive integer, got 2.5", id="yaml-batch"),
    pytest.param(
        "train --config {yaml_lr}",
        r"--lr must be .* got '1e-3' \(text, not a number: write it without quotes\)$",
        id="yaml-lr",
    ),
    pytest.param("train --config {yaml_bool}", r"--zero-shot must be true or false, got 'false'", id="yaml-bool"),
    pytest.param(
        "train --config {yaml_model}",
        r"--model must be text, got 7 \(YAML read it as a number: quote it, e\.g\. '1e3'\)$",
        id="yaml-model",
    ),
    pytest.param(
        "train --config {yaml_label_words}",
        r"--label-words lists 'bad, good': each item must be one word without a comma, e\.g\. \[negative, positive\]$",
        id="yaml-label-words-comma",
    ),
    pytest.param(
        "train --config {yaml_seed}", r"--seed must be an integer from 0 to 4294967295, got -3", id="yaml-seed"
    ),
    pytest.param("train --config {yaml_unknown}", r"unknown keys bogus; known keys are", id="yaml-unknown-key"),
    pytest.param(
        "train --config {yaml_format}", r"unknown --format 'chat': choose one of auto, t5, natural$", id="yaml-format"
    ),
    pytest.param(TRAIN + " --scorer best", r"argument --scorer: invalid choice: 'best'", id="train-scorer"),
    pytest.param(TRAIN + " --config {fresh}/no.yaml", r"config file .*no.yaml does not exist", id="yaml-missing"),
    pytest.param(  # was: dropped silently, then "already holds a run: pass --resume ... or --overwrite"
        "train --config {yaml_overwrite}",
        r"{yaml_overwrite}: overwrite: true is not read from a --config file \(.*\): pass --overwrite and drop the "
        r"key$",
        id="yaml-overwrite",
    ),
    pytest.param(
        "train --config {yaml_resume}",
        r"{yaml_resume}: resume: true is not read .*: pass --resume and",
        id="yaml-resume",
    ),
    pytest.param(  # was: RecursionError
        "train --config {yaml_deep}",
        r"{yaml_deep} is not valid YAML \(nested too deeply\): simplify it$",
        id="yaml-deep",
    ),
    pytest.param(  # was: ValueError "Exceeds the limit (4300 digits)"
        "train --config {yaml_bigint}",
        r"{yaml_bigint} is not valid YAML \(line 1: an integer of 5000 digits is too long: use a smaller number\)$",
        id="yaml-bigint",
    ),
    pytest.param(  # was: RuntimeError "Symlink loop"
        OWN + " {own}/loop.jsonl", r"data file {own}/loop.jsonl is a symbolic link loop: check the path$", id="own-loop"
    ),
    pytest.param(  # was: "does not exist"
        OWN + " {own}/pipe.jsonl", r"data file {own}/pipe.jsonl is not a regular file: check the path$", id="own-pipe"
    ),
    pytest.param(  # was: the path's line break split the message over two lines
        OWN + " '{fresh}/no\nsuch.jsonl'",
        r"data file '.*/no\\nsuch.jsonl' does not exist: check the path$",
        id="own-newline",
    ),
    pytest.param(
        TRAIN + " --report-to nope",
        r"unknown --report-to 'nope': choose none, all, or one or more \(comma-separated\) of tensorboard, wandb",
        id="report-to-unknown",
    ),
    pytest.param(
        TRAIN + " --report-to tensorboard,none", r"unknown --report-to 'tensorboard,none'", id="report-to-none"
    ),
    # a tracker whose package is not installed (clearml is not a dependency of lamp's, dev extras included)
    pytest.param(
        TRAIN + " --report-to clearml",
        r"--report-to clearml needs its package: pip install clearml$",
        id="report-to-missing",
    ),
    pytest.param(TRAIN + " --rank 0 --method lamp", r"rank must be a positive integer, got 0", id="train-rank-0"),
    pytest.param(
        TRAIN_NO_METHOD + " --method lora --set alpha=1e999", r"alpha must be a finite number > 0", id="lora-inf"
    ),
    pytest.param(
        TRAIN_NO_METHOD + " --method lora --set dropout=1", r"dropout must be a finite number in \[0, 1\)", id="lora-p"
    ),
    pytest.param(
        TRAIN_NO_METHOD + " --method dept --set offset_lr=nan",
        r"offset_lr must be a finite number in \(0, 1e\+06\]",
        id="dept-nan",
    ),
    pytest.param(TRAIN_NO_METHOD + " --method none", r"method 'none' has nothing to train", id="train-none"),
    pytest.param(
        TRAIN + " --task rte --data-dir {header_only}", r"{header_only}/glue/RTE/train.tsv holds no rows", id="t-hdr"
    ),
    pytest.param(
        TRAIN + " --task rte --data-dir {not_utf8}", r"{not_utf8}/glue/RTE/train.tsv:4: byte 0xff", id="t-utf8"
    ),
    pytest.param(TRAIN + " --init-from {nan_adapter}", r"{nan_adapter}/adapter.safetensors tensor .* NaN", id="t-nan"),
    pytest.param(TRAIN + " --init-from {truncated}", r"{truncated}/adapter.safetensors is corrupt", id="t-truncated"),
    pytest.param(TRAIN + " --init-from {run}", r"{run} is a training run's folder: pass its adapter", id="t-init-run"),
    pytest.param(TRAIN + " --out {run}", r"already holds a run: pass --resume to continue it", id="train-earlier-run"),
    pytest.param(TRAIN + " --out {run} --overwrite --lr nan", r"--lr must be a finite number in", id="overwrite-lr"),
    pytest.param(TRAIN + " --out {run} --overwrite --init-from {nan_adapter}", r"holds NaN", id="overwrite-nan"),
    pytest.param(
        TRAIN + " --out {run} --overwrite --task rte --data-dir {not_utf8}", r"not UTF-8", id="overwrite-data"
    ),
    pytest.param(TRAIN + " --model {fresh}/no-model", r"cannot load model .*no-model", id="train-no-model"),
    pytest.param(
        TRAIN + " --model {missing_tensor_model}",
        r"the weights in '{missing_tensor_model}' lack 1 of the model's tensors "
        r"\('model.layers.0.mlp.down_proj.weight'\): the files are incomplete",
        id="train-model-missing-tensor",
    ),
    pytest.param(
        TRAIN + " --model {misshapen_model}",
        r"cannot load the model's weights from '{misshapen_model}' \(.*\): the files are corrupt or do not match",
        id="train-model-misshapen",
    ),
    pytest.param(
        TRAIN + " --model nope-model",
        r"cannot load model 'nope-model': no such folder here, and the hub id could not be fetched \(.*\): pass a "
        r"model folder, 'smollm2-135m', or a hub id reachable online$",
        id="train-hub-id-offline",
    ),
    pytest.param(TRAIN + " --out {not_a_run}", NOT_A_RUN, id="train-not-a-run"),
    pytest.param(TRAIN + " --out {not_a_run} --overwrite", NOT_A_RUN, id="overwrite-not-a-run"),
    pytest.param(TRAIN + " --out {not_a_run} --resume", NOT_A_RUN, id="resume-not-a-run"),
    pytest.param(
        TRAIN + " --out {checkpoint_dir} --resume",
        r"{checkpoint_dir}/checkpoint.pt is a folder, not the run's checkpoint.pt file: move it away",
        id="resume-checkpoint-folder",
    ),
    # ---- train on your own data: files, their fields and labels, the task's flags and its YAML spec ----
    pytest.param(OWN + " {fresh}/none.csv", r"data file .*none.csv does not exist: check the path$", id="own-none"),
    pytest.param(OWN + " {own}/empty.csv", r"data file {own}/empty.csv is empty: add a header", id="own-empty"),
    pytest.param(OWN + " {own}/header.csv", r"{own}/header.csv holds no rows \(a header only\?\)", id="own-header"),
    pytest.param(  # was: "cannot read … as JSON (… corresponds to no data!): … check its syntax", of valid JSON
        OWN + " {own}/empty-list.json",
        r"data file {own}/empty-list.json holds no rows \(an empty list\): add rows$",
        id="own-empty-list",
    ),
    pytest.param(
        OWN + " {own}/labels.csv",
        r"{own}/labels.csv: label values 'maybe' \(first at {own}/labels.csv row 2\) are not the task's labels "
        r"'negative', 'positive' nor indices 0-1: fix the rows, or map them with --label-values$",
        id="own-labels",
    ),
    pytest.param(
        OWN + " {own}/review.csv",
        r"{own}/review.csv has no field 'text' \(its fields: review, label\): fix --template \(or that key of the task "
        r"file\) or the data file$",
        id="own-field",
    ),
    pytest.param(
        OWN + " {own}/good.csv --label-field mood", r"has no field 'mood' .* fix --label-field", id="own-label-field"
    ),
    pytest.param(OWN + " {own}/broken.jsonl", r"cannot read {own}/broken.jsonl as JSONL \(", id="own-not-json"),
    pytest.param(OWN + " {own}/latin1.csv", r"{own}/latin1.csv:2: byte 0xe9 is not UTF-8: save", id="own-utf8"),
    pytest.param(
        OWN + " {own}/ragged.csv", r"ragged.csv:2: expected 2 fields .*found 3: quote a value", id="own-ragged"
    ),
    pytest.param(OWN + " {own}/short.csv", r"short.csv:3: expected 2 fields .*found 1: fill in", id="own-short-row"),
    pytest.param(OWN + " {own}/open_quote.csv", r"open_quote.csv:2: .*close a quote left open", id="own-open-quote"),
    pytest.param(OWN + " {own}/latin1.jsonl", r"{own}/latin1.jsonl:2: byte 0xe9 is not UTF-8: save", id="own-jl-utf8"),
    pytest.param(OWN + " {own}/deep.jsonl", r"cannot read {own}/deep.jsonl as JSONL \(.*\): save it", id="own-deep"),
    pytest.param(
        OWN + " {own}/number.jsonl", r"{own}/number.jsonl row 1: field 'text' must be text, got 5: write", id="own-5"
    ),
    pytest.param(OWN + " {own}/list.jsonl", r"list.jsonl row 2: field 'text' must be text, got \['a'\]", id="own-list"),
    pytest.param(OWN + " {own}/dict.jsonl", r"dict.jsonl row 1: field 'text' must be text, got \{{'a'", id="own-dict"),
    pytest.param(OWN + " {own}/bool.jsonl", r"bool.jsonl row 1: field 'text' must be text, got True", id="own-bool"),
    pytest.param(  # a list of numbers: datasets read it as one column named "text", and said the label was missing
        OWN + " {own}/scalars.json",
        r"{own}/scalars.json row 1 is 1, not a record with fields: write one JSON object per row",
        id="own-json-scalars",
    ),
    pytest.param(
        OWN + " {own}/lists.jsonl",
        r"{own}/lists.jsonl row 2 is \[1, 2\], not a record with fields: write one JSON object per row",
        id="own-jsonl-list-row",
    ),
    pytest.param(  # was: "save it as UTF-8 records and check its syntax", advice for a text file
        OWN + " {own}/broken.parquet",
        r"cannot read {own}/broken.parquet as Parquet \(.*\): it is not a whole Parquet file; write it again",
        id="own-parquet",
    ),
    pytest.param(
        OWN + " {own}/good.csv --test-file {own}/good.csv",
        r"--test-file {own}/good.csv is the same file as --train-file: the test score would be on training rows; "
        r"pass a held-out file$",
        id="own-test-is-train",
    ),
    pytest.param(  # compared by resolved path, not by text: a link to the train file is the train file
        OWN + " {own}/good.csv --validation-file {own}/link.csv",
        r"--validation-file {own}/link.csv is the same file as --train-file \({own}/good.csv\): the best step would "
        r"be chosen on training rows; pass a held-out file$",
        id="own-validation-is-train",
    ),
    pytest.param(
        OWN + " {own}/good.csv --validation-file {own}/dev.csv --test-file {own}/dev.csv",
        r"--test-file {own}/dev.csv is the same file as --validation-file: the test score would be on the rows the "
        r"best step was chosen on; pass a held-out file$",
        id="own-test-is-validation",
    ),
    pytest.param(
        OWN + " {own}/good.csv --template '{{text:>5}}'",
        r"--template '\{{text:>5\}}' has the field \{{text:>5\}}: write each field as a row field's name in braces",
        id="own-template-spec",
    ),
    pytest.param(OWN + " {own}/good.csv --template '{{text!r}}'", r"has the field \{{text!r\}}", id="own-conv"),
    pytest.param(OWN + " {own}/good.csv --template 'Q: {{0}}'", r"has the field \{{0\}}: write", id="own-position"),
    pytest.param(OWN + " {own}/good.csv --template 'Q: {{}}'", r"has the field \{{\}}: write", id="own-empty-field"),
    pytest.param(
        OWN + " {own}/good.csv --template 'x {{text}} {{label}}'",
        r"shows the answer field 'label' to the model: remove \{{label\}} from the template$",
        id="own-answer-in-template",
    ),
    pytest.param(
        OWN + " {own}/good.csv --max-new-tokens 5",
        r"--max-new-tokens applies to free-form generation \(--target-field\): .* drop it$",
        id="own-max-new-tokens-classification",
    ),
    pytest.param(
        TRAIN + " --max-new-tokens 5",
        r"--max-new-tokens applies to your own data: pass --train-file FILE or --dataset HUB_ID with it, or drop it$",
        id="own-flag-without-data",
    ),
    pytest.param(  # was: accepted and ignored
        TRAIN + " --train-file {own}/qa.jsonl --template 'q {{question}}' --target-field answer --label-field answer",
        r"--label-field applies to classification \(--label-words\): a --target-field task reads its answer from "
        r"--target-field alone; drop it$",
        id="own-label-field-generation",
    ),
    pytest.param(  # was: "--label-values has 2 values for 0 label words"
        TRAIN + " --train-file {own}/qa.jsonl --template 'q {{question}}' --target-field answer --label-values a,b",
        r"--label-values applies to classification \(--label-words\): a --target-field task answers with its target "
        r"field's text; drop it$",
        id="own-label-values-generation",
    ),
    pytest.param(
        TRAIN + " --label-field stars --max-new-tokens 5",
        r"--label-field, --max-new-tokens apply to your own data: .* with them, or drop them$",
        id="own-flags-without-data",
    ),
    pytest.param(
        TRAIN + " --dataset :cfg --template '{{text}}' --target-field y",
        r"--dataset ':cfg' names no dataset: pass owner/name or owner/name:config$",
        id="own-dataset-config-only",
    ),
    pytest.param(OWN + " {own}/data.xlsx", r"unknown data file type '.xlsx': use a .csv, .tsv", id="own-suffix"),
    pytest.param(OWN + " {own}/null.jsonl", r"{own}/null.jsonl row 1: field 'text' is empty", id="own-null"),
    pytest.param(
        OWN + " {own}/good.csv --task rte",
        r"--task rte is a built-in task, which reads its own data: .* \(e.g. --task my-rte\)$",
        id="own-builtin-name",
    ),
    pytest.param(  # the default task's name, given: was ignored, the task named after the file
        OWN + " {own}/good.csv --task polarity",
        r"--task polarity is a built-in task, which reads its own data: .* \(e.g. --task my-polarity\)$",
        id="own-default-name",
    ),
    pytest.param(OWN + " {own}", r"data file {own} is a folder, not a file: pass the file itself$", id="own-folder"),
    pytest.param(
        TRAIN + " --train-file {own}/good.csv --template 'x {{text}}'", r"pass exactly one$", id="own-no-answer"
    ),
    pytest.param(
        TRAIN + " --train-file {own}/good.csv --label-words a,b", r"needs a template \(the input", id="own-no-template"
    ),
    pytest.param(
        OWN + " {own}/good.csv --template 'no fields'", r"must name the row's fields in braces", id="own-template"
    ),
    pytest.param(OWN + " {own}/good.csv --label-words good", r"at least two different", id="own-one-word"),
    pytest.param(
        OWN + " {own}/good.csv --dataset a/b", r"pass --train-file FILE or --dataset HUB_ID, not both", id="own-both"
    ),
    pytest.param(
        TRAIN + " --dataset nobody/nothing --template '{{text}}' --target-field y",
        r"cannot load dataset 'nobody/nothing' \(.*\): pass a hub id reachable online",
        id="own-dataset-offline",
    ),
    pytest.param(TRAIN + " --task {own}/bogus.yaml", r"{own}/bogus.yaml: unknown keys bogus; known", id="own-yaml-key"),
    pytest.param(TRAIN + " --task {fresh}/no.yaml", r"task file .*no.yaml does not exist", id="own-yaml-missing"),
    pytest.param(
        TRAIN + " --task {own}/folder.yaml", r"task file .*folder.yaml is a folder, not a file", id="own-yaml-dir"
    ),
    pytest.param("train --config {own}", r"config file {own} is a folder, not a file: pass the path", id="yaml-folder"),
    pytest.param(
        TRAIN + " --set =3", r"argument --set: '=3' lacks the option's name: write NAME=VALUE", id="set-no-name"
    ),
    pytest.param(
        TRAIN + " --model ''", r"--model is empty: pass 'smollm2-135m', a model folder", id="train-model-empty"
    ),
    pytest.param(
        TRAIN + " --model {empty_dir}",
        r"cannot load model '{empty_dir}': the folder holds no config.json, so it is no saved model; pass a folder",
        id="train-model-empty-folder",
    ),
    pytest.param(
        TRAIN + " --model {own}/good.csv", r"cannot load model .*good.csv': it is a file, not a folder", id="model-file"
    ),
    pytest.param(TRAIN + " --task {own}/rte.yaml", r"task name 'rte' is a built-in task's", id="own-yaml-builtin"),
    pytest.param(EVAL + " --adapter {adapter} --task {fresh}/no.yaml", r"task file .*no.yaml does not", id="eval-yaml"),
    pytest.param(EVAL + " --adapter {adapter} --model ''", r"--model is empty: pass", id="eval-model-empty"),
    pytest.param(PREDICT + " --input {rows} --model ''", r"--model is empty: pass", id="predict-model-empty"),
    # ---- eval: its options and every kind of corrupt adapter ----
    pytest.param(EVAL + " --adapter {nan_adapter}", r"tensor 'weight' holds NaN or inf values", id="eval-nan"),
    pytest.param(
        EVAL + " --adapter {inf_adapter}", r"{inf_adapter}/adapter.safetensors tensor 'weight'", id="eval-inf"
    ),
    pytest.param(
        EVAL + " --adapter {truncated}", r"{truncated}/adapter.safetensors is corrupt \(", id="eval-truncated"
    ),
    pytest.param(EVAL + " --adapter {random_bytes}", r"{random_bytes}/adapter.safetensors is corrupt", id="eval-bytes"),
    pytest.param(EVAL + " --adapter {int_tensors}", r"tensor 'weight' holds torch.int64 values", id="eval-int-tensor"),
    pytest.param(
        EVAL + " --adapter {json_n_virtual}",
        r"adapter.json: its prompt config gives 4 virtual tokens, its n_virtual 3: the file was edited",
        id="eval-n-virtual",
    ),
    pytest.param(
        EVAL + " --adapter {adapter} --task {own}/qa.yaml --scorer rank",
        r"task qa has no label words for rank classification: use the generate scorer \(--scorer generate\)$",
        id="eval-rank-free-form",
    ),
    pytest.param(
        EVAL + " --adapter {adapter} --task {own}/unknown_words.yaml --scorer generate",
        r"label words 'zzz' and 'qqq' are the same tokens to this tokenizer \(<unk> </s>\): choose words it tells",
        id="eval-generate-same-tokens",
    ),
    pytest.param(
        EVAL + " --adapter {adapter} --model {truncated_model}",
        r"cannot load the model's weights from '{truncated_model}' \(Error while deserializing header: .*\): the "
        r"files are corrupt or do not match its config.json; save the model again with save_pretrained$",
        id="eval-model-truncated",
    ),
    pytest.param(EVAL + " --adapter {no_weights}", r"has no adapter.safetensors: the save was incomplete", id="no-wt"),
    pytest.param(EVAL + " --adapter {json_list}", r"{json_list}/adapter.json is corrupt .*a JSON list", id="json-list"),
    pytest.param(
        EVAL + " --adapter {json_width}", r"'embedding_width' is '32', not a positive integer", id="json-type"
    ),
    pytest.param(
        EVAL + " --adapter {json_kind}", r"backbone 'kind' is None, not one of seq2seq, causal", id="json-no-kind"
    ),
    pytest.param(EVAL + " --adapter {json_task}", r"'task' is \['polarity'\], not text", id="json-task-type"),
    pytest.param(EVAL + " --adapter {json_seed}", r"'seed' is -1, not an integer from 0 to", id="json-seed"),
    pytest.param(EVAL + " --adapter {json_length}", r"'max_length' is 0, not a positive integer", id="json-max-length"),
    pytest.param(EVAL + " --adapter {json_bytes}", r"{json_bytes}/adapter.json is corrupt .*utf-8", id="json-not-utf8"),
    pytest.param(EVAL + " --adapter {json_version}", r"format_version 99, this lamp reads 1 to 1", id="json-version"),
    pytest.param(
        EVAL + " --adapter {json_prompt}", r"invalid prompt config: length must be a positive", id="json-prompt"
    ),
    pytest.param(EVAL + " --adapter {fresh}", r"no adapter at .*: no such folder$", id="eval-no-adapter"),
    pytest.param(EVAL + " --adapter {empty_dir}", r"no adapter at .*adapter.json is missing", id="eval-empty-dir"),
    pytest.param(
        EVAL + " --adapter {run}", r"{run} is a training run's folder: pass its adapter, {run}/adapter$", id="eval-run"
    ),
    pytest.param(
        EVAL + " --adapter {model}",
        r"{model} holds a model, not an adapter: pass it as --model, and the adapter's folder as --adapter$",
        id="eval-model-as-adapter",
    ),
    pytest.param(
        EVAL + " --adapter {adapter} --batch-size 0", r"--batch-size: must be a positive integer", id="eval-b0"
    ),
    pytest.param(EVAL + " --adapter {adapter} --split dev", r"--split: invalid choice: 'dev'", id="eval-split"),
    pytest.param(EVAL + " --adapter {adapter} --seed=-1", r"--seed: must be an integer from 0 to", id="eval-seed"),
    pytest.param(EVAL + " --adapter {adapter} --task nope", r"unknown task 'nope'", id="eval-unknown-task"),
    pytest.param("eval --task rte", r"the following arguments are required: --adapter", id="eval-no-adapter-flag"),
    pytest.param(  # was: "data file .../moved.csv does not exist: check the path", a path the user never typed
        "eval --adapter {moved_adapter}",
        r"data file {own}/moved.csv does not exist: adapter {moved_adapter} recorded it for its task 'reviews' when "
        r"it was trained; put the file back there, or pass --task with a task file that names where it is now$",
        id="eval-own-data-moved",
    ),
    # ---- predict: input files and options ----
    pytest.param(PREDICT + " --input {rows_not_utf8}", r"{rows_not_utf8} line 2: byte 0xe9 is not UTF-8", id="p-utf8"),
    pytest.param(PREDICT + " --input {rows_empty}", r"{rows_empty} holds no rows", id="predict-empty"),
    pytest.param(PREDICT + " --input {rows_missing}", r"line 2 \(polarity\) lacks field 'sentence'", id="p-field"),
    pytest.param(
        PREDICT + " --input {rows_unknown}",
        r"line 1 names task 'nope', which no adapter serves: known tasks polarity",
        id="predict-unknown-task",
    ),
    pytest.param(  # a built-in task without an adapter is named as such, not by the field its row lacks
        PREDICT + " --input {rows_other_task}",
        r"line 1 names task 'rte', which no adapter serves: known tasks polarity",
        id="predict-task-without-adapter",
    ),
    pytest.param(PREDICT + " --input {rows_no_task}", r"line 1 names no task", id="predict-no-task"),
    pytest.param(PREDICT + " --input {rows_not_json}", r"line 1 is not JSON", id="predict-not-json"),
    pytest.param(
        PREDICT + " --input {rows_csv}",
        r"{rows_csv} line 1 is not JSON \(lamp predict reads JSON lines, not CSV\): write one JSON object per line$",
        id="predict-csv",
    ),
    pytest.param(  # was: "no adapter at =DIR"
        "predict --adapter ={adapter} --input {rows}",
        r"--adapter '={adapter}' lacks its task: pass TASK=DIR or DIR$",
        id="predict-adapter-no-task",
    ),
    pytest.param(PREDICT + " --input {rows_source}", r"line 1 \(polarity\): 'source' must be text", id="p-source"),
    pytest.param(PREDICT + " --input {fresh}/in.jsonl", r"input file .* does not exist", id="predict-no-input"),
    pytest.param(  # was: "does not exist"
        PREDICT + " --input {own}", r"input file {own} is a folder, not a file: pass a JSON-lines file", id="p-folder"
    ),
    pytest.param(  # was: accepted, and the output line held NaN, which strict JSON readers refuse
        PREDICT + " --input {rows_nan}",
        r"{rows_nan} line 1 holds NaN, which JSON does not allow \(the output would not be JSON either\): write a "
        r"number or a string$",
        id="p-nan",
    ),
    pytest.param(  # was: "does not exist"
        PREDICT + " --input {own}/loop.jsonl", r"input file {own}/loop.jsonl is a symbolic link loop: pass", id="p-loop"
    ),
    pytest.param(
        "compare --config {own}/pipe.jsonl", r"recipe {own}/pipe.jsonl is not a regular file: pass", id="recipe-pipe"
    ),
    pytest.param(  # was: scored silently, while training refuses an empty field of a user's own rows
        "predict --adapter {own_adapter} --input {rows_own_empty}",
        r"{rows_own_empty} line 2 \(reviews\): field 'text' is empty: fill it or drop the row$",
        id="p-own-empty-field",
    ),
    pytest.param(
        PREDICT + " --input {rows_blank_source}", r"line 1 \(polarity\): 'source' is empty: fill it", id="p-no-source"
    ),
    pytest.param(  # was: the source was read and the sentence dropped, silently
        PREDICT + " --input {rows_both}",
        r"line 1 \(polarity\) has both 'source' \(ready text\) and the task's field 'sentence': keep 'source' or the "
        r"fields, not both$",
        id="p-source-and-fields",
    ),
    pytest.param(
        PREDICT + " --input {rows_number}", r"line 1 \(polarity\): field 'sentence' must be text, got 5", id="p-5"
    ),
    pytest.param(PREDICT + " --input {rows_null}", r"line 2 \(polarity\): field 'sentence' must be text", id="p-null"),
    pytest.param(
        PREDICT + " --input {rows_label}",
        r"{rows_label} line 1 \(polarity\) has an unusable label \(label 'maybe' is not one of",
        id="predict-bad-label",
    ),
    pytest.param(
        PREDICT + " --input {rows} --output {rows}", r"--output .* is the --input file: choose another", id="p-same"
    ),
    pytest.param(PREDICT + " --input {rows} --batch-size 0", r"--batch-size: must be a positive integer", id="p-b0"),
    pytest.param(PREDICT + " --input {rows} --max-length 0", r"--max-length: must be a positive integer", id="p-len"),
    pytest.param(PREDICT + " --input {rows} --batch-size 1.5", r"--batch-size: must be a positive .*'1.5'", id="p-b"),
    pytest.param("predict --adapter {nan_adapter} --input {rows}", r"tensor 'weight' holds NaN", id="predict-nan"),
    pytest.param("predict --adapter {json_list} --input {rows}", r"adapter.json is corrupt", id="predict-json"),
    # ---- export and inspect: corrupt adapters ----
    pytest.param("export --adapter {nan_adapter} --out {fresh}", r"tensor 'weight' holds NaN", id="export-nan"),
    pytest.param("export --adapter {random_bytes} --out {fresh}", r"safetensors is corrupt", id="export-bytes"),
    pytest.param("export --adapter {json_width} --out {fresh}", r"'embedding_width' is '32'", id="export-json"),
    pytest.param("export --adapter {fresh}/none --out {fresh}", r"none: no such folder$", id="export-missing"),
    pytest.param(
        "export --adapter {adapter} --out ''", r"argument --out: is empty: pass a path", id="export-out-empty"
    ),
    pytest.param("inspect --adapter {adapter} --out ' '", r"argument --out: is empty: pass a path", id="inspect-empty"),
    pytest.param(PREDICT + " --input {rows} --output ''", r"argument --output: is empty: pass", id="predict-out-empty"),
    pytest.param(
        "export --adapter {adapter} --out {not_a_run}",
        r"{not_a_run} holds files that are not a PEFT export: choose another --out; lamp never overwrites them$",
        id="export-not-an-export",
    ),
    pytest.param("inspect --adapter {nan_adapter} --out {fresh}", r"tensor 'weight' holds NaN", id="inspect-nan"),
    pytest.param("inspect --adapter {adapter} --compare {truncated} --out {fresh}", r"is corrupt", id="inspect-cmp"),
    pytest.param("inspect --adapter {json_kind} --out {fresh}", r"backbone 'kind' is None", id="inspect-json"),
    # ---- data: malformed task files and options ----
    pytest.param(
        "data polarity --split test", r"--split applies to --show only: add --show N, or drop --split$", id="d-split"
    ),
    pytest.param(
        "data polarity --json --format natural", r"--format applies to --show only: add --show N", id="d-format"
    ),
    pytest.param("data rte --data-dir {header_only}", r"{header_only}/glue/RTE/train.tsv holds no rows", id="d-header"),
    pytest.param("data polarity --data-dir {empty_csv}", r"polarity/polarity.csv holds no rows", id="data-empty"),
    pytest.param("data cb --data-dir {empty_jsonl}", r"{empty_jsonl}/superglue/CB/val.jsonl holds no rows", id="d-jl"),
    pytest.param("data rte --data-dir {not_utf8}", r"{not_utf8}/glue/RTE/train.tsv:4: byte 0xff is not", id="d-utf8"),
    pytest.param("data cb --data-dir {jsonl_not_utf8}", r"CB/train.jsonl:2: byte 0xe9 is not UTF-8", id="d-jl-utf8"),
    pytest.param("data rte --data-dir {huge_tsv}", r"RTE/train.tsv:4: malformed TSV \(field larger", id="data-huge"),
    pytest.param("data polarity --data-dir {huge_csv}", r"polarity.csv:2: malformed CSV \(field larger", id="d-quote"),
    pytest.param("data rte --data-dir {tiny_dev}", r"rte: the test split would be empty under the protocol", id="d-0"),
    pytest.param("data nope", r"unknown task 'nope'", id="data-unknown-task"),
    pytest.param("data rte --data-dir {fresh}/nowhere", r"nowhere \(--data-dir\) does not exist", id="data-no-dir"),
    pytest.param("data rte --data-dir {own}/good.csv", r"good.csv \(--data-dir\) is a file, not a folder", id="d-file"),
    pytest.param(
        "data cb --data-dir {deep_jsonl}", r"CB/train.jsonl:2: not valid JSON \(nested too deeply\)", id="d-deep"
    ),
    pytest.param("data rte --data-dir {data} --show 0", r"--show: must be a positive integer, got '0'", id="show-0"),
    pytest.param("data rte --data-dir {data} --show=-2", r"--show: must be a positive integer", id="data-show-neg"),
    pytest.param("data rte --data-dir {data} --seed=-1", r"--seed: must be an integer from 0", id="data-seed"),
    # ---- compare: flags and the recipe's numbers ----
    pytest.param("compare --max-steps 0 --out {fresh}", r"max_steps must be a positive integer, got 0", id="cmp-steps"),
    pytest.param("compare --seeds -1 --out {fresh}", r"seeds must hold integers from 0 to 4294967295", id="cmp-seed"),
    pytest.param(
        "compare --seeds 1 1 --out {fresh}",
        r"seeds lists a value twice: \[1, 1\]: list each value once$",
        id="compare-seed-twice",
    ),
    pytest.param(
        "compare --lrs lamp=nan --out {fresh}", r"lrs of lamp must hold finite numbers in \(0, 1e\+06\]", id="cmp-lr"
    ),
    pytest.param(
        "compare --lrs lamp=0 --out {fresh}", r"lrs of lamp must hold finite numbers in \(0, 1e\+06\]", id="cmp-lr-0"
    ),
    pytest.param("compare --sweep-seeds 0 --out {fresh}", r"sweep_seeds must be a positive integer", id="cmp-sweep"),
    pytest.param(
        "compare --config {recipe_steps}", r"max_steps must be a positive integer, got 2.5", id="recipe-steps"
    ),
    pytest.param("compare --config {recipe_steps} --quick", r"max_steps must be a positive integer", id="quick-steps"),
    pytest.param("compare --config {recipe_seeds}", r"seeds must hold integers from 0", id="recipe-seeds"),
    pytest.param("compare --config {recipe_train}", r"train must be a mapping, got \[1, 2\]", id="recipe-train"),
    pytest.param("compare --config {recipe_syntax}", r"is not valid YAML \(line 3: expected ','", id="recipe-syntax"),
    pytest.param(
        "compare --config {recipe_twice}",
        r"is not valid YAML \(line 4: key 'lamp' is given twice: keep one\)$",
        id="recipe-twice",
    ),
    pytest.param("train --config {recipe_twice}", r"line 4: key 'lamp' is given twice", id="yaml-twice"),
    pytest.param("compare --config {recipe_empty}", r"recipe .*recipe_empty.yaml is empty: give it", id="recipe-empty"),
    pytest.param("compare --config /dev/null", r"recipe /dev/null is not a regular file: pass", id="recipe-dev"),
    pytest.param(
        "compare --config {recipe_list} --train batch_size=4 --train batch_size=8 --out {fresh}",
        r"--train batch_size=4 and --train batch_size=8 disagree: pass one$",
        id="compare-train-twice",
    ),
    pytest.param(BENCH.replace("--out {fresh}", "--out ''"), r"argument --out: is empty", id="bench-out-empty"),
    pytest.param(
        "compare --config {recipe_list}", r"must hold a mapping of key: value \(keys: model, ", id="recipe-list"
    ),
    pytest.param(  # was: refused with --quick only, and trained the grid without it
        "compare --config {recipe_quick_list} --out {fresh}",
        r"recipe key quick must be a path or a mapping, got \[1\]$",
        id="recipe-quick-list",
    ),
    pytest.param(  # was: "unknown method 'mine' ... or define mine under methods:", where it was defined
        "compare --config {recipe_method_empty} --out {fresh}",
        r"methods: mine is empty: give it method: <registered name> \(.*\) and its options$",
        id="recipe-method-empty",
    ),
    pytest.param(
        "train --config {recipe_syntax}", r"recipe_syntax.yaml is not valid YAML \(line 3: ", id="yaml-syntax"
    ),
    pytest.param("compare --config {recipe_lrs} --quick", r"lrs of lamp must be a non-empty list", id="quick-lrs"),
    pytest.param(
        "compare --train max_grad_norm=nan", r"train: max_grad_norm must be a finite number >= 0", id="cmp-clip"
    ),
    pytest.param("compare --train batch_size=2.5", r"train: batch_size must be a positive integer", id="cmp-batch"),
    pytest.param(
        "compare --train lr=0.1",
        r"train options lr cannot be shared by a grid: the grid sets them itself; give lr under lrs:$",
        id="compare-shared-lr",
    ),
    pytest.param(
        "compare --train resume=true --train method_options=1",
        r"train options method_options, resume cannot be .* give method_options under methods:; it resumes on its own",
        id="compare-shared-method-options",
    ),
    pytest.param(  # was: "cannot be shared by a grid", as if it were a train option
        "compare --train batchsize=4",
        r"train: 'batchsize' is not a lamp train option \(did you mean 'batch_size'\?\): choose from .*batch_size",
        id="compare-train-unknown",
    ),
    pytest.param(
        "compare --train rank=40",
        r"train: rank is a method option: give it under methods:, e.g. methods: \{{lamp: \{{rank: \.\.\.\}}\}}$",
        id="compare-train-method-option",
    ),
    pytest.param("compare --tasks nope", r"unknown task 'nope'", id="compare-unknown-task"),
    pytest.param(
        "compare --methods pt --lrs lamp=0.5 --report-only --out {fresh}",
        r"--lrs names lamp, which is not one of the grid's methods \(pt\): drop it or add it to --methods$",
        id="compare-lrs-not-in-methods",
    ),
    pytest.param(
        "compare --methods lamp --lrs pt=0.1 --report-only --out {fresh}",
        r"--lrs names pt, which is not one of the grid's methods \(lamp\): drop it or add it to --methods$",
        id="compare-lrs-other-method",
    ),
    pytest.param(
        "compare --config {recipe_lrs_unknown} --report-only --out {fresh}",
        r"recipe key lrs names pt, which is not one of the grid's methods \(lamp\): drop it or add it to the recipe",
        id="recipe-lrs-not-in-methods",
    ),
    pytest.param(
        "compare --model {model} --methods pt --max-steps 1 --out {not_a_run}",
        r"{not_a_run} holds files that are not a lamp comparison: choose another --out; lamp never overwrites them$",
        id="compare-not-a-grid",
    ),
    pytest.param(  # a report (and --reuse's rows) would be written there too
        "compare --model {model} --methods pt --max-steps 1 --out {not_a_run} --report-only",
        r"{not_a_run} holds files that are not a lamp comparison: choose another --out; lamp never overwrites them$",
        id="compare-report-only-not-a-grid",
    ),
    # ---- bench: the setup's numbers and method specs ----
    pytest.param(BENCH + " --batch-size 0", r"--batch-size must be a positive integer, got 0", id="bench-batch"),
    pytest.param(BENCH + " --seq-len 0", r"--seq-len must be a positive integer", id="bench-seq-len"),
    pytest.param(  # was: an overflow traceback (--isolate none) or an error ending in a bare quote (a worker)
        BENCH + " --batch-size 99999999999999999999",
        r"--batch-size 99999999999999999999 x \(--seq-len 64 \+ --target-len 2\) is 6.6e\+21 tokens in one batch, more "
        r"than the 2,147,483,647 a tensor index takes: pass smaller sizes$",
        id="bench-huge-batch",
    ),
    pytest.param(  # was: accepted, as if the empty option were not there
        BENCH.replace("--methods none", "--methods lamp:length=4,,rank=2"),
        r"empty option in 'lamp:length=4,,rank=2': write options as key=value separated by single commas$",
        id="bench-empty-option",
    ),
    pytest.param(BENCH + " --steps 0", r"--steps must be a positive integer", id="bench-steps"),
    pytest.param(BENCH + " --dtype int8", r"argument --dtype: invalid choice: 'int8'", id="bench-dtype"),
    pytest.param(BENCH + " --warmup=-1", r"--warmup must be an integer >= 0, got -1", id="bench-warmup"),
    pytest.param(BENCH + " --repeats 0", r"--repeats must be a positive integer", id="bench-repeats"),
    pytest.param(  # was: the last value taken, the row labelled with both
        BENCH + " --methods lamp:length=8,length=16",
        r"option 'length' is given twice in 'lamp:length=8,length=16': keep one$",
        id="bench-option-twice",
    ),
    pytest.param(  # was: "write options as key=value", as if the option were not
        BENCH + " --methods lora:rank=4,target_modules=q_proj,v_proj",
        r"bad option 'v_proj' in .*': options are separated by commas, so a value holds none; give several module",
        id="bench-option-list",
    ),
    pytest.param(BENCH + " --threads=-1", r"--threads must be an integer >= 0", id="bench-threads"),
    pytest.param(
        BENCH + " --threads 100000 --steps 1",
        r"--threads 100000 exceeds this machine's \d+ CPUs?: pass at most \d+$",
        id="bench-threads-above-cpus",
    ),
    pytest.param(BENCH + " --seed=-1", r"--seed must be an integer from 0 to", id="bench-seed"),
    pytest.param(BENCH + " --methods lora:alpha=inf", r"alpha must be a finite number > 0, got 'inf'", id="bench-inf"),
    pytest.param(BENCH + " --methods lamp:rank=nan", r"rank must be a positive integer, got 'nan'", id="bench-nan"),
    pytest.param(BENCH + " --steps 2.5", r"argument --steps: invalid int value: '2.5'", id="bench-steps-frac"),
    pytest.param("bench --model random:gpt-9 --methods none", r"unknown architecture 'gpt-9'", id="bench-arch"),
    pytest.param(
        BENCH + " --seq-len 100000",
        r"--seq-len 100000 and the 0 prompt rows of none exceed the 512 positions of random:tiny-llama: pass "
        r"--seq-len 512 or less$",
        id="bench-seq-len-positions",
    ),
    pytest.param(
        BENCH + " --seq-len 510 --methods none pt:length=4",
        r"--seq-len 510 and the 4 prompt rows of pt:length=4 exceed the 512 positions .*: pass --seq-len 508 or less",
        id="bench-seq-len-prompt",
    ),
]

# A few rows again through a real process: the exit code the shell sees.
PROCESS_ROWS = [
    pytest.param(TRAIN + " --lr nan", r"--lr must be a finite number in \(0, 1e\+06\], got nan$", id="train-lr-nan"),
    pytest.param("data rte --data-dir {not_utf8}", r"train.tsv:4: byte 0xff is not UTF-8", id="data-not-utf8"),
]


# ---- the files the rows point at -------------------------------------------------------------------------------
RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
RTE_ROWS = "".join(
    f"{i}\tthe movie was good\tit is good\t{('entailment', 'not_entailment')[i % 2]}\n" for i in range(4)
)
POLARITY = "".join(f'"{1 if i % 2 else -1}","the film was {"good" if i % 2 else "bad"}"\n' for i in range(20))
CB_ROW = json.dumps({"premise": "P.", "hypothesis": "H.", "label": "neutral", "idx": 0}) + "\n"


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def variant(good: Path, folder: Path, tensors=None, config=None, weights: bytes | None = None) -> Path:
    """A copy of the good adapter with its tensors, its config (a dict, or raw bytes) or its weight file replaced."""
    folder.mkdir(parents=True)
    saved = json.loads((good / CONFIG).read_text())
    config = config(saved) if callable(config) else config
    write(folder / CONFIG, config if isinstance(config, bytes) else json.dumps(config if config else saved))
    if weights is not None:
        write(folder / WEIGHTS, weights)
    else:
        save_file(tensors or load_file(good / WEIGHTS), folder / WEIGHTS)
    return folder


def edited(**changes):
    """A config editor: `edited(backbone={"kind": None})` merges into the saved config's sections."""

    def edit(saved):
        for key, value in changes.items():
            saved[key] = {**saved[key], **value} if isinstance(value, dict) else value
        return saved

    return edit


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("world")
    paths: dict[str, Path] = {}
    model = paths["model"] = root / "model"
    make_llama().save_pretrained(model)
    make_tokenizer().save_pretrained(model)
    prompted = lamp.wrap(load_model(str(model)), lamp.PromptTuningConfig(length=4))
    prompted.backbone_name = str(model)
    good = paths["adapter"] = save_adapter(prompted, root / "adapter", extra={"task": "polarity"})
    ((name, prompt),) = load_file(good / WEIGHTS).items()  # a PT prompt: one tensor, "weight"
    bad_row = torch.tensor([1])
    paths["nan_adapter"] = variant(good, root / "nan", {name: prompt.clone().index_fill_(0, bad_row, torch.nan)})
    paths["inf_adapter"] = variant(good, root / "inf", {name: prompt.clone().index_fill_(0, bad_row, torch.inf)})
    paths["int_tensors"] = variant(good, root / "int_tensors", tensors={name: prompt.long()})
    whole = (good / WEIGHTS).read_bytes()
    paths["truncated"] = variant(good, root / "truncated", weights=whole[: len(whole) // 2])
    paths["random_bytes"] = variant(good, root / "random_bytes", weights=os.urandom(len(whole)))
    paths["no_weights"] = variant(good, root / "no_weights")
    (paths["no_weights"] / WEIGHTS).unlink()
    paths["json_list"] = variant(good, root / "json_list", config=b"[]")
    paths["json_width"] = variant(good, root / "json_width", config=edited(backbone={"embedding_width": "32"}))
    paths["json_kind"] = variant(good, root / "json_kind", config=edited(backbone={"kind": None}))
    paths["json_task"] = variant(good, root / "json_task", config=edited(task=["polarity"]))
    paths["json_seed"] = variant(good, root / "json_seed", config=edited(seed=-1))
    paths["json_length"] = variant(good, root / "json_length", config=edited(max_length=0))
    paths["json_version"] = variant(good, root / "json_version", config=edited(format_version=99))
    paths["json_prompt"] = variant(good, root / "json_prompt", config=edited(prompt={"length": 0}))
    paths["json_n_virtual"] = variant(good, root / "json_n_virtual", config=edited(n_virtual=3))
    paths["json_bytes"] = variant(
        good, root / "json_bytes", config=(good / CONFIG).read_bytes().replace(b"pt", b"\xff")
    )

    data = paths["data"] = root / "data"
    write(data / "polarity/polarity.csv", POLARITY)
    write(data / "glue/RTE/train.tsv", RTE_HEADER + RTE_ROWS)
    write(data / "glue/RTE/dev.tsv", RTE_HEADER + RTE_ROWS)
    paths["header_only"] = root / "header_only"
    write(root / "header_only/glue/RTE/train.tsv", RTE_HEADER)
    write(root / "header_only/glue/RTE/dev.tsv", RTE_HEADER + RTE_ROWS)
    paths["not_utf8"] = root / "not_utf8"
    write(root / "not_utf8/glue/RTE/train.tsv", (RTE_HEADER + RTE_ROWS).encode().replace(b"2\tthe", b"2\tth\xff"))
    write(root / "not_utf8/glue/RTE/dev.tsv", RTE_HEADER + RTE_ROWS)
    paths["huge_tsv"] = root / "huge_tsv"
    write(root / "huge_tsv/glue/RTE/train.tsv", RTE_HEADER + RTE_ROWS.replace("2\tthe", "2\t" + "x" * 200_000))
    write(root / "huge_tsv/glue/RTE/dev.tsv", RTE_HEADER + RTE_ROWS)
    paths["huge_csv"] = root / "huge_csv"  # an unclosed quote swallows the rest of the file into one field
    write(root / "huge_csv/polarity/polarity.csv", '"1","fine"\n"-1","never closed\n' + "x" * 200_000 + "\n")
    paths["empty_csv"] = root / "empty_csv"
    write(root / "empty_csv/polarity/polarity.csv", "")
    paths["tiny_dev"] = root / "tiny_dev"
    write(root / "tiny_dev/glue/RTE/train.tsv", RTE_HEADER + RTE_ROWS)
    write(root / "tiny_dev/glue/RTE/dev.tsv", RTE_HEADER + RTE_ROWS.splitlines(keepends=True)[0])
    paths["empty_jsonl"] = root / "empty_jsonl"
    write(root / "empty_jsonl/superglue/CB/train.jsonl", CB_ROW * 2)
    write(root / "empty_jsonl/superglue/CB/val.jsonl", "\n")
    paths["jsonl_not_utf8"] = root / "jsonl_not_utf8"
    write(
        root / "jsonl_not_utf8/superglue/CB/train.jsonl", CB_ROW.encode() + CB_ROW.encode().replace(b"P.", b"caf\xe9")
    )
    write(root / "jsonl_not_utf8/superglue/CB/val.jsonl", CB_ROW * 2)
    paths["deep_jsonl"] = root / "deep_jsonl"  # json's parser recurses once per [
    write(root / "deep_jsonl/superglue/CB/train.jsonl", CB_ROW + '{"premise": ' + "[" * 100_000 + "\n")
    write(root / "deep_jsonl/superglue/CB/val.jsonl", CB_ROW * 2)
    paths["empty_dir"] = root / "empty_dir"  # a folder with no model in it
    paths["empty_dir"].mkdir()
    weights = load_file(model / "model.safetensors")
    for name, change in {  # a model folder whose weight file is cut short, lacks a tensor, or holds a misshapen one
        "truncated_model": lambda: (model / "model.safetensors").read_bytes()[:1000],
        "missing_tensor_model": lambda: {
            k: v for k, v in weights.items() if k != "model.layers.0.mlp.down_proj.weight"
        },
        "misshapen_model": lambda: {**weights, "model.norm.weight": torch.ones(7)},
    }.items():
        copy = paths[name] = root / name
        shutil.copytree(model, copy)
        changed = change()
        if isinstance(changed, bytes):
            (copy / "model.safetensors").write_bytes(changed)
        else:
            save_file(changed, copy / "model.safetensors", metadata={"format": "pt"})

    own = paths["own"] = root / "own"  # a user's own data files
    good_rows = "text,label\nthe film was good,positive\nthe film was bad,negative\n"
    own_files = {
        "good.csv": good_rows,
        "empty.csv": "",
        "header.csv": "text,label\n",
        "empty-list.json": "[]\n",
        "labels.csv": "text,label\nthe film was good,positive\nit was,maybe\n",
        "review.csv": good_rows.replace("text,", "review,"),
        "broken.jsonl": '{"text": "good", "label": 1}\n{"text": \n',
        "latin1.csv": "text,label\ncaf\xe9,positive\n".encode("latin-1"),
        "data.xlsx": "not a spreadsheet",
        # pandas read a first row with a field too many as an index and shifted its values left: text "positive"
        "ragged.csv": "text,label\ngood,positive,extra\nbad,negative\n",
        "short.csv": "text,label\ngood,positive\nbad\n",
        "open_quote.csv": 'text,label\n"good,positive\nbad,negative\n',
        "null.jsonl": '{"text": null, "label": "positive"}\n',
        "latin1.jsonl": '{"text": "ok", "label": "positive"}\n{"text": "caf\xe9", "label": "negative"}\n'.encode(
            "latin-1"
        ),
        "deep.jsonl": '{"text": ' + "[" * 100_000 + "\n",
        "number.jsonl": '{"text": 5, "label": "positive"}\n',
        "list.jsonl": '{"text": "a", "label": "positive"}\n{"text": ["a"], "label": "positive"}\n',
        "dict.jsonl": '{"text": {"a": 1}, "label": "positive"}\n',
        "bool.jsonl": '{"text": true, "label": "positive"}\n',
        "scalars.json": "[1, 2, 3]\n",
        "lists.jsonl": '{"text": "a", "label": "positive"}\n[1, 2]\n',
        "broken.parquet": b"PAR1 not a parquet file",
        "dev.csv": good_rows,
        "qa.jsonl": '{"question": "good?", "answer": "yes"}\n{"question": "bad?", "answer": "no"}\n',
        "qa.yaml": "train_file: qa.jsonl\ntemplate: 'question {question}'\ntarget_field: answer\n",
        "unknown_words.yaml": "train_file: good.csv\ntemplate: 'review {text}'\nlabel_words: [zzz, qqq]\n",
        "folder.yaml/notes.txt": "a folder named like a task file\n",
        "bogus.yaml": "train_file: good.csv\ntemplate: '{text}'\nlabel_words: [a, b]\nbogus: 1\n",
        "typo.yaml": "train_file: good.csv\ntempalte: '{text}'\nlabel_words: [a, b]\n",
        "rte.yaml": "name: rte\ntrain_file: good.csv\ntemplate: '{text}'\nlabel_words: [negative, positive]\n",
    }
    for name, content in own_files.items():
        write(own / name, content)
    (own / "link.csv").symlink_to(own / "good.csv")
    spec = TaskSpec(name="reviews", train_file=str(own / "good.csv"), template="review {text}", label_words=("a", "b"))
    own_spec = {"task": "reviews", "task_spec": spec.to_dict()}
    paths["own_adapter"] = variant(good, root / "own_adapter", config=lambda saved: {**saved, **own_spec})
    moved = {"task": "reviews", "task_spec": {**spec.to_dict(), "train_file": str(own / "moved.csv")}}
    paths["moved_adapter"] = variant(good, root / "moved_adapter", config=lambda saved: {**saved, **moved})
    inputs = {
        "rows": '{"task": "polarity", "source": "polarity sentence: the film was good"}\n',
        "rows_not_utf8": b'{"task": "polarity", "source": "ok"}\n{"task": "polarity", "source": "caf\xe9"}\n',
        "rows_empty": "\n  \n",
        "rows_missing": '{"task": "polarity", "sentence": "a"}\n{"task": "polarity", "review": "a"}\n',
        "rows_other_task": '{"task": "rte", "sentence1": "a"}\n',
        "rows_unknown": '{"task": "nope", "source": "x"}\n',
        "rows_no_task": '{"source": "x"}\n',
        "rows_not_json": '{"task": "rte"\n',
        "rows_nan": '{"task": "polarity", "sentence": "good", "id": NaN}\n',
        "rows_source": '{"task": "polarity", "source": null}\n',
        "rows_number": '{"task": "polarity", "sentence": 5}\n',
        "rows_null": '{"task": "polarity", "sentence": "good"}\n{"task": "polarity", "sentence": null}\n',
        "rows_label": '{"task": "polarity", "sentence": "good", "label": "maybe"}\n',
        "rows_own_empty": '{"task": "reviews", "text": "good"}\n{"task": "reviews", "text": " "}\n',
        "rows_blank_source": '{"task": "polarity", "source": ""}\n',
        "rows_both": '{"task": "polarity", "source": "polarity sentence: good", "sentence": "bad"}\n',
    }
    for name, content in inputs.items():
        paths[name] = write(root / "inputs" / f"{name}.jsonl", content)
    paths["rows_csv"] = write(root / "inputs" / "rows.csv", "task,sentence\npolarity,good\n")
    # Train configs: the keys of the safe TRAIN line, then the one bad value (which replaces its key).
    safe = {"model": model, "data_dir": data, "method": "pt", "length": 2, "max_steps": 2, "batch_size": 2}
    safe["out"] = root / "never"
    bad_values = {"yaml_batch": "batch_size: 2.5", "yaml_lr": "lr: '1e-3'", "yaml_bool": 'zero_shot: "false"'}
    bad_values |= {"yaml_model": "model: 7", "yaml_seed": "seed: -3", "yaml_unknown": "bogus: 1"}
    bad_values |= {"yaml_label_words": "label_words: ['bad, good', neutral]"}
    bad_values |= {"yaml_format": "format: chat"}
    bad_values |= {"yaml_overwrite": "overwrite: true", "yaml_resume": "resume: true"}
    bad_values |= {"yaml_typo": "max_step: 2", "yaml_typo_format": "format: natual"}
    for name, line in bad_values.items():
        kept = "".join(f"{key}: {value}\n" for key, value in safe.items() if not line.startswith(f"{key}:"))
        paths[name] = write(root / "configs" / f"{name}.yaml", kept + line + "\n")
    configs = {
        "recipe_steps": "max_steps: 2.5\n",
        "recipe_seeds": "seeds: [0, -1]\n",
        "recipe_train": "train: [1, 2]\n",
        "recipe_lrs": "methods: [lamp]\nlrs: {lamp: 0.01}\n",
        "recipe_lrs_unknown": "methods: [lamp]\nlrs: {pt: [0.1]}\n",
        "recipe_quick_list": "methods: [lamp]\nquick: [1]\n",
        "recipe_method_empty": "methods: {mine: }\n",
        "recipe_syntax": "max_steps: 2\nseeds: [0, 1\n",
        "recipe_empty": "",
        "recipe_twice": "max_steps: 2\nlrs:\n  lamp: [0.1]\n  lamp: [0.2]\n",
        "recipe_list": "- lamp\n- pt\n",
        "recipe_lora_targets": f"model: {model}\ndata_dir: {data}\ntasks: [polarity]\n"
        "methods: {lora: {target_modules: [qproj]}}\n",
    }
    for name, content in configs.items():
        paths[name] = write(root / "configs" / f"{name}.yaml", content)

    # Files that are not regular files: a symbolic link to itself and a named pipe (opened, it would block)
    (own / "loop.jsonl").symlink_to("loop.jsonl")
    os.mkfifo(own / "pipe.jsonl")
    # YAML past the parser's limits: nested deeper than Python's stack, an integer past the 4,300-digit conversion
    paths["yaml_deep"] = write(root / "configs" / "yaml_deep.yaml", "lr: " + "[" * 5000 + "]" * 5000 + "\n")
    paths["yaml_bigint"] = write(root / "configs" / "yaml_bigint.yaml", "max_steps: " + "9" * 5000 + "\n")

    run = paths["run"] = root / "run"  # an earlier run that no failed command may touch
    for name, content in {"results.json": "{}\n", "log.jsonl": "{}\n", "checkpoint.pt": b"\0" * 64}.items():
        write(run / name, content)
    variant(good, run / "adapter")
    not_a_run = paths["not_a_run"] = root / "mydocs"  # a user's folder: no command may write into it
    write(not_a_run / "thesis" / "chapter1.tex", "x\n")
    write(not_a_run / "notes.txt", "mine\n")
    checkpoint_dir = paths["checkpoint_dir"] = root / "checkpoint_dir"  # a run whose checkpoint.pt is a folder
    settings = {"task": "polarity", "model": str(model), "method": "pt", "length": 2, "max_steps": 2, "batch_size": 2}
    write(checkpoint_dir / "train_config.json", json.dumps(settings))
    write(checkpoint_dir / "checkpoint.pt" / "mine.txt", "mine\n")
    return {name: str(path) for name, path in paths.items()}


def digests(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def paths(world, tmp_path, monkeypatch) -> dict[str, str]:
    """The world's paths plus a fresh folder, with no route to the network or a shared data folder."""
    monkeypatch.delenv("LAMP_DATA_DIR", raising=False)
    monkeypatch.setenv("LAMP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(transformers.utils.logging, "_tqdm_active", False)  # progress bars are not the error line
    task = lamp.tasks.TASKS["polarity"]
    unfetchable = Packaged(lambda: pytest.fail("a row fetched the polarity corpus"))
    monkeypatch.setitem(lamp.tasks.TASKS, "polarity", dataclasses.replace(task, packaged=unfetchable))
    return {**world, "fresh": str(tmp_path / "fresh")}


def expand(argv: str, pattern: str, paths: dict[str, str]) -> tuple[list[str], str]:
    return shlex.split(argv.format(**paths)), pattern.format(**{k: re.escape(v) for k, v in paths.items()})


def assert_one_line_error(code, out: str, err: str, command: str, pattern: str) -> None:
    assert code == 2, (code, out[-2000:], err[-2000:])
    assert "Traceback" not in err + out, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"lamp {command}: error: "), lines[0]
    assert re.search(pattern, lines[0]), (pattern, lines[0])


@pytest.mark.parametrize("argv, pattern", ROWS)
def test_bad_input_is_one_line_exit_2_and_loses_nothing(argv, pattern, paths, capfd):
    args, pattern = expand(argv, pattern, paths)
    before = digests(Path(paths["run"]).parent)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, args[0], pattern)
    after = digests(Path(paths["run"]).parent)
    assert {k: after.get(k) for k in before} == before, "a file that existed before the command changed"


@pytest.mark.parametrize("argv, pattern", PROCESS_ROWS)
def test_bad_input_exit_code_from_a_real_process(argv, pattern, paths, tmp_path):
    args, pattern = expand(argv, pattern, paths)
    env = {
        **os.environ,
        "LAMP_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    env.pop("LAMP_DATA_DIR", None)
    result = subprocess.run([sys.executable, "-m", "lamp", *args], capture_output=True, text=True, env=env, timeout=300)
    assert_one_line_error(result.returncode, result.stdout, result.stderr, args[0], pattern)


def test_rows_are_many_and_cover_every_command():
    commands = {row.values[0].split()[0] for row in ROWS}
    assert commands == {"train", "eval", "predict", "export", "inspect", "data", "compare", "bench"}
    assert len(ROWS) >= 40


def test_checks_take_numbers_of_any_library_and_refuse_bools_and_non_finite_values():
    import argparse

    import numpy as np

    from lamp.checks import NON_NEGATIVE, POSITIVE_INT, SEED, Number
    from lamp.errors import ConfigError

    value = POSITIVE_INT.check("--n", np.int64(3))
    assert value == 3 and type(value) is int, "stored as a plain int, so it goes into results.json"
    assert type(NON_NEGATIVE.check("--x", np.float32(0.5))) is float
    for bad in (True, 0, 2.5, "3", None):
        with pytest.raises(ConfigError, match=r"^--n must be a positive integer, got "):
            POSITIVE_INT.check("--n", bad)
    for bad in (float("nan"), float("inf"), -float("inf"), -1e-9):
        with pytest.raises(ConfigError, match=r"^--x must be a finite number >= 0, got "):
            NON_NEGATIVE.check("--x", bad)
    assert Number(0, 1, high_open=True).describe() == "a finite number in [0, 1)"
    assert SEED("4294967295") == 2**32 - 1 and POSITIVE_INT("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be an integer from 0 to 4294967295, got '-1'$"):
        SEED("-1")


def test_a_hub_id_that_cannot_be_fetched_is_one_line_without_the_retries(paths, capfd):
    """Offline, a name that looks like a hub id makes huggingface_hub log every retry and transformers warn; lamp
    silences both while it loads (and restores their levels) and says in one line what to pass instead."""
    import logging
    import warnings

    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    def offline(*args, **kwargs):
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
        logging.getLogger("transformers.tokenization_utils_base").warning("Could not locate the tokenizer files")
        warnings.warn("a deprecation on the way", FutureWarning, stacklevel=1)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files. Check your connection.")

    levels = hub_logging.get_verbosity(), transformers_logging.get_verbosity()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
        patch.setattr(transformers.AutoConfig, "from_pretrained", offline)
        for name in ("nope-model", "models/nope"):
            code = main(["train", "--model", name, "--out", str(Path(paths["fresh"]) / "run")])
            out, err = capfd.readouterr()
            assert_one_line_error(code, out, err, "train", re.escape(f"cannot load model {name!r}: no such folder"))
            assert err.strip().endswith(
                "(We couldn't connect to 'https://huggingface.co' to load the files): pass a model folder, "
                "'smollm2-135m', or a hub id reachable online"
            )
    assert (hub_logging.get_verbosity(), transformers_logging.get_verbosity()) == levels


def test_a_hub_dataset_that_cannot_be_fetched_is_one_line_without_the_retries(paths, capfd, monkeypatch):
    """Offline, `datasets` makes huggingface_hub log every retry; lamp silences it while a user's dataset or a
    built-in task's hub dataset loads, and says in one line what failed."""
    import datasets

    from lamp.tasks.sources import Hub, load_hub_dataset

    def offline(*args, **kwargs):
        logging.getLogger("huggingface_hub.utils._http").warning("'[Errno -2] Name or service not known' thrown")
        raise FileNotFoundError("Dataset foo/bar is not cached in None")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    flags = ["--dataset", "foo/bar", "--template", "{text}", "--label-words", "negative,positive"]
    code = main(["train", "--model", paths["model"], *flags, "--out", str(Path(paths["fresh"]) / "run")])
    out, err = capfd.readouterr()
    assert_one_line_error(code, out, err, "train", r"cannot load dataset 'foo/bar' \(FileNotFoundError: Dataset")
    with pytest.raises(FileNotFoundError):
        load_hub_dataset(Hub("foo/bar"))
    assert capfd.readouterr().err == ""
