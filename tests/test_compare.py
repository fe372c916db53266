"""`lamp compare`: resume, learning-rate selection on validation, the staged sweep, the report, the recipes."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest

import lamp.compare.cell
import lamp.compare.run
import lamp.train as training
from lamp.cli import main
from lamp.compare import Cell, choose_lrs, compare, load_recipe, make_grid, paired_differences, parse_lrs
from lamp.errors import ConfigError, LampError, TrainingError

ROOT = Path(__file__).resolve().parents[1]
RECORD_KEYS = ("method", "task", "seed", "lr", "trainable_params", "validation_score", "test_score", "selected")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from .conftest import make_llama, make_tokenizer

    path = tmp_path_factory.mktemp("llama")
    make_llama().save_pretrained(path)
    make_tokenizer(padding_side="left").save_pretrained(path)
    return str(path)


@pytest.fixture
def tiny_task(monkeypatch):
    """`polarity` (its real spec, metric and label words) on a tiny synthetic corpus."""
    import random

    import lamp.tasks
    from lamp.tasks import Example

    def rows(n, seed):
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            label = rng.randint(0, 1)
            words = ["the", "movie", "was", rng.choice(["good", "great"] if label else ["bad", "boring"])]
            out.append(Example(" ".join(words), ("negative", "positive")[label], label))
        return out

    splits = {"train": rows(32, 0), "validation": rows(16, 1), "test": rows(16, 2)}
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: splits)
    return splits


SPLITS = ("train", "validation", "test")


def tiny_grid(model: str, out: Path, **recipe):
    values = dict(
        model=model,
        tasks=["polarity"],
        methods={"lamp": {"length": 4, "rank": 2, "pool": 2}, "pt": {"length": 4}, "dpt": {"length": 4, "rank": 2}},
        lrs={"lamp": [0.3], "pt": [0.3], "dpt": [0.3]},
        seeds=[0],
        max_steps=4,
        train={"batch_size": 8, "eval_every": 2, "warmup_steps": 0, "zero_shot": False},
        out=str(out),
        floors=[],  # the floors have tests of their own below
    )
    return make_grid({**values, **recipe})


def quiet(message: str) -> None:
    pass


# ---- resume with real (tiny) training ---------------------------------------------------------------------------
def test_interrupted_grid_resumes_without_rerunning_finished_cells(tiny_task, llama_dir, tmp_path, monkeypatch):
    real = training.train
    calls = []

    def interrupting(config, callback=None):
        name = Path(config.out).name
        calls.append((name, config.resume))
        if name.startswith("polarity-pt-") and not config.resume:

            def stop(step, state):
                if step == 2:
                    raise KeyboardInterrupt

            return real(config, callback=stop)
        return real(config, callback=callback)

    monkeypatch.setattr(training, "train", interrupting)
    grid = tiny_grid(llama_dir, tmp_path / "grid")
    cells = tmp_path / "grid" / "cells"
    with pytest.raises(KeyboardInterrupt):
        compare(grid, log=quiet)
    assert [name for name, _ in calls] == ["polarity-lamp-lr0.3-s0", "polarity-pt-lr0.3-s0"]
    finished = cells / "polarity-lamp-lr0.3-s0" / "results.json"
    stamp = finished.stat().st_mtime_ns
    assert (cells / "polarity-pt-lr0.3-s0" / "checkpoint.pt").is_file()
    assert not (cells / "polarity-pt-lr0.3-s0" / "results.json").exists()

    calls.clear()
    records, paths = compare(grid, log=quiet)
    assert calls == [("polarity-pt-lr0.3-s0", True), ("polarity-dpt-lr0.3-s0", False)]
    assert finished.stat().st_mtime_ns == stamp, "a finished cell is read back, not rerun"
    resumed = json.loads((cells / "polarity-pt-lr0.3-s0" / "results.json").read_text())
    assert resumed["steps"] == 4
    for cell in cells.iterdir():  # finished cells keep their adapter, not the resume checkpoint
        assert (cell / "adapter").is_dir() and not (cell / "checkpoint.pt").exists(), cell.name
    assert [r.method for r in records] == ["lamp", "pt", "dpt"] and all(r.selected for r in records)
    assert {r.trainable_params for r in records if r.method == "pt"} == {4 * 32}

    calls.clear()
    compare(grid, log=quiet)
    assert calls == [], "a finished grid runs nothing"


# ---- selection, staged sweep, report: a fake train with chosen scores ------------------------------------------
def fake_train(scores, calls, fail=()):
    """A stand-in for lamp.train.train that writes results.json with scores[(method, lr, seed)] = (val, test)."""

    def run(config, callback=None):
        key = (config.method, config.lr, config.seed)
        calls.append(key)
        if key in fail:
            raise TrainingError("loss became nan at step 3: lower --lr")
        validation, test = scores.get((config.task, *key)) or scores[key]
        predictions = {"0": 12, "1": 12} if test > 50 else {"1": 24}
        results = {
            "task": config.task,
            "method": config.method,
            "trainable_params": {"lamp": 100, "pt": 1000}[config.method],
            "steps": config.max_steps,
            "best_step": config.max_steps,
            "wall_s": 1.0,
            "validation": {"accuracy": validation, "score": validation},
            "validation_curve": [[1, validation - 5], [config.max_steps, validation]],
            "test": {"accuracy": test, "score": test},
            "test_predictions": predictions,
            "config": dataclasses.asdict(config),
        }
        Path(config.out).mkdir(parents=True, exist_ok=True)
        (Path(config.out) / "results.json").write_text(json.dumps(results))
        return results

    return run


def use_fake_train(monkeypatch, run) -> None:
    """Training faked (`fake_train`): no cell reads its backbone or data, so nor does the check before the cells."""
    monkeypatch.setattr(training, "train", run)
    monkeypatch.setattr(lamp.compare.run, "check_before_cells", lambda grid: None)


def fake_grid(out: Path, **recipe):
    values = dict(
        tasks=["polarity"],
        methods=["lamp", "pt"],
        lrs={"lamp": [0.01, 0.1], "pt": [0.01, 0.1]},
        seeds=[0, 1],
        max_steps=5,
        out=str(out),
        floors=[],  # training is faked here; the floors are tested on a tiny model below
    )
    return make_grid({**values, **recipe})


def test_learning_rate_is_selected_on_validation_not_test(tmp_path, monkeypatch):
    scores = {
        # lamp: 0.01 wins on validation (mean 80 vs 70) but loses on test (60 vs 90)
        ("lamp", 0.01, 0): (82.0, 58.0),
        ("lamp", 0.01, 1): (78.0, 62.0),
        ("lamp", 0.1, 0): (70.0, 90.0),
        ("lamp", 0.1, 1): (70.0, 90.0),
        # pt: 0.1 wins on the mean validation score although seed 0 prefers 0.01
        ("pt", 0.01, 0): (75.0, 70.0),
        ("pt", 0.01, 1): (55.0, 70.0),
        ("pt", 0.1, 0): (70.0, 40.0),
        ("pt", 0.1, 1): (70.0, 45.0),
    }
    calls = []
    use_fake_train(monkeypatch, fake_train(scores, calls))
    records, paths = compare(fake_grid(tmp_path / "g"), log=quiet)
    chosen = {(r.method, r.lr) for r in records if r.selected}
    assert chosen == {("lamp", 0.01), ("pt", 0.1)}
    assert len(calls) == 8
    table = paths["markdown"].read_text()
    assert "| lamp | 100 | 60.0 ± 2.8 | 60.0 ± 2.8 |" in table
    assert "| pt | 1,000 | 42.5 ± 3.5 ⚠2/2 | 42.5 ± 3.5 |" in table, "collapsed runs are marked"
    assert "0.01 (80.0)" in table and "0.1 (70.0)" in table  # selected rates with their validation means
    assert "## lamp against each method (paired on task and seed)" in table
    assert "| pt | 2 | +17.5 | 0.7 | 0.018 | 1 of 1 |" in table  # (58 - 40, 62 - 45); t = 35, df = 1


def test_choose_lrs_breaks_ties_by_sweep_order_and_skips_failures():
    def score(lr, validation):
        return ("t", "m", lr, validation)

    assert choose_lrs([score(0.1, 80.0), score(0.01, 80.0)]) == {("t", "m"): 0.1}
    assert choose_lrs([score(0.1, None), score(0.01, 10.0)]) == {("t", "m"): 0.01}
    assert choose_lrs([score(0.1, None)]) == {}


def test_paired_differences_pair_cells_on_task_and_seed():
    from scipy.stats import t as student

    def record(method, task, seed, test, selected=True):
        return Cell(
            task,
            method,
            method,
            seed,
            0.1,
            trainable_params=1,
            validation_score=50.0,
            test_score=test,
            selected=selected,
        )

    lamp_scores = {("a", 0): 70.0, ("a", 1): 72.0, ("b", 0): 60.0, ("b", 1): 64.0}
    pt_scores = {("a", 0): 65.0, ("a", 1): 66.0, ("b", 0): 61.0, ("b", 1): 60.0}
    records = [record("lamp", t, k, v) for (t, k), v in lamp_scores.items()]
    records += [record("pt", t, k, v) for (t, k), v in pt_scores.items()]
    records += [record("same", t, k, v) for (t, k), v in lamp_scores.items()]
    records.append(record("pt", "a", 2, 0.0, selected=False))  # not selected: left out
    records.append(record("pt", "b", 2, 99.0))  # lamp has no seed 2 on b: unpaired, left out
    pt, same = paired_differences(records)
    diffs = [5.0, 6.0, -1.0, 4.0]
    mean, std = sum(diffs) / 4, (sum((d - 3.5) ** 2 for d in diffs) / 3) ** 0.5
    assert (pt.method, pt.pairs, pt.tasks_higher, pt.tasks) == ("pt", 4, 1, 2)  # b: 62.0 vs 73.3
    assert pt.mean == pytest.approx(mean) and pt.std == pytest.approx(std)
    assert pt.p == pytest.approx(2 * student.sf(mean / (std / 2), df=3))
    assert (same.mean, same.std, same.p, same.tasks_higher) == (0.0, 0.0, None, 0)
    assert paired_differences([r for r in records if r.method == "lamp"]) == []
    # equal differences whose float std is noise (0.3 - 0.1 and 0.9 - 0.7 differ in the last bit): no p, no warning
    noisy = [record("x", "a", 0, 0.3), record("x", "a", 1, 0.9), record("y", "a", 0, 0.1), record("y", "a", 1, 0.7)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (y,) = paired_differences(noisy)
    assert y.p is None and 0 < y.std < 1e-9


def test_staged_sweep_runs_extra_seeds_only_at_the_selected_rate(tmp_path, monkeypatch):
    scores = {
        (m, lr, s): (90.0 if lr == 0.1 else 60.0, 70.0 + s)
        for m in ("lamp", "pt")
        for lr in (0.01, 0.1)
        for s in range(3)
    }
    calls = []
    use_fake_train(monkeypatch, fake_train(scores, calls))
    grid = fake_grid(tmp_path / "g", seeds=[0, 1, 2], sweep_seeds=1)
    assert grid.n_cells() == 4 + 2 * 2
    records, _ = compare(grid, log=quiet)
    assert sorted(calls) == sorted(
        [(m, lr, 0) for m in ("lamp", "pt") for lr in (0.01, 0.1)]
        + [(m, 0.1, s) for m in ("lamp", "pt") for s in (1, 2)]
    )
    assert {(r.method, r.seed) for r in records if r.selected} == {(m, s) for m in ("lamp", "pt") for s in range(3)}


def test_sweep_on_some_tasks_sets_one_rate_per_method_for_every_task(tmp_path, monkeypatch):
    # On polarity lamp prefers 0.1 and pt 0.01 (validation); rte is never swept, so it gets those rates.
    scores = {(m, lr, s): (50.0, 70.0) for m in ("lamp", "pt") for lr in (0.01, 0.1) for s in range(2)}
    scores |= {("polarity", "lamp", 0.1, 0): (90.0, 70.0), ("polarity", "pt", 0.01, 0): (90.0, 70.0)}
    calls = []
    use_fake_train(monkeypatch, fake_train(scores, calls))
    grid = fake_grid(tmp_path / "g", tasks=["polarity", "rte"], sweep_tasks=["polarity"], sweep_seeds=1)
    assert grid.n_cells() == 4 + 3 * 2
    records, paths = compare(grid, log=quiet)
    assert len(calls) == 10
    assert {(r.task, r.method, r.lr, r.seed) for r in records if r.trained_now} >= {
        (t, m, lr, s) for t in ("polarity", "rte") for m, lr in (("lamp", 0.1), ("pt", 0.01)) for s in (0, 1)
    }
    assert all(r.selected == ((r.method, r.lr) in {("lamp", 0.1), ("pt", 0.01)}) for r in records)
    assert "selected per method on the mean validation score of polarity over seed 0" in paths["markdown"].read_text()
    with pytest.raises(ConfigError, match="sweep_tasks must be a non-empty list of the grid's tasks"):
        fake_grid(tmp_path / "h", sweep_tasks=["cola"])


def test_report_only_reads_finished_cells_and_trains_nothing(tmp_path, monkeypatch):
    scores = {(m, lr, s): (60.0 + 10 * lr, 70.0) for m in ("lamp", "pt") for lr in (0.01, 0.1) for s in (0, 1)}
    calls = []
    use_fake_train(monkeypatch, fake_train(scores, calls))
    with pytest.raises(ConfigError, match="no finished cells in .* yet: run the grid without --report-only"):
        compare(fake_grid(tmp_path / "g"), log=quiet, report_only=True)
    compare(fake_grid(tmp_path / "g", seeds=[0]), log=quiet)  # seed 0 only: 4 of the 2-seed grid's 8 cells
    calls.clear()
    lines: list[str] = []
    records, paths = compare(fake_grid(tmp_path / "g"), log=lines.append, report_only=True)
    assert calls == [] and len(records) == 4
    waiting = [line for line in lines if "not finished" in line]  # one line, not one per cell
    assert len(waiting) == 1 and waiting[0].startswith("not finished yet: 4 of these 8 cells ("), waiting
    assert "**Partial grid: 4 of 8 cells finished.**" in paths["markdown"].read_text()
    records, paths = compare(fake_grid(tmp_path / "g"), log=quiet)
    assert len(calls) == 4 and "Partial grid" not in paths["markdown"].read_text()
    legend = paths["markdown"].read_text().split("\n\n")[1]  # no floor rows: no word of them, nor of their mark
    assert "Floors" not in legend and "▽" not in legend and legend.endswith("reach the prompt).")


def test_report_files_hold_the_documented_keys(tmp_path, monkeypatch):
    scores = {(m, lr, s): (60.0, 70.0) for m in ("lamp", "pt") for lr in (0.01, 0.1) for s in (0, 1)}
    use_fake_train(monkeypatch, fake_train(scores, []))
    records, paths = compare(fake_grid(tmp_path / "g"), log=quiet)
    saved = json.loads(paths["json"].read_text())
    assert saved == json.loads(json.dumps([r.to_json() for r in records])) and len(saved) == 8
    for row in saved:
        for key in (*RECORD_KEYS, "collapsed", "test_predictions"):
            assert key in row, key
    table = paths["markdown"].read_text()
    assert "| Method | Trainable params (effective) | polarity | Avg |" in table
    assert "Load average" in table and "Every cell" in table
    png = paths["chart"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert all(row["validation_curve"] == [[1, 55.0], [5, 60.0]] for row in saved)
    assert all(row["config"]["max_steps"] == 5 and not {"out", "data_dir"} & set(row["config"]) for row in saved)
    assert paths["curves"].read_bytes().startswith(b"\x89PNG")


def test_curves_average_the_seeds_at_their_shared_steps(tmp_path, monkeypatch):
    """comparison-curves.png: per task and method, the mean validation curve over seeds at the steps they share;
    rows without a curve (floors, older rows) are left out."""
    import matplotlib.axes

    from lamp.compare.report import curves

    plotted = []
    monkeypatch.setattr(matplotlib.axes.Axes, "plot", lambda self, x, y, **kw: plotted.append((list(x), list(y))))
    cell = dict(task="rte", method="lamp", base_method="lamp", lr=0.03, selected=True)
    cells = [
        Cell(seed=0, validation_curve=[[25, 50.0], [50, 60.0], [75, 70.0]], **cell),
        Cell(seed=1, validation_curve=[[25, 54.0], [50, 62.0]], **cell),
        Cell(seed=2, **cell),  # a row written before curves were kept
        Cell(task="rte", method="none", base_method="none", seed=0, lr=None, validation_score=57.0, floor=True),
    ]
    curves(cells, tmp_path / "curves.png")
    assert plotted == [([25, 50], [52.0, 61.0])]
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_diverged_cell_is_reported_not_retried(tmp_path, monkeypatch):
    scores = {(m, lr, s): (60.0 + lr, 70.0) for m in ("lamp", "pt") for lr in (0.01, 0.1) for s in (0, 1)}
    calls = []
    use_fake_train(monkeypatch, fake_train(scores, calls, fail={("lamp", 0.1, 0), ("lamp", 0.1, 1)}))
    records, paths = compare(fake_grid(tmp_path / "g"), log=quiet)
    failed = [r for r in records if r.error]
    assert len(failed) == 2 and not any(r.selected for r in failed)
    assert {r.lr for r in records if r.selected and r.method == "lamp"} == {0.01}
    assert "loss became nan" in paths["markdown"].read_text()
    calls.clear()
    compare(fake_grid(tmp_path / "g"), log=quiet)
    assert calls == []
    failed = json.loads((tmp_path / "g" / "cells" / "polarity-lamp-lr0.1-s0" / "failed.json").read_text())
    assert failed["config"]["max_steps"] == 5, "a failed cell keeps its settings"
    with pytest.raises(ConfigError, match=r"polarity-lamp-lr0.1-s0 was run with other settings \(max_steps"):
        compare(fake_grid(tmp_path / "g", methods=["lamp"], lrs={"lamp": [0.1]}, max_steps=9), log=quiet)


def test_finished_cell_with_other_settings_is_refused(tmp_path, monkeypatch):
    scores = {(m, lr, s): (60.0, 70.0) for m in ("lamp", "pt") for lr in (0.01, 0.1) for s in (0, 1)}
    use_fake_train(monkeypatch, fake_train(scores, []))
    compare(fake_grid(tmp_path / "g"), log=quiet)
    with pytest.raises(ConfigError, match="max_steps"):
        compare(fake_grid(tmp_path / "g", max_steps=9), log=quiet)
    # the same official files in another folder (a grid run on another machine, read back here) are the same grid
    (tmp_path / "elsewhere").mkdir()  # a data folder that does not exist is refused
    records, _ = compare(fake_grid(tmp_path / "g", data_dir=str(tmp_path / "elsewhere")), log=quiet, report_only=True)
    assert len(records) == 8


def test_a_grid_continues_from_an_earlier_report_with_reuse(tmp_path, monkeypatch):
    """--reuse: the cells of a comparison.json (a committed report; the cell folders are elsewhere or gone) stand in
    for cells OUT has no record of; only the rest train, and a row of other settings is refused."""
    scores = {(m, lr, s): (60.0 + 10 * lr + s, 70.0 + s) for m in ("lamp", "pt") for lr in (0.01, 0.1) for s in (0, 1)}
    calls = []
    use_fake_train(monkeypatch, fake_train(scores, calls))
    floor_calls = []

    def fake_floors(config):
        floor_calls.append(config.seed)
        common = {"steps": 0, "best_step": 0, "wall_s": 0.5, "config": dataclasses.asdict(config)}
        return {
            name: {**common, "test": {"score": score}, "validation": {"score": score}, "test_predictions": {"1": 24}}
            for name, score in (("none", 55.0), ("majority", 50.0))
        }

    monkeypatch.setattr(lamp.compare.run, "floor_results", fake_floors)
    report = tmp_path / "committed.json"
    _, paths = compare(fake_grid(tmp_path / "first", seeds=[0], floors=["none", "majority"]), log=quiet)
    report.write_text(paths["json"].read_text())  # the first grid's folder is gone on a fresh clone
    assert len(calls) == 4 and floor_calls == [0]
    calls.clear(), floor_calls.clear()
    lines: list[str] = []
    grid = fake_grid(tmp_path / "fresh", floors=["none", "majority"], sweep_seeds=1, reuse=str(report))
    records, _ = compare(grid, log=lines.append)
    assert sorted(calls) == [("lamp", 0.1, 1), ("pt", 0.1, 1)], "seed 0 (sweep and floors) is read back"
    assert floor_calls == [1] and sum("read back from" in line for line in lines) == 5  # 4 cells, 1 line of floors
    assert "committed.json: 6 of its 6 rows are cells of this grid" in lines[0]
    with pytest.raises(ConfigError, match="no row of --reuse .*committed.json is a cell of this grid"):
        compare(fake_grid(tmp_path / "none", seeds=[7], reuse=str(report)), log=quiet, report_only=True)
    # the reused rows are kept in their cell folders: a later run without --reuse still reports them
    assert (tmp_path / "fresh" / "cells" / "polarity-none-s0" / "reused.json").is_file()
    again, _ = compare(fake_grid(tmp_path / "fresh", floors=["none", "majority"], sweep_seeds=1), log=quiet)
    same = [dataclasses.replace(r, trained_now=False) for r in records]
    assert again == same and len(again) == 10
    compare(fake_grid(tmp_path / "fresh", floors=["none", "majority"], sweep_seeds=1), log=quiet, report_only=True)
    assert len(json.loads((tmp_path / "fresh" / "comparison.json").read_text())) == 10
    earlier = {row["cell"]: row for row in json.loads(report.read_text())}
    for record in records:
        if record.seed == 0:
            assert not record.trained_now and record.test_score == earlier[record.cell]["test_score"]
    assert {(r.method, r.lr) for r in records if r.selected and not r.floor} == {("lamp", 0.1), ("pt", 0.1)}
    # a committed row of other settings is refused, naming the setting; rows without settings (older reports) are
    # checked on their method and steps
    calls.clear(), floor_calls.clear()
    with pytest.raises(ConfigError, match=r"--reuse .*committed.json: cell polarity-lamp-lr0.01-s0 .*\(max_steps"):
        compare(fake_grid(tmp_path / "other", max_steps=9, floors=["none"], reuse=str(report)), log=quiet)
    grid = fake_grid(tmp_path / "fewer", train={"max_eval_examples": 7}, floors=["none"], reuse=str(report))
    with pytest.raises(ConfigError, match=r"cell polarity-none-s0 was run with other settings \(max_eval_examples"):
        compare(grid, log=quiet)
    assert floor_calls == [] and calls == [], "a report of other settings is refused before anything is scored"
    assert not (tmp_path / "fewer").exists()
    rows = json.loads(report.read_text())
    report.write_text(json.dumps([{k: v for k, v in row.items() if k != "config"} for row in rows]))
    calls.clear()
    compare(fake_grid(tmp_path / "older", seeds=[0], floors=["none", "majority"], reuse=str(report)), log=quiet)
    assert calls == []
    records, _ = compare(fake_grid(tmp_path / "again", seeds=[0], reuse=str(tmp_path / "older")), log=quiet)
    assert calls == [] and len(records) == 4, "a grid's folder stands for its comparison.json"
    with pytest.raises(ConfigError, match="max_steps"):
        compare(fake_grid(tmp_path / "older2", max_steps=9, reuse=str(report)), log=quiet)
    # a rate that rounds to the same folder name is another rate
    report.write_text(json.dumps([{**row, "lr": row["lr"] * (1 + 1e-9) if row["lr"] else None} for row in rows]))
    with pytest.raises(ConfigError, match=r"cell polarity-lamp-lr0.01-s0 was run with other settings \(lr\)"):
        compare(fake_grid(tmp_path / "rounded", reuse=str(report)), log=quiet)


GOOD_ROW = {
    "task": "polarity",
    "method": "lamp",
    "base_method": "lamp",
    "seed": 0,
    "lr": 0.03,
    "test_score": 70.0,
    "validation_curve": [[25, 60.0], [50, 65.0]],
    "cell": "polarity-lamp-lr0.03-s0",
}
FLOOR_ROW = {**GOOD_ROW, "method": "none", "base_method": "none", "lr": None, "floor": True, "cell": "polarity-none-s0"}


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        (None, "does not exist"),
        ("{not json", "cannot be read as JSON"),
        ("[1, 2]", "row 1 is not a cell's record"),
        ([{"task": "polarity"}], "row 1 is not a cell's record"),
        ({"rows": []}, "is not a comparison.json (a non-empty list of cell rows)"),
        (GOOD_ROW, "is not a comparison.json (a non-empty list of cell rows)"),  # one row, not a list of them
        ([], "is not a comparison.json (a non-empty list of cell rows)"),
        ([GOOD_ROW, {**GOOD_ROW, "test_score": 99.0}], "cell polarity-lamp-lr0.03-s0 has two rows: keep one"),
        ([GOOD_ROW, {**GOOD_ROW, "lr": "0.03"}], "row 2 is not a cell's record"),
        ([{**GOOD_ROW, "test_score": None}], "not a cell's record"),  # neither a score nor an error
        ([{**GOOD_ROW, "error": "loss became nan"}], "not a cell's record"),  # both
        ([{**GOOD_ROW, "test_score": float("nan")}], "not a cell's record"),
        ([{**GOOD_ROW, "validation_curve": [[1]]}], "not a cell's record"),
        ([{**GOOD_ROW, "validation_curve": [[1, None]]}], "not a cell's record"),
        ([{**GOOD_ROW, "floor": "yes"}], "not a cell's record"),
        ([{**GOOD_ROW, "collapsed": "x"}], "not a cell's record"),
        ([{**GOOD_ROW, "test_predictions": [1, 2]}], "not a cell's record"),
        ([{**GOOD_ROW, "steps": "3"}], "not a cell's record"),
        ([{**GOOD_ROW, "test_metrics": {"accuracy": 70.0, "score": 60.0}}], "not a cell's record"),  # edited score
        ([{**GOOD_ROW, "cell": "polarity-lamp-lr0.3-s0"}], "not a cell's record"),
        ([{**FLOOR_ROW, "test_score": None, "error": "boom"}], "not a cell's record"),  # a floor trains nothing
        ("", "--reuse is empty"),
    ],
)
def test_a_reuse_file_that_is_no_report_is_one_line(tmp_path, capsys, rows, fragment):
    path = tmp_path / "report.json"
    if isinstance(rows, str):
        path.write_text(rows)
    elif rows is not None:
        path.write_text(json.dumps(rows))
    reuse = "" if rows == "" else str(path)
    code = main(["compare", "--methods", "lamp", "--out", str(tmp_path / "g"), "--reuse", reuse])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "g").exists()


def test_every_field_of_a_report_row_is_checked_on_reuse():
    assert set(lamp.compare.cell._FIELD_CHECKS) == {f.name for f in dataclasses.fields(Cell)}
    assert lamp.compare.cell.is_record(Cell.from_json(GOOD_ROW)) and lamp.compare.cell.is_record(
        Cell.from_json(FLOOR_ROW)
    )
    scored = {**GOOD_ROW, "test_metrics": {"accuracy": 70.0, "score": 70.0}}
    assert lamp.compare.cell.is_record(Cell.from_json(scored))


# ---- grids, recipes, CLI ----------------------------------------------------------------------------------------
def test_committed_recipes_are_valid_and_fair():
    full = make_grid(load_recipe(ROOT / "benchmarks" / "quality.yaml"))
    quick = make_grid(load_recipe(ROOT / "benchmarks" / "quality.yaml"), quick=True)
    direct = make_grid(load_recipe(ROOT / "benchmarks" / "quality-quick.yaml"))
    assert quick == direct, "--quick on the full recipe is the quick recipe"
    for grid in (full, quick):
        assert grid.model == "smollm2-135m" and grid.train["format"] == "natural"
        assert {m.method for m in grid.methods} >= {"lamp", "pt", "dpt", "lora"}
        assert {m.options.get("length") for m in grid.methods if m.method == "pt"} == {100, 25}  # PT-25: LAMP's n
        assert "max_steps" not in grid.train, "one step budget for every method"
        assert grid.floors == ["none", "majority"]
    assert len(full.seeds) >= 3 and {"sst2", "rte", "mrpc"} <= set(full.tasks)
    assert full.max_steps >= 150 and full.train["batch_size"] == 16
    assert all(len(m.lrs) >= 2 for m in full.methods), "every method gets a learning-rate sweep"
    gpu = make_grid(load_recipe(ROOT / "benchmarks" / "quality-gpu.yaml"))
    same = ("tasks", "seeds", "sweep_seeds", "sweep_tasks", "floors", "methods")
    assert all(getattr(gpu, k) == getattr(full, k) for k in same) and gpu.max_steps >= 1000
    for path in sorted((ROOT / "benchmarks").glob("quality*.yaml")):  # every committed recipe parses
        grid = make_grid(load_recipe(path))
        assert grid.model == "smollm2-135m" and "max_steps" not in grid.train, path.name


def test_a_quick_mapping_writes_beside_the_full_grid():
    recipe = {"methods": ["lamp"], "seeds": [0, 1], "out": "runs/mine", "quick": {"seeds": [1]}}
    assert make_grid(recipe, quick=True).out == "runs/mine-quick", "never into the full grid's cells"
    assert make_grid({**recipe, "quick": {"seeds": [1], "out": "x"}}, quick=True).out == "x"


def test_a_quick_recipe_file_writing_into_the_full_grids_folder_is_refused(tmp_path):
    (tmp_path / "quick.yaml").write_text("methods: [lamp]\nout: runs/mine\n")
    (tmp_path / "full.yaml").write_text("methods: [lamp]\nseeds: [0, 1]\nout: runs/mine\nquick: quick.yaml\n")
    with pytest.raises(ConfigError, match=r"^quick recipe .*quick.yaml writes into the full grid's folder runs/mine: "):
        make_grid(load_recipe(tmp_path / "full.yaml"), quick=True)
    for path in sorted((ROOT / "benchmarks").glob("quality*.yaml")):  # each committed quick recipe has its own folder
        make_grid(load_recipe(path), quick=True)


def test_quick_without_a_quick_entry_shrinks_the_grid(tmp_path):
    grid = make_grid(
        {"methods": ["lamp"], "lrs": {"lamp": [0.03, 0.01]}, "seeds": [3, 4, 5], "max_steps": 500, "out": "x"},
        quick=True,
    )
    assert grid.seeds == [3] and grid.methods[0].lrs == [0.03] and grid.max_steps == 20
    assert grid.train["max_eval_examples"] == 64 and grid.out == "x-quick"


@pytest.mark.parametrize(
    "recipe,fragment",
    [
        ({"methods": ["nope"]}, "unknown method"),
        ({"methods": {"pt25": {"length": 25}}}, "unknown method"),
        ({"methods": {"short": {"method": "pt", "lenght": 25}}}, "lenght"),
        ({"tasks": ["nope"]}, "unknown task"),
        ({"train": {"lr": 0.1}}, "cannot be shared"),
        ({"lrs": {"lamp": [0.1, 0.1]}}, "twice"),
        ({"lrs": {"lora": [0.1]}, "methods": ["lamp"]}, "recipe key lrs names lora, which is not one of the grid"),
        ({"seeds": [0.5]}, "integers"),
    ],
)
def test_bad_grids_fail_before_training(recipe, fragment):
    with pytest.raises(LampError, match=fragment):
        make_grid(recipe)


def test_labelled_method_variants(tmp_path):
    grid = make_grid({"methods": {"pt25": {"method": "pt", "length": 25}, "lamp": {}}, "lrs": {"pt25": [0.1]}})
    assert [(m.label, m.method, m.options, m.lrs) for m in grid.methods] == [
        ("pt25", "pt", {"length": 25}, [0.1]),
        ("lamp", "lamp", {}, [training.TrainConfig.lr]),
    ]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "benchmarks" / "results").glob("*/comparison.json")), ids=lambda p: p.parent.name
)
def test_committed_comparison_rows_load_as_cells(path):
    # Rows written before a field existed take its default; every key a row has comes back unchanged.
    for row in json.loads(path.read_text()):
        back = Cell.from_json(row).to_json()
        assert list(back) == [f.name for f in dataclasses.fields(Cell)]
        assert {key: back[key] for key in row} == row


@pytest.mark.parametrize(
    ("lrs", "shape", "rate"),
    [
        ([0.01], "2 cells (1 task x 1 method x 2 seeds, one lr per method)", "at each method's one learning rate;"),
        (
            [0.01, 0.03],
            "4 cells (1 task x 1 method x 2 seeds, lrs swept on seeds 0, 1)",
            "at the learning rate selected per task on the mean validation score over seeds 0, 1;",
        ),
    ],
)
def test_cli_names_the_grid_in_plain_counts(tmp_path, monkeypatch, capsys, lrs, shape, rate):
    # "1 task x 1 method x 2 seeds", never "1 tasks"; a singular word for a count of one; a sweep only when there is one
    scores = {("lamp", lr, s): (80.0, 70.0) for lr in lrs for s in (0, 1)}
    use_fake_train(monkeypatch, fake_train(scores, []))
    recipe = tmp_path / "grid.yaml"
    recipe.write_text(
        f"tasks: [polarity]\nmethods: [lamp]\nlrs: {{lamp: {lrs}}}\nseeds: [0, 1]\nmax_steps: 5\n"
        f"floors: []\nout: {tmp_path / 'out'}\n"
    )
    assert main(["compare", "--config", str(recipe)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"lamp compare: {shape}, 5 steps")
    assert rate in (tmp_path / "out" / "comparison.md").read_text()  # the report names a selection only after a sweep


def test_cli_rejects_a_malformed_sweep(capsys):
    assert main(["compare", "--lrs", "lamp"]) == 2
    assert "METHOD=LR" in capsys.readouterr().err


# ---- floors and workers -----------------------------------------------------------------------------------------
def rte_folder(root: Path, train: int = 24, dev: int = 16) -> str:
    """A tiny RTE release (GLUE TSV) in a data folder: real files, so spawned worker processes read them too."""
    import random

    rng = random.Random(0)
    words = "the a movie film was is good bad great terrible boring fun not very it and of to this that".split()
    folder = root / "glue" / "RTE"
    folder.mkdir(parents=True)
    for name, n in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(n):
            one, two = (" ".join(rng.sample(words, 5)) for _ in range(2))
            lines.append(f"{i}\t{one}\t{two}\t{rng.choice(['entailment', 'not_entailment'])}")
        (folder / name).write_text("\n".join(lines) + "\n")
    return str(root)


def test_floors_are_scored_without_training_and_equal_the_bare_backbone(tiny_task, llama_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    grid = tiny_grid(
        llama_dir, tmp_path / "grid", floors=["none", "majority"], methods={"pt": {"length": 4}}, lrs={"pt": [0.3]}
    )
    records, paths = compare(grid, log=quiet)
    floors = {r.method: r for r in records if r.floor}
    assert set(floors) == {"none", "majority"} and all(r.selected and r.lr is None for r in floors.values())
    cell = tmp_path / "grid" / "cells" / "polarity-none-s0"
    assert (cell / "results.json").is_file() and not (cell / "adapter").exists(), "a floor trains nothing"
    saved = json.loads((cell / "results.json").read_text())["config"]
    assert saved["method"] == "none" and saved["method_options"] == {}, "not the grid's first method"
    # none: the bare backbone ranking " negative" / " positive" after each natural-format source, by hand
    backbone, tokenizer = AutoModelForCausalLM.from_pretrained(llama_dir), AutoTokenizer.from_pretrained(llama_dir)
    from lamp.tasks import get_task

    task = get_task("polarity", "natural")  # the splits above are rows as given, the label words natural
    words = [tokenizer(" " + w, add_special_tokens=False)["input_ids"][0] for w in task.label_words]
    correct = 0
    for example in tiny_task["test"]:
        ids = tokenizer(example.source, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            last = backbone(input_ids=ids).logits[0, -1]
        correct += int(last[words].argmax()) == example.label
    assert floors["none"].test_score == pytest.approx(100 * correct / len(tiny_task["test"]))
    # majority: the train split's most frequent label for every test row
    labels = [e.label for e in tiny_task["train"]]
    most = max(set(labels), key=lambda label: (labels.count(label), -label))
    expected = 100 * sum(e.label == most for e in tiny_task["test"]) / len(tiny_task["test"])
    assert floors["majority"].test_score == pytest.approx(expected)
    trained = [r for r in records if not r.floor]
    assert all(r.below_floor == (r.test_score <= floors["none"].test_score) for r in trained)
    table = paths["markdown"].read_text()
    assert "| none | - |" in table and "| majority | - |" in table
    assert "▽k/n: k of the n runs scored at or below the bare backbone with no prompt (row `none`)" in table
    assert "Floors, trained on nothing: `none` (the backbone zero-shot, same format and scorer); `majority`" in table
    assert ("▽1/1" in table) == any(r.below_floor for r in trained)


def test_workers_train_cells_in_processes_with_the_same_results(llama_dir, tmp_path):
    data = rte_folder(tmp_path / "data")
    recipe = dict(
        tasks=["rte"],
        methods={"pt": {"length": 2}, "lamp": {"length": 4, "rank": 2, "pool": 2}},
        lrs={"pt": [0.3], "lamp": [0.3]},
        floors=[],
        data_dir=data,
        train={"batch_size": 4, "eval_every": 2, "warmup_steps": 0, "zero_shot": False},
    )
    one = compare(tiny_grid(llama_dir, tmp_path / "one", **recipe), log=quiet)[0]
    two = compare(tiny_grid(llama_dir, tmp_path / "two", **recipe), log=quiet, workers=2)[0]
    assert [(r.method, r.test_score, r.validation_score) for r in one] == [
        (r.method, r.test_score, r.validation_score) for r in two
    ]
    assert all(r.trained_now for r in two)


def test_a_signal_to_a_grid_with_workers_stops_every_worker_once_and_nothing_trains_on(llama_dir, tmp_path):
    """SIGTERM to the process group of `lamp compare --workers 2` (`kill -- -PGID`; Ctrl-C signals the terminal's
    group the same way). Was: the main process died at once, and its workers saved their cells, then trained the
    cells queued for them, orphaned, holding the cells' locks. Now each worker saves its cell's checkpoint, no
    queued cell starts, every process ends, and the grid exits 130 in one line."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil
    import yaml

    recipe = tmp_path / "grid.yaml"
    methods = {"pt": {"length": 2}, "lamp": {"length": 4, "rank": 2, "pool": 2}, "dpt": {"length": 4, "rank": 2}}
    recipe.write_text(
        yaml.safe_dump(
            dict(
                model=llama_dir, tasks=["rte"], seeds=[0], methods=methods, lrs={name: [0.3] for name in methods},
                max_steps=100000, floors=[], data_dir=rte_folder(tmp_path / "data"), out=str(tmp_path / "grid"),
                train={"batch_size": 4, "eval_every": 5, "warmup_steps": 0, "zero_shot": False},
            )
        )
    )  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    command = [sys.executable, "-m", "lamp", "compare", "--config", str(recipe), "--workers", "2"]
    grid = subprocess.Popen(command, start_new_session=True, stderr=subprocess.PIPE, text=True, env=env)
    cells, workers = tmp_path / "grid" / "cells", []
    try:  # cells run in the recipe's order of methods, which safe_dump sorted: dpt and lamp train, pt waits
        training = [cells / "rte-dpt-lr0.3-s0" / "checkpoint.pt", cells / "rte-lamp-lr0.3-s0" / "checkpoint.pt"]
        deadline = time.monotonic() + 300
        while not all(path.is_file() for path in training) and grid.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert all(path.is_file() for path in training), "both workers are training"
        workers = psutil.Process(grid.pid).children()
        assert len(workers) >= 2
        os.killpg(grid.pid, signal.SIGTERM)
        assert grid.wait(timeout=300) == 130
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, "no worker trains on once the grid has stopped"
    finally:
        for process in [grid, *workers]:
            with contextlib.suppress(psutil.Error, OSError):
                process.kill()
    err = grid.stderr.read()
    assert "lamp compare: interrupted" in err and "Traceback" not in err, err
    assert err.count("checkpoint saved") == 2, "each worker stopped once, at a step boundary, with its checkpoint"
    assert not (cells / "rte-pt-lr0.3-s0").exists(), "the queued cell did not start"
    assert not any((cell / "results.json").exists() for cell in cells.iterdir())


