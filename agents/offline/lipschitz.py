"""Lipschitz-constrained behaviour cloning (Al Makdah, Krishnan, Pasqualetti, "Learning Lipschitz Feedback Policies from Expert Demonstrations: Closed-Loop Guarantees, Generalization and Robustness", IEEE OJ-CSYS 2022, arXiv 2103.16629)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin, weight_matrices


def spectral_norm(W: torch.Tensor) -> torch.Tensor:
    """Largest singular value ||W||_2 (exact, via SVD; the offline models are small)."""
    return torch.linalg.matrix_norm(W.detach().to(torch.float64), ord=2)


def project_spectral_norm(W: torch.Tensor, bound: float) -> torch.Tensor:
    """Scale W onto {||W||_2 <= bound}: ``W * min(1, bound / ||W||_2)`` (the Euclidean
    projection's scaling of all singular values; a no-op when already inside)."""
    if bound <= 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    sigma = float(spectral_norm(W))
    return W if sigma <= bound else W * (bound / sigma)


def certified_lipschitz_bound(weights: Iterable[torch.Tensor]) -> torch.Tensor:
    """Certified (upper) bound on Lip(pi) in the l2 norm: the product of the layers' spectral
    norms, valid for 1-Lipschitz activations (arXiv 2103.16629 constrains Lip(pi) <= alpha;
    the certified global bound of docs/methods.md#lipschitz-behaviour-cloning)."""
    bound = torch.tensor(1.0, dtype=torch.float64)
    for W in weights:
        bound = bound * spectral_norm(W)
    return bound


def model_lipschitz_bound(model: nn.Module) -> torch.Tensor:
    """:func:`certified_lipschitz_bound` over every ``nn.Linear`` of ``model``."""
    return certified_lipschitz_bound(m.weight for _, m in weight_matrices(model))


@dataclass(frozen=True)
class LipschitzParams:
    alpha: float = 10.0
    """Bound alpha on the whole network's Lipschitz constant; each of the L linear layers is
    kept at ||W_l||_2 <= alpha ** (1 / L)."""

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"lipschitz.alpha must be > 0, got {self.alpha}")


@register_plugin
class LipschitzBC(Plugin):
    """Lipschitz-constrained BC (Al Makdah et al. 2022): project every layer to spectral norm alpha^(1/L) after each step."""

    name = "lipschitz"
    Params = LipschitzParams
    tasks = frozenset({"classification", "regression"})
    conflicts = frozenset({"compander"})
    conflict_reason = "the compander's effective weight f(w) is not the projected matrix"

    def __init__(self, params: LipschitzParams, info: TaskInfo):
        super().__init__(params, info)

    def layer_bound(self, model: nn.Module) -> float:
        return self.params.alpha ** (1.0 / max(len(weight_matrices(model)), 1))

    @torch.no_grad()
    def project(self, model: nn.Module) -> None:
        bound = self.layer_bound(model)
        for _, layer in weight_matrices(model):
            layer.weight.copy_(project_spectral_norm(layer.weight, bound))

    def wrap_model(self, model: nn.Module) -> nn.Module:
        if not weight_matrices(model):
            raise ValueError("lipschitz: the model has no nn.Linear layers to constrain")
        self.project(model)
        return model

    def after_step(self, model):
        self.project(model)
        return {}

    def on_epoch_end(self, epoch, model):
        bound = model_lipschitz_bound(model)
        return {
            "certified_bound": bound,
            "log_certified_bound": torch.log(bound),
            "alpha": torch.tensor(self.params.alpha),
        }
