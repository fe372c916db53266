"""`lamp inspect`: valid PNGs, and summary numbers that tell a rank-r LAMP prompt from a full-rank vanilla one."""

from __future__ import annotations

import json
import math

import pytest
import torch

import lamp
from lamp.cli import main
from lamp.errors import AdapterError
from lamp.inspection import FILES, effective_rank, inspect_adapters, mean_pairwise_cosine, prompt_summary

from .conftest import make_llama, make_tokenizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_effective_rank_and_cosine_on_known_matrices():
    assert effective_rank(torch.eye(3, 5)) == pytest.approx(3.0)
    assert effective_rank(torch.outer(torch.arange(1.0, 5.0), torch.ones(6))) == pytest.approx(1.0)
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    )
    assert mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])) == pytest.approx(1 / 3)
    assert math.isnan(mean_pairwise_cosine(torch.ones(1, 4)))


def test_a_rank_two_lamp_prompt_has_lower_effective_rank_than_a_random_pt_prompt(llama):
    torch.manual_seed(0)
    low = prompt_summary(lamp.wrap(llama, lamp.LampConfig(length=16, rank=2, pool=2)))
    full = prompt_summary(lamp.wrap(llama, lamp.PromptTuningConfig(length=16, init="random")))
    assert low["effective_rank_before_pooling"] <= 2 + 1e-3
    assert low["effective_rank_after_pooling"] <= 2 + 1e-3
    assert full["effective_rank_before_pooling"] > 8
    assert (low["n_virtual"], low["rows_before_pooling"], low["width"]) == (8, 16, 32)
    assert low["trainable_params"] == 16 * 2 + 2 + 2 * 32
    assert full["effective_rank_before_pooling"] == full["effective_rank_after_pooling"]


def read_back(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 0.01, f"{path.name} is blank"
    return image


def test_inspect_writes_readable_pictures_and_a_summary(tmp_path):
    torch.manual_seed(0)
    backbone = make_llama()
    lamp.wrap(backbone, lamp.LampConfig(length=16, rank=2, pool=4)).save_adapter(tmp_path / "lamp")
    lamp.wrap(backbone, lamp.PromptTuningConfig(length=16)).save_adapter(tmp_path / "pt")
    summaries = inspect_adapters([tmp_path / "lamp", tmp_path / "pt"], tmp_path / "out", backbone=backbone)
    for name in FILES:
        read_back(tmp_path / "out" / name)
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summaries))
    (lamp_summary, pt_summary) = saved.values()
    assert lamp_summary["method"] == "lamp" and pt_summary["method"] == "pt"
    assert lamp_summary["n_virtual"] == 4 and pt_summary["n_virtual"] == 16
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert "effective rank" in text and "mean pairwise cosine" in text and "trainable parameters: 98" in text


def test_lamp_unpooled_rows_pool_to_the_prompt(llama):
    model = lamp.wrap(llama, lamp.LampConfig(length=12, rank=3, pool=3))
    rows = model.prompt_encoder.unpooled()
    assert rows.shape == (12, 32)
    torch.testing.assert_close(rows.view(4, 3, 32).mean(1), model.prompt_encoder())
    pt = lamp.wrap(llama, lamp.PromptTuningConfig(length=5))
    assert torch.equal(pt.prompt_encoder.unpooled(), pt.prompt_encoder())


def test_a_method_without_prompt_rows_is_refused(tmp_path):
    backbone = make_llama()
    lamp.wrap(backbone, lamp.make_config("lora", rank=2)).save_adapter(tmp_path / "lora")
    with pytest.raises(AdapterError, match="'lora' adds no prompt rows"):
        inspect_adapters([tmp_path / "lora"], tmp_path / "out", backbone=make_llama())


def test_cli_inspect(tmp_path, capsys):
    model_dir = tmp_path / "tiny-llama"
    make_llama().save_pretrained(model_dir)
    make_tokenizer().save_pretrained(model_dir)
    model = lamp.wrap(make_llama(), lamp.LampConfig(length=8, rank=2, pool=2))
    model.backbone_name = str(model_dir)
    model.save_adapter(tmp_path / "run" / "adapter")
    assert main(["inspect", "--adapter", str(tmp_path / "run" / "adapter")]) == 0
    out = capsys.readouterr().out
    assert "effective rank" in out and "virtual tokens the model sees (n_virtual): 4" in out
    for name in FILES:
        read_back(tmp_path / "run" / "inspect" / name)  # default: inspect/ beside the adapter
    assert main(["inspect", "--adapter", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.endswith("missing: no such folder\n")


def test_inspect_refuses_a_folder_of_the_users_files_and_checks_the_adapter_first(tmp_path, capsys, monkeypatch):
    model = lamp.wrap(make_llama(), lamp.LampConfig(length=8, rank=2, pool=2))
    model.save_adapter(tmp_path / "adapter")
    pictures = tmp_path / "pictures"  # the user's own files under the names inspect writes
    pictures.mkdir()
    (pictures / "cosine.png").write_bytes(b"mine")
    (pictures / "summary.txt").write_text("mine")
    assert main(["inspect", "--adapter", str(tmp_path / "adapter"), "--out", str(pictures)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "holds files that are not a lamp inspection" in err, err
    assert (pictures / "cosine.png").read_bytes() == b"mine" and (pictures / "summary.txt").read_text() == "mine"
    (pictures / "summary.json").write_text('{"note": "my own"}')  # a file of that name is not an inspection yet
    assert main(["inspect", "--adapter", str(tmp_path / "adapter"), "--out", str(pictures)]) == 2
    assert "holds files that are not a lamp inspection" in capsys.readouterr().err
    assert (pictures / "summary.json").read_text() == '{"note": "my own"}'
    # a NaN prompt is refused from the files alone, before the backbone --model names would load
    import safetensors.torch

    tensors = safetensors.torch.load_file(tmp_path / "adapter" / "adapter.safetensors")
    tensors = {name: torch.full_like(t, float("nan")) for name, t in tensors.items()}
    safetensors.torch.save_file(tensors, tmp_path / "adapter" / "adapter.safetensors")
    monkeypatch.setattr("lamp.inspection.load_model", lambda name: pytest.fail("loaded a backbone first"))
    argv = ["inspect", "--adapter", str(tmp_path / "adapter"), "--model", "smollm2-135m", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "holds NaN or inf values" in capsys.readouterr().err
