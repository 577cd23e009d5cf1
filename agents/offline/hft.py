"""HFT: Half Fine-Tuning (Hui, Zhang, Wang, Xu, Sun, Wu, "HFT: Half Fine-Tuning for Large Language Models", arXiv 2404.18466)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.nn as nn

from regrl.agents.offline.base import Plugin, TaskInfo, plugin_generator, register_plugin


def hft_select_frozen(names: Sequence[str], generator: torch.Generator) -> List[str]:
    """Choose floor(n/2) of the n weight matrices to freeze this round, uniformly at random
    (arXiv 2404.18466, §3: half of the parameters keep their previous values, the other half
    learn; the paper applies it per transformer block, here over all weight matrices)."""
    order = torch.randperm(len(names), generator=generator).tolist()
    return sorted(names[i] for i in order[: len(names) // 2])


def matrix_names(model: nn.Module) -> List[str]:
    """Names of the trainable parameters with >= 2 dims (weight matrices, embeddings)."""
    return [n for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad]


@dataclass(frozen=True)
class HFTParams:
    every: int = 1
    """Epochs per round; a new random half is frozen at the start of each round."""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"hft.every must be >= 1, got {self.every}")


@register_plugin
class HalfFineTuning(Plugin):
    """HFT Half Fine-Tuning (Hui et al. 2024): each round freeze a random half of the weight matrices (their values do not move)."""

    name = "hft"
    Params = HFTParams

    def __init__(self, params: HFTParams, info: TaskInfo):
        super().__init__(params, info)
        self.frozen: List[str] = []

    def on_epoch_start(self, epoch, model) -> None:
        g = plugin_generator(self.info.seed, 41, epoch // self.params.every)
        self.frozen = hft_select_frozen(matrix_names(model), g)

    def before_step(self, model) -> None:
        # grad None: the optimizer skips the tensor entirely (no update, no momentum, no decay)
        frozen = set(self.frozen)
        for name, p in model.named_parameters():
            if name in frozen:
                p.grad = None

    def on_epoch_end(self, epoch, model):
        return {"frozen_matrices": torch.tensor(float(len(self.frozen)))}
