"""Export to stock PEFT and import back: same logits under unmodified PEFT, same prompt after import, and clear
refusals for methods that are more than a prompt."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import lamp
import lamp.tasks
from lamp.cli import main
from lamp.errors import AdapterError, ConfigError
from lamp.methods import Declaration, PromptConfig, PromptModule
from lamp.tasks import Example

from .conftest import make_llama, make_t5, make_tokenizer

MAKERS = {"llama": make_llama, "t5": make_t5}
CONFIGS = [lamp.LampConfig(length=8, rank=2, pool=2), lamp.PromptTuningConfig(length=3)]


def trained(model: lamp.PromptedModel) -> lamp.PromptedModel:
    """Move the prompt off its init, as training would."""
    with torch.no_grad():
        for p in model.prompt_encoder.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def logits(model: Any, kind: str, **extra: Any) -> torch.Tensor:
    ids = torch.tensor([[5, 9, 12, 7, 20], [6, 11, 4, 30, 8]])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if kind == "seq2seq":
        inputs["labels"] = torch.tensor([[3, 4, 1], [10, 1, 0]])
    out = model(**inputs, **extra).logits
    return out[:, -ids.shape[1] :] if kind == "causal" else out  # causal: the input positions (PEFT keeps all)


@dataclass
class HookConfig(PromptConfig):
    """Test-only method: a prompt plus a change to the input embeddings."""

    method = "hook"
    declares = Declaration(input_embeddings=True, export=None)

    def build(self, backbone: nn.Module, tokenizer: Any = None) -> HookPrompt:
        return HookPrompt(backbone.get_input_embeddings().weight.shape[1])


class HookPrompt(PromptModule):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, width))
        self.offset = nn.Parameter(torch.zeros(width))
        self.n_virtual = 2

    def forward(self) -> torch.Tensor:
        return self.weight

    def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return inputs_embeds + self.offset


def test_a_method_with_an_embedding_hook_is_refused(llama, tmp_path):
    with pytest.raises(AdapterError, match="'hook' also changes the input embeddings, so it cannot be exported as"):
        lamp.export_peft(lamp.wrap(llama, HookConfig()), tmp_path)
    assert not any(tmp_path.iterdir()), "nothing is written for a refused export"


def test_full_fine_tuning_is_a_model_not_a_peft_adapter(tmp_path):
    model = lamp.wrap(make_llama(), lamp.make_config("full"))
    with pytest.raises(ConfigError, match="'full' exports as a model folder \\(format 'model'\\), not 'peft'"):
        lamp.export_peft(model, tmp_path)
    assert not any(tmp_path.iterdir())


def peft_prompt_dir(make: Any, path: Any, **options: Any) -> torch.Tensor:
    """Save a PEFT prompt-tuning adapter made by PEFT itself; return the prompt rows PEFT puts before the input."""
    from peft import PromptTuningConfig, get_peft_model

    backbone = make()
    task_type = "SEQ_2_SEQ_LM" if backbone.config.is_encoder_decoder else "CAUSAL_LM"
    config = PromptTuningConfig(task_type=task_type, num_virtual_tokens=6, token_dim=32, **options)
    peft_model = get_peft_model(backbone, config)
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.normal_(0, 0.5)
    peft_model.save_pretrained(path, save_embedding_layers=False)
    return peft_model.prompt_encoder["default"].embedding.weight.detach()[:6].clone()


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_import_from_peft_with_full_rank_and_no_pooling_keeps_the_prompt(arch, tmp_path):
    from peft import PeftModel

    expected = peft_prompt_dir(MAKERS[arch], tmp_path)  # T5: PEFT's default two submodules, encoder rows first
    imported = lamp.from_peft_prompt(MAKERS[arch](), tmp_path, rank=6, pool=1)
    assert isinstance(imported.prompt_config, lamp.LampConfig) and imported.prompt_config.length == 6
    torch.testing.assert_close(imported.prompt(), expected, atol=1e-5, rtol=0)
    if arch == "llama":  # and it runs like PEFT's own model (the SVD round trip's float error, amplified a little)
        peft_model = PeftModel.from_pretrained(make_llama(), tmp_path)
        with torch.no_grad():
            torch.testing.assert_close(logits(imported, "causal"), logits(peft_model, "causal"), atol=1e-4, rtol=0)


def test_import_from_a_lamp_pt_adapter_and_the_low_rank_default(tmp_path):
    source = trained(lamp.wrap(make_llama(), lamp.PromptTuningConfig(length=10)))
    source.save_adapter(tmp_path)
    imported = lamp.from_peft_prompt(make_llama(), tmp_path, rank=10, pool=1)
    torch.testing.assert_close(imported.prompt(), source.prompt(), atol=1e-5, rtol=0)
    low = lamp.from_peft_prompt(make_llama(), tmp_path, pool=2)  # default rank: LAMP's 8, the best rank-8 fit
    assert (low.prompt_config.rank, low.prompt_config.pool, low.prompt_config.length) == (8, 2, 20)
    assert low.n_virtual == 10, "each imported row is repeated pool times: the model still sees 10 rows"
    u, s, vh = torch.linalg.svd(source.prompt().detach())
    best = (u[:, :8] * s[:8]) @ vh[:8]
    torch.testing.assert_close(low.prompt(), best, atol=1e-5, rtol=0)
    torch.testing.assert_close(low.prompt_encoder.unpooled(), best.repeat_interleave(2, dim=0), atol=1e-5, rtol=0)
    full = lamp.from_peft_prompt(make_llama(), tmp_path, rank=10, pool=5)  # full rank: exactly the imported prompt
    torch.testing.assert_close(full.prompt(), source.prompt(), atol=1e-5, rtol=0)


def test_import_keeps_the_callers_random_stream(tmp_path):
    lamp.wrap(make_llama(), lamp.PromptTuningConfig(length=4)).save_adapter(tmp_path)
    backbone = make_llama()
    torch.manual_seed(3)
    lamp.from_peft_prompt(backbone, tmp_path)
    after_import = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(after_import, torch.rand(3))


def test_import_refusals(tmp_path):
    with pytest.raises(AdapterError, match="expected adapter_config.json .* or adapter.json"):
        lamp.from_peft_prompt(make_llama(), tmp_path)
    lamp.wrap(make_llama(hidden=48), lamp.PromptTuningConfig(length=4)).save_adapter(tmp_path / "wide")
    with pytest.raises(AdapterError, match="embedding width 48"):
        lamp.from_peft_prompt(make_llama(), tmp_path / "wide")
    peft_prompt_dir(make_t5, tmp_path / "t5")
    with pytest.raises(AdapterError, match="SEQ_2_SEQ_LM adapter, the backbone is causal"):
        lamp.from_peft_prompt(make_llama(), tmp_path / "t5")
    with pytest.raises(ConfigError, match="rank 7 exceeds length 6"):
        lamp.from_peft_prompt(make_t5(), tmp_path / "t5", rank=7)


def test_lamp_from_prompt_checks_the_length():
    with pytest.raises(ConfigError, match=r"shape \(5, 32\), length is 4: pass length=5"):
        lamp.LampConfig(length=4, rank=2, pool=1).from_prompt(torch.randn(5, 32))
    with pytest.raises(ConfigError, match="'pt' cannot start from a given prompt"):
        lamp.PromptTuningConfig(length=5).from_prompt(torch.randn(5, 32))


@pytest.fixture
def model_dir(tmp_path_factory):
    """A tiny Llama and its tokenizer saved as a local model folder, loadable by name."""
    path = tmp_path_factory.mktemp("tiny-llama")
    make_llama().save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return str(path)


def test_cli_export_round_trip(model_dir, tmp_path, capsys):
    from peft import PeftModel

    model = trained(lamp.wrap(make_llama(), lamp.LampConfig(length=8, rank=2, pool=4)))
    model.backbone_name = model_dir
    model.save_adapter(tmp_path / "adapter")
    assert (
        main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft", "--out", str(tmp_path / "p")]) == 0
    )
    assert "PeftModel.from_pretrained" in capsys.readouterr().out
    peft_model = PeftModel.from_pretrained(make_llama(), tmp_path / "p")
    with torch.no_grad():
        torch.testing.assert_close(logits(peft_model, "causal"), logits(model, "causal"), atol=1e-5, rtol=0)
    # Greedy generation: PEFT's agrees with lamp's once its key/value cache is off (docs/adapters.md: with the cache
    # PEFT loses the prompt after the first token, PEFT issue #1391).
    ids = torch.tensor([[5, 9, 13, 7]])
    ours = model.eval().generate(input_ids=ids, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    theirs = peft_model.eval().generate(
        input_ids=ids, max_new_tokens=5, do_sample=False, min_new_tokens=5, use_cache=False
    )
    assert ours.tolist() == theirs.tolist()
    assert main(["export", "--adapter", str(tmp_path / "missing"), "--out", str(tmp_path / "q")]) == 2
    assert capsys.readouterr().err.endswith("missing: no such folder\n")
    assert main(["export", "--adapter", str(tmp_path / "p"), "--out", str(tmp_path / "q")]) == 2
    assert (
        "p holds a PEFT adapter (adapter_config.json), not a lamp adapter: load it with peft" in capsys.readouterr().err
    )


def test_train_init_from_starts_at_the_saved_prompt_and_records_the_task(model_dir, tmp_path, monkeypatch):
    from lamp.train import TrainConfig, train

    rng = random.Random(0)
    rows = [
        Example(f"the movie was {w}", ("negative", "positive")[w == "good"], int(w == "good"))
        for w in "good bad".split()
    ]
    splits = {name: [rng.choice(rows) for _ in range(8)] for name in ("train", "validation", "test")}
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: splits)
    source = trained(lamp.wrap(make_llama(), lamp.PromptTuningConfig(length=6)))
    source.save_adapter(tmp_path / "pt")
    config = TrainConfig(
        model=model_dir, init_from=str(tmp_path / "pt"), rank=6, pool=2, lr=1e-9, max_steps=1, eval_every=1,
        batch_size=4, zero_shot=False, out=str(tmp_path / "run"),
    )  # fmt: skip
    results = train(config)
    # a warm start: the model first sees the saved 6 rows, so LAMP's 12 rows pool back to them
    assert (results["prompt_config"]["length"], results["n_virtual"]) == (12, 6)
    saved = json.loads((tmp_path / "run" / "adapter" / "adapter.json").read_text())
    assert saved["task"] == "polarity"
    started = lamp.load_adapter(make_llama(), tmp_path / "run" / "adapter")
    torch.testing.assert_close(started.prompt(), source.prompt(), atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="length 5 differs from the 12 rows that start from the 6 rows"):
        train(
            TrainConfig(
                model=model_dir, init_from=str(tmp_path / "pt"), length=5, rank=2, pool=2, out=str(tmp_path / "r2")
            )
        )


def test_an_export_writes_only_over_an_earlier_lamp_export_of_its_format(llama_dir, tmp_path):
    """Was: any folder holding a config.json took a model export (the backbone's own folder included: `lamp export
    --format model --model DIR --out DIR` merged LoRA into the backbone's weights on disk), and any folder holding an
    adapter_config.json took a PEFT export over the user's README.md."""
    backbone = tmp_path / "backbone"
    shutil.copytree(llama_dir, backbone)
    user_peft = tmp_path / "their-peft"
    user_peft.mkdir()
    (user_peft / "adapter_config.json").write_text("{}\n")
    (user_peft / "README.md").write_text("my notes\n")
    before = {p: p.read_bytes() for folder in (backbone, user_peft) for p in folder.iterdir()}
    lora = lamp.wrap(make_llama(), lamp.make_config("lora", rank=2))
    with pytest.raises(ConfigError, match=rf"^{backbone} holds files that are not a model folder: choose another"):
        lamp.export_adapter(lora, backbone, export_format="model")
    with pytest.raises(ConfigError, match=rf"^{user_peft} holds files that are not a PEFT export: choose another"):
        lamp.export_adapter(lora, user_peft)
    assert {p: p.read_bytes() for folder in (backbone, user_peft) for p in folder.iterdir()} == before
    out, _ = lamp.export_adapter(lora, tmp_path / "peft")
    assert (out / "adapter_config.json").is_file() and lamp.export_adapter(lora, out)[0] == out, "its own: rewritten"
    with pytest.raises(ConfigError, match=r"holds an earlier export of format 'peft', not 'model': choose another"):
        lamp.export_adapter(lora, out, export_format="model")