def test_floors_must_be_known_names(llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="floors must be a list of distinct names from none, majority"):
        tiny_grid(llama_dir, tmp_path, floors=["zero"])
    with pytest.raises(ConfigError, match="method label 'none' is the name of a floor row"):
        tiny_grid(llama_dir, tmp_path, methods={"none": {"method": "pt", "length": 2}}, lrs={}, floors=["none"])


def test_gpu_quality_script_smoke_path_on_cpu(tmp_path):
    """benchmarks/gpu-quality.sh's SMOKE path: the GPU recipe's grid on a tiny model built by the script, 2 workers
    (cut to SST-2 and one seed here to stay fast); it must write a report with the floors and every method."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SMOKE": "1", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    env["EXTRA"] = "--tasks sst2 --seeds 0"
    script = ROOT / "benchmarks" / "gpu-quality.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    records = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert {r["method"] for r in records} == {"lamp", "pt-100", "pt-25", "dpt", "lora", "none", "majority"}
    assert sum(not r["floor"] for r in records) == 20, "every method's four learning rates on the sweep task"


def test_train_messages_name_the_recipe_keys():
    """Messages written for lamp train's flags, shown by lamp compare, where the user gave recipe keys."""
    from lamp.compare.recipe import as_recipe_keys

    for message, expected in [
        ("--warmup-steps must be from 0 to --max-steps (2)", "train: warmup_steps must be from 0 to max_steps (2)"),
        ("pass --train-file FILE or --dataset ID", "pass train: train_file FILE or train: dataset ID"),
        ("raise --max-length by 4 (or --max-new-tokens)", "raise train: max_length by 4 (or train: max_new_tokens)"),
        (
            "--lr must be > 0; --seed; --workers 2; --max-length-x",
            "lrs must be > 0; seeds; --workers 2; --max-length-x",
        ),
    ]:
        assert as_recipe_keys(message) == expected
    with pytest.raises(ConfigError, match=r"^train: warmup_steps must be an integer from 0 to max_steps \(3\)"):
        make_grid({"floors": [], "max_steps": 3, "train": {"warmup_steps": 5}})


