"""The prompt modules: parameter counts, shapes, SVD exactness, pooling, gradients, validation."""

from __future__ import annotations

import pytest
import torch

import lamp
from lamp.errors import ConfigError
from lamp.tasks import get_task


def width(model) -> int:
    return model.get_input_embeddings().weight.shape[1]


@pytest.mark.parametrize("length,rank,pool", [(100, 8, 4), (20, 4, 1), (12, 3, 6)])
def test_lamp_parameter_count_and_shape(backbone, length, rank, pool):
    d = width(backbone)
    model = lamp.wrap(backbone, lamp.LampConfig(length=length, rank=rank, pool=pool))
    assert model.num_trainable_parameters() == length * rank + rank + rank * d
    assert model.prompt().shape == (length // pool, d)
    assert model.n_virtual == length // pool


@pytest.mark.parametrize("length", [1, 7, 100])
def test_pt_parameter_count_and_shape(backbone, length):
    d = width(backbone)
    model = lamp.wrap(backbone, lamp.PromptTuningConfig(length=length))
    assert model.num_trainable_parameters() == length * d
    assert model.prompt().shape == (length, d)


def test_full_rank_unpooled_lamp_reproduces_initial_prompt(llama):
    d = width(llama)
    torch.manual_seed(3)
    pt = lamp.wrap(llama, lamp.PromptTuningConfig(length=16))
    torch.manual_seed(3)  # the same sampled vocabulary rows
    full = lamp.wrap(llama, lamp.LampConfig(length=16, rank=min(16, d), pool=1))
    torch.testing.assert_close(full.prompt(), pt.prompt(), atol=1e-5, rtol=0)


def test_truncated_svd_is_lossy_below_full_rank(llama):
    torch.manual_seed(3)
    pt = lamp.wrap(llama, lamp.PromptTuningConfig(length=16))
    torch.manual_seed(3)
    low = lamp.wrap(llama, lamp.LampConfig(length=16, rank=2, pool=1))
    assert not torch.allclose(low.prompt(), pt.prompt(), atol=1e-3)
    assert torch.linalg.matrix_rank(low.prompt()).item() == 2


def test_pooling_matches_reference_block_average(llama):
    model = lamp.wrap(llama, lamp.LampConfig(length=12, rank=4, pool=3))
    encoder = model.prompt_encoder
    full = encoder.u @ torch.diag(encoder.q) @ encoder.v  # the uncompressed outer-product sum
    reference = torch.stack([full[i : i + 3].mean(0) for i in range(0, 12, 3)])
    torch.testing.assert_close(model.prompt(), reference, atol=1e-6, rtol=0)


def test_lamp_prompt_is_sum_of_rank_one_outer_products(llama):
    model = lamp.wrap(llama, lamp.LampConfig(length=8, rank=3, pool=1))
    e = model.prompt_encoder
    outer_sum = sum(e.q[i] * torch.outer(e.u[:, i], e.v[i]) for i in range(3))
    torch.testing.assert_close(model.prompt(), outer_sum, atol=1e-6, rtol=0)


def test_lamp_trainable_tensors_are_the_three_factors(llama):
    model = lamp.wrap(llama, lamp.LampConfig(length=20, rank=4, pool=5))
    shapes = {name: tuple(p.shape) for name, p in model.prompt_encoder.named_parameters()}
    assert shapes == {"u": (20, 4), "q": (4,), "v": (4, width(llama))}


@pytest.mark.parametrize("scale_lr", [True, False])
def test_lamp_factor_learning_rates(llama, scale_lr):
    """scale_lr: each factor's rate is lr x its RMS / the prompt's RMS, so one Adam step (which moves every entry by
    about its rate) changes each factor by the same fraction of its size; without it every factor gets lr."""
    torch.manual_seed(0)
    prompt = lamp.wrap(llama, lamp.LampConfig(length=20, rank=4, pool=5, scale_lr=scale_lr)).prompt_encoder
    groups = prompt.optimizer_groups(0.5)
    assert [len(g["params"]) for g in groups] == [1, 1, 1]
    rms = {name: p.detach().pow(2).mean().sqrt().item() for name, p in prompt.named_parameters()}
    reference = prompt.unpooled().detach().pow(2).mean().sqrt().item()
    for (name, _), group in zip(prompt.named_parameters(), groups, strict=True):
        expected = 0.5 * rms[name] / reference if scale_lr else 0.5
        assert group["lr"] == pytest.approx(expected, rel=1e-5), name
        assert group["params"][0] is getattr(prompt, name)
    if scale_lr:  # the singular values are far larger than the orthonormal factors' entries
        assert groups[1]["lr"] > 10 * groups[0]["lr"] and groups[1]["lr"] > 10 * groups[2]["lr"]


def test_text_init_uses_phrase_embeddings(llama, tokenizer):
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=5, init="text", init_text="good movie"), tokenizer)
    ids = tokenizer("good movie good movie good", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(model.prompt(), llama.get_input_embeddings().weight[ids])


def test_random_init_matches_embedding_scale(llama):
    torch.manual_seed(0)
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=200, init="random"))
    target = llama.get_input_embeddings().weight.std().item()
    assert abs(model.prompt().std().item() - target) < 0.2 * target


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: lamp.LampConfig(rank=0), "rank must be a positive integer"),
        (lambda: lamp.LampConfig(length=10, rank=11, pool=1), "rank 11 exceeds length 10"),
        (lambda: lamp.LampConfig(length=10, pool=3, rank=2), "pool 3 does not divide length 10"),
        (lambda: lamp.LampConfig(length=0), "length must be a positive integer"),
        (lambda: lamp.LampConfig(init="zeros"), "unknown init 'zeros'"),
        (lambda: lamp.LampConfig(init="text"), "needs init_text"),
        (lambda: lamp.PromptTuningConfig(length=-1), "length must be a positive integer"),
        (lambda: lamp.make_config("lora2"), "unknown method 'lora2'"),
        (lambda: lamp.make_config("lamp", ranks=3), "has no option ranks"),
        (lambda: lamp.LampConfig(scale_lr="false"), "scale_lr must be true or false, got 'false'"),
        (lambda: lamp.PromptTuningConfig(init="text", init_text=5), "init_text must be text, got 5"),
        (lambda: lamp.LampConfig(init="vocab", init_text="a phrase"), "init_text is read only with init='text'"),
        (lambda: lamp.LampConfig(init="task", init_text="a phrase"), "init_text is read only with init='text'"),
        (lambda: lamp.make_config("lora", target_modules="("), r"target_modules '\(' is not a valid regex"),
        # the pool of a warm start makes its length: a bad one is named as pool, and 0 is refused, not replaced
        (lambda: lamp.LampConfig.for_prompt(torch.zeros(25, 8), pool=0), "pool must be a positive integer, got 0$"),
        (lambda: lamp.LampConfig.for_prompt(torch.zeros(25, 8), pool=-1), "pool must be a positive integer, got -1$"),
        (lambda: lamp.LampConfig.for_prompt(torch.zeros(25, 8), pool=2.5), "pool must be a positive integer, got 2.5"),
        (lambda: lamp.PromptTuningConfig.for_prompt(torch.zeros(4, 8)), "method 'pt' cannot start from a given prompt"),
    ],
)
def test_bad_configs_fail_on_construction_with_one_line(make, message):
    with pytest.raises(ConfigError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_a_bad_lora_regex_is_refused_where_bench_parses_the_method():
    from lamp.bench.config import parse_method

    with pytest.raises(ConfigError, match=r"target_modules '\[' is not a valid regex"):
        parse_method("lora:target_modules=[")


@pytest.mark.parametrize("spec", ["pt:length=4,init=task", "lamp:init=text,init_text=good movie"])
def test_an_init_from_words_is_refused_where_bench_parses_the_method(spec):
    """lamp bench has no tokenizer or task: its worker would fail on the method after the others had run."""
    from lamp.bench.config import parse_method

    with pytest.raises(ConfigError, match=r"init=(task|text) in .* starts the prompt from words.*: drop init"):
        parse_method(spec)


def test_prompt_rows_that_fill_the_positions_are_refused_on_the_config():
    """Before the prompt is built: 10^8 rows would take hundreds of GB first."""
    with pytest.raises(ConfigError, match="the pt prompt's 100000000 rows fill the backbone's 256 positions"):
        lamp.PromptTuningConfig(length=10**8).check_fits(256)
    lamp.LampConfig(length=1020, pool=4).check_fits(256)  # 255 pooled rows leave one position
    with pytest.raises(ConfigError, match=r"lamp prompt's 256 rows .* shorter prompt \(length at most 1020\)"):
        lamp.LampConfig(length=1024, pool=4).check_fits(256)  # in --length's units, before pooling
    with pytest.raises(ConfigError, match=r"\(length at most 255\)"):
        lamp.PromptTuningConfig(length=256).check_fits(256)
    lamp.PromptTuningConfig(length=10**8).check_fits(None)  # no position table (T5): no limit
    lamp.make_config("lora").check_fits(1)  # no prompt rows


def test_wrap_refuses_prompt_rows_that_fill_the_positions_before_building_the_prompt(llama):
    positions = llama.config.max_position_embeddings
    with pytest.raises(ConfigError, match=f"the pt prompt's 100000000 rows fill the backbone's {positions} positions"):
        lamp.wrap(llama, lamp.PromptTuningConfig(length=10**8))  # 10^8 x d floats if it were built first


def test_a_prompt_init_larger_than_the_free_memory_is_refused_before_it_is_built(llama, monkeypatch):
    """LAMP's pooled rows can fit the positions while its l x d init (before pooling) does not fit in memory."""
    monkeypatch.setattr("lamp.model.free_memory_bytes", lambda device: 10**9)  # 1 GB, whatever the machine has
    config = lamp.LampConfig(length=10**8, pool=10**6)  # 100 pooled rows, 10^8 initialised: 38.4 GB at width 32
    config.check_fits(256)  # positions alone: fits
    with pytest.raises(ConfigError, match=r"the lamp prompt's 100000000 x 32 init needs about 38\.4 GB, 1\.0 GB of"):
        config.check_fits(256, 32, 10**9)
    with pytest.raises(
        ConfigError, match=r"shorter prompt \(its 100000000 rows are shortened to 100 only after the init"
    ):
        config.check_fits(256, 32, 10**9)
    with pytest.raises(ConfigError, match=r"1\.0 GB of memory is free: use a shorter prompt$"):
        lamp.PromptTuningConfig(length=10**8).check_fits(None, 32, 10**9)  # nothing shortened: nothing more to say
    width = llama.get_input_embeddings().weight.shape[1]
    with pytest.raises(ConfigError, match=f"100000000 x {width} init needs about"):
        lamp.wrap(llama, config)  # refused in the wrapper, before the init is allocated
    lamp.LampConfig(length=100, pool=4).check_fits(256, 32, 10**9)  # 100 x 32 x 4 x 3 bytes: fits
    assert 0 < lamp.devices.free_memory_bytes("cpu") < 2**50
    assert lamp.make_config("lora").init_rows() == 0 and lamp.PromptTuningConfig(length=7).init_rows() == 7


def test_a_warm_start_config_is_checked_from_the_prompts_shape_alone():
    config = lamp.methods.config_for_prompt("lamp", 25, 8, "DIR", pool=2)
    assert (config.length, config.pool, config.rank) == (50, 2, 8)
    with pytest.raises(ConfigError, match="length 50 differs from the 100 rows that start from the 25 rows .* in DIR"):
        lamp.methods.config_for_prompt("lamp", 25, 8, "DIR", length=50)
    with pytest.raises(ConfigError, match="method 'full' cannot start from a given prompt"):
        lamp.methods.config_for_prompt("full", 25, 8, "DIR")


def test_rank_above_embedding_width_fails_at_wrap(llama):
    d = width(llama)
    config = lamp.LampConfig(length=2 * d, rank=d + 1, pool=1)
    with pytest.raises(ConfigError, match=f"rank {d + 1} exceeds min\\(length, embedding width\\) = {d}"):
        lamp.wrap(llama, config)


def test_unsupported_model_class_is_rejected():
    from transformers import BertConfig, BertModel

    encoder = BertModel(
        BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    with pytest.raises(ConfigError, match="no language-model head"):
        lamp.wrap(encoder, lamp.LampConfig(length=4, rank=2, pool=2))
    with pytest.raises(ConfigError, match="not a Hugging Face language model"):
        lamp.wrap(torch.nn.Linear(2, 2), lamp.LampConfig(length=4, rank=2, pool=2))


def test_an_adapter_loaded_on_another_architecture_warns_and_names_that_backbone(llama, tmp_path):
    import warnings

    from transformers import GPT2Config, GPT2LMHeadModel

    lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path / "adapter")
    width = llama.get_input_embeddings().weight.shape[1]
    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=width, n_layer=1, n_head=2, vocab_size=64, n_positions=64))
    gpt2.save_pretrained(tmp_path / "gpt2")
    with pytest.warns(
        UserWarning, match=r"was trained on a llama model .* this backbone is gpt2: its prompt is likely"
    ):
        loaded = lamp.load_adapter(str(tmp_path / "gpt2"), tmp_path / "adapter")
    assert loaded.backbone_name == str(tmp_path / "gpt2")  # was: the adapter's own backbone, which was not used
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own architecture: no warning
        lamp.load_adapter(llama, tmp_path / "adapter")


