"""The wrapped model inside the Hugging Face tools people use: a PEFT-like model object (config, device, counts,
checkpointing, save/load/push), transformers' Trainer (train, checkpoint, resume), TRL's SFTTrainer, pipelines and
generate's usual options, and exports that load without lamp (PEFT LoRA adapter, transformers model folder).
Tiny models built from configs; nothing downloads (the hub is mocked)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import lamp
from lamp.cli import main
from lamp.errors import AdapterError, ConfigError

from .conftest import make_llama, make_t5, make_tokenizer

TEXTS = ["the movie was good", "a very boring film", "it is great fun", "this is not good"] * 4
MAKERS = {"llama": make_llama, "t5": make_t5}


def perturbed(model: lamp.PromptedModel, scale: float = 0.1) -> lamp.PromptedModel:
    """Move every trainable tensor off its init, as training would (LoRA's B starts at zero)."""
    torch.manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * scale)
    return model


def logits(model: Any, kind: str = "causal") -> torch.Tensor:
    ids = torch.tensor([[5, 9, 12, 7, 20], [6, 11, 4, 30, 8]])
    extra = {"labels": torch.tensor([[3, 4, 1], [10, 1, 0]])} if kind == "seq2seq" else {}
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits
    return out[:, -ids.shape[1] :] if kind == "causal" else out


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Trainer and SFTTrainer set Accelerate's process-wide state (mixed precision...); forget it after each test,
    so that later tests (lamp train) start from a clean one."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def model_dir(tmp_path_factory) -> str:
    """A tiny Llama and its tokenizer saved as a local model folder, loadable by name."""
    path = tmp_path_factory.mktemp("tiny-llama")
    make_llama().save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return str(path)


# ---- the model object ------------------------------------------------------------------------------------------


def test_config_is_the_backbones_and_the_methods_config_has_its_own_name(llama):
    config = lamp.LampConfig(length=4, rank=2, pool=2)
    model = lamp.wrap(llama, config)
    assert model.config is llama.config and model.config.get_text_config() is llama.config
    assert model.prompt_config is config
    assert model.device == torch.device("cpu") and model.dtype == torch.float32
    assert model.generation_config is llama.generation_config


def test_print_trainable_parameters_uses_pefts_line(llama, capsys):
    model = lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2))
    model.print_trainable_parameters()
    total = sum(p.numel() for p in llama.parameters()) + 74  # LAMP: l*r + r + r*d = 8 + 2 + 64
    share = 100 * 74 / total
    assert capsys.readouterr().out == (f"trainable params: 74 || all params: {total:,d} || trainable%: {share:.4f}\n")
    assert model.get_nb_trainable_parameters() == (74, total)


@pytest.mark.parametrize("method", ["lamp", "lora"])
def test_gradient_checkpointing_keeps_the_gradients(method, llama, tokenizer):
    options = {"lamp": {"length": 4, "rank": 2, "pool": 2}, "lora": {"rank": 2}}[method]
    model = lamp.wrap(llama, lamp.make_config(method, **options)).train()
    batch = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    model(**batch, labels=batch["input_ids"]).loss.backward()
    expected = [p.grad.clone() for p in model.prompt_encoder.parameters()]
    model.zero_grad()
    # reentrant checkpointing drops gradients unless the input requires grad: LoRA has no prompt rows to give it one
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    assert model.is_gradient_checkpointing
    model(**batch, labels=batch["input_ids"]).loss.backward()
    for p, grad in zip(model.prompt_encoder.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, grad, atol=1e-5, rtol=1e-4)
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing


@pytest.mark.parametrize("method", ["lamp", "lora", "full"])
def test_state_dict_is_the_trainable_state_and_loads_back(method, tmp_path):
    from safetensors.torch import load_file, save_file

    options = {"lamp": {"length": 4, "rank": 2, "pool": 2}, "lora": {"rank": 2}, "full": {}}[method]
    model = perturbed(lamp.wrap(make_llama(), lamp.make_config(method, **options)))
    state = model.state_dict()
    assert state and all(key.startswith("prompt_encoder.") for key in state)
    assert sum(t.numel() for t in state.values()) == model.num_trainable_parameters()  # a tied weight once
    save_file(state, tmp_path / "state.safetensors")  # safetensors refuses tensors that share memory
    fresh = lamp.wrap(make_llama(), lamp.make_config(method, **options))
    result = fresh.load_state_dict(load_file(tmp_path / "state.safetensors"))
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    torch.testing.assert_close(logits(fresh), logits(model))
    with pytest.raises(AdapterError, match="the state dict misses .* load a state saved from the same method"):
        fresh.load_state_dict({"prompt_encoder.nope": torch.zeros(1)})


