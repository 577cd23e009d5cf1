"""Dispersive loss (Wang & He, "Diffuse and Disperse: Image Generation with Representation Regularization", arXiv 2506.09027)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import torch

from regrl.agents.offline.base import Plugin, register_plugin


def dispersive_loss(z: torch.Tensor, tau: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """InfoNCE-L2 dispersive loss without positives (arXiv 2506.09027, Eq. 6):
    ``L_disp = log (1/B^2) sum_{i,j} exp(-||z_i - z_j||^2 / (D tau))``.

    As in the official ``raywang4/DispLoss`` code the squared distance is divided by the
    feature dimension D, and the full B x B matrix (diagonal zeros included) is averaged.

    Args:
        z: [B, ...] intermediate representations (flattened to [B, D]). tau: temperature > 0.
    Returns:
        (loss, {"mean_sq_dist": mean pairwise ||z_i - z_j||^2 / D}).
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    z = z.reshape(z.shape[0], -1)
    B, D = z.shape
    if B < 2:
        zero = z.sum() * 0.0
        return zero, {"mean_sq_dist": zero.detach()}
    norms = (z * z).sum(dim=1)
    sq = (norms[:, None] + norms[None, :] - 2.0 * z @ z.T).clamp_min(0.0) / D  # [B, B]
    loss = torch.logsumexp(-sq.reshape(-1) / tau, dim=0) - math.log(B * B)
    return loss, {"mean_sq_dist": sq.mean().detach()}


@dataclass(frozen=True)
class DispersiveParams:
    lam: float = 0.5
    """Weight lambda of the dispersive term [inferred default]."""
    tau: float = 0.5
    """Temperature tau [inferred default]."""

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError(f"dispersive.lam must be >= 0, got {self.lam}")
        if self.tau <= 0:
            raise ValueError(f"dispersive.tau must be > 0, got {self.tau}")


@register_plugin
class Dispersive(Plugin):
    """Dispersive loss (Wang & He 2025) on the trunk features: spread a batch's representations apart."""

    name = "dispersive"
    Params = DispersiveParams

    def extra_loss(self, outputs, batch, model, epoch):
        z = outputs["features"]
        if z.dim() == 3:  # tokens: every position of every sequence is a point
            z = z.reshape(-1, z.shape[-1])
        loss, metrics = dispersive_loss(z, self.params.tau)
        return self.params.lam * loss, dict(metrics, loss=loss.detach())
