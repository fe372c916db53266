"""How far one Adam step moves the prompt: vanilla PT against LAMP's three factors, with and without scale_lr.

Adam moves every trainable entry by about the learning rate in its first steps, whatever the entry's size. This
script puts a step of +-lr on each factor (the sign of a random gradient, which is what Adam's first step is) and
reports the change of the prompt rows the frozen model sees (LAMP: after pooling), next to their norm.

    python benchmarks/lamp_step_size.py                    # SmolLM2-135M, l=100, r=8, k=4, lr 0.03
    python benchmarks/lamp_step_size.py --model DIR_OR_HUB_ID
"""

from __future__ import annotations

import argparse

import torch

import lamp
from lamp.backbones import load_model


def row_norm(x: torch.Tensor) -> float:
    return x.norm(dim=-1).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    backbone = load_model(args.model)
    torch.manual_seed(args.seed)
    pt = lamp.wrap(backbone, lamp.PromptTuningConfig(length=100)).prompt_encoder
    torch.manual_seed(args.seed)
    prompt = lamp.wrap(backbone, lamp.LampConfig(length=100, rank=8, pool=4, scale_lr=True)).prompt_encoder
    singular = prompt.singular_values().detach()
    initial = pt().detach()
    energy = (singular**2).sum() / torch.linalg.svdvals(initial).pow(2).sum()
    print(f"prompt: row norm {row_norm(initial):.2f}; rank-8 share of its energy {energy:.0%}")
    print(f"LAMP pooled rows: norm {row_norm(prompt().detach()):.2f}; singular values {singular[:4].tolist()} ...")

    def step(x: torch.Tensor, lr: float) -> torch.Tensor:
        return lr * torch.sign(torch.randn_like(x))

    print(f"\none Adam step at lr {args.lr}: mean change of a prompt row the model sees")
    print(f"  PT-100: {row_norm(step(initial, args.lr)):.2f}")
    groups = {
        name: group["lr"] / args.lr
        for (name, _), group in zip(prompt.named_parameters(), prompt.optimizer_groups(args.lr), strict=True)
    }
    with torch.no_grad():
        base = prompt()
        for scaled in (False, True):
            changes = {}
            for name, param in prompt.named_parameters():
                lr = args.lr * (groups[name] if scaled else 1.0)
                delta = step(param, lr)
                param.add_(delta)
                changes[name] = row_norm(prompt() - base)
                param.sub_(delta)
            label = "LAMP, scale_lr" if scaled else "LAMP"
            detail = ", ".join(f"{name} alone {change:.3f}" for name, change in changes.items())
            rates = ", ".join(f"{name} x{groups[name]:.2f}" for name in changes) if scaled else "every factor x1"
            print(f"  {label} ({rates}): {detail}")


if __name__ == "__main__":
    main()
