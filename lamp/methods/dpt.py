"""DPT (Xiao et al., EMNLP Findings 2023): the l x d prompt reparameterised as a product A (l x r) B (r x d),
trained from a random init: no SVD of an initial prompt, no pooling.

Both factors start from N(0, sigma^2) with sigma = sqrt(std_E / sqrt(r)), so each entry of A @ B has variance
r * sigma^4 = std_E^2: the product starts on the scale of the backbone's embeddings E (as the embedding layer
returns them, `embedding_std`).
Trainable: l*r + r*d parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from lamp.methods.base import (
    Declaration,
    PromptConfig,
    PromptModule,
    check_positive,
    check_rank_fits,
    embedding_std,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class DptConfig(PromptConfig):
    """length: virtual tokens (l). rank: inner dimension of the product (r); 8 matches LAMP's default budget."""

    declares = Declaration()  # prompt rows only, exported as a PEFT prompt; its own random init
    length: int = 100
    rank: int = 8

    def validate(self) -> None:
        check_positive("length", self.length)
        check_positive("rank", self.rank)
        check_rank_fits(self.rank, "length", self.length)

    def check_width(self, width: int) -> None:
        check_rank_fits(self.rank, "the backbone's width", width)

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> DptPrompt:
        weight = backbone.get_input_embeddings().weight
        return DptPrompt(self.length, self.rank, weight.shape[1], embedding_std(backbone), weight.device)


class DptPrompt(PromptModule):
    def __init__(self, length: int, rank: int, width: int, target_std: float, device: torch.device) -> None:
        super().__init__()
        sigma = math.sqrt(target_std / math.sqrt(rank))
        self.a = nn.Parameter(torch.randn(length, rank, device=device) * sigma)
        self.b = nn.Parameter(torch.randn(rank, width, device=device) * sigma)
        self.n_virtual = length

    def forward(self) -> torch.Tensor:
        return self.a @ self.b