def test_an_adapter_of_another_kind_is_refused_without_the_architecture_warning_first(llama, tmp_path):
    """Was: the warning that the prompt is likely meaningless on another architecture, then the refusal."""
    import warnings

    from lamp.errors import AdapterError

    from .conftest import make_t5

    lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path / "adapter")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AdapterError, match="is for a causal model, this backbone is seq2seq"):
            lamp.load_adapter(make_t5(), tmp_path / "adapter")


def test_a_wrapped_model_is_not_wrapped_again_nor_loaded_onto(llama, tmp_path):
    config = lamp.LampConfig(length=4, rank=2, pool=2)
    wrapped = lamp.wrap(llama, config)
    wrapped.save_adapter(tmp_path / "adapter")
    assert wrapped.get_input_embeddings() is llama.get_input_embeddings()  # transformers and TRL ask for it
    fix = r"^the model is already wrapped with a prompt \(a lamp PromptedModel\): pass its backbone, model.backbone"
    with pytest.raises(ConfigError, match=fix):
        lamp.wrap(wrapped, config)
    with pytest.raises(ConfigError, match=fix):  # was: AttributeError, no get_input_embeddings
        lamp.load_adapter(wrapped, tmp_path / "adapter")
    assert lamp.load_adapter(wrapped.backbone, tmp_path / "adapter").n_virtual == 2


