"""Tiny models and a tokenizer built in-process from configs: tests never download."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WORDS = (
    "the a movie film was is good bad great terrible boring fun not very i it and of to this that review sentiment "
    "positive negative entailment not_entailment acceptable unacceptable true false yes no question answer : . "
    # the built-in tasks' other label words (appended: the ids above stay), so rank classification can tell them apart
    "True False A B neutral contradiction equivalent not_equivalent duplicate not_duplicate choice1 choice2"
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


def make_t5(vocab_size: int = 64, d_model: int = 32, seed: int = 0, dropout_rate: float = 0.1):
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
        dropout_rate=dropout_rate,
    )
    return T5ForConditionalGeneration(config).eval()


def make_gpt2(n_positions: int = 64, seed: int = 0):
    """GPT-2: learned absolute positions (a table of n_positions rows) and token type ids; no dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=64,
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        initializer_range=0.3,
    )
    return GPT2LMHeadModel(config).eval()


def make_gemma3(seed: int = 0):
    """Gemma 3 text: its embedding layer multiplies rows by sqrt(hidden_size) inside forward."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        sliding_window=16,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        initializer_range=0.3,
    )
    return Gemma3ForCausalLM(config).eval()


def assert_left_padded_batch_scores_like_rows_alone(model, tokenizer, sentences: list[str]) -> None:
    """A left-padded causal batch gives each row the last-position logits it gets alone."""
    tokenizer.padding_side = "left"
    batch = tokenizer(sentences, return_tensors="pt", padding=True)
    assert (batch["attention_mask"][:, 0] == 0).any(), "the batch must actually be padded"
    together = model(**batch, logits_to_keep=1).logits[:, -1]
    for i, sentence in enumerate(sentences):
        alone = model(**tokenizer([sentence], return_tensors="pt"), logits_to_keep=1).logits[:, -1]
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-4)


def assert_right_padded_seq2seq_scores_like_rows_alone(model, tokenizer, sentences: list[str]) -> None:
    """A right-padded seq2seq batch gives each row the logits it gets alone (labels: " positive" for every row)."""
    tokenizer.padding_side = "right"
    batch = tokenizer(sentences, return_tensors="pt", padding=True)
    labels = tokenizer(["positive"] * len(sentences), return_tensors="pt")["input_ids"]
    together = model(**batch, labels=labels).logits
    for i, sentence in enumerate(sentences):
        alone = model(**tokenizer([sentence], return_tensors="pt"), labels=labels[:1]).logits
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> str:
    """A tiny Llama and its tokenizer saved as a model folder (for code that loads a model by path)."""
    path = tmp_path_factory.mktemp("llama")
    make_llama().save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return str(path)


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
