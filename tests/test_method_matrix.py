"""Every registered method x {tiny T5, tiny Llama}, through shared assertions: what its config declares is what it
does. A method added to the registry gets every row here with its default options, and no test names a method.

Rows: one training step leaves the backbone as declared (frozen, injected layers only, or trained), the adapter
round trip gives identical outputs, export writes what is declared and loads back through stock PEFT or
transformers with the same logits (or is refused in one line), and generate starts with the token forward ranks
first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import lamp
from lamp.errors import AdapterError
from lamp.methods import METHODS, Backbone, Declaration, Export, PromptConfig, PromptModule, make_config, register

from .conftest import make_llama, make_t5, make_tokenizer

MAKERS = {"t5": make_t5, "llama": make_llama}
ROWS = [pytest.param(method, arch, id=f"{method}-{arch}") for method in METHODS for arch in MAKERS]
SENTENCES = ["the movie was good", "a very boring and terrible film . i was not fun", "it is great"]


# ---- shared assertions ------------------------------------------------------------------------------------------
def batch_for(model: lamp.PromptedModel) -> dict[str, torch.Tensor]:
    """A padded batch with labels (causal: the last token), padded as lamp pads each kind."""
    tokenizer = make_tokenizer(padding_side="left" if model.kind == "causal" else "right")
    batch = dict(tokenizer(SENTENCES, return_tensors="pt", padding=True))
    if model.kind == "seq2seq":
        batch["labels"] = tokenizer(["positive"] * len(SENTENCES), return_tensors="pt")["input_ids"]
    else:
        labels = torch.full_like(batch["input_ids"], -100)
        labels[:, -1] = batch["input_ids"][:, -1]
        batch["labels"] = labels
    return batch


def input_logits(model: Any, kind: str) -> torch.Tensor:
    """Logits at the input positions (causal) or of the decoder (seq2seq) for a fixed unpadded batch, no grad, in
    eval mode: comparable between lamp, stock PEFT and transformers (which keep the prompt's positions too)."""
    ids = torch.tensor([[5, 9, 12, 7, 20], [6, 11, 4, 30, 8]])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if kind == "seq2seq":
        inputs["labels"] = torch.tensor([[3, 4, 1], [10, 1, 0]])
    model.eval()
    with torch.no_grad():
        out = model(**inputs).logits
    return out[:, -ids.shape[1] :] if kind == "causal" else out


def trained(model: lamp.PromptedModel, lr: float = 0.05) -> dict[str, torch.Tensor]:
    """One AdamW step on the method's own optimizer groups; returns the backbone's state before it."""
    before = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}
    model.train()
    optimizer = torch.optim.AdamW(model.prompt_encoder.optimizer_groups(lr), lr=lr)
    model(**batch_for(model)).loss.backward()
    own = [p for p in model.prompt_encoder.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in own), "every trainable tensor of the method gets a gradient"
    assert any(p.grad.abs().sum() > 0 for p in own), "and some gradient is not zero"
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.eval()
    return before


def assert_declaration_holds(model: lamp.PromptedModel) -> None:
    """The module and the wrapper agree with the config's declaration before any training."""
    declares = model.declares
    assert (model.n_virtual > 0) == declares.prompt_rows
    assert model.prompt_config.n_virtual() == model.n_virtual, "the config knows the module's rows before it is built"
    assert model.prompt().shape == (model.n_virtual, model.backbone.get_input_embeddings().weight.shape[1])
    fields = {f for f in type(model.prompt_config).__dataclass_fields__}
    assert declares.prompt_init == ({"init", "init_text"} <= fields)
    own = {id(p) for p in model.prompt_encoder.parameters() if p.requires_grad}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert own == trainable, "only the method's own tensors train"
    assert bool(own) == declares.trains
    backbone = list(model.backbone.parameters())
    if declares.backbone is Backbone.TRAINED:
        assert all(p.requires_grad for p in backbone)
    else:  # frozen, or frozen with trainable layers injected into it (the method's own)
        assert all(p.requires_grad == (id(p) in own) for p in backbone)
        assert any(id(p) in own for p in backbone) == (declares.backbone is Backbone.INJECTED)