def test_lamp_pools_u_first_and_within_block_differences_of_u_get_no_gradient():
    """pool(U diag(q) V) = pool(U) diag(q) V: the pooled-first prompt equals pooling the full product, and the
    gradient of U is the same for every row of a pooling block (their differences never reach the prompt)."""
    import torch

    from lamp.methods.lamp import LampConfig, LampPrompt

    torch.manual_seed(0)
    module = LampPrompt(LampConfig(length=12, rank=4, pool=3), torch.randn(12, 16))
    full_then_pooled = module.unpooled().view(4, 3, 16).mean(dim=1)
    torch.testing.assert_close(module(), full_then_pooled, atol=1e-6, rtol=0)
    (module() * torch.randn(4, 16)).sum().backward()
    blocks = module.u.grad.view(4, 3, 4)
    assert blocks.abs().sum() > 0
    torch.testing.assert_close(blocks - blocks[:, :1], torch.zeros_like(blocks), atol=0, rtol=0)
    assert module.effective_parameters() == 12 // 3 * 4 + 4 + 4 * 16
    assert sum(p.numel() for p in module.parameters()) == 12 * 4 + 4 + 4 * 16  # the paper's nominal count


def test_effective_parameters_of_the_wrapper(llama):
    import lamp

    lamp_model = lamp.wrap(llama, lamp.LampConfig(length=8, rank=2, pool=4))
    assert lamp_model.num_trainable_parameters() == 8 * 2 + 2 + 2 * 32
    assert lamp_model.num_effective_parameters() == 2 * 2 + 2 + 2 * 32
    pt = lamp.wrap(llama, lamp.PromptTuningConfig(length=3))
    assert pt.num_effective_parameters() == pt.num_trainable_parameters() == 3 * 32


