"""Inputs transformers accepts give what the backbone gives for ``[prompt; tokens]`` fed by hand.

Each test builds the reference itself: the backbone run on the prompt's rows followed by the row's own tokens
(pads moved in front, as for a row alone), and compares the wrapper's output with it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lamp
from lamp.errors import ConfigError
from lamp.methods import METHODS, make_config
from lamp.methods.base import COMMON_TOKENS, embedding_rows, embedding_std, initial_prompt

from .conftest import make_gemma3, make_gpt2, make_llama, make_t5, make_tokenizer

SENTENCES = ["the movie was good", "a very boring and terrible film . i was not fun", "it is great"]
# Small options for every registered method; a new method must add its row here (checked below).
SMALL = {
    "lamp": {"length": 8, "rank": 4, "pool": 2},
    "pt": {"length": 4},
    "dept": {"length": 4, "rank": 2, "max_length": 16},
    "dpt": {"length": 4, "rank": 2},
    "lora": {"rank": 2},
    "full": {},
    "none": {},
}
TRAINED = sorted(set(SMALL) - {"none"})  # `none` adds and trains nothing


def test_every_registered_method_has_small_options():
    assert set(SMALL) == set(METHODS)


def by_hand(backbone: nn.Module, prompt: torch.Tensor, ids: torch.Tensor, **per_token) -> torch.Tensor:
    """The backbone's logits for one unpadded row fed as ``[prompt; tokens]`` (1, n + T, vocab)."""
    embeds = torch.cat([prompt.unsqueeze(0), backbone.get_input_embeddings()(ids.unsqueeze(0))], dim=1)
    return backbone(inputs_embeds=embeds, **per_token).logits


def new_tokens(out: torch.Tensor, batch: dict) -> torch.Tensor:
    """generate's tokens after the input, checking that the input comes first (as the bare backbone returns it)."""
    ids = batch["input_ids"]
    copies = out.shape[0] // ids.shape[0]
    assert torch.equal(out[:, : ids.shape[1]], ids.repeat_interleave(copies, dim=0))
    return out[:, ids.shape[1] :]


def padded_reference_inputs(model: lamp.PromptedModel, batch: dict) -> dict:
    """``[pads; prompt; tokens]`` per row, built by hand for the backbone's own generate."""
    prompt = model.prompt()
    rows, masks = [], []
    for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
        pads = int((mask == 0).sum())
        tokens = model.backbone.get_input_embeddings()(ids)
        rows.append(torch.cat([tokens[:pads], prompt, tokens[pads:]]))
        masks.append(torch.cat([torch.zeros(pads, dtype=torch.long), torch.ones(len(prompt) + len(ids) - pads)]))
    return {"inputs_embeds": torch.stack(rows), "attention_mask": torch.stack(masks).long()}


# ---- 1. generation options that expand the batch ---------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"num_beams": 2},
        {"num_beams": 3, "num_return_sequences": 2},
        {"do_sample": True, "num_return_sequences": 2, "top_k": 5},
        {"do_sample": True, "num_beams": 2},
        {},  # greedy: the prompt's key/value cache
    ],
    ids=["beams", "beams-returned", "sampled-returned", "beam-sampling", "greedy"],
)
def test_generation_options_give_the_backbones_tokens_for_prompt_and_input(options, tokenizer):
    llama = make_llama()
    model = lamp.wrap(llama, lamp.LampConfig(length=8, rank=4, pool=2)).eval()
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    common = {"max_new_tokens": 5, "pad_token_id": 0, **options}
    torch.manual_seed(3)
    ours = new_tokens(model.generate(**batch, **common), batch)
    with torch.no_grad():
        reference_inputs = padded_reference_inputs(model, batch)
    torch.manual_seed(3)
    reference = llama.generate(**reference_inputs, **common)
    assert ours.shape[0] == len(SENTENCES) * options.get("num_return_sequences", 1)
    assert torch.equal(ours, reference)


def test_a_backbone_whose_generation_config_asks_for_beams_generates_like_the_backbone(tokenizer):
    llama = make_llama()
    llama.generation_config.num_beams = 2
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=3)).eval()
    batch = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    ours = new_tokens(model.generate(**batch, max_new_tokens=4, pad_token_id=0), batch)
    with torch.no_grad():
        reference = llama.generate(**padded_reference_inputs(model, batch), max_new_tokens=4, pad_token_id=0)
    assert torch.equal(ours, reference)


# ---- 2. gradients whenever autograd is on ------------------------------------------------------------------------


