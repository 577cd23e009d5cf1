"""GLAD-style SAM-gradient regularisation (Peng, Wang, Liu, Chen, "GLAD: Generalizable Tuning for Vision-Language Models" — Generalizable LoRA tuning with RegulArized GraDient, arXiv 2507.13089)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch

from regrl.agents.offline.base import Plugin, register_plugin


def sam_perturbation(grads: Sequence[torch.Tensor], rho: float) -> List[torch.Tensor]:
    """SAM's ascent step e = rho * g / ||g|| over all parameters (Foret et al., ICLR 2021,
    arXiv 2010.01412, Eq. 2), the point at which GLAD takes its reference gradient."""
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    return [rho * g / (norm + 1e-12) for g in grads]


def glad_gradient(
    g: Sequence[torch.Tensor], g_sam: Sequence[torch.Tensor], gamma: float
) -> List[torch.Tensor]:
    """GLAD's regularised gradient ``g + gamma * (g_SAM - g)`` (arXiv 2507.13089, §3; the
    exact form is assumed, docs/methods.md#glad): the SAM gradient, taken at w + rho g/||g||,
    steers the ordinary gradient toward flatter regions; gamma = 1 is plain SAM."""
    return [gi + gamma * (si - gi) for gi, si in zip(g, g_sam)]


@dataclass(frozen=True)
class GladParams:
    rho: float = 0.05
    """SAM radius rho (SAM / GLAD: about 0.05)."""
    gamma: float = 0.5
    """Pull gamma toward the SAM gradient, in [0, 1] [inferred default]."""

    def __post_init__(self) -> None:
        if self.rho <= 0:
            raise ValueError(f"glad.rho must be > 0, got {self.rho}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"glad.gamma must be in [0, 1], got {self.gamma}")


@register_plugin
class Glad(Plugin):
    """GLAD gradient regulariser (Peng et al. 2025): g <- g + gamma (g_SAM - g), SAM gradient at w + rho g/||g||."""

    name = "glad"
    Params = GladParams

    def after_backward(self, model, batch, closure):
        params = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
        g = [p.grad.detach().clone() for p in params]
        e = sam_perturbation(g, self.params.rho)
        with torch.no_grad():
            for p, ei in zip(params, e):
                p.add_(ei)
        for p in params:
            p.grad = None
        closure().backward()
        g_sam = [
            p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params
        ]
        with torch.no_grad():
            for p, ei, gi in zip(params, e, glad_gradient(g, g_sam, self.params.gamma)):
                p.sub_(ei)
                p.grad = gi
        return {"sam_cos": _cosine(g, g_sam)}


def _cosine(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    dot = sum((x * y).sum() for x, y in zip(a, b))
    na = torch.sqrt(sum((x**2).sum() for x in a))
    nb = torch.sqrt(sum((y**2).sum() for y in b))
    return (dot / (na * nb + 1e-12)).detach()
