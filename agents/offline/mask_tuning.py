"""Regularised mask tuning (Zheng, Wu, Feng, Zhu, Liu, Zhao, Zha, Chen, Shen, "Regularized Mask Tuning: Uncovering Hidden Knowledge in Pre-trained Vision-Language Models", ICCV 2023, arXiv 2307.15049).

The knowledge a downstream task needs is taken to be already in the pre-trained weights, only
concealed; instead of changing the weights, learn a binary mask over them with the weights
frozen, and regularise the mask's learning with gradient dropout so that it does not forget
the pre-trained knowledge or overfit the few downstream samples::

    W_masked = W_pre ⊙ 1[S > 0],    S trained through the straight-through estimator
    ∂L/∂S  <-  ∂L/∂S ⊙ 1[u >= q],   u ~ U(0, 1)            (gradient dropout, rate q)

Here the pre-trained network comes from ``model.init_from`` (a run of this learner on another
task); the trunk's weight matrices are masked, their biases stay frozen, and the output layer
(the new task's classifier, the counterpart of the paper's text-derived classifier) trains
normally. ``masks: false`` freezes the trunk as it is: linear probing, the baseline the paper
compares with.

What the abstract states and what is assumed here. Stated: binary masks on pre-trained
parameters with the parameters frozen, masks on a selected subset of parameters, a gradient
dropout strategy regularising the mask updates. Assumed (not in the text we could read): the
subset (here every trunk weight matrix), the dropout rule (here each score gradient element
is dropped independently with probability q), the straight-through estimator and the
initial scores (``init_score`` > 0, so every weight starts kept and the masked network
starts as the pre-trained one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, register_plugin

MODEL_REPLACING = frozenset(
    {"stn", "ftwt", "lipschitz", "compander", "nested_dropout", "orthogonality", "coteaching"}
)
"""Plugins that wrap, constrain or copy the MLP's ``nn.Linear`` layers, which mask tuning
replaces by masked frozen layers."""


# ---- the pure math ---------------------------------------------------------------------
def ste_mask(scores: torch.Tensor) -> torch.Tensor:
    """Binary mask ``1[S > 0]`` in the forward pass, gradient passed to S unchanged
    (straight-through estimator)."""
    hard = (scores > 0).to(scores.dtype)
    return hard + scores - scores.detach()


def gradient_dropout(grad: torch.Tensor, rate: float, u: torch.Tensor) -> torch.Tensor:
    """Drop each gradient element with probability ``rate``: ``grad ⊙ 1[u >= rate]``.

    Args:
        grad: any shape. rate: q in [0, 1). u: uniform draws shaped like grad.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    return grad * (u >= rate).to(grad.dtype)


class MaskedLinear(nn.Module):
    """A frozen ``nn.Linear`` (weight and bias as buffers) with optional trainable mask scores."""

    def __init__(self, linear: nn.Linear, masks: bool, init_score: float):
        super().__init__()
        self.register_buffer("weight", linear.weight.detach().clone())
        self.register_buffer("bias", linear.bias.detach().clone())
        self.scores = nn.Parameter(torch.full_like(linear.weight, init_score)) if masks else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight if self.scores is None else self.weight * ste_mask(self.scores)
        return F.linear(x, w, self.bias)


class MaskTunedMLP(nn.Module):
    """The pre-trained MLP with masked frozen trunk layers and a trainable output layer."""

    def __init__(self, mlp: nn.Module, masks: bool, init_score: float):
        super().__init__()
        self.trunk = nn.Sequential(
            *(
                MaskedLinear(m, masks, init_score) if isinstance(m, nn.Linear) else m
                for m in mlp.trunk
            )
        )
        self.head = mlp.head

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {"out": self.head(features), "features": features}

    def scores(self):
        return [
            m.scores for m in self.trunk if isinstance(m, MaskedLinear) and m.scores is not None
        ]


@dataclass(frozen=True)
class MaskTuningParams:
    masks: bool = True
    """Learn binary masks over the frozen trunk weights; False = linear probing (trunk frozen
    as it is, only the output layer trains)."""
    grad_dropout: float = 0.5
    """Probability q of dropping each mask-score gradient element [assumed default]."""
    init_score: float = 0.01
    """Initial mask score S (> 0: every weight starts kept) [assumed]."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.grad_dropout < 1.0:
            raise ValueError(f"mask_tuning.grad_dropout must be in [0, 1), got {self.grad_dropout}")
        if self.init_score <= 0:
            raise ValueError(f"mask_tuning.init_score must be > 0, got {self.init_score}")


@register_plugin
class MaskTuning(Plugin):
    """Regularized Mask Tuning (Zheng et al. 2023): binary masks over frozen pre-trained weights."""

    name = "mask_tuning"
    Params = MaskTuningParams
    tasks = frozenset({"classification", "regression"})
    conflicts = MODEL_REPLACING
    conflict_reason = "mask tuning replaces the MLP's linear layers by masked frozen ones"

    def wrap_model(self, model: nn.Module) -> nn.Module:
        if not isinstance(getattr(model, "trunk", None), nn.Sequential) or not hasattr(
            model, "head"
        ):
            raise ValueError("mask_tuning needs the default MLP (model.arch: mlp)")
        return MaskTunedMLP(model, self.params.masks, self.params.init_score)

    def after_backward(self, model, batch, closure):
        if self.params.grad_dropout == 0:
            return {}
        for s in model.scores():
            if s.grad is not None:
                s.grad = gradient_dropout(s.grad, self.params.grad_dropout, torch.rand_like(s.grad))
        return {}

    def on_epoch_end(self, epoch, model):
        scores = model.scores()
        if not scores:
            return {}
        kept = sum(float((s > 0).sum()) for s in scores) / sum(s.numel() for s in scores)
        return {"kept_weights": torch.tensor(kept)}
