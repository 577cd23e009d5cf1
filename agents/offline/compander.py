"""Weight Compander (Cakaj, Mehnert, Yang, "Weight Compander: A Simple Weight Reparameterization for Regularization", IJCNN 2023, arXiv 2306.16993)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from regrl.agents.offline.base import Plugin, register_plugin, weight_matrices


def compander(w: torch.Tensor, alpha, beta) -> torch.Tensor:
    """Weight compander f(w) = sign(w) * ((|w| + beta)^alpha - beta^alpha) (arXiv 2306.16993,
    §III; the exact form is assumed, docs/methods.md#weight-compander, not checked against the paper).

    With 0 < alpha < 1 it grows sub-linearly (restricts large magnitudes) and has slope
    alpha * beta^(alpha - 1) at 0 (> 1 for small beta: pushes small weights away from zero).
    ``alpha`` and ``beta`` may be tensors (learned hyperparameters).
    """
    return torch.sign(w) * ((w.abs() + beta) ** alpha - beta**alpha)


def compander_inverse(v: torch.Tensor, alpha, beta) -> torch.Tensor:
    """f^{-1}(v) = sign(v) * ((|v| + beta^alpha)^(1/alpha) - beta)."""
    return torch.sign(v) * ((v.abs() + beta**alpha) ** (1.0 / alpha) - beta)


class Compander(nn.Module):
    """``torch.nn.utils.parametrize`` module: the layer uses f(w) of its raw weight w.

    ``right_inverse`` sets the raw weight to f^{-1}(W0) at registration, so the network starts
    from the same effective weights as without the compander.
    """

    def __init__(self, alpha: float, beta: float, learnable: bool):
        super().__init__()
        a, b = torch.tensor(float(alpha)), torch.tensor(float(beta))
        if learnable:  # kept positive through log-parameters
            self.log_alpha, self.log_beta = nn.Parameter(a.log()), nn.Parameter(b.log())
        else:
            self.register_buffer("log_alpha", a.log())
            self.register_buffer("log_beta", b.log())

    def coefficients(self):
        return self.log_alpha.exp().clamp(max=1.0), self.log_beta.exp()

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        alpha, beta = self.coefficients()
        return compander(w, alpha, beta)

    def right_inverse(self, v: torch.Tensor) -> torch.Tensor:
        alpha, beta = self.coefficients()
        return compander_inverse(v, alpha.detach(), beta.detach())


@dataclass(frozen=True)
class CompanderParams:
    alpha: float = 0.5
    """Exponent alpha in (0, 1] [inferred default]."""
    beta: float = 0.1
    """Offset beta > 0 [inferred default]; slope at 0 is alpha * beta^(alpha-1)."""
    learnable: bool = False
    """Learn alpha and beta with the weights (the paper's extension)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"compander.alpha must be in (0, 1], got {self.alpha}")
        if self.beta <= 0:
            raise ValueError(f"compander.beta must be > 0, got {self.beta}")


@register_plugin
class WeightCompander(Plugin):
    """Weight Compander (Cakaj et al. 2023): every Linear weight is used through f(w) = sign(w)((|w|+b)^a - b^a)."""

    name = "compander"
    Params = CompanderParams
    conflicts = frozenset({"lipschitz"})
    conflict_reason = "the Lipschitz projection acts on the raw weight, not on f(w)"

    def wrap_model(self, model: nn.Module) -> nn.Module:
        p = self.params
        for _, layer in weight_matrices(model):
            parametrize.register_parametrization(
                layer, "weight", Compander(p.alpha, p.beta, p.learnable)
            )
        return model

    def on_epoch_end(self, epoch, model):
        layers = [m for _, m in weight_matrices(model)]
        if not layers:
            return {}
        alpha, beta = layers[0].parametrizations.weight[0].coefficients()
        return {"alpha": alpha.detach(), "beta": beta.detach()}
