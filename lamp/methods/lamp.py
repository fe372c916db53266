"""LAMP (Lan et al., NAACL 2025): a prompt decomposed by truncated SVD, rebuilt by a compressed outer product,
and shortened by average pooling along the token axis.

Trainable: U_r (l x r), q (r), V_r (r x d), i.e. l*r + r + r*d parameters (the paper's count). The prompt is
pool(U_r diag(q) V_r), the average over blocks of `pool` consecutive tokens, so the frozen model sees l/pool prompt
positions. Pooling is linear and the product is linear in U's rows, so pool(U diag(q) V) = pool(U) diag(q) V
exactly: the prompt is computed in that order (k times fewer multiply-adds; never the r x l x d stack of outer
products), and the differences between U's rows inside one block never reach the prompt, never get a gradient.
The effective trainable count is therefore l/k*r + r + r*d (`effective_parameters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

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
class LampConfig(PromptConfig):
    """LAMP hyper-parameters.

    length: virtual tokens of the prompt before pooling (l). rank: SVD components kept (r).
    pool: average-pooling kernel and stride along the token axis (k); must divide length.
    init: `vocab` (sampled vocabulary rows), `text` (embeddings of init_text, each token repeated `pool` times so
    that the pooled prompt starts as the phrase, up to the rank-r truncation), `task` (`text` from the task's own
    template and label words, `Task.prompt_words`; lamp train) or `random`.
    scale_lr: give U and V the learning rate times their initial RMS over the prompt's initial RMS, so one Adam
    step moves each by the same fraction of its size as vanilla PT's step moves the prompt. Without it a step of lr
    changes V (entries ~ 1/sqrt(d), multiplied by q ~ the singular values) several times more than a PT step and q
    (entries ~ the singular values) almost not at all (docs/quality.md has the measurement). q gets the rate times
    its RMS over the prompt's (log_q off) or the rate over the prompt's RMS (log_q on).
    log_q: train log q instead of q, so a step changes every singular value by the same fraction of itself (with
    scale_lr: PT's relative step) and none changes sign; with q itself, one rate fitted to q's RMS (the largest
    singular value, the vocabulary mean) is a large fraction of the small ones. scale_lr + log_q is the "relative"
    step; both off is the paper's single Adam rate.
    """

    declares = Declaration(prompt_init=True)
    length: int = 100
    rank: int = 8
    pool: int = 4
    init: str = "vocab"
    init_text: str | None = None
    scale_lr: bool = False
    log_q: bool = False

    def validate(self) -> None:
        check_positive("pool", self.pool)  # first: `for_prompt` makes the length from it (a pool of -1 or 2.5)
        check_positive("length", self.length)
        check_positive("rank", self.rank)
        check_rank_fits(self.rank, "length", self.length)
        if self.length % self.pool:
            raise ConfigError(
                f"pool {self.pool} does not divide length {self.length}: pick a length that is a multiple of pool"
            )
        check_init(self.init, self.init_text)

    def n_virtual(self) -> int:
        """The pooled prompt's positions, l / k (the frozen model sees these, not the l rows U spans)."""
        return self.length // self.pool

    def init_rows(self) -> int:
        """The l rows that are initialised and decomposed (U is l x r), before pooling to l / k."""
        return self.length

    def check_width(self, width: int) -> None:
        _check_rank(self.rank, self.length, width)

    def build(self, backbone: nn.Module, tokenizer: PreTrainedTokenizerBase | None = None) -> LampPrompt:
        initial = initial_prompt(self.length, self.init, backbone, tokenizer, self.init_text, repeat=self.pool)
        return LampPrompt(self, initial)

    @classmethod
    def for_prompt(cls, initial: torch.Tensor, **options: Any) -> LampConfig:
        """Length n * pool for the given (n x d) prompt, whose rows `expand` repeats `pool` times (so the pooled
        prompt starts as the given one, up to the rank-r truncation; exactly at r = min(n, d)); an unset rank is the
        default capped at min(n, d), the given prompt's largest rank."""
        pool = cls.pool if options.get("pool") is None else options["pool"]  # a given 0 is checked, not replaced
        if options.get("rank") is None:
            options["rank"] = min(cls.rank, *initial.shape)
        return cls(**{**options, "length": len(initial) * pool, "pool": pool})

    def expand(self, seen: torch.Tensor) -> torch.Tensor:
        """Each of the (length / pool) seen rows `pool` times in a row: the pool of block i is row i."""
        return seen.repeat_interleave(self.pool, dim=0)

    def from_prompt(self, initial: torch.Tensor) -> LampPrompt:
        if initial.dim() != 2 or initial.shape[0] != self.length:
            raise ConfigError(
                f"the given prompt has shape {tuple(initial.shape)}, length is {self.length}: "
                f"pass length={len(initial)}"
            )
        return LampPrompt(self, initial)


def _check_rank(rank: int, length: int, width: int) -> None:
    """The truncated SVD of an (l x d) prompt has min(l, d) components."""
    most = min(length, width)
    if rank > most:
        raise ConfigError(f"rank {rank} exceeds min(length, embedding width) = {most}: pass rank <= {most}")


class LampPrompt(PromptModule):
    def __init__(self, config: LampConfig, initial: torch.Tensor) -> None:
        super().__init__()
        _check_rank(config.rank, *initial.shape)
        u, s, vh = torch.linalg.svd(initial.float(), full_matrices=False)
        self.u = nn.Parameter(u[:, : config.rank].contiguous())
        singular = s[: config.rank].contiguous()
        if config.log_q:  # singular values of a prompt are positive; clamp guards a degenerate init
            self.log_q = nn.Parameter(singular.clamp_min(1e-12).log())
        else:
            self.q = nn.Parameter(singular)
        self.v = nn.Parameter(vh[: config.rank].contiguous())
        self.pool = config.pool
        self.n_virtual = config.n_virtual()
        # Fixed at construction (from the init), so a resumed run gets the same learning rates.
        self.lr_scales = {name: 1.0 for name, _ in self.named_parameters()}
        if config.scale_lr:
            reference = _rms(self.unpooled()).clamp_min(1e-12)
            self.lr_scales = {name: (_rms(p) / reference).item() for name, p in self.named_parameters()}
            if config.log_q:  # a step of a on log q scales q by e^a: PT's relative step is lr / RMS(prompt)
                self.lr_scales["log_q"] = (1 / reference).item()

    def singular_values(self) -> torch.Tensor:
        """q (r,): the trained singular values (exp(log q) when trained in log space)."""
        return self.log_q.exp() if hasattr(self, "log_q") else self.q

    def optimizer_groups(self, lr: float) -> list[dict[str, Any]]:
        return [
            {"params": [p], "lr": lr * self.lr_scales[name]} for name, p in self.named_parameters() if p.requires_grad
        ]

    def unpooled(self) -> torch.Tensor:
        return (self.u * self.singular_values()) @ self.v  # U_r diag(q) V_r: U's columns scaled, no diag matmul

    def forward(self) -> torch.Tensor:
        pooled_u = self.u.view(self.n_virtual, self.pool, -1).mean(dim=1)  # pool(U): (l/k, r)
        return (pooled_u * self.singular_values()) @ self.v

    def effective_parameters(self) -> int:
        """l/k*r + r + r*d: only U's block means reach the prompt (see the module docstring)."""
        return self.n_virtual * self.u.shape[1] + self.u.shape[1] + self.v.numel()


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.detach().pow(2).mean().sqrt()
