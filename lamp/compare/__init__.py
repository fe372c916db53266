"""Method comparison under one harness: a grid of `lamp.train.train` runs (task x method x learning rate x seed).

Every cell shares data, scorer, schedule and evaluation; only the method and its learning rate change. Each
method's learning rate is selected per task on the mean validation score over seeds (never on test), and the
report gives the test score at that learning rate as mean +- std over seeds, like the paper's table.

Cells live in `OUT/cells/<task>-<method>-lr<lr>-s<seed>`. A grid resumes where it stopped: a cell with
`results.json` is read back, not rerun; a cell that was interrupted continues from its checkpoint; a cell whose
loss diverged (NaN or inf) is recorded in `failed.json` and reported, not retried.

Modules, each using only those above it: `cell` (a cell's folder name and its `Cell` record, a row of
comparison.json), `recipe` (the YAML recipe, --quick and overrides validated into a `Recipe`), `report` (summary,
paired test, comparison.md/.png/.json), `run` (floors, sweep, selection, workers, the folder lock; `compare`).
"""

from lamp.compare.cell import Cell, cell_name
from lamp.compare.recipe import GridMethod, Recipe, grid_config, load_recipe, make_grid, parse_lrs, quick_recipe
from lamp.compare.report import Paired, Stat, Summary, markdown, paired_differences, summary, write_report
from lamp.compare.run import choose_lrs, compare, run_grid

__all__ = [
    "Cell",
    "GridMethod",
    "Paired",
    "Recipe",
    "Stat",
    "Summary",
    "cell_name",
    "choose_lrs",
    "compare",
    "grid_config",
    "load_recipe",
    "make_grid",
    "markdown",
    "paired_differences",
    "parse_lrs",
    "quick_recipe",
    "run_grid",
    "summary",
    "write_report",
]
