"""Trackers through Accelerate (`--report-to`): TensorBoard events hold the run's scalars; the launcher's mixed
precision is honoured unless --mixed-precision is given."""

from __future__ import annotations

import json

import pytest

import lamp.tasks
from lamp.errors import ConfigError
from lamp.train import LAUNCHER_PRECISION, TrainConfig, resolve_mixed_precision, train

from .test_train import synthetic_polarity


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerate's process-wide state holds the first run's mixed precision; forget it after each test."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def tiny_task(monkeypatch):
    splits = {
        "train": synthetic_polarity(32, 0),
        "validation": synthetic_polarity(8, 1),
        "test": synthetic_polarity(8, 2),
    }
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: splits)


def config(model: str, out, **overrides) -> TrainConfig:
    values = dict(model=model, method="pt", length=2, lr=0.3, batch_size=4, max_steps=12, eval_every=4, out=str(out))
    return TrainConfig(**{**values, "warmup_steps": 0, "seed": 0, **overrides})


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the TensorBoard events in `folder`, as (step, value) pairs."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_events_hold_loss_lr_validation_and_test(llama_dir, tiny_task, tmp_path):
    out = tmp_path / "run"
    results = train(config(llama_dir, out, report_to="tensorboard"))
    logged = scalars(out / "runs" / "lamp")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]

    def same(tag: str, expected: list[tuple[int, float]]) -> None:
        assert [step for step, _ in logged[tag]] == [step for step, _ in expected], tag
        assert [value for _, value in logged[tag]] == pytest.approx([value for _, value in expected], rel=1e-6), tag

    same("train/loss", [(row["step"], row["loss"]) for row in log if "loss" in row])
    assert len(logged["train/loss"]) == 12, "one loss value per step"
    same("train/lr", [(row["step"], row["lr"]) for row in log if "lr" in row])
    validations = [row for row in log if "validation" in row]
    assert [row["step"] for row in validations] == [4, 8, 12]
    for metric in ("score", "accuracy"):
        same(f"validation/{metric}", [(row["step"], row["validation"][metric]) for row in validations])
    same("test/score", [(12, results["test"]["score"])])
    same("zero_shot/score", [(12, results["zero_shot"]["score"])])
    assert (out / "log.jsonl").is_file() and (out / "training.png").is_file(), "lamp's own log stays"
    assert results["config"]["report_to"] == "tensorboard"


def test_report_to_may_change_on_resume_and_overwrite_clears_the_old_events(llama_dir, tiny_task, tmp_path):
    out = tmp_path / "run"

    def stop(step, state):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(llama_dir, out), callback=stop)
    assert not (out / "runs").exists(), "--report-to none writes no tracker files"
    train(config(llama_dir, out, report_to="tensorboard", resume=True))
    assert [step for step, _ in scalars(out / "runs" / "lamp")["train/loss"]] == list(range(7, 13))
    train(config(llama_dir, out, report_to="tensorboard", overwrite=True, max_steps=4))
    assert [step for step, _ in scalars(out / "runs" / "lamp")["train/loss"]] == [1, 2, 3, 4], "old events gone"


@pytest.mark.parametrize(
    "value, problem",
    [
        ("nope", r"unknown --report-to 'nope': choose none, all, or one or more \(comma-separated\) of tensorboard"),
        ("tensorboard,none", r"unknown --report-to 'tensorboard,none'"),
        ("all,tensorboard", r"unknown --report-to 'all,tensorboard'"),
        ("comet_ml", r"^--report-to comet_ml needs its package: pip install comet-ml$"),
        ("tensorboard, wandb", r"^--report-to wandb needs its package: pip install wandb$"),
        ("all", r"^--report-to all found no tracker installed: pip install tensorboard"),
    ],
)
def test_bad_report_to_is_one_line_naming_the_choices_or_the_package(value, problem, monkeypatch):
    import accelerate.tracking
    from accelerate.utils import LoggerType

    monkeypatch.setattr(
        accelerate.tracking, "get_available_trackers", lambda: [] if value == "all" else [LoggerType("tensorboard")]
    )
    with pytest.raises(ConfigError, match=problem):
        TrainConfig(report_to=value)


def test_report_to_is_normalised():
    assert TrainConfig(report_to=" tensorboard ").report_to == "tensorboard"
    assert TrainConfig().report_to == "none"


@pytest.mark.parametrize(
    "launcher, flag, used, note",
    [
        (None, "auto", "no", None),  # no launcher, no GPU here: fp32
        ("bf16", "auto", "bf16", None),  # lamp's default defers to `accelerate launch --mixed_precision bf16`
        ("fp16", "auto", "fp16", None),
        ("no", "auto", "no", None),
        ("bf16", "bf16", "bf16", None),
        ("bf16", "no", "no", "lamp train: mixed precision no (--mixed-precision), not the launcher's bf16"),
        (None, "fp16", "fp16", None),
    ],
)
def test_mixed_precision_defers_to_the_launcher_unless_given(launcher, flag, used, note, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    if launcher is None:
        monkeypatch.delenv(LAUNCHER_PRECISION, raising=False)
    else:
        monkeypatch.setenv(LAUNCHER_PRECISION, launcher)
    assert resolve_mixed_precision(flag) == (used, note)


def test_a_run_under_a_bf16_launcher_trains_in_bf16(llama_dir, tiny_task, tmp_path, monkeypatch):
    monkeypatch.setenv(LAUNCHER_PRECISION, "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    results = train(config(llama_dir, tmp_path / "run", max_steps=2, eval_every=2, zero_shot=False))
    assert results["mixed_precision"] == "bf16"
