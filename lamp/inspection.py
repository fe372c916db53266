"""Pictures and numbers of a prompt: how its tokens relate (cosine similarity), how many directions it uses
(singular values, effective rank) and how pooling changes the rows the model sees (token norms).

The paper's argument is that vanilla prompt tokens are scattered while LAMP's are coupled through r shared
directions; these views show it for any saved adapter, or two side by side. "Before pooling" is the module's
`unpooled()` rows (LAMP: U_r diag(q) V_r; methods without pooling: the prompt itself), "after pooling" its
`forward()` rows, the ones prepended to the input.

Effective rank (Roy & Vetterli, 2007): exp(H(p)) with p_i = s_i / sum_j s_j over the singular values s, H the
Shannon entropy. It lies between 1 and the rank: r equal singular values give r, a rank-r matrix gives at most r.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lamp.adapter import atomic_write, read_adapter_config, read_adapter_tensors
from lamp.backbones import load_model
from lamp.errors import AdapterError, ConfigError
from lamp.export import check_output_folder
from lamp.methods.base import embedding_rows
from lamp.model import PromptedModel, load_adapter
from lamp.run_folder import run_files

FILES = ("cosine.png", "spectrum.png", "norms.png")
SUMMARY_TEXT, SUMMARY_JSON = "summary.txt", "summary.json"


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(matrix.detach().double())


def effective_rank(matrix: torch.Tensor, values: torch.Tensor | None = None) -> float:
    """Roy & Vetterli's entropy-based effective rank of a 2-D matrix (1.0 for rank one, up to min(shape)).

    `values`: the matrix's singular values, when already computed."""
    values = singular_values(matrix) if values is None else values
    p = values / values.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def cosine_matrix(rows: torch.Tensor) -> torch.Tensor:
    unit = F.normalize(rows.detach().double(), dim=-1)
    return unit @ unit.T