@pytest.mark.parametrize("method", TRAINED)
@pytest.mark.parametrize("kind", ["llama", "t5"])
def test_gradients_in_eval_mode_equal_those_in_train_mode(method, kind, tokenizer):
    tokenizer.padding_side = "left" if kind == "llama" else "right"
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    if kind == "llama":
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    else:
        labels = tokenizer(["positive", "negative", "positive"], return_tensors="pt")["input_ids"]
    gradients = {}
    for mode in ("train", "eval"):
        backbone = make_llama() if kind == "llama" else make_t5(dropout_rate=0.0)  # no dropout: modes agree
        torch.manual_seed(0)
        model = lamp.wrap(backbone, make_config(method, **SMALL[method]))
        model.train(mode == "train")
        model(**batch, labels=labels).loss.backward()
        gradients[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert gradients["eval"], "every method trains something"
    assert gradients["eval"].keys() == gradients["train"].keys()
    for name, gradient in gradients["train"].items():
        torch.testing.assert_close(gradients["eval"][name], gradient, msg=name)
    assert any(g.abs().sum() > 0 for g in gradients["eval"].values())


def test_eval_mode_loss_backward_reaches_lamps_factors(llama, tokenizer):
    model = lamp.wrap(llama, lamp.LampConfig(length=8, rank=4, pool=2)).eval()
    batch = tokenizer(SENTENCES[:1], return_tensors="pt")
    model(**batch, labels=batch["input_ids"]).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prompt_encoder.parameters())


# ---- 3. rows as the embedding layer returns them -----------------------------------------------------------------


@pytest.mark.parametrize("make", [make_gemma3, make_llama], ids=["gemma3", "llama"])
def test_text_init_equals_feeding_those_tokens(make, tokenizer):
    backbone = make()
    phrase = "the movie was good"
    phrase_ids = torch.tensor(tokenizer(phrase, add_special_tokens=False)["input_ids"])
    model = lamp.wrap(backbone, lamp.PromptTuningConfig(length=4, init="text", init_text=phrase), tokenizer)
    ids = torch.tensor(tokenizer("it is great", add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        ours = model(input_ids=ids.unsqueeze(0)).logits
        fed = backbone(input_ids=torch.cat([phrase_ids, ids]).unsqueeze(0)).logits
    torch.testing.assert_close(ours, fed, atol=1e-5, rtol=1e-5)


def test_every_init_reads_the_scaled_rows_of_a_gemma_embedding(tokenizer):
    gemma = make_gemma3()
    layer = gemma.get_input_embeddings()
    scale = float(layer.embed_scale)
    assert scale == pytest.approx(32**0.5)
    everything = layer(torch.arange(64)).float()
    assert embedding_std(gemma) == pytest.approx(everything.std().item(), rel=1e-6)
    assert embedding_std(gemma) == pytest.approx(scale * layer.weight.std().item(), rel=1e-5)
    torch.manual_seed(0)
    ids = torch.randint(0, 64, (6,))
    torch.manual_seed(0)
    torch.testing.assert_close(initial_prompt(6, "vocab", gemma), everything[ids])
    torch.manual_seed(1)
    noise = initial_prompt(4096, "random", gemma)
    assert noise.std().item() == pytest.approx(everything.std().item(), rel=0.05)
    torch.manual_seed(1)
    dpt = lamp.wrap(make_gemma3(), make_config("dpt", length=64, rank=8)).prompt()
    assert dpt.std().item() == pytest.approx(everything.std().item(), rel=0.3)  # the product of two random factors
    assert embedding_rows(gemma, ids).shape == (6, 32)


def test_common_vocab_init_draws_distinct_rows_among_the_first_5000_ids_as_lester_et_al():
    big = make_llama(vocab_size=6000)
    rows = big.get_input_embeddings().weight.detach()
    torch.manual_seed(0)
    prompt = initial_prompt(100, "common-vocab", big)
    ids = [int((rows - row).abs().sum(1).argmin()) for row in prompt]
    torch.testing.assert_close(prompt, rows[ids])
    assert max(ids) < COMMON_TOKENS and len(set(ids)) == 100, "without replacement, among the most common tokens"
    torch.manual_seed(0)
    assert not torch.equal(initial_prompt(100, "vocab", big), prompt), "vocab samples the whole vocabulary"
    small = make_llama()  # 64 tokens: a 150-row prompt cycles fresh permutations of all of them
    rows = small.get_input_embeddings().weight.detach()
    ids = [int((rows - row).abs().sum(1).argmin()) for row in initial_prompt(150, "common-vocab", small)]
    assert sorted(ids[:64]) == sorted(ids[64:128]) == list(range(64)) and len(set(ids[128:])) == 22
    model = lamp.wrap(big, lamp.LampConfig(length=8, rank=2, pool=2, init="common-vocab"))
    assert model.prompt().shape == (4, 32)


def test_embedding_std_of_a_plain_embedding_is_its_weights_std(llama):
    assert embedding_std(llama) == llama.get_input_embeddings().weight.float().std().item()


# ---- 4. per-token inputs -----------------------------------------------------------------------------------------


def test_gpt2_token_type_ids_are_extended_over_the_prompt_with_type_zero():
    gpt2 = make_gpt2()
    model = lamp.wrap(gpt2, lamp.PromptTuningConfig(length=3))
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    types = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    ours = model(input_ids=ids, token_type_ids=types).logits
    for row in range(2):
        reference = by_hand(
            gpt2, model.prompt(), ids[row], token_type_ids=torch.cat([torch.zeros(3), types[row]])[None].long()
        )
        torch.testing.assert_close(ours[row : row + 1], reference)


def test_position_ids_put_the_prompt_first_and_shift_the_inputs(llama):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=3))
    ids = torch.tensor([[5, 6, 7, 8]])
    ours = model(input_ids=ids, position_ids=torch.tensor([[0, 1, 2, 3]])).logits
    torch.testing.assert_close(ours, by_hand(llama, model.prompt(), ids[0]))