def assert_step_leaves_backbone_as_declared(model: lamp.PromptedModel) -> None:
    """After one step: a frozen backbone is bit-identical, an injected one changed only in its injected layers, a
    trained one changed; a declared input hook now changes the embeddings."""
    declares = model.declares
    if not declares.trains:
        return
    own = {id(p) for p in model.prompt_encoder.parameters()}
    prompt_before = [p.detach().clone() for p in model.prompt_encoder.parameters()]
    before = trained(model)
    after = dict(model.backbone.named_parameters())
    changed = {name for name, p in after.items() if not torch.equal(p, before[name])}
    injected = {name for name, p in after.items() if id(p) in own}
    if declares.backbone is Backbone.FROZEN:
        assert not changed, sorted(changed)[:5]
    elif declares.backbone is Backbone.INJECTED:
        assert changed and changed <= injected, sorted(changed - injected)[:5]
    else:
        assert len(changed) > len(after) // 2, "most of the backbone's own weights moved"
    moved = [not torch.equal(a, b) for a, b in zip(prompt_before, model.prompt_encoder.parameters(), strict=True)]
    assert any(moved), "the method's own tensors moved"
    if declares.input_embeddings:
        batch = batch_for(model)
        embeds = model.backbone.get_input_embeddings()(batch["input_ids"])
        with torch.no_grad():
            assert not torch.equal(model.prompt_encoder.embed_inputs(embeds, batch["attention_mask"]), embeds)


def assert_round_trip(model: lamp.PromptedModel, make: Any, folder: Path) -> None:
    """save_adapter then load_adapter on a fresh backbone with the same weights: the same config, metadata and
    outputs, bit for bit."""
    model.save_adapter(folder)
    loaded = lamp.load_adapter(make(), folder)
    assert loaded.prompt_config == model.prompt_config
    meta = json.loads((folder / "adapter.json").read_text())
    assert meta["prompt"]["method"] == model.prompt_config.method
    assert meta["backbone"]["embedding_width"] == model.backbone.get_input_embeddings().weight.shape[1]
    assert meta["n_virtual"] == model.n_virtual
    assert torch.equal(input_logits(loaded, model.kind), input_logits(model, model.kind))
    batch = batch_for(model)
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, model(**batch).logits)


def assert_export_as_declared(model: lamp.PromptedModel, make: Any, folder: Path) -> None:
    """A declared export loads back without lamp (stock PEFT on a fresh backbone, or transformers) and gives the
    same logits; a method that declares none is refused in one line and nothing is written."""
    export = model.declares.export
    if export is None:
        with pytest.raises(AdapterError, match=f"method '{model.prompt_config.method}' .* export") as info:
            lamp.export_adapter(model, folder)
        assert "\n" not in str(info.value) and not folder.exists()
        return
    model.backbone_name = "tiny-" + model.kind
    out, line = lamp.export_adapter(model, folder)
    assert str(out) in line
    if export is Export.MODEL:
        from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

        auto = AutoModelForSeq2SeqLM if model.kind == "seq2seq" else AutoModelForCausalLM
        reloaded = auto.from_pretrained(out)
    else:
        from peft import PeftModel

        saved = json.loads((out / "adapter_config.json").read_text())
        assert saved["peft_type"] == ("PROMPT_TUNING" if export is Export.PEFT_PROMPT else "LORA")
        assert saved["task_type"] == ("CAUSAL_LM" if model.kind == "causal" else "SEQ_2_SEQ_LM")
        assert saved["base_model_name_or_path"] == "tiny-" + model.kind
        if export is Export.PEFT_PROMPT:
            assert (saved["num_virtual_tokens"], saved["num_transformer_submodules"]) == (model.n_virtual, 1)
        reloaded = PeftModel.from_pretrained(make(), out)
    torch.testing.assert_close(input_logits(reloaded, model.kind), input_logits(model, model.kind), atol=1e-5, rtol=0)