def test_lamp_text_init_starts_the_pooled_prompt_as_the_phrase(llama, tokenizer):
    """Each token of init_text is written `pool` times, so at full rank the pooled prompt is the phrase's rows."""
    import torch

    import lamp
    from lamp.methods.base import embedding_rows

    phrase = "the movie was good"
    ids = tokenizer(phrase, add_special_tokens=False)["input_ids"]
    model = lamp.wrap(llama, lamp.LampConfig(length=8, rank=8, pool=2, init="text", init_text=phrase), tokenizer)
    torch.testing.assert_close(model.prompt(), embedding_rows(llama, torch.tensor(ids)), atol=1e-5, rtol=1e-4)


def test_init_task_is_a_text_init_of_the_task_words_that_lamp_train_fills_in(llama, tokenizer):
    """`init: task` becomes `text` with the task's own words (`PromptConfig.for_task`), the same prompt as giving
    that phrase; wrapping a model with it unfilled names the fix; methods and inits that take no text keep theirs."""
    import lamp

    config = lamp.LampConfig(length=8, rank=4, pool=2, init="task")
    filled = config.for_task(get_task("sst2").in_format("natural"))
    assert (filled.init, filled.init_text) == ("text", "Review: Sentiment: negative or positive")
    torch.manual_seed(0)
    given = lamp.wrap(
        llama, lamp.LampConfig(length=8, rank=4, pool=2, init="text", init_text=filled.init_text), tokenizer
    )
    torch.testing.assert_close(lamp.wrap(llama, filled, tokenizer).prompt(), given.prompt())
    with pytest.raises(ConfigError, match="init='task' starts from a task's own words, which lamp train fills in"):
        lamp.wrap(llama, config, tokenizer)
    vocab, lora = lamp.LampConfig(length=8, rank=4, pool=2), lamp.make_config("lora")
    assert vocab.for_task(get_task("sst2")) == vocab and lora.for_task(get_task("sst2")) == lora


