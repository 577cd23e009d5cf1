"""ELR: Early-Learning Regularization (Liu, Niles-Weed, Razavian, Fernandez-Granda, "Early-Learning Regularization Prevents Memorization of Noisy Labels", NeurIPS 2020, arXiv 2007.00151)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin

CLAMP = 1e-4  # the official code clamps p to [1e-4, 1 - 1e-4]


def _clamped(probs: torch.Tensor) -> torch.Tensor:
    return probs.clamp(CLAMP, 1.0 - CLAMP)


def elr_update_targets(targets_ema: torch.Tensor, probs: torch.Tensor, beta: float) -> torch.Tensor:
    """ELR temporal-ensembling target update (arXiv 2007.00151, §4.1; ``shengliu66/ELR`` loss).

    ``t <- beta * t + (1 - beta) * p_hat / sum(p_hat)`` with ``p_hat = clamp(p, 1e-4, 1 - 1e-4)``,
    detached (the targets are constants of the loss).

    Args:
        targets_ema: [B, C] current targets t_i of the batch samples (zeros at the start).
        probs: [B, C] softmax outputs p_i.
        beta: momentum in [0, 1).
    Returns:
        [B, C] new targets.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    p_hat = _clamped(probs.detach())
    return beta * targets_ema + (1.0 - beta) * p_hat / p_hat.sum(dim=1, keepdim=True)


def elr_penalty(
    probs: torch.Tensor, targets_ema: torch.Tensor, lam: float
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """ELR regulariser ``lam * mean_i log(1 - <t_i, p_hat_i>)`` (arXiv 2007.00151, Eq. 6).

    Gradients flow through ``p_hat = clamp(p, 1e-4, 1 - 1e-4)``; ``targets_ema`` is detached.
    Minimising it pushes each prediction toward its running target, which keeps the
    early-learning predictions and resists memorising wrong labels.

    Args:
        probs: [B, C] softmax outputs. targets_ema: [B, C] targets t_i. lam: weight >= 0.
    Returns:
        (loss, {"penalty": mean log term, "agreement": mean <t, p_hat>}), metrics detached.
    """
    if probs.shape != targets_ema.shape:
        raise ValueError(
            f"probs {tuple(probs.shape)} and targets {tuple(targets_ema.shape)} differ"
        )
    agreement = (targets_ema.detach() * _clamped(probs)).sum(dim=1)
    reg = torch.log(1.0 - agreement).mean()
    return lam * reg, {"penalty": reg.detach(), "agreement": agreement.mean().detach()}


@dataclass(frozen=True)
class ELRParams:
    beta: float = 0.7
    """Target momentum beta (paper/repo: 0.7 for CIFAR-10, 0.9 for CIFAR-100)."""
    lam: float = 3.0
    """Regulariser weight lambda (paper/repo: 3 for CIFAR-10, 7 for CIFAR-100)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"elr.beta must be in [0, 1), got {self.beta}")
        if self.lam < 0:
            raise ValueError(f"elr.lam must be >= 0, got {self.lam}")


@register_plugin
class ELR(Plugin):
    """ELR early-learning regularisation (Liu et al. 2020): per-sample running targets + log(1 - <t, p>) penalty."""

    name = "elr"
    Params = ELRParams
    tasks = frozenset({"classification"})
    conflicts = frozenset({"mixup"})
    conflict_reason = "ELR keeps one target per training sample; MixUp feeds mixed samples"

    def __init__(self, params: ELRParams, info: TaskInfo):
        super().__init__(params, info)
        self.t = torch.zeros(info.num_samples, info.out_dim)

    def observe(self, batch, outputs, epoch) -> None:
        idx = batch["idx"]
        probs = F.softmax(outputs["out"].detach().float(), dim=1)
        self.t[idx] = elr_update_targets(self.t[idx], probs.cpu(), self.params.beta)

    def extra_loss(self, outputs, batch, model, epoch):
        probs = F.softmax(outputs["out"], dim=1)
        t = self.t[batch["idx"]].to(probs.device, probs.dtype)
        return elr_penalty(probs, t, self.params.lam)

    def state_dict(self) -> Dict[str, Any]:
        return {"t": self.t.clone()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.t = state["t"].clone()
