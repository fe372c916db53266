"""DePT (Shi and Lipani, ICLR 2024): a shorter prompt (m x d) plus a low-rank offset A (s x r) B (r x d) added to
the input embeddings of the first s positions, trained with two learning rates.

Follows the authors' code (github.com/ZhengxiangShi/DePT, `peft/tuners/prompt_tuning_lora.py` and
`peft/peft_model.py`): A is initialised with `kaiming_uniform_(a=sqrt(5))`, B with zeros, so the offset starts at
exactly 0; the offset is `alpha / sqrt(r) * A @ B` (their `lora_alpha` defaults to 8). Their inputs are padded to s
and the offset is added by absolute column; lamp pads dynamically, so the offset is indexed by the position counted
from each row's first real token (`cumsum(mask) - 1`), which is the column index for right-padded rows and keeps a
left-padded row identical to the same row alone. Pad positions and positions beyond s get no offset.
Trainable: m*d + s*r + r*d parameters (T5-Base, m=60, r=30, s=256: 76,800, the budget of PT with l=100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from lamp.checks import LEARNING_RATE, POSITIVE
from lamp.errors import ConfigError
from lamp.methods.base import (
    Declaration,
    PromptConfig,
    PromptModule,
    check_init,
    check_positive,
    check_rank_fits,
    initial_prompt,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class DeptConfig(PromptConfig):
    """DePT hyper-parameters (defaults: the paper's T5-Base setting).

    length: prompt tokens (m). rank: rank of the offset (r). max_length: positions that get an offset (s).
    alpha: offset scale numerator (scale = alpha / sqrt(rank)). offset_lr: learning rate of A and B (the prompt
    uses the run's lr); default 5e-3, a value of the authors' published grid {5e-4, 5e-3, 3e-1}.
    init: prompt init, `vocab`, `text` (embeddings of init_text), `task` (`text` from the task's own template and
    label words, `Task.prompt_words`; lamp train) or `random`.
    """

    # The offset changes the input embeddings, so the prompt rows alone do not reproduce DePT: no PEFT export.
    declares = Declaration(input_embeddings=True, export=None, prompt_init=True)
    length: int = 60
    rank: int = 30
    max_length: int = 256
    alpha: float = 8.0
    offset_lr: float = 5e-3
    init: str = "vocab"
    init_text: str | None = None

    def validate(self) -> None:
        check_positive("length", self.length)
        check_positive("rank", self.rank)
        check_positive("max_length", self.max_length)
        check_rank_fits(self.rank, "max_length", self.max_length)
        self.alpha = POSITIVE.check("alpha", self.alpha)
        self.offset_lr = LEARNING_RATE.check("offset_lr", self.offset_lr)
        check_init(self.init, self.init_text)

    def check_width(self, width: int) -> None:
        check_rank_fits(self.rank, "the backbone's width", width)

    def check_positions(self, positions: int) -> None:
        if self.max_length > positions:  # offset rows past the backbone's positions would never reach an input
            raise ConfigError(
                f"max_length {self.max_length} exceeds the backbone's {positions} positions: pass max_length <= "
                f"{positions}"
            )

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> DeptPrompt:
        initial = initial_prompt(self.length, self.init, backbone, tokenizer, self.init_text)
        return DeptPrompt(self, initial)


class DeptPrompt(PromptModule):
    def __init__(self, config: DeptConfig, initial: torch.Tensor) -> None:
        super().__init__()
        width = initial.shape[1]
        self.weight = nn.Parameter(initial.float().contiguous())
        self.a = nn.Parameter(torch.empty(config.max_length, config.rank, device=initial.device))
        self.b = nn.Parameter(torch.zeros(config.rank, width, device=initial.device))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.scale = config.alpha / math.sqrt(config.rank)
        self.offset_lr = config.offset_lr
        self.n_virtual = initial.shape[0]

    def forward(self) -> torch.Tensor:
        return self.weight

    def offset(self) -> torch.Tensor:
        """The (s, d) offset added to the first s real input positions."""
        return self.scale * (self.a @ self.b)

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": [self.weight], "lr": lr}, {"params": [self.a, self.b], "lr": self.offset_lr}]

    def embed_inputs(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        offset = self.offset()
        positions = attention_mask.long().cumsum(-1) - 1
        keep = (attention_mask > 0) & (positions < offset.shape[0])
        # Row lookup as a one-hot product: its backward is a matmul, deterministic, where indexing's backward
        # accumulates with atomics on CPU and gave runs that differed in the 7th digit after two steps.
        select = F.one_hot(positions.clamp(0, offset.shape[0] - 1), offset.shape[0]).to(offset.dtype)
        rows = (select * keep.unsqueeze(-1)) @ offset  # (batch, seq, d); zero at pads and beyond max_length
        return inputs_embeds + rows.to(inputs_embeds.dtype)
