"""Run settings saved by earlier lamp versions load as the same settings: a run whose train_config.json holds the
method's shorthands as top-level keys (before method options left TrainConfig) resumes, and a compare grid with
the same settings counts its cell as finished."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from lamp.cli import build_parser
from lamp.cli_options import yaml_values
from lamp.commands.train import config_from_args
from lamp.compare import grid_config, load_recipe, make_grid
from lamp.compare.run import _same_settings, run_cells
from lamp.errors import ConfigError
from lamp.train import RESULTS, RUN_CONFIG, TrainConfig, check_resume, run_settings, saved_config, upgrade_saved

FIXTURE = Path(__file__).parent / "fixtures" / "sst2-lamp-lr0.03-s0" / RUN_CONFIG
RECIPE = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.yaml"
OLD = json.loads(FIXTURE.read_text())
SAME = dict(  # the cell's settings, given as today's TrainConfig takes them
    task="sst2",
    method="lamp",
    length=100,
    rank=8,
    pool=4,
    lr=0.03,
    seed=0,
    eval_every=25,
    max_eval_examples=300,
    zero_shot=False,
    format="natural",
    data_dir=OLD["data_dir"],
)


def test_the_fixture_is_an_old_run_config():
    assert {"length", "rank", "pool", "init", "init_text"} <= set(OLD) and OLD["length"] is None
    assert OLD["method_options"] == {"length": 100, "rank": 8, "pool": 4}


def test_an_old_run_config_upgrades_to_the_same_settings():
    upgraded = upgrade_saved(OLD)
    assert not {"length", "rank", "pool", "init", "init_text"} & set(upgraded)
    assert upgraded["method_options"] == {"length": 100, "rank": 8, "pool": 4}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(upgraded) == fields, "every other key is a field of today's TrainConfig"
    now = dataclasses.asdict(TrainConfig(**{**SAME, "out": OLD["out"], "resume": True}))
    assert now == upgraded


def test_set_shorthands_of_an_old_run_join_its_method_options(tmp_path):
    """Runs started with --length (a top-level key then) hold it outside method_options, which won on a clash."""
    old = {**OLD, "length": 100, "init": "random", "method_options": {"rank": 8, "pool": 4, "init": "text"}}
    assert upgrade_saved(old)["method_options"] == {"length": 100, "init": "text", "rank": 8, "pool": 4}
    (tmp_path / RUN_CONFIG).write_text(json.dumps({**OLD, "length": 100, "method_options": {"rank": 8, "pool": 4}}))
    assert saved_config(tmp_path)["method_options"] == {"length": 100, "rank": 8, "pool": 4}


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A run folder holding the old train_config.json (and nothing else of the run)."""
    out = tmp_path / "cell"
    out.mkdir()
    shutil.copy(FIXTURE, out / RUN_CONFIG)
    return out


def test_resume_accepts_an_old_run_config(old_run):
    check_resume(TrainConfig(**SAME, out=str(old_run), resume=True), old_run)  # the API: no contradiction
    parser = build_parser()
    for flags in ([], ["--length", "100", "--rank", "8"], ["--method.pool", "4"], ["--set", "rank=8"]):
        args = parser.parse_args(["train", "--resume", "--out", str(old_run), *flags])
        config = config_from_args(args, TrainConfig)
        assert config.method_options == {"length": 100, "rank": 8, "pool": 4}
        check_resume(config, old_run)
    args = parser.parse_args(["train", "--resume", "--out", str(old_run), "--rank", "4"])
    with pytest.raises(ConfigError, match=r"other settings: --rank 4 \(the run has 8\); drop --rank to continue"):
        check_resume(config_from_args(args, TrainConfig), old_run)


def test_compare_counts_the_old_cell_as_finished_with_the_same_settings(tmp_path):
    grid = make_grid(load_recipe(RECIPE), data_dir=OLD["data_dir"], out=str(tmp_path / "quality"))
    spec = next(spec for spec in grid.methods if spec.label == "lamp")
    assert _same_settings(OLD, grid_config(grid, "sst2", spec, 0.03, 0, resume=False)) == []
    cell = tmp_path / "quality" / "cells" / "sst2-lamp-lr0.03-s0"
    cell.mkdir(parents=True)
    results = {"config": OLD, "test": {"score": 85.4}, "validation": {"score": 88.7}, "best_step": 150}
    (cell / RESULTS).write_text(json.dumps(results))
    lines = []
    records = run_cells(grid, [("sst2", spec, 0.03, 0)], lines.append, 0, 1, report_only=True)
    assert lines == ["[1/1] sst2-lamp-lr0.03-s0: finished earlier, test 85.40"]
    assert (records[0].test_score, records[0].validation_score) == (85.4, 88.7)
    other = next(spec for spec in grid.methods if spec.label == "dpt")  # another method: other settings
    assert "method_options" in _same_settings(OLD, grid_config(grid, "sst2", other, 0.03, 0, resume=False))


def test_a_runs_config_json_is_a_train_config_and_yaml_exponents_need_no_dot(tmp_path):
    """json.dump writes 1e-05 and YAML users write `lr: 1e-4`; PyYAML (YAML 1.1) read both as text, so a run's own
    train_config.json given to --config was refused (`--weight-decay must be a finite number >= 0, got '1e-05'`)."""
    config = TrainConfig(**SAME, weight_decay=1e-05, out=str(tmp_path / "run"))
    path = tmp_path / RUN_CONFIG
    path.write_text(json.dumps(run_settings(config, None), indent=2))
    assert '"weight_decay": 1e-05' in path.read_text()
    again = config_from_args(build_parser().parse_args(["train", "--config", str(path)]), TrainConfig)
    assert again == config
    recipe = tmp_path / "c.yaml"
    recipe.write_text("lr: 1e-4\nweight_decay: -2.5E+3\nmodel: 1e3x\ntask: .5e1\n")
    assert yaml_values(str(recipe), TrainConfig) == {"lr": 1e-4, "weight_decay": -2500.0, "model": "1e3x", "task": 5.0}


def test_yaml_files_are_read_with_yaml_1_2_booleans_and_numbers(tmp_path):
    """PyYAML's YAML 1.1 rules gave silent wrong values: `max_steps: 010` trained 8 steps, `lr: 1:30` at 90.0."""
    path = tmp_path / "c.yaml"
    path.write_text("max_steps: 010\nlr: 1:30\nseed: 1_000\nbatch_size: 0x10\nzero_shot: false\nmodel: yes\n")
    values = yaml_values(str(path), TrainConfig)
    assert values == {
        "max_steps": 10,
        "lr": "1:30",
        "seed": "1_000",
        "batch_size": 16,
        "zero_shot": False,
        "model": "yes",
    }
    with pytest.raises(ConfigError, match=r"^--lr must be a finite number in \(0, 1e\+06\], got '1:30'$"):
        TrainConfig(lr=values["lr"])
    with pytest.raises(
        ConfigError, match=r"^--seed must be an integer from 0 to \d+, got '1_000'$"
    ):  # no hint: not quoted
        TrainConfig(seed=values["seed"])
    path.write_text("max_steps: '010'\n")
    with pytest.raises(
        ConfigError, match=r"--max-steps must be a positive integer, got '010' \(text, not a number: write"
    ):
        TrainConfig(**yaml_values(str(path), TrainConfig))
