"""PS-KD: Progressive Self-Knowledge Distillation (Kim, Ji, Yoon, Hwang, "Self-Knowledge Distillation with Progressive Refinement of Targets", ICCV 2021, arXiv 2006.12000)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin


def pskd_alpha(epoch: int, alpha_T: float, end_epoch: int) -> float:
    """PS-KD schedule ``alpha_t = alpha_T * (epoch + 1) / T_end`` (arXiv 2006.12000, Eq. 7;
    ``lgcnsai/PS-KD-Pytorch`` main.py), with 0-based ``epoch``; capped at ``alpha_T``."""
    if end_epoch < 1:
        raise ValueError(f"end_epoch must be >= 1, got {end_epoch}")
    return alpha_T * min(epoch + 1, end_epoch) / end_epoch


def pskd_targets(onehot: torch.Tensor, prev_probs: torch.Tensor, alpha: float) -> torch.Tensor:
    """PS-KD soft targets ``(1 - alpha) * y + alpha * p_{t-1}(x)`` (arXiv 2006.12000, Eq. 6).

    Args:
        onehot: [B, C] ground-truth (one-hot) targets y.
        prev_probs: [B, C] the model's own softmax for the same samples in the previous epoch.
        alpha: alpha_t in [0, 1].
    Returns:
        [B, C] detached soft targets.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return ((1.0 - alpha) * onehot + alpha * prev_probs).detach()


@dataclass(frozen=True)
class PSKDParams:
    alpha_T: float = 0.8
    """Final weight alpha_T of the past predictions (paper: 0.8)."""
    end_epoch: Optional[int] = None
    """Epoch T_end at which alpha_t reaches alpha_T (null = the run's training.epochs)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha_T <= 1.0:
            raise ValueError(f"pskd.alpha_T must be in [0, 1], got {self.alpha_T}")
        if self.end_epoch is not None and self.end_epoch < 1:
            raise ValueError(f"pskd.end_epoch must be >= 1, got {self.end_epoch}")


@register_plugin
class PSKD(Plugin):
    """PS-KD (Kim et al. 2021): targets mix the label with the model's own prediction from the previous epoch."""

    name = "pskd"
    Params = PSKDParams
    tasks = frozenset({"classification"})
    provides_targets = True
    conflicts = frozenset({"mixup"})
    conflict_reason = "PS-KD stores one past prediction per training sample; MixUp mixes samples"

    def __init__(self, params: PSKDParams, info: TaskInfo):
        super().__init__(params, info)
        self.prev = torch.zeros(info.num_samples, info.out_dim)
        self.seen = torch.zeros(info.num_samples, dtype=torch.bool)

    def alpha(self, epoch: int) -> float:
        return pskd_alpha(epoch, self.params.alpha_T, self.params.end_epoch or self.info.epochs)

    def targets(self, batch, epoch) -> torch.Tensor:
        idx, onehot = batch["idx"], batch["target"]
        # p_{t-1} starts as the label itself (official code: epoch 0 uses the hard targets)
        prev = torch.where(self.seen[idx].unsqueeze(1), self.prev[idx].to(onehot), onehot)
        return pskd_targets(onehot, prev, self.alpha(epoch))

    def observe(self, batch, outputs, epoch) -> None:
        idx = batch["idx"]
        self.prev[idx] = F.softmax(outputs["out"].detach().float(), dim=1).cpu()
        self.seen[idx] = True

    def on_epoch_end(self, epoch, model):
        return {"alpha_t": torch.tensor(self.alpha(epoch))}

    def state_dict(self) -> Dict[str, Any]:
        return {"prev": self.prev.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.prev, self.seen = state["prev"].clone(), state["seen"].clone()