def assert_generates(model: lamp.PromptedModel) -> None:
    """generate returns what the bare backbone's generate would (input in front for causal LMs), and its first new
    token is the one forward ranks first."""
    ids = torch.tensor([[5, 9, 12, 7, 20]])
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
        if model.kind == "causal":
            assert out.shape == (1, ids.shape[1] + 3) and torch.equal(out[:, : ids.shape[1]], ids)
            first, expected = out[0, ids.shape[1]], model(input_ids=ids).logits[0, -1].argmax()
        else:
            start = torch.tensor([[model.config.decoder_start_token_id]])
            assert out.shape[0] == 1 and 1 < out.shape[1] <= 4 and out[0, 0] == start[0, 0]
            first, expected = out[0, 1], model(input_ids=ids, decoder_input_ids=start).logits[0, -1].argmax()
    assert first == expected


# ---- the matrix -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, arch", ROWS)
def test_a_step_leaves_the_backbone_as_declared(method, arch):
    model = lamp.wrap(MAKERS[arch](), make_config(method))
    assert_declaration_holds(model)
    assert_step_leaves_backbone_as_declared(model)


@pytest.mark.parametrize("method, arch", ROWS)
def test_adapter_round_trip_gives_identical_outputs(method, arch, tmp_path):
    model = lamp.wrap(MAKERS[arch](), make_config(method))
    if model.declares.trains:
        trained(model)  # a trained method, not its init (LoRA's update and DePT's offset start at zero)
    assert_round_trip(model, MAKERS[arch], tmp_path / "adapter")


@pytest.mark.parametrize("method, arch", ROWS)
def test_export_is_what_the_method_declares(method, arch, tmp_path):
    model = lamp.wrap(MAKERS[arch](), make_config(method))
    if model.declares.trains:
        trained(model)
    assert_export_as_declared(model, MAKERS[arch], tmp_path / "export")


@pytest.mark.parametrize("method, arch", ROWS)
def test_generate_matches_forward(method, arch):
    model = lamp.wrap(MAKERS[arch](), make_config(method))
    if model.declares.trains:
        trained(model)
    assert_generates(model)


# ---- the declarations themselves --------------------------------------------------------------------------------
def test_every_method_is_in_the_matrix_by_registering_it():
    assert {row.values[0] for row in ROWS} == set(METHODS)
    for name, entry in METHODS.items():
        assert entry.config.method == name and isinstance(entry.config.declares, Declaration)


def test_a_declaration_that_contradicts_itself_is_refused():
    with pytest.raises(ValueError, match="PEFT prompt export needs a method whose effect is its prompt, but it also"):
        Declaration(input_embeddings=True)
    with pytest.raises(ValueError, match="whose effect is its prompt, but it adds no prompt rows"):
        Declaration(prompt_rows=False)
    with pytest.raises(ValueError, match="export peft-lora needs backbone injected"):
        Declaration(prompt_rows=False, export=Export.PEFT_LORA)
    with pytest.raises(ValueError, match="export model needs backbone trained"):
        Declaration(backbone=Backbone.INJECTED, export=Export.MODEL)


def test_register_refuses_a_taken_name_and_an_undeclared_input_hook():
    class Hooked(PromptModule):
        def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return inputs_embeds

    with pytest.raises(ValueError, match="'lamp' is registered already"):
        register("lamp", PromptConfig, PromptModule)
    with pytest.raises(ValueError, match="Hooked overrides embed_inputs, but PromptConfig.declares has input_emb"):
        register("hooked", PromptConfig, Hooked)
    assert "hooked" not in METHODS
