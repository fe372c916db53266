"""The wrapper: hand-built equivalence, padding invariance, logits_to_keep, generation, caching."""

from __future__ import annotations

import torch

import lamp

from .conftest import (
    assert_left_padded_batch_scores_like_rows_alone,
    assert_right_padded_seq2seq_scores_like_rows_alone,
    make_llama,
)

SENTENCES = ["the movie was good", "a very boring and terrible film . i was not fun", "it is great"]


def test_seq2seq_loss_equals_hand_built_concatenation(t5, tokenizer):
    model = lamp.wrap(t5, lamp.LampConfig(length=8, rank=2, pool=2))
    tokenizer.padding_side = "right"  # a left-padded row is compared with itself alone in test_wrapper_inputs.py
    batch = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    labels = tokenizer(["positive", "negative"], return_tensors="pt")["input_ids"]
    ours = model(**batch, labels=labels)
    prompt = model.prompt().unsqueeze(0).expand(2, -1, -1)
    embeds = torch.cat([prompt, t5.get_input_embeddings()(batch["input_ids"])], dim=1)
    mask = torch.cat([torch.ones(2, 4, dtype=torch.long), batch["attention_mask"]], dim=1)
    reference = t5(inputs_embeds=embeds, attention_mask=mask, labels=labels)
    torch.testing.assert_close(ours.loss, reference.loss)
    torch.testing.assert_close(ours.logits, reference.logits)


def test_causal_loss_equals_hand_built_concatenation(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=3))
    batch = tokenizer(["the movie was good positive"], return_tensors="pt")
    labels = batch["input_ids"].clone()
    labels[:, :-1] = -100
    ours = model(**batch, labels=labels)
    embeds = torch.cat([model.prompt().unsqueeze(0), llama.get_input_embeddings()(batch["input_ids"])], dim=1)
    full_labels = torch.cat([torch.full((1, 3), -100), labels], dim=1)
    reference = llama(inputs_embeds=embeds, labels=full_labels)  # transformers' own shifted loss
    torch.testing.assert_close(ours.loss, reference.loss)
    torch.testing.assert_close(ours.logits, reference.logits)


def test_logits_to_keep_gives_the_same_loss(llama, tokenizer):
    model = lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)  # left-padded
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, -2:] = batch["input_ids"][:, -2:]
    full = model(**batch, labels=labels)
    kept = model(**batch, labels=labels, logits_to_keep=3)
    assert kept.logits.shape[1] == 3
    torch.testing.assert_close(kept.loss, full.loss)
    torch.testing.assert_close(kept.logits, full.logits[:, -3:])


def test_left_padded_batch_scores_like_each_example_alone(llama, tokenizer):
    model = lamp.wrap(llama, lamp.LampConfig(length=6, rank=3, pool=2))
    assert_left_padded_batch_scores_like_rows_alone(model, tokenizer, SENTENCES)


def test_seq2seq_padded_batch_scores_like_each_example_alone(t5, tokenizer):
    model = lamp.wrap(t5, lamp.LampConfig(length=6, rank=3, pool=2))
    assert_right_padded_seq2seq_scores_like_rows_alone(model, tokenizer, SENTENCES)


def test_causal_generate_batched_equals_single(llama, tokenizer):
    model = lamp.wrap(llama, lamp.LampConfig(length=6, rank=3, pool=2))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=0)
    width = batch["input_ids"].shape[1]
    assert out.shape == (3, width + 4) and torch.equal(out[:, :width], batch["input_ids"])  # the input, then new
    for i, sentence in enumerate(SENTENCES):
        alone = model.generate(
            **tokenizer([sentence], return_tensors="pt"), max_new_tokens=4, do_sample=False, pad_token_id=0
        )
        assert torch.equal(out[i, width:], alone[0, -4:])


def test_seq2seq_generate(t5, tokenizer):
    model = lamp.wrap(t5, lamp.LampConfig(length=6, rank=3, pool=2))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 3 and 2 <= out.shape[1] <= 4


def test_generation_depends_on_prompt(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4))
    batch = tokenizer(SENTENCES[:1], return_tensors="pt")
    first = model(**batch).logits
    with torch.no_grad():
        model.prompt_encoder.weight.mul_(3.0)
    assert not torch.allclose(model(**batch).logits, first)


def test_prompt_cache_refreshes_after_optimizer_step(llama):
    model = lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2))
    model.eval()
    with torch.no_grad():
        first = model.prompt()
        assert model.prompt() is first  # cached
    optimizer = torch.optim.SGD(model.prompt_encoder.parameters(), lr=1.0)
    model.prompt_encoder().sum().backward()
    optimizer.step()
    with torch.no_grad():
        second = model.prompt()
    assert second is not first
    torch.testing.assert_close(second, model.prompt_encoder().detach())


