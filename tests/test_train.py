"""The trainer: loss falls, the best checkpoint is kept, results.json is complete, resume is exact, scorers agree."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import lamp.tasks
from lamp.errors import ConfigError
from lamp.tasks import Example, get_task
from lamp.train import TrainConfig, train

from .conftest import make_llama, make_t5, make_tokenizer

POSITIVE = "good great fun".split()
NEGATIVE = "bad terrible boring".split()
FILLER = "the a movie film was is very it and this that".split()


def synthetic_polarity(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append(Example(" ".join(words), ("negative", "positive")[label], label))
    return rows


@pytest.fixture
def tiny_task(monkeypatch):
    """`polarity` with a small synthetic corpus (its spec, metric and label words are the real ones)."""
    splits = {
        "train": synthetic_polarity(64, 0),
        "validation": synthetic_polarity(24, 1),
        "test": synthetic_polarity(24, 2),
    }
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: splits)
    return splits


@pytest.fixture(params=["llama", "t5"])
def model_dir(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    model = make_llama() if request.param == "llama" else make_t5()
    tokenizer = make_tokenizer(padding_side="left" if request.param == "llama" else "right")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def config(model_dir: str, out, **overrides) -> TrainConfig:
    values = dict(
        task="polarity",
        model=model_dir,
        method="pt",
        length=4,
        lr=0.3,
        batch_size=8,
        max_steps=12,
        eval_every=4,
        warmup_steps=0,
        out=str(out),
        seed=0,
    )
    return TrainConfig(**{**values, **overrides})


def test_training_lowers_loss_and_writes_documented_outputs(tiny_task, model_dir, tmp_path):
    results = train(config(model_dir, tmp_path / "run", max_steps=24, eval_every=8))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in log if "loss" in row]
    assert len(losses) == 24, "one loss row per step"
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    for key in (
        "task",
        "method",
        "trainable_params",
        "steps",
        "wall_s",
        "peak_mem_mb",
        "validation",
        "test",
        "zero_shot",
    ):
        assert key in saved, key
    for split in ("validation", "test", "zero_shot"):
        assert "score" in saved[split] and "accuracy" in saved[split]
    assert saved == json.loads(json.dumps(results))
    assert saved["trainable_params"] == 4 * 32 and saved["steps"] == 24
    png = (tmp_path / "run" / "training.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert (tmp_path / "run" / "adapter" / "adapter.safetensors").is_file()


def test_best_checkpoint_is_the_best_validation_step(tiny_task, model_dir, tmp_path):
    out = tmp_path / "run"
    results = train(config(model_dir, out, max_steps=16, eval_every=4))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    scores = {row["step"]: row["validation"]["score"] for row in log if "validation" in row}
    assert sorted(scores) == [4, 8, 12, 16]
    best_step = max(scores, key=lambda step: (scores[step], -step))  # the first step reaching the maximum
    assert results["best_step"] == best_step
    assert results["validation"]["score"] == scores[best_step]
    assert results["validation_curve"] == [[step, scores[step]] for step in (4, 8, 12, 16)]
    # The saved adapter really is the best step's prompt: it reproduces that validation score.
    from lamp.train import evaluate_adapter

    rescored = evaluate_adapter(out / "adapter", "polarity", split="validation", model=results["model"])
    assert rescored["score"] == pytest.approx(scores[best_step])


def test_resume_after_interrupt_is_bit_identical(tiny_task, model_dir, tmp_path):
    train(config(model_dir, tmp_path / "whole", method="lamp", length=8, rank=2, pool=2))
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["prompt"]

    def interrupt(step, state):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(model_dir, tmp_path / "parts", method="lamp", length=8, rank=2, pool=2), callback=interrupt)
    saved = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=False)
    assert saved["state"]["step"] == 5 and saved["state"]["elapsed_s"] > 0
    saved["state"]["elapsed_s"] = 1000.0  # as if the first invocation had run for 1,000 s
    torch.save(saved, tmp_path / "parts" / "checkpoint.pt")
    resumed = train(config(model_dir, tmp_path / "parts", method="lamp", length=8, rank=2, pool=2, resume=True))
    assert 1000.0 < resumed["wall_s"] < 1000.0 + 600  # the earlier invocation's time counts in the total
    parts = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=False)["prompt"]
    assert whole.keys() == parts.keys()
    for name in whole:
        assert torch.equal(whole[name], parts[name]), name

    def steps(run: str) -> list[int]:
        return [json.loads(line)["step"] for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]

    assert steps("parts") == steps("whole")


def test_output_folder_with_a_run_is_refused(tiny_task, model_dir, tmp_path):
    train(config(model_dir, tmp_path / "run", max_steps=2, eval_every=2))
    with pytest.raises(ConfigError, match="already holds a run: pass --resume to continue it, --overwrite"):
        train(config(model_dir, tmp_path / "run", max_steps=2, eval_every=2))
    train(config(model_dir, tmp_path / "run", max_steps=2, eval_every=2, overwrite=True))


def test_scorers_agree_after_training(tiny_task, tmp_path):
    """Once the prompt makes the model answer with label words, generation and rank classification agree."""
    from lamp.data import encode
    from lamp.scoring import predict

    backbone, tokenizer = make_llama(), make_tokenizer()
    model = lamp.wrap(backbone, lamp.PromptTuningConfig(length=4))
    optimizer = torch.optim.AdamW(model.prompt_encoder.parameters(), lr=0.1)
    from lamp.data import collate_train

    encoded = encode(tiny_task["train"], tokenizer, "causal", 64)
    model.train()
    for step in range(150):
        batch = collate_train(encoded[(step * 8) % 64 : (step * 8) % 64 + 8], 0, "causal")
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    task = get_task("polarity")
    test = encode(tiny_task["test"], tokenizer, "causal", 64)
    ranked = predict(model, test, task, tokenizer, "rank", 8)
    generated = predict(model, test, task, tokenizer, "generate", 8)
    assert sum(g is not None for g in generated) >= 12, generated  # the model answers with label words
    assert all(g == r for g, r in zip(generated, ranked, strict=True) if g is not None)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_lazy_training_rows_equal_the_batch_encoding(tiny_task, kind):
    from lamp.data import LazyEncoded, encode

    tokenizer = make_tokenizer()
    rows = tiny_task["train"]
    lazy = LazyEncoded(rows, tokenizer, kind, 6)  # short enough to truncate some rows
    assert len(lazy) == len(rows) and not lazy.cache
    assert [lazy[i] for i in reversed(range(len(rows)))] == encode(rows, tokenizer, kind, 6)[::-1]
    assert len(lazy.cache) == len(rows)


def test_generation_junk_is_invalid_and_scored_wrong():
    task = get_task("polarity")
    assert task.parse("the movie") is None
    examples = synthetic_polarity(4, 0)
    metrics = task.compute_metrics([None] * 4, examples)
    assert metrics["score"] == 0.0


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("lr", 0, r"^--lr must be a finite number in \(0, 1e\+06\], got 0$"),
        ("batch_size", -1, "^--batch-size must be a positive integer, got -1$"),
        ("max_steps", 0, "^--max-steps must be a positive integer, got 0$"),
        ("scorer", "vote", "^unknown --scorer 'vote': choose one of auto, rank, generate$"),
    ],
)
def test_bad_train_values_fail_before_training(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


import lamp  # noqa: E402  (used above inside tests through the package namespace)


def test_zero_shot_scores_the_backbone_with_no_prompt(tiny_task, tmp_path):
    """results["zero_shot"] is the bare backbone on test (the none floor), not the untrained prompt."""
    import lamp
    from lamp.floors import floor_results

    model_dir = tmp_path / "llama"
    make_llama().save_pretrained(model_dir)
    make_tokenizer().save_pretrained(model_dir)
    run = config(str(model_dir), tmp_path / "run", method="lamp", length=4, rank=2, pool=2, max_steps=2, eval_every=2)
    results = train(run)
    assert results["zero_shot"] == floor_results(run)["none"]["test"]
    with_prompt = lamp.wrap(make_llama(), lamp.LampConfig(length=4, rank=2, pool=2))
    with with_prompt.without_prompt() as bare:
        assert bare.n_virtual == 0
    assert with_prompt.n_virtual == 2, "the prompt is back after the block"


def one_line_error(args: list[str], capsys) -> str:
    """`lamp ARGS` through the CLI: exit 2 and exactly one stderr line, no traceback. Returns the line."""
    from lamp.cli import main

    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (code, err)
    return err.strip()


def test_a_run_config_nested_too_deeply_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.json").write_text("[" * 100_000)
    line = one_line_error(["train", "--out", str(out), "--resume", "--model", str(tmp_path / "no-model")], capsys)
    assert "train_config.json does not hold a lamp run's settings (JSON nested too deeply)" in line


def test_resume_and_overwrite_together_are_refused_as_a_conflict(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--resume and --overwrite conflict"):
        TrainConfig(resume=True, overwrite=True)
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.json").write_text(json.dumps({"task": "polarity", "model": "m", "method": "pt", "lr": 0.5}))
    line = one_line_error(["train", "--out", str(out), "--resume", "--overwrite", "--lr", "0.1"], capsys)
    assert "--resume and --overwrite conflict: pass --resume to continue the run in" in line


def test_resume_on_a_folder_without_a_run_is_refused(tmp_path, capsys):
    """A typo in --out would otherwise start a new (default) run where the user asked to continue one."""
    for out in (tmp_path / "nothing", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        line = one_line_error(["train", "--out", str(out), "--resume"], capsys)
        assert line.endswith(f"{out} holds no run to resume: drop --resume to start one there, or check --out")
    assert not (tmp_path / "nothing").exists()


def test_an_empty_out_is_refused_not_taken_as_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert one_line_error(["train", "--out", ""], capsys).endswith(
        "--out is empty: pass the run's folder, e.g. --out runs/mine"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_step_larger_than_the_training_split_is_refused(tiny_task, llama_dir, tmp_path, monkeypatch):
    """64 training rows: a batch of 10^6 would repeat them, and take minutes to fill before any message."""
    monkeypatch.setattr("lamp.train.load_model", _loaded)
    for options, message in [
        (
            {"batch_size": 10**6},
            r"--batch-size 1000000 takes 1000000 rows a step, and the training split has 64: pass "
            r"--batch-size at most 64$",
        ),
        ({"batch_size": 16, "grad_accum": 8}, r"--batch-size 16 x --grad-accum 8 takes 128 rows a step, .* at most 8$"),
        ({"batch_size": 2, "grad_accum": 100}, r"has 64: pass --grad-accum at most 32$"),
        ({"batch_size": 100, "grad_accum": 100}, r"pass --batch-size at most 64 and --grad-accum 1$"),
    ]:
        with pytest.raises(ConfigError, match=message):
            train(config(llama_dir, tmp_path / "run", overwrite=True, **options))


def _loaded(*args, **kwargs):
    raise AssertionError("the backbone loaded")


def test_a_prompt_longer_than_the_positions_is_refused_before_the_backbone_loads(llama_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("lamp.train.load_model", _loaded)  # and before 10^9 prompt rows (128 GB) are allocated
    with pytest.raises(ConfigError, match="the pt prompt's 1000000000 rows fill the backbone's 256 positions"):
        train(config(llama_dir, tmp_path / "run", length=10**9))
    assert not (tmp_path / "run").exists()


def test_a_prompt_init_larger_than_memory_is_refused_before_the_backbone_loads(llama_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("lamp.train.load_model", _loaded)
    monkeypatch.setattr("lamp.train.free_memory_bytes", lambda device: 10**9)  # 1 GB, whatever the machine has
    with pytest.raises(ConfigError, match=r"the lamp prompt's 100000000 x 32 init needs about 38\.4 GB, 1\.0 GB"):
        train(config(llama_dir, tmp_path / "run", method="lamp", length=10**8, pool=10**6, rank=2))
    assert not (tmp_path / "run").exists()


def test_the_task_chat_template_and_label_words_are_checked_before_the_backbone_loads(
    tiny_task, llama_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr("lamp.train.load_model", _loaded)
    rows = tmp_path / "rows.csv"  # the user's own data: label words the tiny vocabulary lacks (both <unk>)
    rows.write_text("text,label\n" + "".join(f"good film {i},{'zzvq' if i % 2 else 'qwxz'}\n" for i in range(40)))
    for options, message in [
        (
            {"train_file": str(rows), "template": "{text}", "label_words": "qwxz,zzvq"},
            r"label words 'qwxz' and 'zzvq' are the same tokens to this tokenizer",
        ),
        ({"chat_template": True}, "the model's tokenizer has no chat template"),
    ]:
        with pytest.raises(ConfigError, match=message):
            train(config(llama_dir, tmp_path / "run", overwrite=True, **options))


def test_a_saved_prompt_for_another_backbone_is_refused_from_its_config_before_the_weights_load(
    llama_dir, tmp_path, monkeypatch
):
    lamp.wrap(make_llama(hidden=48), lamp.PromptTuningConfig(length=4)).save_adapter(tmp_path / "wide")
    lamp.export_peft(lamp.wrap(make_llama(hidden=48), lamp.PromptTuningConfig(length=4)), tmp_path / "wide_peft")
    lamp.export_peft(lamp.wrap(make_t5(), lamp.PromptTuningConfig(length=4)), tmp_path / "t5_peft")
    monkeypatch.setattr("lamp.train.load_model", _loaded)
    for adapter, message in [
        ("wide", "has width 48, the backbone's embeddings 32: use the backbone the prompt was trained for"),
        ("wide_peft", "has width 48, the backbone's embeddings 32"),
        ("t5_peft", "was saved for a seq2seq backbone, this one is causal: use its backbone"),
    ]:
        with pytest.raises(lamp.LampError, match=message):
            train(config(llama_dir, tmp_path / "run", method="lamp", length=None, init_from=str(tmp_path / adapter)))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"pool": 0}, "pool must be a positive integer, got 0$"),  # not replaced by the default pool
        ({"pool": -1}, "pool must be a positive integer, got -1$"),
        ({"method_options": {"pool": 2.5}}, "pool must be a positive integer, got 2.5$"),
        ({"rank": 0}, "rank must be a positive integer, got 0$"),
        ({"length": 50}, "length 50 differs from the 16 rows that start from the 4 rows of the prompt in"),
        ({"method": "full"}, "method 'full' cannot start from a given prompt"),
        ({"init_from": "missing"}, "no adapter at .*missing: expected adapter_config.json"),
        ({"init_from": "nan"}, "adapter.safetensors tensor 'weight' holds NaN"),
        ({"init_from": "lora"}, "method 'lora' changes the backbone's own layers, so its prompt alone"),
        ({"init_from": "peft_nan"}, "peft_nan tensor 'prompt_embeddings' holds NaN"),
        ({"init_from": "peft_flat"}, r"peft_flat prompt_embeddings has shape \(128,\), its config asks for 4 rows"),
        ({"init_from": "peft_rows"}, r"peft_rows prompt_embeddings has shape \(4, 32\), its config asks for 10 rows"),
        ({"init_from": "peft_text_rows"}, r"num_virtual_tokens '4' and num_transformer_submodules 1, not positive"),
        ({"init_from": "peft_no_weights"}, "peft_no_weights has no adapter_model.safetensors: the adapter's save was"),
        ({"init_from": "peft", "length": 50}, "length 50 differs from the 16 rows that start from the 4 rows"),
        ({"init": "random"}, "starts from its saved prompt, so init would be unused: drop it"),
        ({"init": "text", "init_text": "hi"}, "so init and init_text would be unused: drop them"),
    ],
)
def test_init_from_and_its_options_are_checked_before_the_backbone_loads(options, message, tmp_path):
    model = lamp.wrap(make_llama(), lamp.PromptTuningConfig(length=4, init="random"))
    model.save_adapter(tmp_path / "good")
    lamp.export_peft(model, tmp_path / "peft")  # a PEFT prompt-tuning adapter of the same prompt
    with torch.no_grad():
        model.prompt_encoder.weight[0, 0] = float("nan")
    model.save_adapter(tmp_path / "nan")
    lamp.wrap(make_llama(), lamp.make_config("lora", rank=2)).save_adapter(tmp_path / "lora")
    shutil.copytree(tmp_path / "peft", tmp_path / "peft_nan")
    weights = tmp_path / "peft_nan" / "adapter_model.safetensors"
    save_file({name: tensor.fill_(float("nan")) for name, tensor in load_file(weights).items()}, weights)
    for name in ("peft_flat", "peft_rows", "peft_text_rows", "peft_no_weights"):  # each broken in one way
        shutil.copytree(tmp_path / "peft", tmp_path / name)
    weights = tmp_path / "peft_flat" / "adapter_model.safetensors"
    save_file({name: tensor.flatten() for name, tensor in load_file(weights).items()}, weights)
    for name, value in (("peft_rows", 10), ("peft_text_rows", "4")):
        peft_config = tmp_path / name / "adapter_config.json"
        peft_config.write_text(json.dumps({**json.loads(peft_config.read_text()), "num_virtual_tokens": value}))
    (tmp_path / "peft_no_weights" / "adapter_model.safetensors").unlink()
    options = {"method": "lamp", **options, "init_from": str(tmp_path / options.get("init_from", "good"))}
    no_model = str(tmp_path / "no-model")  # a refusal after the options' checks would name the model
    with pytest.raises(lamp.LampError, match=message):
        train(TrainConfig(model=no_model, out=str(tmp_path / "run"), **options))
