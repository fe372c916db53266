"""Faults and bad input: kills, signals, NaN losses, unwritable or full output folders, and CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import lamp
from lamp.cli import main
from lamp.errors import ConfigError, TrainingError
from lamp.train import TrainConfig, train

from .conftest import SHARED_DATA, make_llama, make_t5, make_tokenizer
from .test_train import config, tiny_task  # noqa: F401  (fixture)

needs_data = pytest.mark.skipif(not (SHARED_DATA / "glue" / "RTE").is_dir(), reason="../shared/data is not present")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_task, llama_dir, tmp_path, monkeypatch):  # noqa: F811
    forward = lamp.PromptedModel.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += self.training
        if self.training and calls["n"] >= 5:  # training step 5 (one micro-batch per step) goes bad
            out["loss"] = out.loss * float("nan")
        return out

    monkeypatch.setattr(lamp.PromptedModel, "forward", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        train(config(llama_dir, out, max_steps=20, eval_every=2, zero_shot=False))
    assert str(info.value) == (
        f"loss became nan at step 5: lower --lr or check the data, and start over with --overwrite; the last good "
        f"checkpoint (step 4) and the adapter of the best validation step are kept in {out}"
    )
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    assert saved["state"]["step"] == 4, "the checkpoint is the last one before the bad step"
    assert all(torch.isfinite(t).all() for t in saved["prompt"].values())
    monkeypatch.setattr(lamp.PromptedModel, "forward", forward)
    assert lamp.load_adapter(make_llama(), out / "adapter").prompt().isfinite().all()


def test_output_path_that_is_a_file_fails_before_training(tiny_task, llama_dir, tmp_path):  # noqa: F811
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is a file: choose a folder"):
        train(config(llama_dir, blocker))
    with pytest.raises(ConfigError, match="cannot write to output folder .* choose another --out"):
        train(config(llama_dir, blocker / "below"))


def test_full_disk_fails_before_training(tiny_task, llama_dir, tmp_path, monkeypatch):  # noqa: F811
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1024))
    steps = []
    with pytest.raises(ConfigError, match="MB free under .* free some space"):
        train(config(llama_dir, tmp_path / "run"), callback=lambda step, state: steps.append(step))
    assert steps == []


def run_cli(args: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "lamp", *args], env=environment, **kwargs)


def train_args(model: str, out, steps: int = 300) -> list[str]:
    return [
        "train", "--model", model, "--task", "rte", "--data-dir", str(SHARED_DATA), "--method", "lamp",
        "--length", "8", "--rank", "2", "--pool", "2", "--lr", "0.1", "--batch-size", "4", "--max-steps", str(steps),
        "--eval-every", "10", "--max-eval-examples", "8", "--no-zero-shot", "--seed", "3", "--out", str(out),
    ]  # fmt: skip


def final_prompt(out) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoint.pt", weights_only=False)["prompt"]


def wait_for_checkpoint(out, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (out / "checkpoint.pt").is_file():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@needs_data
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_uninterrupted_result(llama_dir, tmp_path, sig):
    whole = run_cli(train_args(llama_dir, tmp_path / "whole"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert whole.wait(timeout=300) == 0
    parts = run_cli(train_args(llama_dir, tmp_path / "parts"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_checkpoint(tmp_path / "parts", parts)
    parts.send_signal(sig)
    code = parts.wait(timeout=120)
    assert code != 0, "the run was stopped before it finished"
    if sig == signal.SIGTERM:
        assert b"resume with --resume" in parts.stderr.read()
    stopped_at = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=False)["state"]["step"]
    assert 0 < stopped_at < 300
    resumed = run_cli([*train_args(llama_dir, tmp_path / "parts"), "--resume"], stdout=subprocess.DEVNULL)
    assert resumed.wait(timeout=300) == 0
    expected, got = final_prompt(tmp_path / "whole"), final_prompt(tmp_path / "parts")
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    results = json.loads((tmp_path / "parts" / "results.json").read_text())
    assert results["steps"] == 300


@needs_data
def test_two_processes_match_one_with_the_same_global_batch(llama_dir, tmp_path):
    """DDP over gloo, 2 processes x 2 examples, against 1 process x 4 examples: same data, same updates."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    args = train_args(llama_dir, tmp_path / "two", steps=20)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([*launch, "--num_processes", "2", "-m", "lamp", *args], env=env, capture_output=True)
    assert two.returncode == 0, two.stderr.decode()[-2000:]
    one = run_cli(train_args(llama_dir, tmp_path / "one", steps=20), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert one.wait(timeout=300) == 0, one.stderr.read().decode()[-2000:]

    def losses(run: str) -> list[float]:
        rows = (tmp_path / run / "log.jsonl").read_text().splitlines()
        return [json.loads(r)["loss"] for r in rows if "loss" in json.loads(r)]

    # Tolerance: the two runs sum the same terms in a different order (float32 reduction order only).
    assert losses("two") == pytest.approx(losses("one"), rel=1e-4, abs=1e-5)
    for name, tensor in final_prompt(tmp_path / "one").items():
        torch.testing.assert_close(final_prompt(tmp_path / "two")[name], tensor, rtol=1e-4, atol=1e-5)
    assert json.loads((tmp_path / "two" / "results.json").read_text())["test"]["score"] == pytest.approx(
        json.loads((tmp_path / "one" / "results.json").read_text())["test"]["score"]
    )


def cli_error(args: list[str], capsys) -> str:
    code = None
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    return err.splitlines()[-1]  # progress bars may come first; the error is one line, the last


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--task", "nope"], "unknown task 'nope'"),
        (["train", "--method", "nope"], "unknown method 'nope'"),
        (["train", "--rank", "0"], "rank must be a positive integer"),
        (["train", "--length", "10", "--rank", "20", "--pool", "1"], "rank 20 exceeds length 10"),
        (["train", "--pool", "3"], "pool 3 does not divide length 100"),
        (["train", "--lr", "0"], "--lr must be a finite number in (0, 1e+06]"),
        (["train", "--lr=-1e-3"], "--lr must be a finite number in (0, 1e+06]"),
        (["train", "--max-steps", "0"], "--max-steps must be a positive integer"),
        (["train", "--batch-size", "-4"], "--batch-size must be a positive integer"),
        (["train", "--lr", "fast"], "invalid float value: 'fast'"),
        (["train", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
        (["eval", "--task", "rte"], "the following arguments are required: --adapter"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_cli_rejects_bad_values_with_one_line_and_exit_2(args, message, capsys):
    assert message in cli_error(args, capsys)


def test_cli_rejects_unknown_model(tiny_task, tmp_path, capsys):  # noqa: F811
    err = cli_error(["train", "--model", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "o")], capsys)
    assert "cannot load model" in err


def test_cli_rejects_data_folder_without_the_task(tmp_path, capsys):
    err = cli_error(["data", "rte", "--data-dir", str(tmp_path)], capsys)
    assert "not found" in err or "no data found" in err


def test_cli_rejects_an_output_folder_holding_another_run(tiny_task, llama_dir, tmp_path, capsys):  # noqa: F811
    train(config(llama_dir, tmp_path / "run", max_steps=2, eval_every=2))
    args = ["train", "--model", llama_dir, "--out", str(tmp_path / "run"), "--max-steps", "2"]
    assert "already holds a run" in cli_error(args, capsys)


def test_cli_rejects_an_adapter_for_another_backbone(tmp_path, capsys):
    t5_dir, adapter = tmp_path / "t5", tmp_path / "adapter"
    make_t5().save_pretrained(t5_dir)
    make_tokenizer().save_pretrained(t5_dir)
    lamp.wrap(make_llama(hidden=48), lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(adapter)
    err = cli_error(["eval", "--adapter", str(adapter), "--task", "polarity", "--model", str(t5_dir)], capsys)
    assert "was trained for embedding width 48" in err


def test_train_config_rejects_bad_dtype():
    with pytest.raises(ConfigError, match="unknown --dtype 'int8'"):
        TrainConfig(dtype="int8")


def test_cli_refuses_a_max_length_that_leaves_no_input_beside_the_cue(llama_dir, tmp_path, monkeypatch, capsys):
    """Natural format: the cue ('\\nSentiment:') is kept whole, so a budget that holds no more than it would show
    the model the template without the review; refused before training, not cut to the cue."""
    from lamp.tasks import Example

    def rows(n: int) -> list[Example]:
        words = ["the movie was good", "a bad film"]
        return [Example(f"Review: {words[i % 2]}\nSentiment:", "positive", 1, cue="\nSentiment:") for i in range(n)]

    splits = {"train": rows(8), "validation": rows(4), "test": rows(4)}
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: splits)
    args = ["train", "--model", llama_dir, "--out", str(tmp_path / "run"), "--max-steps", "2", "--max-length", "2"]
    args += ["--batch-size", "4"]
    err = cli_error(args, capsys)
    assert err == (
        "lamp train: error: --max-length leaves 0 tokens for an input and the template's cue '\\nSentiment:' takes 1 "
        "token, so no token of the text would be seen: raise --max-length by at least 2 (a causal LM's --max-length "
        "also holds the answer's tokens: a label word, or --max-new-tokens)"
    )
    assert not (tmp_path / "run").exists()  # a new run's folder goes with the failed run
    assert main([*args, "--max-length", "4"]) == 0  # the last stands: 2 more tokens are enough