def test_inputs_embeds_work_like_input_ids(llama):
    model = lamp.wrap(llama, lamp.LampConfig(length=8, rank=4, pool=2))
    ids = torch.tensor([[5, 6, 7, 8]])
    from_embeds = model(inputs_embeds=llama.get_input_embeddings()(ids)).logits
    torch.testing.assert_close(from_embeds, model(input_ids=ids).logits)


def test_a_per_token_input_the_wrapper_cannot_extend_is_refused_in_one_line(llama):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=3))
    ids = torch.tensor([[5, 6, 7, 8]])
    with pytest.raises(ConfigError, match="segment_ids is a per-token input") as info:
        model(input_ids=ids, segment_ids=torch.zeros_like(ids))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="generate takes no token_type_ids"):
        model.generate(input_ids=ids, token_type_ids=torch.zeros_like(ids), max_new_tokens=2)


# ---- 5. the backbone's position table ----------------------------------------------------------------------------


def test_prompt_and_input_past_the_position_table_are_refused_with_the_length_to_pass():
    model = lamp.wrap(make_gpt2(n_positions=24), lamp.LampConfig(length=8, rank=4, pool=2))  # 4 prompt rows
    assert model.max_input_tokens() == 20
    model(input_ids=torch.ones(1, 20, dtype=torch.long))  # fits exactly
    with pytest.raises(ConfigError, match="exceed the backbone's 24 positions: cut inputs to 20 tokens"):
        model(input_ids=torch.ones(1, 21, dtype=torch.long))
    with pytest.raises(ConfigError, match="cut inputs to 17 tokens"):
        model.generate(input_ids=torch.ones(1, 20, dtype=torch.long), max_new_tokens=3)
    assert lamp.wrap(make_t5(), lamp.PromptTuningConfig(length=3)).max_input_tokens() is None  # relative positions


# ---- 6. padding changes no loss ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lamp", "pt", "dept", "dpt"])
@pytest.mark.parametrize("make", [make_llama, make_gpt2], ids=["llama", "gpt2"])
def test_left_padding_changes_no_loss_whatever_the_labels(method, make, tokenizer):
    backbone = make()
    torch.manual_seed(0)
    model = lamp.wrap(backbone, make_config(method, **SMALL[method]))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    labels = batch["input_ids"].clone()  # labels on every token, pads included: those must count for nothing
    loss = model(**batch, labels=labels).loss
    total, count = 0.0, 0
    for sentence in SENTENCES:
        alone = tokenizer([sentence], return_tensors="pt")
        n = model.n_virtual
        embeds = torch.cat(
            [
                model.prompt()[None],
                model.prompt_encoder.embed_inputs(
                    backbone.get_input_embeddings()(alone["input_ids"]), alone["attention_mask"]
                ),
            ],
            dim=1,
        )
        full_labels = torch.cat([torch.full((1, n), -100), alone["input_ids"]], dim=1)
        reference = backbone(inputs_embeds=embeds, labels=full_labels).loss  # transformers' own shifted loss
        tokens = alone["input_ids"].shape[1]
        total, count = total + reference * tokens, count + tokens
        torch.testing.assert_close(model(**alone, labels=alone["input_ids"]).loss, reference)
    torch.testing.assert_close(loss, total / count)