def test_per_row_prompts_with_mask_equal_single_prompt_runs(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4))
    other = torch.randn(2, llama.config.hidden_size) * 0.02
    batch = tokenizer(SENTENCES[:2], return_tensors="pt", padding=True)
    prompts = torch.zeros(2, 4, llama.config.hidden_size)
    prompts[0] = model.prompt()
    prompts[1, 2:] = other  # shorter prompt, left-padded inside the prompt block
    prompt_mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    mixed = model(**batch, prompt=prompts, prompt_mask=prompt_mask, logits_to_keep=1).logits
    first = model(**tokenizer(SENTENCES[:1], return_tensors="pt"), logits_to_keep=1).logits
    second = model(**tokenizer(SENTENCES[1:2], return_tensors="pt"), prompt=other, logits_to_keep=1).logits
    torch.testing.assert_close(mixed[0], first[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[1], second[0], atol=1e-5, rtol=1e-4)


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=128, pad_token_id=0)
    return GPT2LMHeadModel(config).eval()


def test_evaluation_reads_the_prompt_from_a_prefix_cache_with_the_same_scores(llama, tokenizer):
    for backbone, config in (
        (llama, lamp.LampConfig(length=8, rank=2, pool=2)),
        (llama, lamp.make_config("dept", length=4, rank=2, max_length=16)),
        (_tiny_gpt2(), lamp.PromptTuningConfig(length=5)),
    ):
        model = lamp.wrap(backbone, config).eval()
        seen: list[int] = []
        hook = backbone.register_forward_pre_hook(
            lambda _, args, kw, seen=seen: seen.append(kw["inputs_embeds"].shape[1]), with_kwargs=True
        )
        batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
        width = batch["input_ids"].shape[1]
        with torch.no_grad():
            cached = model(**batch, logits_to_keep=3).logits
            assert seen == [model.n_virtual, width]  # the prompt once, then the inputs alone
            full = model(**batch, prompt=model.prompt(), logits_to_keep=3).logits  # an explicit prompt: no cache
            assert seen[-1] == model.n_virtual + width
            torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)
            model(**batch, logits_to_keep=3)
            assert seen[-1] == width and seen.count(model.n_virtual) == 1  # reused, not recomputed
            next(model.prompt_encoder.parameters()).mul_(2.0)  # a changed prompt invalidates the cache
            torch.testing.assert_close(
                model(**batch, logits_to_keep=3).logits,
                model(**batch, prompt=model.prompt(), logits_to_keep=3).logits,
                atol=1e-5,
                rtol=1e-4,
            )
            assert seen.count(model.n_virtual) == 2
        hook.remove()


def test_training_and_full_logits_do_not_use_the_prefix_cache(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        assert model(**batch).logits.shape[1] == 4 + batch["input_ids"].shape[1]  # logits_to_keep=0: every position
    model.train()
    model(**batch, logits_to_keep=2).logits.sum().backward()  # gradients reach the prompt through the full pass
    assert model.prompt_encoder.weight.grad is not None
    assert model._prefix_key is None


def test_generation_with_the_prefix_cache_equals_generation_without(tokenizer):
    for backbone in (make_llama(), _tiny_gpt2()):
        model = lamp.wrap(backbone, lamp.PromptTuningConfig(length=5)).eval()
        with torch.no_grad():
            model.prompt_encoder.weight.mul_(20.0)  # a prompt strong enough to steer the tiny model
        batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
        options = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
        widths: list[int] = []
        hook = backbone.register_forward_pre_hook(
            lambda _, args, kw, widths=widths: (
                widths.append(kw["inputs_embeds"].shape[1]) if kw.get("inputs_embeds") is not None else None
            ),
            with_kwargs=True,
        )
        cached = model.generate(**batch, **options)
        hook.remove()
        assert widths == [5, batch["input_ids"].shape[1]]  # the prompt once, then only the inputs
        full = model.generate(**batch, prompt=model.prompt(), **options)  # an explicit prompt: no cache
        assert torch.equal(cached, full)


def test_a_backbone_without_a_usable_cache_scores_with_the_full_pass(llama, tokenizer):
    import functools

    original = llama.forward

    @functools.wraps(original)
    def forward_without_cache(*args, **kwargs):  # as a state-space or hybrid model's cache would look to us
        outputs = original(*args, **kwargs)
        outputs["cache"] = (("not", "a", "DynamicCache"),)
        return outputs

    llama.forward = forward_without_cache
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=4)).eval()
    assert model.reuse_prompt_cache  # the signature offers a cache; only its value shows it is unusable
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        scored = model(**batch, logits_to_keep=2).logits
        torch.testing.assert_close(scored, model(**batch, prompt=model.prompt(), logits_to_keep=2).logits)
    assert model.reuse_prompt_cache is False
