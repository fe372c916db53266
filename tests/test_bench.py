"""`lamp bench`: every method runs on tiny random models, the JSON rows hold sane values, the architectures have
their published sizes, bad specs fail in one line, and benchmarks/gpu.sh has a working CPU smoke path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from lamp.architectures import ARCHITECTURES, architecture_config
from lamp.bench import BenchConfig, parse_method, run_bench
from lamp.cli import main

from .conftest import make_llama

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"method", "trainable_params", "step_ms", "tokens_per_s", "peak_mem_mb", "infer_ms"}
TINY = {"batch_size": 2, "seq_len": 12, "steps": 2, "warmup": 1, "isolate": "none"}
METHODS = ["none", "pt:length=6", "lamp:length=8,rank=2,pool=4", "peft-pt:length=6", "peft-lora:r=4", "lora:rank=4"]


def _bench_json(capsys, tmp_path, model: str, methods: list[str], *extra: str) -> list[dict]:
    argv = ["bench", "--model", model, "--methods", *methods, "--batch-size", "2", "--seq-len", "12"]
    argv += ["--steps", "2", "--warmup", "1", "--isolate", "none", "--json", "--out", str(tmp_path), *extra]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list)
    return rows


def _check_rows(rows: list[dict], methods: list[str]) -> None:
    assert [r["method"] for r in rows] == methods
    for r in rows:
        assert KEYS <= set(r), r
        assert r["step_ms"] > 0 and r["infer_ms"] > 0 and r["infer_all_ms"] > 0
        assert r["step_ms_min"] <= r["step_ms"] and r["step_cpu_ms"] > 0 and r["infer_cpu_ms"] > 0
        assert r["tokens_per_s"] == pytest.approx(2 * 12 * 1000 / r["step_ms"], rel=1e-2)
        assert r["peak_mem_mb"] > 10
        assert r["trainable_params"] > 0
        assert r["loss"] == r["loss"], "the loss must be a number"
        assert r["weights"].startswith("random")


def test_every_method_on_a_causal_lm_with_the_parameter_formulas(capsys, tmp_path):
    rows = _bench_json(capsys, tmp_path, "random:tiny-llama", METHODS)
    _check_rows(rows, METHODS)
    d = ARCHITECTURES["tiny-llama"]["hidden_size"]
    heads, kv = ARCHITECTURES["tiny-llama"]["num_attention_heads"], ARCHITECTURES["tiny-llama"]["num_key_value_heads"]
    by = {r["method"]: r for r in rows}
    assert by["none"]["trainable_params"] == 1 and by["none"]["n_virtual"] == 0
    assert by["pt:length=6"]["trainable_params"] == 6 * d and by["pt:length=6"]["n_virtual"] == 6
    length, r, k = 8, 2, 4
    assert by["lamp:length=8,rank=2,pool=4"]["trainable_params"] == length * r + r + r * d
    assert by["lamp:length=8,rank=2,pool=4"]["n_virtual"] == length // k
    assert by["peft-pt:length=6"]["trainable_params"] == 6 * d
    # LoRA on q (d -> d) and v (d -> kv heads * head_dim) in each of 2 layers: r * (in + out) each.
    v_out = kv * d // heads
    assert by["peft-lora:r=4"]["trainable_params"] == 2 * (4 * (d + d) + 4 * (d + v_out))
    assert by["lora:rank=4"]["trainable_params"] == by["peft-lora:r=4"]["trainable_params"]
    assert {p.name for p in tmp_path.iterdir()} == {"bench.json", "bench.txt", "bench.png"}
    assert json.loads((tmp_path / "bench.json").read_text())[0]["method"] == "none"


def test_every_method_on_a_seq2seq_lm(capsys, tmp_path):
    methods = ["none", "lamp:length=8,rank=2,pool=2", "peft-pt:length=4", "peft-lora:r=2", "lora:rank=2"]
    rows = _bench_json(capsys, tmp_path, "random:tiny-t5", methods)
    _check_rows(rows, methods)
    d = ARCHITECTURES["tiny-t5"]["d_model"]
    assert rows[1]["trainable_params"] == 8 * 2 + 2 + 2 * d and rows[1]["n_virtual"] == 4


def test_methods_that_change_the_backbone_leave_later_rows_alone():
    """In-process rows share one backbone: LoRA layers (PEFT's or lamp's) and full fine-tuning's unfrozen weights
    must not leak into the next row."""
    methods = ["peft-lora:r=4", "pt:length=6", "lora:rank=4", "dpt:length=6,rank=2", "full", "dept:length=4,rank=2"]
    rows = run_bench(BenchConfig("random:tiny-llama", methods, **TINY))
    d = ARCHITECTURES["tiny-llama"]["hidden_size"]
    by = {r["method"]: r["trainable_params"] for r in rows}
    assert by["pt:length=6"] == 6 * d and by["dpt:length=6,rank=2"] == 6 * 2 + 2 * d
    assert by["lora:rank=4"] == by["peft-lora:r=4"]
    with torch.device("meta"):  # every weight of tiny-llama, counted by transformers' own model (embeddings tied)
        backbone = AutoModelForCausalLM.from_config(architecture_config("random:tiny-llama"))
    assert by["full"] == sum(p.numel() for p in backbone.parameters())
    assert by["dept:length=4,rank=2"] == 4 * d + 256 * 2 + 2 * d  # m*d + s*r + r*d, s = max_length (256)
    # The --seq-len check counts each method's prompt rows before any backbone loads: the rows it really adds.
    rows += run_bench(
        BenchConfig("random:tiny-llama", ["none", "lamp:length=8,rank=2,pool=4", "peft-pt:length=6"], **TINY)
    )
    assert all(r["n_virtual"] == parse_method(r["method"]).config.n_virtual() for r in rows), rows


def test_peft_logits_needed_matches_the_full_logits_loss():
    """`logits=needed` changes what PEFT computes, not the loss it trains on."""
    from lamp.bench import load_backbone, make_runner, synthetic_batch

    setup = BenchConfig(model="random:tiny-llama", batch_size=3, seq_len=10, methods=["none"]).resolve()
    backbone = load_backbone(setup)
    batch = synthetic_batch(backbone, "causal", setup)
    losses = []
    for text in ("peft-pt:length=5,init=random", "peft-pt:length=5,init=random,logits=needed"):
        torch.manual_seed(0)
        runner = make_runner(backbone, parse_method(text), "causal")
        runner.module.eval()
        losses.append(runner.loss(batch))
        runner.close()
    torch.testing.assert_close(losses[0], losses[1])


def test_isolated_process_per_method(tmp_path):
    rows = run_bench(
        BenchConfig("random:tiny-llama", ["lamp:length=4,rank=2,pool=2"], **{**TINY, "isolate": "process"})
    )
    assert rows[0]["isolate"] == "process" and "fresh process" in rows[0]["mem_kind"]
    assert rows[0]["step_ms"] > 0 and rows[0]["trainable_params"] == 4 * 2 + 2 + 2 * 32


PUBLISHED = {  # name: (width, layers, heads, parameters in millions)
    "t5-small": (512, 6, 8, 60.5),
    "t5-base": (768, 12, 12, 222.9),
    "t5-large": (1024, 24, 16, 737.7),
    "t5-3b": (1024, 24, 32, 2851.6),
    "t5-11b": (1024, 24, 128, 11307.3),
    "llama2-7b": (4096, 32, 32, 6738.4),
    "smollm2-135m": (576, 30, 9, 134.5),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_architectures_have_their_published_sizes(name):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    config = architecture_config("random:" + name)
    width, layers, heads, millions = PUBLISHED[name]
    assert (getattr(config, "d_model", None) or config.hidden_size) == width
    assert (getattr(config, "num_layers", None) or config.num_hidden_layers) == layers
    assert (getattr(config, "num_heads", None) or config.num_attention_heads) == heads
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    with torch.device("meta"):  # shapes only: no memory for the weights
        model = auto.from_config(config)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=0.1)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("lamp:rank=x", "rank must be a positive integer"),
        ("unknown:length=3", "unknown method 'unknown'"),
        ("lamp:length=10,pool=4", "does not divide"),
        ("pt:length", "key=value"),
        ("none:length=3", "takes no options"),
        ("peft-lora:r=0", "r must be a positive integer"),
        ("peft-lora:rank=8", "has no option rank"),
        ("peft-lora:alpha=0", "alpha must be a finite number > 0"),
        ("lora:rank=100", "lora:rank=100: rank 100 exceeds the backbone's width 32"),  # before `none` is measured
        ("dpt:length=4,rank=40", "dpt:length=4,rank=40: rank 40 exceeds length 4"),
        ("peft-lora:r=100", "peft-lora:r=100: rank 100 exceeds the backbone's width 32"),
        ("lora:r=8", "has no option r"),
        ("peft-pt:length=5,logits=some", "logits='some'"),
    ],
)
def test_bad_method_specs_fail_in_one_line_with_exit_code_2(capsys, spec, words):
    assert main(["bench", "--model", "random:tiny-llama", "--methods", "none", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lamp bench: error:") and words in err, err


def test_peft_lora_takes_a_fractional_alpha_as_lora_does():
    """PEFT annotates lora_alpha as int but scales by alpha / r; lamp's lora took 0.5 while peft-lora refused it."""
    for text, scale in [("peft-lora:r=4,alpha=0.5", 0.125), ("peft-lora:r=4,alpha=12", 3.0)]:
        module = parse_method(text).config.build(make_llama())
        scalings = {
            s for m in module.modules() if isinstance(getattr(m, "scaling", None), dict) for s in m.scaling.values()
        }
        assert scalings == {scale}, text


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--model", "random:gpt-9"], "unknown architecture 'gpt-9'"),
        (["--model", "random:tiny-llama", "--steps", "0"], "steps must be a positive integer"),
        (["--model", "random:tiny-llama", "--device", "tpu"], "unknown device 'tpu'"),
        (
            ["--model", "random:tiny-llama", "--seq-len", "4", "--target-len", "4"],
            "--seq-len 4 leaves no source token before a 4-token target on a causal backbone: pass a --seq-len above 4",
        ),
    ],
)
def test_bad_setup_fails_in_one_line(capsys, tmp_path, argv, words):
    assert main(["bench", *argv, "--methods", "none", "--isolate", "none", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_gpu_script_smoke_path_on_cpu(tmp_path):
    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    tail = result.stdout.strip().splitlines()
    assert any(line.startswith("lamp:length=100,rank=8,pool=4") for line in tail[-30:])  # the tables come last
    for model in ("t5", "llama"):
        rows = json.loads((tmp_path / model / "bench.json").read_text())
        assert [r["method"] for r in rows][:2] == ["none", "pt:length=100"] and all(r["step_ms"] > 0 for r in rows)


def test_method_spec_values_are_typed_as_train_types_them():
    """`lamp:scale_lr=true` is a flag, as `lamp train --set scale_lr=true` (it was the text 'true', refused)."""
    config = parse_method("lamp:length=8,rank=2,pool=2,scale_lr=true,log_q=False").config
    assert (config.length, config.scale_lr, config.log_q) == (8, True, False)


@pytest.mark.parametrize(
    "yaml_text, words",
    [
        ("device: 5", "--device must be text"),
        ("model: 5", "--model must be text"),
        ("model: null", "--model must be text"),
        ("methods: [5]", "--methods must be a list of method specs"),
        (
            "methods: lamp",
            "--methods must be a list of method specs, e.g. [none, 'lamp:length=100,rank=8,pool=4'], got 'lamp'",
        ),  # fmt: skip
        ("methods: [[lamp]]", "--methods must be a list of method specs"),
        ('compile: "yes"', "--compile must be true or false, got 'yes'"),
    ],
)
def test_a_config_file_of_the_wrong_types_fails_in_one_line(capsys, tmp_path, yaml_text, words):
    (tmp_path / "bench.yaml").write_text(yaml_text + "\n")
    assert main(["bench", "--config", str(tmp_path / "bench.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_a_configuration_given_twice_is_measured_once():
    """Specs that spell one configuration (options in another order, or the same text) make one row, the first."""
    spellings = ["lamp:length=8,rank=2,pool=2", "lamp:rank=2,length=8,pool=2", "lamp:length=8,rank=2,pool=2"]
    config = BenchConfig("random:tiny-llama", spellings)
    assert config.methods == ["lamp:length=8,rank=2,pool=2"] and len(config.specs) == 1
    other = BenchConfig("random:tiny-llama", ["lamp:length=8,rank=2,pool=2", "lamp:length=8,rank=2,pool=4"])
    assert len(other.specs) == 2


def test_a_worker_failure_names_its_exception_line():
    """A worker's traceback whose message runs on after the exception line (torch's C++ errors) is named by that
    line, not by its last line; the worker's own error line comes first."""
    from lamp.bench.isolation import worker_error

    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nTypeError: randint(): bad size\n"\n'
    assert worker_error(traceback) == "TypeError: randint(): bad size"
    assert worker_error("lamp bench: error: --steps must be positive\n") == "--steps must be positive"
    assert worker_error("") == "no output"
