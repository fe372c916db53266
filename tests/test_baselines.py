"""The baselines: DePT, DPT, LoRA (peft) and full fine-tuning behind the prompt-module interface."""

from __future__ import annotations

import copy

import pytest
import torch

import lamp
from lamp.errors import ConfigError
from lamp.methods import make_config

from .conftest import (
    assert_left_padded_batch_scores_like_rows_alone,
    assert_right_padded_seq2seq_scores_like_rows_alone,
    make_llama,
)

SENTENCES = ["the movie was good", "a very boring and terrible film . i was not fun", "it is great"]


def width(model) -> int:
    return model.get_input_embeddings().weight.shape[1]


def batch_for(model, tokenizer, sentences=SENTENCES):
    tokenizer.padding_side = "left" if model.kind == "causal" else "right"
    batch = dict(tokenizer(sentences, return_tensors="pt", padding=True))
    if model.kind == "seq2seq":
        batch["labels"] = tokenizer(["positive"] * len(sentences), return_tensors="pt")["input_ids"]
    else:
        labels = torch.full_like(batch["input_ids"], -100)
        labels[:, -1] = batch["input_ids"][:, -1]
        batch["labels"] = labels
    return batch


def one_step(model, tokenizer, lr: float = 0.1) -> None:
    model.train()
    optimizer = torch.optim.AdamW(model.prompt_encoder.optimizer_groups(lr), lr=lr)
    model(**batch_for(model, tokenizer)).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# ---- parameter counts -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("length,rank,max_length", [(60, 30, 256), (4, 2, 8), (1, 1, 1)])
def test_dept_parameter_count(backbone, length, rank, max_length):
    d = width(backbone)
    model = lamp.wrap(backbone, make_config("dept", length=length, rank=rank, max_length=max_length))
    assert model.num_trainable_parameters() == length * d + max_length * rank + rank * d
    assert model.prompt().shape == (length, d) and model.n_virtual == length


@pytest.mark.parametrize("length,rank", [(100, 8), (5, 3), (2, 1)])
def test_dpt_parameter_count(backbone, length, rank):
    d = width(backbone)
    model = lamp.wrap(backbone, make_config("dpt", length=length, rank=rank))
    assert model.num_trainable_parameters() == length * rank + rank * d
    assert model.prompt().shape == (length, d)


def test_dpt_prompt_starts_on_the_embedding_scale(llama):
    model = lamp.wrap(llama, make_config("dpt", length=200, rank=4))
    target = llama.get_input_embeddings().weight.std().item()
    assert model.prompt().std().item() == pytest.approx(target, rel=0.25)
    assert torch.linalg.matrix_rank(model.prompt()).item() == 4


# ---- gradients and frozen backbone ------------------------------------------------------------------------------
def test_dept_offset_starts_at_zero_and_moves_after_a_step(llama, tokenizer):
    model = lamp.wrap(llama, make_config("dept", length=3, rank=2, max_length=6))
    encoder = model.prompt_encoder
    batch = batch_for(model, tokenizer)
    embeds = llama.get_input_embeddings()(batch["input_ids"])
    assert torch.equal(encoder.offset(), torch.zeros(6, width(llama)))
    assert torch.equal(encoder.embed_inputs(embeds, batch["attention_mask"]), embeds)
    one_step(model, tokenizer)
    assert encoder.offset().abs().sum() > 0
    moved = encoder.embed_inputs(embeds, batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert not torch.allclose(moved[real], embeds[real])
    assert torch.equal(moved[~real], embeds[~real]), "pad positions get no offset"


def test_dept_offset_stops_after_max_length(llama):
    model = lamp.wrap(llama, make_config("dept", length=2, rank=2, max_length=3))
    torch.nn.init.normal_(model.prompt_encoder.b)
    embeds = torch.zeros(1, 5, width(llama))
    moved = model.prompt_encoder.embed_inputs(embeds, torch.ones(1, 5, dtype=torch.long))
    torch.testing.assert_close(moved[0, :3], model.prompt_encoder.offset())
    assert torch.equal(moved[0, 3:], torch.zeros(2, width(llama)))


def test_dept_two_learning_rates_reach_the_optimizer(llama):
    from transformers import get_linear_schedule_with_warmup

    model = lamp.wrap(llama, make_config("dept", length=3, rank=2, max_length=6, offset_lr=1e-3))
    encoder = model.prompt_encoder
    optimizer = torch.optim.AdamW(encoder.optimizer_groups(0.3), lr=0.3, weight_decay=1e-5)  # as lamp.train builds it
    groups = {tuple(id(p) for p in g["params"]): g["lr"] for g in optimizer.param_groups}
    assert groups == {(id(encoder.weight),): 0.3, (id(encoder.a), id(encoder.b)): 1e-3}
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 10)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    prompt_lr, offset_lr = (g["lr"] for g in optimizer.param_groups)
    assert prompt_lr / offset_lr == pytest.approx(300)