def test_left_padded_seq2seq_rows_score_as_alone(tokenizer):
    t5 = make_t5()
    model = lamp.wrap(t5, lamp.PromptTuningConfig(length=3))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)  # left-padded encoder inputs
    labels = tokenizer(["positive"] * 3, return_tensors="pt")["input_ids"]
    together = model(**batch, labels=labels).logits
    for row, sentence in enumerate(SENTENCES):
        alone = model(**tokenizer([sentence], return_tensors="pt"), labels=labels[:1]).logits
        torch.testing.assert_close(together[row : row + 1], alone, atol=1e-5, rtol=1e-4)


# ---- 7. backbones that cannot take a prompt ----------------------------------------------------------------------


class IdsOnlyLM(nn.Module):
    """A language model whose forward takes token ids only."""

    def __init__(self) -> None:
        super().__init__()
        self.config = make_llama().config
        self.embed = nn.Embedding(64, 32)
        self.head = nn.Linear(32, 64)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(input_ids))


def test_wrap_refuses_a_backbone_without_inputs_embeds_and_leaves_it_unchanged():
    backbone = IdsOnlyLM()
    with pytest.raises(ConfigError, match="takes no inputs_embeds") as info:
        lamp.wrap(backbone, lamp.PromptTuningConfig(length=3))
    assert "\n" not in str(info.value)
    assert all(p.requires_grad for p in backbone.parameters()), "the refused backbone was not frozen"


def test_small_fixtures_are_what_the_tests_assume():
    assert make_tokenizer().padding_side == "left"


def test_method_none_is_the_bare_backbone(llama, tokenizer):
    model = lamp.wrap(llama, make_config("none"))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    assert model.n_virtual == 0 and model.num_trainable_parameters() == 0
    torch.testing.assert_close(model(**batch).logits, llama(**batch).logits)


# ---- the reviewers' cases: sliding windows, answers that must fit, stale caches, partial losses -------------------


def test_a_sliding_window_backbone_scores_and_generates_padded_rows_as_alone(tokenizer):
    gemma = make_gemma3()  # sliding_window=16: a short row behind pads must still see its prompt
    model = lamp.wrap(gemma, lamp.PromptTuningConfig(length=8)).eval()
    long, short = " ".join(["the movie was good and it is great fun"] * 2), "bad"
    batch = tokenizer([long, short], return_tensors="pt", padding=True)
    with torch.no_grad():
        together = model(**batch, logits_to_keep=1).logits[:, -1]
        for row, sentence in enumerate([long, short]):
            ids = torch.tensor(tokenizer(sentence, add_special_tokens=False)["input_ids"])
            torch.testing.assert_close(together[row], by_hand(gemma, model.prompt(), ids)[0, -1], atol=1e-4, rtol=1e-4)
        reference = gemma.generate(**padded_reference_inputs(model, batch), max_new_tokens=4, pad_token_id=0)
    assert torch.equal(new_tokens(model.generate(**batch, max_new_tokens=4, pad_token_id=0), batch), reference)


def test_sources_leave_room_for_the_longest_label_word_a_scorer_appends(tokenizer):
    from types import SimpleNamespace

    from lamp.data import encode, fit_max_length
    from lamp.scoring import answer_tokens, rank_scores
    from lamp.tasks import Example

    model = lamp.wrap(make_gpt2(n_positions=24), lamp.PromptTuningConfig(length=8)).eval()
    task = SimpleNamespace(label_words=("good", "not very good"), lead=" ")
    reserve = answer_tokens(tokenizer, "causal", task, "rank")
    assert reserve == 4  # " not very good" and EOS
    max_length = fit_max_length(256, model.backbone, model.n_virtual, reserve)
    assert max_length == 16
    example = Example(" ".join(["the movie was good"] * 10), "good", 0)  # 40 tokens
    (row,) = encode([example], tokenizer, "causal", max_length, reserve)
    assert len(row.source) == 12
    labels = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] + [1] for w in task.label_words]
    assert rank_scores(model, [row.source], labels, 0).isfinite().all()  # the 3-token label fits beside the prompt


