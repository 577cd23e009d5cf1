"""IGNITE (Dao, Nguyen, Hoang et al., "Incorporating Surrogate Gradient Norm to Improve Offline Optimization Techniques", NeurIPS 2024; code ``cuong-dm/IGNITE``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence

import torch
import torch.nn as nn

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin

Tensors = Sequence[torch.Tensor]


def _norm(gs: Tensors) -> torch.Tensor:
    return torch.sqrt(sum((g.detach() ** 2).sum() for g in gs))


def ignite_gradient(
    g_fit: Tensors, grad_G: Tensors, grad_G_shifted: Tensors, lam: float, rho: float, r: float
) -> List[torch.Tensor]:
    """IGNITE's regularised gradient (NeurIPS 2024, §4, Alg. 1; ``gradient_ascent_IGNITE``):
    ``g = grad L_fit + lam * (rho / r) * (grad G(beta + r u) - grad G(beta))`` with
    ``u = grad G / ||grad G||``. The finite difference is r * H u, i.e. the gradient of
    ``lam * rho * ||grad G||`` (the sharpness penalty) up to O(r).

    Args:
        g_fit: per-parameter gradients of the fitting loss.
        grad_G, grad_G_shifted: gradients of G(beta) = mean_x f_beta(x) at beta and at
            beta + r u.
    """
    scale = lam * rho / r
    return [gf + scale * (gs - g0) for gf, g0, gs in zip(g_fit, grad_G, grad_G_shifted)]


def ignite_dual_update(lam: float, grad_norm: float, rho: float, eps: float, eta: float) -> float:
    """Dual ascent on the constraint rho * ||grad G|| <= eps (NeurIPS 2024, Alg. 1):
    ``lam <- max(0, lam + eta * (rho * ||grad G|| - eps))`` (projected to lam >= 0, the
    feasible set of a multiplier of an inequality constraint)."""
    return max(0.0, lam + eta * (rho * grad_norm - eps))


def surrogate_mean_gradient(
    model: nn.Module, x: torch.Tensor, params: Tensors
) -> List[torch.Tensor]:
    """grad_beta G(beta), G = mean over the batch (and outputs) of the surrogate f_beta(x)."""
    G = model(x)["out"].mean()
    return list(torch.autograd.grad(G, params, allow_unused=True))


@dataclass(frozen=True)
class IgniteParams:
    lam0: float = 1e-3
    """Initial multiplier lambda_0 (code default 1e-3)."""
    eps: float = 1e-3
    """Constraint level epsilon on rho * ||grad G|| (code default 1e-3)."""
    eta: float = 1e-3
    """Dual step size eta_lambda (code default 1e-3)."""
    rho: float = 0.05
    """Sharpness radius rho (code default 0.05)."""
    r: float = 0.05
    """Finite-difference step r of the Hessian-vector product (code default 0.05)."""

    def __post_init__(self) -> None:
        for key in ("eps", "eta", "rho", "r"):
            if not getattr(self, key) > 0:
                raise ValueError(f"ignite.{key} must be > 0, got {getattr(self, key)}")
        if self.lam0 < 0:
            raise ValueError(f"ignite.lam0 must be >= 0, got {self.lam0}")


@register_plugin
class Ignite(Plugin):
    """IGNITE (Dao et al. 2024): penalise the surrogate's gradient norm ||grad_beta mean f_beta(x)||, dual ascent."""

    name = "ignite"
    Params = IgniteParams
    tasks = frozenset({"regression"})
    data_parallel = False  # grad G is taken outside DDP's gradient synchronisation

    def __init__(self, params: IgniteParams, info: TaskInfo):
        super().__init__(params, info)
        self.lam = params.lam0
        self.grad_norm = 0.0

    def after_backward(self, model, batch, closure: Callable[[], torch.Tensor]):
        params = [p for p in model.parameters() if p.requires_grad]
        grad_G = _fill(surrogate_mean_gradient(model, batch["x"], params), params)
        norm = _norm(grad_G)
        self.grad_norm = float(norm)
        u = [g / (norm + 1e-12) for g in grad_G]
        with torch.no_grad():
            for p, d in zip(params, u):
                p.add_(self.params.r * d)
        shifted = _fill(surrogate_mean_gradient(model, batch["x"], params), params)
        with torch.no_grad():
            for p, d in zip(params, u):
                p.sub_(self.params.r * d)
            g_fit = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            new = ignite_gradient(g_fit, grad_G, shifted, self.lam, self.params.rho, self.params.r)
            for p, g in zip(params, new):
                p.grad = g
        return {"grad_norm": norm.detach(), "lambda": torch.tensor(self.lam)}

    def after_step(self, model):
        p = self.params
        self.lam = ignite_dual_update(self.lam, self.grad_norm, p.rho, p.eps, p.eta)
        return {}

    def state_dict(self) -> Dict[str, Any]:
        return {"lam": self.lam}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.lam = float(state["lam"])


def _fill(grads: List, params: Tensors) -> List[torch.Tensor]:
    return [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params)]
