"""Adapter save/load: identical outputs after a round trip, and clear errors for bad adapters."""

from __future__ import annotations

import json

import pytest
import torch

import lamp
from lamp.errors import AdapterError

from .conftest import make_llama, make_t5


@pytest.mark.parametrize("config", [lamp.LampConfig(length=8, rank=2, pool=2), lamp.PromptTuningConfig(length=3)])
def test_round_trip_gives_identical_outputs(backbone, tokenizer, tmp_path, config):
    model = lamp.wrap(backbone, config)
    with torch.no_grad():
        for p in model.prompt_encoder.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # a "trained" prompt, not the init
    model.save_adapter(tmp_path)
    loaded = lamp.load_adapter(backbone, tmp_path)
    assert loaded.prompt_config == config
    batch = tokenizer(["the movie was good"], return_tensors="pt")
    extra = {"labels": tokenizer(["positive"], return_tensors="pt")["input_ids"]} if model.kind == "seq2seq" else {}
    assert torch.equal(loaded(**batch, **extra).logits, model(**batch, **extra).logits)
    meta = json.loads((tmp_path / "adapter.json").read_text())
    assert meta["prompt"]["method"] == config.method
    assert meta["backbone"]["embedding_width"] == backbone.get_input_embeddings().weight.shape[1]


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