def test_save_pretrained_and_from_pretrained_round_trip(tmp_path, capsys):
    model = perturbed(lamp.wrap(make_llama(), lamp.LampConfig(length=4, rank=2, pool=2)))
    assert model.save_pretrained(tmp_path / "a") == tmp_path / "a"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["adapter.json", "adapter.safetensors"]
    for loaded in (
        lamp.PromptedModel.from_pretrained(tmp_path / "a", model=make_llama()),
        lamp.PromptedModel.from_pretrained(make_llama(), str(tmp_path / "a")),  # PEFT's argument order
        lamp.load_adapter(make_llama(), tmp_path / "a"),  # the same adapter format
    ):
        assert loaded.prompt_config == model.prompt_config
        torch.testing.assert_close(logits(loaded), logits(model))
    # as PEFT's: frozen for inference unless is_trainable (load_adapter: trainable, as lamp train resumes it)
    frozen = lamp.PromptedModel.from_pretrained(tmp_path / "a", model=make_llama())
    assert frozen.num_trainable_parameters() == 0 and not frozen.training  # eval mode too, as PEFT's load_adapter
    trainable = lamp.PromptedModel.from_pretrained(tmp_path / "a", model=make_llama(), is_trainable=True)
    assert trainable.num_trainable_parameters() == model.num_trainable_parameters() > 0 and trainable.training
    model.save_pretrained(tmp_path / "b", is_main_process=False)
    assert not (tmp_path / "b").exists()
    assert model.save_pretrained(tmp_path / "c", safe_serialization=True) == tmp_path / "c"  # PEFT's default
    with pytest.raises(ConfigError, match=r"^save_pretrained writes safetensors only: drop safe_serialization=False$"):
        model.save_pretrained(tmp_path / "d", safe_serialization=False)
    with pytest.raises(ConfigError, match=r"^save_pretrained takes no save_embedding_layers, selected_adapters: "):
        model.save_pretrained(tmp_path / "d", selected_adapters=["default"], save_embedding_layers=True)
    for empty in ("", " "):  # was: '' saved into the current folder
        with pytest.raises(ConfigError, match=r"^the adapter folder is empty: pass a path"):
            model.save_pretrained(empty)
    assert not (tmp_path / "d").exists()
    with pytest.raises(AdapterError, match="no adapter at .*nowhere: no such folder, and not a hub repo id"):
        lamp.PromptedModel.from_pretrained(tmp_path / "nowhere", model=make_llama())