def mean_pairwise_cosine(rows: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of distinct rows (nan for a single row)."""
    n = rows.shape[0]
    if n < 2:
        return math.nan
    similarity = cosine_matrix(rows)
    return float((similarity.sum() - similarity.diagonal().sum()) / (n * (n - 1)))


def prompt_rows(model: PromptedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows before pooling, rows after pooling) as float32 on the CPU."""
    if not model.declares.prompt_rows:
        raise AdapterError(f"method {model.prompt_config.method!r} adds no prompt rows: there is no prompt to inspect")
    with torch.no_grad():
        before = model.prompt_encoder.unpooled().detach().float().cpu()
        after = model.prompt_encoder().detach().float().cpu()
    return before, after


def prompt_summary(model: PromptedModel, spectra: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, Any]:
    """The numbers behind the pictures: sizes, effective rank and mean pairwise cosine before and after pooling.

    `spectra`: the singular values before and after pooling, when already computed."""
    before, after = prompt_rows(model)
    spectra = spectra or (singular_values(before), singular_values(after))
    vocab_size = model.backbone.get_input_embeddings().weight.shape[0]
    # Norms of the rows the embedding layer returns (Gemma scales them in forward), in chunks of the vocabulary.
    vocabulary_norms = torch.cat(
        [
            embedding_rows(model.backbone, torch.arange(start, min(start + 8192, vocab_size))).norm(dim=-1)
            for start in range(0, vocab_size, 8192)
        ]
    )
    return {
        "method": model.prompt_config.method,
        "backbone": model.backbone_name,
        "n_virtual": model.n_virtual,
        "rows_before_pooling": before.shape[0],
        "width": before.shape[1],
        "trainable_params": model.num_trainable_parameters(),
        "effective_rank_before_pooling": effective_rank(before, spectra[0]),
        "effective_rank_after_pooling": effective_rank(after, spectra[1]),
        "mean_cosine_before_pooling": mean_pairwise_cosine(before),
        "mean_cosine_after_pooling": mean_pairwise_cosine(after),
        "mean_norm_before_pooling": float(before.norm(dim=-1).mean()),
        "mean_norm_after_pooling": float(after.norm(dim=-1).mean()),
        "mean_vocabulary_norm": float(vocabulary_norms.mean()),
    }


def format_summary(label: str, summary: dict[str, Any]) -> str:
    s = summary
    return "\n".join(
        [
            f"{label}",
            f"  method {s['method']} on {s['backbone'] or 'an unnamed backbone'}, width {s['width']}",
            f"  virtual tokens the model sees (n_virtual): {s['n_virtual']} (rows before pooling: "
            f"{s['rows_before_pooling']})",
            f"  trainable parameters: {s['trainable_params']:,}",
            "  effective rank (Roy & Vetterli: exp of the entropy of the normalised singular values), before / after "
            f"pooling: {s['effective_rank_before_pooling']:.2f} / {s['effective_rank_after_pooling']:.2f}",
            "  mean pairwise cosine similarity of prompt tokens, before / after pooling: "
            f"{s['mean_cosine_before_pooling']:.3f} / {s['mean_cosine_after_pooling']:.3f}",
            f"  mean token norm, before / after pooling: {s['mean_norm_before_pooling']:.3f} / "
            f"{s['mean_norm_after_pooling']:.3f} (vocabulary embeddings: {s['mean_vocabulary_norm']:.3f})",
        ]
    )


def inspect_prompts(models: dict[str, PromptedModel], out_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Write cosine.png, spectrum.png, norms.png, summary.txt and summary.json for one or more labelled prompts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    def integer() -> MaxNLocator:  # token and singular-value indices are whole numbers (one locator per axis)
        return MaxNLocator(integer=True)

    out = Path(out_dir)
    rows = {label: prompt_rows(model) for label, model in models.items()}
    spectra = {label: (singular_values(before), singular_values(after)) for label, (before, after) in rows.items()}
    summaries = {label: prompt_summary(model, spectra[label]) for label, model in models.items()}

    # Cosine-similarity heatmaps: one row of panels per prompt, before and after pooling, one shared colour scale.
    figure, axes = plt.subplots(len(models), 2, figsize=(10.5, 4.8 * len(models)), squeeze=False, layout="constrained")
    image = None
    for (label, (before, after)), panels in zip(rows.items(), axes, strict=True):
        summary = summaries[label]
        for axis, matrix, stage in ((panels[0], before, "before pooling"), (panels[1], after, "after pooling")):
            image = axis.imshow(cosine_matrix(matrix).numpy(), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            key = "before_pooling" if stage == "before pooling" else "after_pooling"
            axis.set_title(
                f"{label}\n{stage}: {matrix.shape[0]} tokens, mean cos {summary['mean_cosine_' + key]:.2f}", fontsize=9
            )
            axis.set_xlabel("prompt token")
            axis.set_ylabel("prompt token")
            axis.xaxis.set_major_locator(integer())
            axis.yaxis.set_major_locator(integer())
    figure.colorbar(image, ax=axes.ravel().tolist(), label="cosine similarity", shrink=0.8)
    figure.suptitle("Cosine similarity between prompt tokens")
    atomic_write(out / "cosine.png", lambda tmp: figure.savefig(tmp, dpi=110))
    plt.close(figure)

    # Singular-value spectrum, normalised to the largest so prompts of different scales compare.
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (label, pair) in enumerate(spectra.items()):
        color = colors[index % len(colors)]
        summary = summaries[label]
        for values, stage, style in ((pair[0], "before", "-"), (pair[1], "after", "--")):
            values = (values / values[0]).clamp(min=1e-12).numpy()
            rank = summary[f"effective_rank_{stage}_pooling"]
            axis.plot(
                range(1, len(values) + 1),
                values,
                style,
                marker=".",
                color=color,
                label=f"{label}, {stage} pooling (eff. rank {rank:.1f})",
            )
    # float32 prompts: relative values below its round-off are zeros (a rank-r prompt drops there after r values).
    axis.axhline(torch.finfo(torch.float32).eps, color="grey", ls=":", label="float32 round-off (below: zero)")
    axis.set_yscale("log")
    axis.xaxis.set_major_locator(integer())
    axis.set_xlabel("singular value index")
    axis.set_ylabel("singular value / largest")
    axis.set_title("Singular-value spectrum of the prompt")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    figure.tight_layout()
    atomic_write(out / "spectrum.png", lambda tmp: figure.savefig(tmp, dpi=110))
    plt.close(figure)

    # Token norms: pooled rows sit at the centre of the window of rows they average.
    figure, axes = plt.subplots(len(models), 1, figsize=(8.5, 3.4 * len(models)), squeeze=False)
    for (label, (before, after)), (axis,) in zip(rows.items(), axes, strict=True):
        stride = before.shape[0] / after.shape[0]
        centres = [(i + 0.5) * stride - 0.5 for i in range(after.shape[0])]
        axis.plot(range(before.shape[0]), before.norm(dim=-1).numpy(), ".-", alpha=0.6, label="before pooling")
        axis.plot(centres, after.norm(dim=-1).numpy(), "o", label="after pooling")
        axis.axhline(summaries[label]["mean_vocabulary_norm"], color="grey", ls=":", label="mean vocabulary embedding")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("prompt token (position before pooling)")
        axis.xaxis.set_major_locator(integer())
        axis.set_ylabel("L2 norm")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Prompt token norms before and after pooling")
    figure.tight_layout()
    atomic_write(out / "norms.png", lambda tmp: figure.savefig(tmp, dpi=110))
    plt.close(figure)

    text = "\n\n".join(format_summary(label, summary) for label, summary in summaries.items()) + "\n"
    atomic_write(out / SUMMARY_TEXT, lambda tmp: Path(tmp).write_text(text))
    atomic_write(out / SUMMARY_JSON, lambda tmp: Path(tmp).write_text(json.dumps(summaries, indent=2) + "\n"))
    return summaries


def check_inspect_folder(out: Path) -> None:
    """Refuse an output folder that is a file, cannot be written, or holds files but no earlier inspection (its
    summary.json): the pictures' plain names (cosine.png, summary.txt) may be the user's own files."""
    check_output_folder(out, "inspect")
    if out.is_dir() and run_files(out) and not _is_inspection(out / SUMMARY_JSON):
        raise ConfigError(
            f"{out} holds files that are not a lamp inspection: choose another --out; lamp never overwrites them"
        )


def _is_inspection(path: Path) -> bool:
    """Whether `path` is the summary.json lamp writes (labels -> summaries), not a file of the user's own name."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return (
        isinstance(saved, dict)
        and bool(saved)
        and all(isinstance(v, dict) and "mean_vocabulary_norm" in v for v in saved.values())
    )


def inspect_adapters(
    adapters: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    backbone: nn.Module | str | None = None,
) -> dict[str, dict[str, Any]]:
    """Load saved adapters (on `backbone`, or the backbone each names) and write their pictures to `out_dir`.

    The output folder and every adapter's files are checked before any backbone loads."""
    check_inspect_folder(Path(out_dir))
    for path in adapters:  # load_adapter reads them again, but only once a backbone has loaded
        read_adapter_config(path)
        read_adapter_tensors(path)
    loaded: dict[str, nn.Module] = {}
    models: dict[str, PromptedModel] = {}
    for path in adapters:
        name = backbone if isinstance(backbone, str) else read_adapter_config(path)["backbone"]["name"]
        if isinstance(backbone, nn.Module):
            model = backbone
        else:
            if name not in loaded:
                loaded[name] = load_model(name)
            model = loaded[name]
        prompted = load_adapter(model, path)
        label = f"{prompted.prompt_config.method}: {path}"
        if label in models:
            raise AdapterError(f"adapter {path} is given twice: compare two different adapters")
        models[label] = prompted
    return inspect_prompts(models, out_dir)
