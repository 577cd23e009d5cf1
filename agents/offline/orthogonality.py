"""Soft orthogonality regulariser (Wang, Chen, Chakraborty, Yu, "Orthogonal Convolutional Neural Networks", CVPR 2020, arXiv 1911.12207; analysed by Achour, Malgouyres, Mamalet, "Existence, Stability and Scalability of Orthogonal Convolutional Neural Networks", JMLR 2022, arXiv 2108.05623)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch

from regrl.agents.offline.base import Plugin, register_plugin, weight_matrices


def soft_orthogonality(W: torch.Tensor) -> torch.Tensor:
    """``||W W^T - I||_F^2`` for a weight matrix W [out, in] (the kernel-orthogonality /
    SRIP-style penalty, docs/methods.md#soft-orthogonality; for an MLP the orthogonal-convolution term reduces to
    it). The smaller Gram matrix is used (W^T W when out > in), the one that can equal I."""
    if W.dim() != 2:
        raise ValueError(f"W must be a matrix, got shape {tuple(W.shape)}")
    gram = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
    eye = torch.eye(gram.shape[0], dtype=W.dtype, device=W.device)
    return ((gram - eye) ** 2).sum()


def orthogonality_penalty(weights, lam: float) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """``lam * sum_l ||W_l W_l^T - I||_F^2`` over the given matrices."""
    total = sum(soft_orthogonality(W) for W in weights)
    return lam * total, {"sum_sq": torch.as_tensor(total).detach()}


@dataclass(frozen=True)
class OrthogonalityParams:
    lam: float = 1e-2
    """Weight lambda (docs/methods.md#soft-orthogonality: 1e-4 to 1e-2 for kernel orthogonality)."""

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError(f"orthogonality.lam must be >= 0, got {self.lam}")


@register_plugin
class SoftOrthogonality(Plugin):
    """Soft orthogonality (Wang et al. 2020): lam * sum ||W W^T - I||_F^2 over every Linear weight."""

    name = "orthogonality"
    Params = OrthogonalityParams

    def extra_loss(self, outputs, batch, model, epoch):
        return orthogonality_penalty([m.weight for _, m in weight_matrices(model)], self.params.lam)
