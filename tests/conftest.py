"""Tiny models and a tokenizer built in-process from configs: tests never download."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORDS = (
    "the a movie film was is good bad great terrible boring fun not very i it and of to this that review sentiment "
    "positive negative entailment not_entailment acceptable unacceptable true false yes no question answer : ."
).split()

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_tokenizer(padding_side: str = "left"):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", padding_side=padding_side
    )


def make_llama(vocab_size: int = 64, hidden: int = 32, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        tie_word_embeddings=True,
        initializer_range=0.3,  # weights large enough that a prompt can steer the tiny model's output
    )
    return LlamaForCausalLM(config).eval()


def make_t5(vocab_size: int = 64, d_model: int = 32, seed: int = 0):
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5ForConditionalGeneration(config).eval()


def assert_left_padded_batch_scores_like_rows_alone(model, tokenizer, sentences: list[str]) -> None:
    """A left-padded causal batch gives each row the last-position logits it gets alone."""
    tokenizer.padding_side = "left"
    batch = tokenizer(sentences, return_tensors="pt", padding=True)
    assert (batch["attention_mask"][:, 0] == 0).any(), "the batch must actually be padded"
    together = model(**batch, logits_to_keep=1).logits[:, -1]
    for i, sentence in enumerate(sentences):
        alone = model(**tokenizer([sentence], return_tensors="pt"), logits_to_keep=1).logits[:, -1]
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-4)


@pytest.fixture
def tokenizer():
    return make_tokenizer()


@pytest.fixture
def llama():
    return make_llama()


@pytest.fixture
def t5():
    return make_t5()


@pytest.fixture(params=["t5", "llama"])
def backbone(request):
    return make_t5() if request.param == "t5" else make_llama()