def test_from_pretrained_fetches_a_hub_id_with_snapshot_download(tmp_path, monkeypatch):
    import huggingface_hub

    model = perturbed(lamp.wrap(make_llama(), lamp.PromptTuningConfig(length=3)))
    model.save_pretrained(tmp_path / "cache")
    calls = []

    def snapshot_download(repo_id: str, **options: Any) -> str:
        calls.append((repo_id, options))
        return str(tmp_path / "cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = lamp.PromptedModel.from_pretrained("someone/tiny-prompt", model=make_llama(), revision="v1")
    torch.testing.assert_close(logits(loaded), logits(model))
    assert calls == [
        (
            "someone/tiny-prompt",
            {"revision": "v1", "token": None, "allow_patterns": ["adapter.json", "adapter.safetensors"]},
        )
    ]

    def offline(repo_id: str, **options: Any) -> str:
        raise huggingface_hub.errors.LocalEntryNotFoundError("Cannot reach the hub. Check your connection.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(AdapterError, match=r"cannot fetch adapter 'someone/tiny-prompt' from the hub \(Cannot reach"):
        lamp.PromptedModel.from_pretrained("someone/tiny-prompt", model=make_llama())


def test_push_to_hub_uploads_the_adapter_folder(tmp_path, monkeypatch):
    import huggingface_hub

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, token: Any = None) -> None:
            calls.append(("init", {"token": token}))

        def create_repo(self, repo_id: str, **options: Any) -> None:
            calls.append(("create_repo", {"repo_id": repo_id, **options}))

        def upload_folder(self, **options: Any) -> Any:
            calls.append(("upload_folder", options))
            shutil.copytree(options["folder_path"], tmp_path / "uploaded")  # the folder is gone after the call
            return type("CommitInfo", (), {"commit_url": "https://hf.co/someone/p/commit/abc"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    model = perturbed(lamp.wrap(make_llama(), lamp.LampConfig(length=4, rank=2, pool=2)))
    url = model.push_to_hub("someone/p", private=True, token="t0k")
    assert url == "https://hf.co/someone/p/commit/abc"
    assert [name for name, _ in calls] == ["init", "create_repo", "upload_folder"]
    assert calls[0][1] == {"token": "t0k"}
    assert calls[1][1] == {"repo_id": "someone/p", "private": True, "exist_ok": True}
    assert calls[2][1]["repo_id"] == "someone/p" and calls[2][1]["commit_message"] == "Upload lamp adapter"
    loaded = lamp.PromptedModel.from_pretrained(tmp_path / "uploaded", model=make_llama())
    torch.testing.assert_close(logits(loaded), logits(model))

    class RefusingApi(FakeApi):
        def create_repo(self, repo_id: str, **options: Any) -> None:
            raise huggingface_hub.errors.OfflineModeIsEnabled("Cannot reach the hub: offline mode is enabled. Retry")

    monkeypatch.setattr(huggingface_hub, "HfApi", RefusingApi)
    with pytest.raises(
        ConfigError, match=r"cannot push to hub repo 'someone/p' \(Cannot reach the hub: offline mode is enabled\)"
    ):
        model.push_to_hub("someone/p")


# ---- Trainer, TRL, pipelines, generate -------------------------------------------------------------------------


def trainer_for(model: lamp.PromptedModel, out: Path, **options: Any) -> Any:
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    tokenizer = make_tokenizer()
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=4,
        per_device_train_batch_size=4,
        save_steps=2,
        learning_rate=0.05,
        report_to=[],
        use_cpu=True,
        seed=1,
        **options,
    )
    data = Dataset.from_dict(dict(tokenizer(TEXTS)))
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    return Trainer(model=model, args=args, train_dataset=data, data_collator=collator)


@pytest.mark.parametrize("method", ["lamp", "lora", "full"])
def test_trainer_trains_saves_the_trainable_state_and_resumes(method, tmp_path):
    from safetensors.torch import load_file

    options = {"lamp": {"length": 4, "rank": 2, "pool": 2}, "lora": {"rank": 2}, "full": {}}[method]
    model = lamp.wrap(make_llama(), lamp.make_config(method, **options))
    before = logits(model)
    trainer_for(model, tmp_path / "run").train()
    assert not torch.allclose(logits(model), before), "training changed the model"
    saved = load_file(tmp_path / "run" / "checkpoint-2" / "model.safetensors")
    assert set(saved) == set(model.state_dict()), "a checkpoint holds the trainable state, not the frozen backbone"
    resumed = lamp.wrap(make_llama(), lamp.make_config(method, **options))
    trainer_for(resumed, tmp_path / "run").train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-2"))
    torch.testing.assert_close(logits(resumed), logits(model), atol=1e-5, rtol=1e-4)
    with pytest.raises(AdapterError, match=r"checkpoint-2 is a transformers Trainer checkpoint, not a lamp adapter: "):
        lamp.load_adapter(make_llama(), tmp_path / "run" / "checkpoint-2")  # was: "adapter.json is missing"


def test_trainer_with_activation_checkpointing(tmp_path):
    model = lamp.wrap(make_llama(), lamp.LampConfig(length=4, rank=2, pool=2))
    before = model.prompt().detach().clone()
    trainer_for(model, tmp_path / "run", activation_checkpointing=True, save_strategy="no").train()
    assert model.is_gradient_checkpointing and not torch.allclose(model.prompt(), before)


def test_base_model_and_head_give_the_forward_logits_at_the_input_positions(llama, tokenizer):
    model = perturbed(lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2)))
    batch = tokenizer(TEXTS[:3], return_tensors="pt", padding=True)  # left-padded
    with torch.no_grad():
        hidden = model.base_model(**batch).last_hidden_state
        expected = model(**batch).logits[:, -batch["input_ids"].shape[1] :]
        torch.testing.assert_close(model.get_output_embeddings()(hidden), expected, atol=1e-5, rtol=1e-4)


def test_sft_trainer_trains_the_prompt(tmp_path):
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model = lamp.wrap(make_llama(), lamp.LampConfig(length=4, rank=2, pool=2))
    before = model.prompt().detach().clone()
    frozen = {name: p.detach().clone() for name, p in model.backbone.named_parameters()}
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=0.05,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict({"text": TEXTS}), processing_class=make_tokenizer()
    )
    result = trainer.train()
    assert result.training_loss > 0 and torch.isfinite(torch.tensor(result.training_loss))
    assert not torch.allclose(model.prompt(), before)
    assert all(torch.equal(p, frozen[name]) for name, p in model.backbone.named_parameters())


