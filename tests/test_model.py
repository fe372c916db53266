"""The wrapper: hand-built equivalence, padding invariance, logits_to_keep, generation, caching."""

from __future__ import annotations

import torch

import lamp

from .conftest import assert_left_padded_batch_scores_like_rows_alone

SENTENCES = ["the movie was good", "a very boring and terrible film . i was not fun", "it is great"]


def test_seq2seq_loss_equals_hand_built_concatenation(t5, tokenizer):
    model = lamp.wrap(t5, lamp.LampConfig(length=8, rank=2, pool=2))
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
    tokenizer.padding_side = "right"
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    labels = tokenizer(["positive"] * 3, return_tensors="pt")["input_ids"]
    together = model(**batch, labels=labels).logits
    for i, sentence in enumerate(SENTENCES):
        alone = model(**tokenizer([sentence], return_tensors="pt"), labels=labels[:1]).logits
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-4)


def test_causal_generate_batched_equals_single(llama, tokenizer):
    model = lamp.wrap(llama, lamp.LampConfig(length=6, rank=3, pool=2))
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert out.shape == (3, 4)
    for i, sentence in enumerate(SENTENCES):
        alone = model.generate(
            **tokenizer([sentence], return_tensors="pt"), max_new_tokens=4, do_sample=False, pad_token_id=0
        )
        assert torch.equal(out[i], alone[0])


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
