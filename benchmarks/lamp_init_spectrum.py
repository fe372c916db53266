"""What LAMP's initial prompt looks like next to vanilla PT's, on SmolLM2-135M (no training; seconds on a CPU).

Both start from the same 100 sampled vocabulary rows (seed 0). LAMP keeps their rank-r SVD and averages blocks of
`pool` rows. The script prints how much of the prompt's energy rank r keeps, the singular values LAMP keeps as q,
and how alike the prompt rows the model sees are: their mean cosine similarity to the vocabulary's mean embedding
and to each other.

    python benchmarks/lamp_init_spectrum.py                      # from the repository root
    python benchmarks/lamp_init_spectrum.py --rank 16 --pool 2
    python benchmarks/lamp_init_spectrum.py --init random      # or --init text --init-text "a phrase"
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import lamp
from lamp.backbones import load_model, load_tokenizer
from lamp.methods.base import embedding_rows


def describe(name: str, rows: torch.Tensor, mean: torch.Tensor) -> None:
    unit = F.normalize(rows, dim=1)
    pairwise = unit @ unit.T
    off_diagonal = pairwise[~torch.eye(len(rows), dtype=torch.bool)].mean().item()
    to_mean = F.cosine_similarity(rows, mean[None]).mean().item()
    print(
        f"{name:28s} {len(rows):3d} rows, mean norm {rows.norm(dim=1).mean():.2f}, "
        f"cosine to the mean embedding {to_mean:.2f}, to each other {off_diagonal:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--init", choices=("vocab", "common-vocab", "text", "random"), default="vocab")
    parser.add_argument("--init-text", default=None, help="the phrase for --init text")
    args = parser.parse_args()

    backbone = load_model(args.model)
    # What the embedding layer returns (the prompt lives there), not its raw weight.
    vocabulary = embedding_rows(backbone, torch.arange(backbone.get_input_embeddings().weight.shape[0]))
    mean = vocabulary.mean(0)
    print(
        f"vocabulary: {len(vocabulary)} rows, mean row norm {vocabulary.norm(dim=1).mean():.2f}, "
        f"norm of the mean row {mean.norm():.2f}"
    )
    tokenizer = load_tokenizer(args.model)
    init = {"init": args.init, "init_text": args.init_text}
    torch.manual_seed(0)
    pt = lamp.wrap(backbone, lamp.PromptTuningConfig(length=args.length, **init), tokenizer=tokenizer)
    pt = pt.prompt_encoder().detach()
    torch.manual_seed(0)  # the same initial rows
    config = lamp.LampConfig(length=args.length, rank=args.rank, pool=args.pool, **init)
    module = lamp.wrap(backbone, config, tokenizer=tokenizer).prompt_encoder
    energy = torch.linalg.svdvals(pt).pow(2)
    kept = energy[: args.rank].sum() / energy.sum()
    print(f"rank {args.rank} keeps {kept:.1%} of the initial prompt's energy")
    print("q (the kept singular values):", [round(v, 2) for v in module.singular_values().detach().tolist()])
    describe(f"PT ({args.init} init)", pt, mean)
    describe(f"LAMP rank {args.rank}, before pooling", module.unpooled().detach(), mean)
    describe(f"LAMP rank {args.rank}, pool {args.pool}", module().detach(), mean)


if __name__ == "__main__":
    main()