def test_a_prompt_and_answer_that_fill_the_positions_name_the_larger_as_the_fix():
    from lamp.data import fit_max_length

    backbone = make_gpt2(n_positions=24)
    with pytest.raises(ConfigError, match=r"8 rows and 100 answer tokens leave no room .* 24 positions: allow fewer "):
        fit_max_length(256, backbone, 8, 100)  # e.g. --max-new-tokens 100
    with pytest.raises(ConfigError, match=r"\(--max-new-tokens; at most 15 with this prompt\)$"):
        fit_max_length(256, backbone, 8, 100)
    with pytest.raises(
        ConfigError, match=r"20 rows and 4 answer tokens .*: use a shorter prompt \(--length or --pool\)"
    ):
        fit_max_length(256, backbone, 20, 4)  # a label word beside a long prompt
    assert fit_max_length(256, backbone, 8, 15) == 16  # at most 15: fits, with one input token


def test_generate_counts_max_length_against_the_positions():
    model = lamp.wrap(make_gpt2(n_positions=24), lamp.PromptTuningConfig(length=8)).eval()
    ids = torch.full((1, 14), 5)
    # max_length counts the input and the new tokens, not the prompt (as for the bare backbone, and in PEFT)
    with pytest.raises(ConfigError, match="max_length=14 leaves no new tokens after the 14 input tokens"):
        model.generate(input_ids=ids, pad_token_id=0, max_length=14)
    with pytest.raises(
        ConfigError, match="8 rows, 14 input tokens and 6 new tokens exceed the backbone's 24 positions"
    ):
        model.generate(input_ids=ids, pad_token_id=0)  # transformers' default max_length of 20: 6 new tokens
    assert model.generate(input_ids=ids, pad_token_id=0, max_length=16).shape == (1, 16)


def test_the_prompt_cache_sees_edits_through_data_and_can_be_cleared(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=3)).eval()
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        before = model(**batch, logits_to_keep=1).logits
        model.prompt_encoder.weight.data.add_(1.0)  # bypasses autograd's version counter
        after = model(**batch, logits_to_keep=1).logits
        model.reuse_prompt_cache = False
        fresh = model(**batch, logits_to_keep=1).logits
        model.reuse_prompt_cache = True
        torch.testing.assert_close(after, fresh, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(before, after)
        llama.model.layers[0].self_attn.k_proj.weight.data.mul_(2.0)  # a backbone edit: documented, cleared by hand
        model.clear_prompt_cache()
        cleared = model(**batch, logits_to_keep=1).logits
        model.reuse_prompt_cache = False
        torch.testing.assert_close(cleared, model(**batch, logits_to_keep=1).logits, atol=1e-5, rtol=1e-4)


def test_logits_to_keep_that_leaves_labels_without_logits_is_refused(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=3))
    batch = tokenizer(SENTENCES[:1], return_tensors="pt")
    with pytest.raises(ConfigError, match="logits_to_keep=2 leaves labels from input position 0 without logits"):
        model(**batch, labels=batch["input_ids"], logits_to_keep=2)
    full = model(**batch, labels=batch["input_ids"]).loss
    torch.testing.assert_close(model(**batch, labels=batch["input_ids"], logits_to_keep=5).loss, full)


def test_inputs_without_a_batch_dimension_are_refused_in_one_line(llama):
    """1-D ids ended in torch's `Tensors must have same number of dimensions: got 3 and 2` (the bare Llama in another
    shape error), float ids, embeddings of another width and an empty batch in other torch errors; forward and
    generate both check, before anything runs."""
    model = lamp.wrap(llama, lamp.make_config("pt", length=2))
    ids = torch.tensor([3, 4, 5])
    for call in (model, model.generate):
        with pytest.raises(
            ConfigError, match=r"^input_ids must be a \(batch, length\) tensor, got shape \(3,\): add the"
        ):
            call(input_ids=ids)
        with pytest.raises(ConfigError, match=r"^input_ids must be a \(batch, length\) tensor, got list: e\.g\. token"):
            call(input_ids=[[3, 4, 5]])
        with pytest.raises(
            ConfigError, match=r"^inputs_embeds must be a \(batch, length, 32\) tensor, got shape \(3, 32\)"
        ):
            call(inputs_embeds=torch.zeros(3, 32))
        with pytest.raises(ConfigError, match=r"^inputs_embeds are 16 wide and the backbone's embeddings 32: pass"):
            call(inputs_embeds=torch.zeros(1, 3, 16))
        with pytest.raises(ConfigError, match=r"^input_ids must hold integer token ids, got torch.float32: e\.g\."):
            call(input_ids=torch.ones(1, 3))
        with pytest.raises(ConfigError, match=r"^input_ids holds no rows \(shape \(0, 3\)\): pass at least one$"):
            call(input_ids=torch.zeros(0, 3, dtype=torch.long))
    assert model(input_ids=ids[None]).logits.shape[:2] == (1, 5)