def test_left_padded_dept_batch_scores_like_each_row_alone(llama, tokenizer):
    model = lamp.wrap(llama, make_config("dept", length=3, rank=2, max_length=8)).eval()
    torch.nn.init.normal_(model.prompt_encoder.b)  # a non-zero offset, as after training
    assert_left_padded_batch_scores_like_rows_alone(model, tokenizer, SENTENCES)


def test_right_padded_seq2seq_dept_batch_scores_like_each_row_alone(t5, tokenizer):
    model = lamp.wrap(t5, make_config("dept", length=3, rank=2, max_length=8)).eval()
    torch.nn.init.normal_(model.prompt_encoder.b)
    assert_right_padded_seq2seq_scores_like_rows_alone(model, tokenizer, SENTENCES)


# ---- LoRA and full fine-tuning ----------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"rank": 4, "alpha": 16, "target_modules": ["q_proj", "k_proj", "o_proj"]}])
def test_lora_trainable_count_equals_peft(options):
    import peft

    model = lamp.wrap(make_llama(), make_config("lora", **options))
    reference = peft.get_peft_model(
        make_llama(),
        peft.LoraConfig(
            r=options.get("rank", 8), lora_alpha=options.get("alpha", 8), target_modules=options.get("target_modules")
        ),
    )
    assert model.num_trainable_parameters() == reference.get_nb_trainable_parameters()[0]
    names = [name for name, _ in model.prompt_encoder.named_parameters()]
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names), "the adapter holds only LoRA weights"
    assert sum(p.numel() for p in model.prompt_encoder.parameters()) == model.num_trainable_parameters()


def test_lora_defaults_to_query_and_value_on_t5(t5):
    model = lamp.wrap(t5, make_config("lora"))
    targets = {key.rsplit("-", 1)[-1] for key in model.prompt_encoder.layers}
    assert targets == {"q", "v"}


@pytest.mark.parametrize(
    "method,options,fragment",
    [
        ("dept", {"offset_lr": -1.0}, r"^offset_lr must be a finite number in \(0, 1e\+06\], got -1.0$"),
        ("dept", {"rank": 0}, "^rank must be a positive integer, got 0$"),
        ("dpt", {"length": 0}, "^length must be a positive integer, got 0$"),
        ("dpt", {"length": 4, "rank": 5}, "^rank 5 exceeds length 4: pass rank <= 4$"),
        ("dept", {"rank": 20, "max_length": 16}, "^rank 20 exceeds max_length 16: pass rank <= 16$"),
        ("lora", {"dropout": 1.5}, r"^dropout must be a finite number in \[0, 1\), got 1.5$"),
        ("lora", {"target_modules": []}, r"^target_modules must be a non-empty list of module names or a regex"),
    ],
)
def test_bad_options_are_refused(method, options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        make_config(method, **options)


def test_a_dept_offset_past_the_backbone_positions_is_refused(llama):
    """The tiny Llama has 256 positions: offset rows past them would be trainable parameters that no input ever
    reaches (and a huge max_length was an out-of-memory that named the batch)."""
    with pytest.raises(ConfigError) as refused:
        lamp.wrap(llama, make_config("dept", length=4, rank=2, max_length=1000))
    assert str(refused.value) == "max_length 1000 exceeds the backbone's 256 positions: pass max_length <= 256"
    assert lamp.wrap(llama, make_config("dept", length=4, rank=2, max_length=256)).num_trainable_parameters() > 0


@pytest.mark.parametrize("method,options", [("dpt", {"length": 200}), ("dept", {"max_length": 200})])
def test_a_product_rank_above_the_backbone_width_is_refused(llama, method, options):
    width = llama.get_input_embeddings().weight.shape[1]
    expected = f"^rank {width + 1} exceeds the backbone's width {width}: pass rank <= {width}$"
    with pytest.raises(ConfigError, match=expected):
        lamp.wrap(llama, make_config(method, rank=width + 1, **options))


@pytest.mark.parametrize("text", ["q_proj", "q_proj,v_proj", "[q_proj, v_proj]"])
def test_lora_module_names_in_one_string_are_names_not_a_regex(llama, text):
    """As the command line gives them (--method.target_modules q_proj,v_proj); peft would read the text as a regex
    that must match a whole module path, and find nothing."""
    names = text.strip("[]").replace(" ", "").split(",")
    assert make_config("lora", target_modules=text).target_modules == names
    model = lamp.wrap(copy.deepcopy(llama), make_config("lora", target_modules=text))
    injected = {name.split(".lora_A")[0].split(".")[-1] for name, _ in model.named_parameters() if "lora_A" in name}
    assert injected == set(names)
    assert make_config("lora", target_modules=".*q_proj").target_modules == ".*q_proj"  # a regex stays one


def test_lora_on_missing_modules_is_refused(llama):
    with pytest.raises(ConfigError, match="target_modules"):
        lamp.wrap(llama, make_config("lora", target_modules=["nope"]))
