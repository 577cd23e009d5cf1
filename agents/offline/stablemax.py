"""StableMax and ⊥Grad (Prieto, Barsbey, Mediano, Birdal, "Grokking at the Edge of Numerical Stability", ICLR 2025, arXiv 2501.04697)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Tuple

import torch

from regrl.agents.offline.base import Plugin, register_plugin

EPS = 1e-30  # the official code's epsilon, in s(x) and in the ⊥Grad projection


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0 (arXiv 2501.04697, Eq. 6)."""
    return torch.where(x >= 0, x + 1.0, 1.0 / (1.0 - x + EPS))


def stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """StableMax(z)_i = s(z_i) / sum_j s(z_j) (arXiv 2501.04697, Eq. 5): a softmax
    replacement that grows linearly, not exponentially, so it does not collapse to exact
    0/1 probabilities in floating point ("Softmax Collapse")."""
    s = stablemax_s(logits)
    return s / s.sum(dim=dim, keepdim=True)


def stablemax_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Cross-entropy through StableMax, computed in float64 like the official
    ``stablemax_cross_entropy`` (arXiv 2501.04697, §4): ``-log StableMax(z)_y``.

    Args:
        logits: [B, C] (or [..., C]).
        targets: long [B] class indices, or soft targets [B, C] (then ``-sum_c y_c log p_c``).
        reduction: ``mean`` or ``none`` (per-sample losses, float64).
    Returns:
        (loss, {"prob_true": mean StableMax probability mass on the targets}).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    logp = torch.log(stablemax(logits.to(torch.float64)))
    if targets.dtype in (torch.long, torch.int32, torch.int64):
        per = -logp.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
        mass = logp.exp().gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    else:
        soft = targets.to(torch.float64)
        per = -(soft * logp).sum(dim=-1)
        mass = (soft * logp.exp()).sum(dim=-1)
    loss = per.mean() if reduction == "mean" else per
    return loss, {"prob_true": mass.mean().detach()}


def orthogonal_gradient(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """⊥Grad for one parameter tensor (arXiv 2501.04697, Eq. 9; official ``orthograd.py``).

    ``g_perp = g - (w.g / (w.w + 1e-30)) w``, rescaled to the norm of g:
    ``g_perp * ||g|| / (||g_perp|| + 1e-30)``. It removes the component of the gradient along
    the weights (the "naive loss minimisation" direction that only scales the logits).
    """
    w_flat, g_flat = w.reshape(-1).to(g.dtype), g.reshape(-1)
    proj = torch.dot(w_flat, g_flat) / (torch.dot(w_flat, w_flat) + EPS)
    g_perp = g_flat - proj * w_flat
    return (g_perp * (g_flat.norm() / (g_perp.norm() + EPS))).view_as(g)


class OrthoGrad:
    """Optimizer wrapper: replace every gradient by its ⊥Grad version, then step the base
    optimizer (official ``OrthoGrad(params, base_optimizer_cls, ...)``)."""

    def __init__(self, base: torch.optim.Optimizer):
        self.base = base

    @property
    def param_groups(self):
        return self.base.param_groups

    @property
    def state(self):
        return self.base.state

    @torch.no_grad()
    def orthogonalise(self, params: Iterable[torch.Tensor]) -> None:
        for p in params:
            if p.grad is not None:
                p.grad.copy_(orthogonal_gradient(p, p.grad))

    def step(self, closure=None):
        self.orthogonalise(p for group in self.base.param_groups for p in group["params"])
        return self.base.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> Dict[str, Any]:
        return self.base.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.base.load_state_dict(state)


@register_plugin
class StableMaxCE(Plugin):
    """StableMax (Prieto et al. 2025) cross-entropy (float64) in place of the softmax cross-entropy."""

    name = "stablemax"
    tasks = frozenset({"classification", "tokens"})
    replaces_task_loss = True

    def task_loss(self, outputs, target, batch) -> torch.Tensor:
        logits = outputs["out"]
        if batch.get("token_mask") is not None:  # tokens: [B, T, V] -> per-sequence mean
            mask = batch["token_mask"]
            per, _ = stablemax_cross_entropy(logits, target.clamp_min(0), reduction="none")
            return ((per * mask).sum(1) / mask.sum(1).clamp_min(1)).to(logits.dtype)
        per, _ = stablemax_cross_entropy(logits, target, reduction="none")
        return per.to(logits.dtype)


@register_plugin
class PerpGrad(Plugin):
    """⊥Grad (Prieto et al. 2025): keep only the gradient component orthogonal to each weight tensor (norm kept)."""

    name = "orthograd"

    def wrap_optimizer(self, optimizer, model):
        return OrthoGrad(optimizer)