# ---- inputs transformers handles that the wrapper must not get silently wrong ------------------------------------
def test_generate_without_a_mask_infers_it_from_the_pad_tokens_as_transformers_does(llama, tokenizer):
    model = lamp.wrap(llama, lamp.LampConfig(length=8, rank=4, pool=2)).eval()
    batch = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    assert (batch.input_ids == tokenizer.pad_token_id).any()  # the short row is left-padded
    options = dict(max_new_tokens=4, do_sample=False, pad_token_id=0)
    masked = model.generate(**batch, **options)
    assert torch.equal(model.generate(input_ids=batch.input_ids, **options), masked)


def test_generate_refuses_right_padded_rows_in_one_line(llama):
    right = make_tokenizer(padding_side="right")
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4)).eval()
    with pytest.raises(ConfigError, match=r"ends in padding.*padding_side = 'left'"):
        model.generate(**right(SENTENCES[:2], return_tensors="pt", padding=True), max_new_tokens=2, pad_token_id=0)


def test_generate_without_input_starts_from_the_bos_token_as_the_backbone_does(llama):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4)).eval()
    bos = torch.tensor([[llama.generation_config.bos_token_id]])
    options = dict(max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(**options), model.generate(input_ids=bos, **options))


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_a_key_value_cache_is_refused_by_forward_and_generate_not_misread(name, llama, tokenizer):
    """Was: forward put the prompt in front of the new tokens again (logits off by about 4) and generate dropped the
    cache silently."""
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4)).eval()
    ids = tokenizer(["the movie was good"], return_tensors="pt").input_ids
    cache = model(input_ids=ids[:, :-1], use_cache=True).past_key_values
    with pytest.raises(ConfigError, match="forward does not continue a key/value cache"):
        model(input_ids=ids[:, -1:], **{name: cache})
    with pytest.raises(ConfigError, match=f"generate takes no {name}"):
        model.generate(input_ids=ids, max_new_tokens=2, pad_token_id=0, **{name: cache})


def test_return_dict_false_with_labels_returns_the_loss_first(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4)).eval()
    batch = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    outputs = model(**batch, labels=batch.input_ids)
    loss, logits = model(**batch, labels=batch.input_ids, return_dict=False)[:2]
    assert torch.equal(loss, outputs.loss) and torch.equal(logits, outputs.logits)


@pytest.mark.parametrize("make", [make_llama, make_t5], ids=["llama", "t5"])
def test_labels_of_another_integer_type_are_used_and_float_labels_refused_in_one_line(make, tokenizer):
    model = lamp.wrap(make(), lamp.PromptTuningConfig(length=4)).eval()
    batch = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    labels = batch.input_ids
    assert torch.equal(model(**batch, labels=labels.int()).loss, model(**batch, labels=labels).loss)
    with pytest.raises(ConfigError, match=r"labels must hold integer token ids .*got torch.float32: e.g. labels.long"):
        model(**batch, labels=labels.float())


def test_too_many_new_tokens_name_the_largest_that_fits_not_a_negative_input_length():
    model = lamp.wrap(make_gpt2(n_positions=24), lamp.PromptTuningConfig(length=4)).eval()
    ids = torch.full((1, 6), 5)
    with pytest.raises(ConfigError, match=r"exceed the backbone's 24 positions: pass max_new_tokens <= 14$"):
        model.generate(input_ids=ids, max_new_tokens=100, pad_token_id=0)
    with pytest.raises(ConfigError, match=r"cut inputs to 10 tokens or pass max_new_tokens <= 4$"):
        model.generate(input_ids=torch.full((1, 16), 5), max_new_tokens=10, pad_token_id=0)


@pytest.mark.parametrize("second", ["pt", "lora"])
def test_a_backbone_that_holds_lora_layers_is_refused_for_another_adapter(second, llama):
    """Was: the second adapter ran on top of the first one's LoRA layers (logits 0.54 off), with only PEFT's warning."""
    lamp.wrap(llama, make_config("lora", **SMALL["lora"]))
    with pytest.raises(ConfigError, match="already holds injected adapter layers.*load a fresh backbone"):
        lamp.wrap(llama, make_config(second, **SMALL[second]))