# ---- recipe values that used to be replaced, stringified or silently dropped ------------------------------------
@pytest.mark.parametrize(
    "recipe,fragment",
    [
        ({"tasks": []}, "tasks must be a non-empty list"),
        ({"methods": []}, "methods must name at least one method"),
        ({"methods": ["lamp", "lamp"]}, "distinct method names"),
        ({"floors": None}, "floors must be a list"),
        ({"model": 5}, "model must be a model name, folder or hub id (text), got 5"),
        ({"model": ["a"]}, "model must be .* got \\['a'\\]"),
        ({"out": 5}, "out must be an output folder (text), got 5"),
        ({"out": ""}, "out must be an output folder"),
        ({"quick": {"bogus": 1}}, "quick holds unknown keys bogus"),
        ({"seeds": [0], "sweep_seeds": 5}, "sweep_seeds 5 exceeds the number of seeds \\(1\\)"),
        ({"methods": {"a/b": {"method": "lamp"}}}, "method label is 'a/b', which cannot be part of a cell's folder"),
        ({"methods": {"..": {"method": "lamp"}}}, "method label is '..'"),
        ({"tasks": [["sst2"]]}, "tasks must be a non-empty list of distinct task names"),
        ({"floors": [["none"]]}, "floors must be a list of distinct names"),
        ({"methods": {"mine": {"method": ["lamp"]}}}, "methods: mine: method \\['lamp'\\] is not a registered method"),
        ({"methods": {"mine": {"method": "nope"}}}, "methods: mine: method 'nope' is not a registered method"),
        (  # was: the option's error alone, naming no method among the recipe's several
            {"methods": {"mine": {"method": "lamp", "length": 8, "pool": 3}}},
            "^methods: mine: pool 3 does not divide length 8: pick a length",
        ),
        ({"methods": {1e3: {"method": "lamp"}}}, r"method label must be text, got 1000.0 \(YAML read it as a number"),
        (
            {"seeds": ["0"]},
            r"seeds must hold integers .*, got \['0'\] \(text, not a number: write it without quotes\)$",
        ),
        ({"model": True}, r"model must be a model name, folder or hub id (text), got True \(YAML reads unquoted true"),
        ({"train": {"batch_size": 2.5}}, "^train: batch_size must be a positive integer, got 2.5$"),  # was --batch-size
        (
            {"methods": ["lamp"], "lrs": {"lamp": [0.1234567, 0.1234568]}},
            "lrs of lamp hold two rates that name one cell \\(lr0.123457\\)",
        ),
    ],
)
def test_recipe_values_are_refused_not_replaced(recipe, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(text)", "\\(text\\)")):
        make_grid({"floors": [], **recipe})


def test_a_data_dir_that_is_no_folder_is_refused_before_cells_train_not_on_report_only(tmp_path):
    grid = make_grid({"floors": [], "data_dir": "/nonexistent/lamp-data", "out": str(tmp_path / "grid")})
    with pytest.raises(ConfigError, match="data_dir /nonexistent/lamp-data is not a folder"):
        compare(grid)
    assert not (tmp_path / "grid").exists()
    # --report-only reads cells trained elsewhere: their data folder need not exist here
    with pytest.raises(ConfigError, match="no finished cells in .* yet"):
        compare(grid, report_only=True)


def test_a_method_that_does_not_fit_the_backbone_is_refused_before_any_cell(tiny_task, llama_dir, tmp_path):
    """The width is the backbone's (32 here): read from its config, so the grid stops before its first cell."""
    methods = {"lamp": {"length": 4, "rank": 2, "pool": 2}, "wide": {"method": "dpt", "length": 40, "rank": 33}}
    grid = tiny_grid(llama_dir, tmp_path / "grid", methods=methods, lrs={"lamp": [0.3], "wide": [0.3]})
    with pytest.raises(ConfigError, match=r"^methods: wide: rank 33 exceeds the backbone's width 32: pass rank <= 32$"):
        compare(grid, log=quiet)
    assert not (tmp_path / "grid").exists()
    # a prompt to start from that does not exist: was refused by the first cell, after every floor had scored
    grid = tiny_grid(llama_dir, tmp_path / "grid", train={"init_from": str(tmp_path / "nowhere")})
    with pytest.raises(LampError, match=r"^methods: lamp: no adapter at .*nowhere: expected adapter_config\.json"):
        compare(grid, log=quiet)
    assert not (tmp_path / "grid").exists()


def test_a_task_a_cell_would_refuse_is_refused_before_any_cell(llama_dir, tmp_path, monkeypatch):
    """polarity's rows fit; rte's cue (7 word tokens) leaves no room under max_length 8 with the answer's 2 tokens:
    refused before polarity's cells train, naming the task. The batch is checked there too."""
    import lamp.tasks
    from lamp.tasks import Example

    def rows(task, n):
        if task.name == "rte":
            cue = "\nQuestion: it rains True or False?\nAnswer:"
            return [Example(f"it is wet{cue}", "True", 0, cue=cue) for _ in range(n)]
        return [Example("the movie was good", "positive", 1) for _ in range(n)]

    monkeypatch.setattr(
        lamp.tasks, "load_splits", lambda task, data_dir=None, seed=42: {s: rows(task, 16) for s in SPLITS}
    )
    grid = tiny_grid(llama_dir, tmp_path / "grid", tasks=["polarity", "rte"], train={"max_length": 8, "batch_size": 8})
    with pytest.raises(
        ConfigError,
        match=r"^task rte: train: max_length leaves \d+ tokens? for an input and the template's cue .* raise train: ",
    ):
        compare(grid, log=quiet)
    assert not (tmp_path / "grid").exists()
    grid = tiny_grid(llama_dir, tmp_path / "grid", train={"batch_size": 32})
    with pytest.raises(
        ConfigError, match=r"^task polarity: train: batch_size 32 takes 32 rows a step, and the training"
    ):
        compare(grid, log=quiet)


def test_overrides_are_refused_not_replaced(capsys):
    with pytest.raises(ConfigError, match="--lrs names lamp twice"):
        make_grid({}, lrs=parse_lrs(["lamp=0.1", "lamp=0.2"]))
    # the recipe's lrs may name a recipe method that --methods leaves out; --lrs only a method the grid runs
    grid = make_grid({"methods": ["lamp", "pt"], "lrs": {"pt": [0.1]}}, methods=["lamp"])
    assert [m.label for m in grid.methods] == ["lamp"]
    with pytest.raises(ConfigError, match=r"^--lrs names pt, which is not one of the grid's methods \(lamp\): drop"):
        make_grid({"methods": ["lamp", "pt"]}, methods=["lamp"], lrs=parse_lrs(["pt=0.1"]))
    assert main(["compare", "--out", "", "--report-only"]) == 2
    assert "out must be an output folder" in capsys.readouterr().err
    # --quick keeps a sweep on at most the one seed it keeps
    assert make_grid({"seeds": [0, 1, 2], "sweep_seeds": 2}, quick=True).sweep == [0]


def test_a_task_name_that_is_a_path_cannot_leave_the_grid_folder(tmp_path, capsys):
    (tmp_path / "rows.jsonl").write_text('{"text": "a", "label": "negative"}\n')
    spec = tmp_path / "task.yaml"
    spec.write_text(
        'train_file: rows.jsonl\ntemplate: "R: {text}"\nlabel_words: [negative, positive]\nname: "../../x"\n'
    )
    recipe = tmp_path / "grid.yaml"
    recipe.write_text(f"tasks: [{spec}]\nfloors: []\n")
    assert main(["compare", "--config", str(recipe), "--report-only", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "task name of" in err and "'../../x'" in err, err


def test_a_refused_grid_leaves_no_folder_behind(tmp_path, capsys):
    # a bad --model fails after the grid folder was locked: the folders made for it go again, with the lock file
    out = tmp_path / "new" / "grid"
    assert main(["compare", "--model", str(tmp_path / "no-model"), "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    assert "cannot load model" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("{not json", r"is not a lamp cell's record \(no 'test' in a JSON object\)"),
        ("[" * 100_000, r"is not a lamp cell's record"),
        ('{"config": {}}', r"is not a lamp cell's record \(no 'test'"),
        ('{"config": {}, "test": {"score": "high"}}', r"holds no test score"),
    ],
)
def test_a_cell_record_changed_by_hand_is_one_line_naming_it(tmp_path, text, fragment):
    from lamp.compare.run import run_cells

    grid = make_grid({"floors": [], "tasks": ["sst2"], "seeds": [0], "methods": ["lamp"], "out": str(tmp_path)})
    spec = grid.methods[0]
    cell = tmp_path / "cells" / f"sst2-{spec.label}-lr{spec.lrs[0]}-s0"
    cell.mkdir(parents=True)
    (cell / "results.json").write_text(text)
    with pytest.raises(ConfigError, match=f"{cell}/results.json {fragment}.*delete {cell} to run that cell again"):
        run_cells(grid, [("sst2", spec, spec.lrs[0], 0)], print, 0, 1, report_only=True)
