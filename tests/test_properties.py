"""Property-based tests: prompt-module shapes, parameter counts, pooling and SVD exactness over many configurations,
and malformed data rows that must end as a DataError naming file and line, never another exception."""

from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lamp
from lamp.errors import ConfigError, DataError
from lamp.tasks import load_splits

from .conftest import SHARED_DATA, make_llama

WIDTH = 32
BACKBONE = make_llama(hidden=WIDTH)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def lamp_configs(draw):
    pool = draw(st.integers(1, 6))
    length = pool * draw(st.integers(1, 12))
    rank = draw(st.integers(1, min(length, WIDTH)))
    return lamp.LampConfig(length=length, rank=rank, pool=pool)


@SETTINGS
@given(lamp_configs())
def test_lamp_shapes_counts_and_pooling(config):
    model = lamp.wrap(BACKBONE, config)
    e = model.prompt_encoder
    assert model.num_trainable_parameters() == config.length * config.rank + config.rank + config.rank * WIDTH
    prompt = model.prompt()
    assert prompt.shape == (config.length // config.pool, WIDTH)
    full = e.u @ torch.diag(e.q) @ e.v
    reference = full.reshape(-1, config.pool, WIDTH).mean(1)
    torch.testing.assert_close(prompt, reference, atol=1e-5, rtol=1e-5)
    assert torch.linalg.matrix_rank(full).item() <= config.rank


@SETTINGS
@given(st.integers(1, 24), st.integers(0, 2**31 - 1))
def test_full_rank_svd_is_exact(length, seed):
    torch.manual_seed(seed)
    pt = lamp.wrap(BACKBONE, lamp.PromptTuningConfig(length=length))
    torch.manual_seed(seed)
    full = lamp.wrap(BACKBONE, lamp.LampConfig(length=length, rank=min(length, WIDTH), pool=1))
    torch.testing.assert_close(full.prompt(), pt.prompt(), atol=1e-5, rtol=0)


@SETTINGS
@given(st.integers(-3, 40), st.integers(-3, 40), st.integers(-3, 8))
def test_any_lamp_config_is_valid_or_a_one_line_config_error(length, rank, pool):
    try:
        config = lamp.LampConfig(length=length, rank=rank, pool=pool)
    except ConfigError as error:
        message = str(error)  # one line: the problem, then the fix (after a colon, or as "must be <range>")
        assert "\n" not in message and (":" in message or " must be " in message)
        return
    assert length >= 1 and 1 <= rank <= length and pool >= 1 and length % pool == 0
    try:
        model = lamp.wrap(BACKBONE, config)
    except ConfigError as error:
        assert rank > WIDTH and "exceeds min(length, embedding width)" in str(error)
        return
    assert model.n_virtual == length // pool


@pytest.fixture(scope="module")
def rte_copy(tmp_path_factory):
    if not (SHARED_DATA / "glue" / "RTE").is_dir():
        pytest.skip("../shared/data is not present")
    root = tmp_path_factory.mktemp("data")
    shutil.copytree(SHARED_DATA / "glue" / "RTE", root / "glue" / "RTE")
    return root


tsv_field = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40)
"""A field of one TSV line (a line break would split the inserted row into rows this test does not count)."""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.lists(tsv_field, min_size=0, max_size=6), line=st.integers(2, 50))
def test_malformed_tsv_rows_give_a_data_error_naming_file_and_line(rte_copy, fields, line):
    path = rte_copy / "glue" / "RTE" / "dev.tsv"
    original = (SHARED_DATA / "glue" / "RTE" / "dev.tsv").read_text(encoding="utf-8")
    rows = original.splitlines(keepends=True)
    rows.insert(line - 1, "\t".join(fields) + "\n")
    path.write_text("".join(rows), encoding="utf-8")
    try:
        splits = load_splits("rte", rte_copy)
    except DataError as error:
        message = str(error)
        assert "\n" not in message and "dev.tsv" in message
        return
    # A blank line is skipped; a row that happens to be well-formed loads; nothing else gets through silently.
    blank = "\t".join(fields) == ""
    assert sum(len(v) for k, v in splits.items() if k != "train") == (277 if blank else 278)
    cells = "\t".join(fields).split("\t")
    assert blank or (len(cells) == 4 and is_rte_label(cells[3])), f"{cells} loaded as an RTE row"


def is_rte_label(text: str) -> bool:
    """RTE's label words, or an index into them as GLUE's hub copy writes it."""
    if text.strip() in ("entailment", "not_entailment"):
        return True
    try:
        return int(text) in (0, 1)
    except ValueError:
        return False