def test_text_generation_pipeline_generates_what_generate_gives(llama, tokenizer):
    from transformers import pipeline

    model = perturbed(lamp.wrap(llama, lamp.LampConfig(length=4, rank=2, pool=2))).eval()
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    (out,) = generator("the movie was", max_new_tokens=3, do_sample=False)
    ids = tokenizer("the movie was", return_tensors="pt")
    tokens = model.generate(**ids, max_new_tokens=3, do_sample=False)
    new = tokenizer.decode(tokens[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert out["generated_text"] == "the movie was" + new and new


def test_generate_takes_the_usual_keyword_arguments(llama, tokenizer):
    model = perturbed(lamp.wrap(llama, lamp.PromptTuningConfig(length=3))).eval()
    batch = tokenizer(TEXTS[:2], return_tensors="pt", padding=True)
    ids, width = batch["input_ids"], batch["input_ids"].shape[1]
    greedy = model.generate(**batch, max_new_tokens=4, pad_token_id=0)
    assert greedy.shape == (2, width + 4) and torch.equal(greedy[:, :width], ids)
    assert torch.equal(model.generate(ids, attention_mask=batch["attention_mask"], max_new_tokens=4), greedy)
    assert torch.equal(model.generate(inputs=ids, attention_mask=batch["attention_mask"], max_new_tokens=4), greedy)
    # max_length counts the input and the new tokens, as for the bare backbone
    assert torch.equal(model.generate(**batch, max_length=width + 4, pad_token_id=0), greedy)
    out = model.generate(**batch, max_new_tokens=4, return_dict_in_generate=True, output_scores=True)
    assert torch.equal(out.sequences, greedy) and len(out.scores) == 4
    sampled = model.generate(**batch, max_new_tokens=2, do_sample=True, top_k=5, num_return_sequences=3)
    assert sampled.shape == (6, width + 2) and torch.equal(sampled[:, :width], ids.repeat_interleave(3, dim=0))
    at_least = model.generate(**batch, min_length=width + 3, max_new_tokens=3, eos_token_id=greedy[0, width].item())
    assert at_least.shape == (2, width + 3)  # the eos is suppressed until min_length


@pytest.mark.parametrize("method", ["lamp", "pt", "dept", "lora"])
def test_disable_adapter_gives_the_bare_backbone_for_its_duration(method):
    # PEFT's `with model.disable_adapter():` — the backbone's own outputs, then the adapter's again
    options = {"lamp": dict(length=4, rank=2, pool=2), "pt": dict(length=3), "dept": dict(length=3, rank=2)}
    model = perturbed(lamp.wrap(make_llama(), lamp.make_config(method, **options.get(method, {"rank": 2})))).eval()
    adapted, bare = logits(model), logits(make_llama())
    assert adapted.sub(bare).abs().max() > 1e-3
    with model.disable_adapter():
        torch.testing.assert_close(logits(model), bare, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits(model), adapted, atol=0, rtol=0)


def test_merge_and_unload_gives_a_plain_backbone_with_the_same_outputs():
    model = perturbed(lamp.wrap(make_llama(), lamp.make_config("lora", rank=2, alpha=4.0))).eval()
    adapted = logits(model)
    copied = model.merge_and_unload(copy=True)
    torch.testing.assert_close(logits(model), adapted, atol=0, rtol=0)  # a copy leaves the model as it was
    merged = model.merge_and_unload()
    assert merged is model.backbone and not any("lora" in name for name, _ in merged.named_parameters())
    for plain in (copied, merged):
        torch.testing.assert_close(logits(plain), adapted, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="method 'pt' injects no layers, so there is nothing to merge"):
        lamp.wrap(make_llama(), lamp.PromptTuningConfig(length=2)).merge_and_unload()


def test_disable_adapter_refuses_a_fully_fine_tuned_backbone():
    model = lamp.wrap(make_llama(), lamp.make_config("full"))
    with pytest.raises(ConfigError, match="method 'full' trained the backbone's own weights: there is no adapter"):
        with model.disable_adapter():
            pass


# ---- exports that load without lamp -----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_lora_exports_as_a_stock_peft_lora_adapter(arch, tmp_path):
    from peft import PeftModel

    model = perturbed(lamp.wrap(MAKERS[arch](), lamp.make_config("lora", rank=2, alpha=4.0)))
    model.backbone_name = "tiny-" + arch
    kind = model.kind
    assert logits(model, kind).sub(logits(MAKERS[arch](), kind)).abs().max() > 1e-3, "LoRA changes the logits"
    lamp.export_peft(model, tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert (saved["peft_type"], saved["r"], saved["lora_alpha"]) == ("LORA", 2, 4.0)
    assert saved["task_type"] == ("CAUSAL_LM" if arch == "llama" else "SEQ_2_SEQ_LM")
    assert saved["base_model_name_or_path"] == "tiny-" + arch
    peft_model = PeftModel.from_pretrained(MAKERS[arch](), tmp_path)
    torch.testing.assert_close(logits(peft_model, kind), logits(model, kind), atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_lora_exports_merged_into_a_plain_model_folder(arch, tmp_path):
    # --format model on a LoRA adapter: the injected layers merged into the weights (PEFT's merge_and_unload), a
    # folder transformers loads alone with the logits of backbone + adapter; the caller's model keeps its LoRA layers
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model = perturbed(lamp.wrap(MAKERS[arch](), lamp.make_config("lora", rank=2, alpha=4.0))).eval()
    kind = model.kind
    before = logits(model, kind)
    _, line = lamp.export_adapter(model, tmp_path / "merged", export_format="model")
    assert "model folder (LoRA merged into its weights)" in line
    auto = AutoModelForCausalLM if arch == "llama" else AutoModelForSeq2SeqLM
    reloaded = auto.from_pretrained(tmp_path / "merged")
    assert not any("lora" in name for name, _ in reloaded.named_parameters())
    torch.testing.assert_close(logits(reloaded, kind), before, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits(model, kind), before, atol=0, rtol=0)
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    with pytest.raises(ConfigError, match="method 'pt' exports as a PEFT export .*not 'model'"):
        lamp.export_adapter(
            lamp.wrap(MAKERS[arch](), lamp.PromptTuningConfig(length=2)), tmp_path / "pt", export_format="model"
        )


def test_cli_exports_lora_and_full_runs(model_dir, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lora = perturbed(lamp.wrap(make_llama(), lamp.make_config("lora", rank=2)))
    lora.backbone_name = model_dir
    lora.save_adapter(tmp_path / "lora")
    assert main(["export", "--adapter", str(tmp_path / "lora"), "--out", str(tmp_path / "lora-peft")]) == 0
    assert "wrote a PEFT LoRA adapter to" in capsys.readouterr().out
    peft_model = PeftModel.from_pretrained(make_llama(), tmp_path / "lora-peft")
    torch.testing.assert_close(logits(peft_model), logits(lora), atol=1e-5, rtol=0)
    capsys.readouterr()  # drop what peft itself printed (a transformers FutureWarning when warnings are shown)

    full = perturbed(lamp.wrap(make_llama(), lamp.make_config("full")), scale=0.01)
    full.backbone_name = model_dir
    full.save_adapter(tmp_path / "full")
    args = ["export", "--adapter", str(tmp_path / "full"), "--out", str(tmp_path / "model")]
    assert main([*args, "--format", "peft"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "method 'full' exports as a model folder (format 'model'), not 'peft': "
        "use --format model (or lamp.export_adapter)"
    )
    assert len(err.splitlines()) == 1 and not (tmp_path / "model").exists()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "wrote a transformers model folder and its tokenizer to" in out and "AutoModelForCausalLM" in out
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    torch.testing.assert_close(logits(reloaded), logits(full), atol=1e-6, rtol=0)
    assert AutoTokenizer.from_pretrained(tmp_path / "model")("the movie")["input_ids"]