def test_log_q_starts_at_the_same_prompt_and_moves_singular_values_by_a_fraction(llama):
    import torch

    import lamp

    torch.manual_seed(0)
    plain = lamp.wrap(llama, lamp.LampConfig(length=8, rank=4, pool=2, scale_lr=True))
    torch.manual_seed(0)
    logged = lamp.wrap(llama, lamp.LampConfig(length=8, rank=4, pool=2, scale_lr=True, log_q=True))
    torch.testing.assert_close(logged.prompt(), plain.prompt())
    encoder = logged.prompt_encoder
    assert {name for name, _ in encoder.named_parameters()} == {"u", "log_q", "v"}
    reference = encoder.unpooled().detach().pow(2).mean().sqrt().item()
    assert encoder.lr_scales["log_q"] == pytest.approx(1 / reference)
    assert encoder.lr_scales["u"] == plain.prompt_encoder.lr_scales["u"]
    assert encoder.effective_parameters() == plain.prompt_encoder.effective_parameters() == 4 * 4 + 4 + 4 * 32
    before = encoder.singular_values().detach().clone()
    optimizer = torch.optim.Adam(encoder.optimizer_groups(0.01))
    (logged.prompt().sum()).backward()
    optimizer.step()
    ratio = encoder.singular_values().detach() / before
    expected = torch.exp(torch.tensor(0.01 / reference))  # Adam's first step moves log q by the rate, up or down
    assert torch.allclose(torch.maximum(ratio, 1 / ratio), expected.expand_as(ratio), rtol=1e-3)


def test_a_lora_rank_above_the_backbone_width_is_refused_before_peft_allocates_it(llama):
    width = llama.get_input_embeddings().weight.shape[1]
    with pytest.raises(
        ConfigError, match=f"rank 100000000 exceeds the backbone's width {width}: .* pass rank <= {width}"
    ):
        lamp.wrap(llama, lamp.make_config("lora", rank=10**8))  # 10^8 x d per layer side if peft built it
    assert lamp.wrap(llama, lamp.make_config("lora", rank=width)).num_trainable_parameters() > 0
