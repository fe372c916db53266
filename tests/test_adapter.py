"""Adapter save/load: identical outputs after a round trip, and clear errors for bad adapters."""

from __future__ import annotations

import json

import pytest

import lamp
from lamp.errors import AdapterError

from .conftest import make_llama, make_t5


def test_missing_adapter(tmp_path, llama):
    with pytest.raises(AdapterError, match="adapter.json is missing"):
        lamp.load_adapter(llama, tmp_path)


def test_wrong_width_is_refused(tmp_path):
    lamp.wrap(make_llama(hidden=32), lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path)
    with pytest.raises(AdapterError, match="embedding width 32"):
        lamp.load_adapter(make_llama(hidden=48), tmp_path)


def test_wrong_kind_is_refused(tmp_path):
    lamp.wrap(make_llama(), lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path)
    with pytest.raises(AdapterError, match="is for a causal model"):
        lamp.load_adapter(make_t5(), tmp_path)


def test_corrupt_weights_are_refused(tmp_path, llama):
    lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path)
    (tmp_path / "adapter.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AdapterError, match="is corrupt"):
        lamp.load_adapter(llama, tmp_path)


def test_corrupt_config_is_refused(tmp_path, llama):
    lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path)
    (tmp_path / "adapter.json").write_text("{ half")
    with pytest.raises(AdapterError, match="corrupt or not a lamp adapter config"):
        lamp.load_adapter(llama, tmp_path)


def test_weights_that_do_not_match_config_are_refused(tmp_path, llama):
    lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path)
    meta = json.loads((tmp_path / "adapter.json").read_text())
    meta["prompt"]["rank"] = 3
    (tmp_path / "adapter.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterError, match="do not belong together"):
        lamp.load_adapter(llama, tmp_path)


def test_deeply_nested_config_is_refused_in_one_line(tmp_path, llama):
    # json recurses once per level: 100,000 '[' is a RecursionError, not a ValueError
    lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path)
    (tmp_path / "adapter.json").write_text("[" * 100_000)
    with pytest.raises(AdapterError, match="corrupt or not a lamp adapter config \\(JSON nested too deeply\\)"):
        lamp.load_adapter(llama, tmp_path)
