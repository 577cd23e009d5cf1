"""FTWT: dynamic pruning with self-supervised mask prediction (Elkerdawy, Elhoushi, Zhang, Ray, "Fire Together Wire Together: A Dynamic Pruning Approach with Self-Supervised Mask Prediction", CVPR 2022, arXiv 2110.08232).

Every hidden layer l gets a small decision head g_l that sees the layer's input and predicts,
per input, which of the layer's units to compute. The heads are trained as binary
classifiers on targets taken from the layer's own activations ("neurons that fire together
wire together"), decoupled from the task loss:

* target (official ``get_gt_mask_ratio``, the "mass" criterion): normalise the units'
  activation magnitudes to sum 1, sort them in decreasing order and keep the units whose
  cumulative mass stays within the threshold r; the number kept, k, so varies per input;
* head loss: binary cross-entropy between g_l(h_{l-1}) and those targets; the head sees the
  layer input detached (official ``decoupled`` mode), so the task loss trains the backbone
  only and the head loss trains the heads only;
* forward, in training and at test time: the layer's output is multiplied by the binary mask
  ``1[σ(g_l(h_{l-1})) > 0.5]``, so the backbone learns with the sub-network it will run.

Kept FLOPs count the multiply-adds of the masked backbone, ``Σ_l kept_in · kept_out`` over
the layers, as the official code's per-layer ``FLOPs`` (the heads are not counted there).
For an MLP a unit-wise linear head costs as much as the layer it gates, so the FLOPs with
the heads are reported beside it; the saving the paper reports belongs to convolutions,
whose heads run on pooled inputs.

Deviations, each with its reason: the network is an MLP, so a "channel" is a hidden unit
and its "heatmap" its absolute activation (the official criterion max-pools the feature map
first); the heads start biased to keep every unit (``KEEP_BIAS``) instead of the official
``init_predictor_with_ones`` pre-training pass, which reaches the same start in one line;
the head loss keeps weight ``head_weight`` for the whole run (official: 1 until a
``cooldown`` fraction of epochs, then 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin

DELTA = 1e-5  # official get_gt_mask_ratio tolerance on the cumulative mass
KEEP_BIAS = 3.0  # σ(3) = 0.95: every unit is kept until the heads have learned
MODEL_REPLACING = frozenset(
    {"stn", "lipschitz", "compander", "nested_dropout", "orthogonality", "coteaching"}
)
"""Plugins that wrap, constrain or copy the MLP's ``nn.Linear`` layers, which FTWT replaces."""


# ---- the pure math ---------------------------------------------------------------------
def mass_targets(acts: torch.Tensor, mass: float) -> torch.Tensor:
    """Self-supervised keep targets of one layer (arXiv 2110.08232 §3; official
    ``get_gt_mask_ratio``): unit j of sample b is kept when, with the magnitudes
    ``|a_b|`` normalised to sum 1 and sorted in decreasing order, the cumulative mass up to
    and including j is at most ``mass`` (+1e-5). A row of zeros keeps nothing.

    Args:
        acts: [B, C] activations. mass: threshold r in (0, 1].
    Returns:
        [B, C] float {0, 1}.
    """
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    a = acts.detach().abs()
    total = a.sum(dim=1, keepdim=True)
    share = a / total.clamp_min(torch.finfo(a.dtype).tiny)
    sorted_share, order = torch.sort(share, dim=1, descending=True)
    keep_sorted = (sorted_share.cumsum(dim=1) - mass <= DELTA) & (sorted_share > 0)
    keep = torch.zeros_like(a).scatter(1, order, keep_sorted.to(a.dtype))
    return keep * (total > 0).to(a.dtype)


def head_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the decision heads, mean over samples and units."""
    return F.binary_cross_entropy_with_logits(logits, targets)


def binary_mask(logits: torch.Tensor) -> torch.Tensor:
    """``1[σ(logit) > 0.5]`` (official ``BinarizerSTEStatic`` at 0.5), no gradient."""
    return (logits.detach() > 0).to(logits.dtype)


def masked_flops(kept: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multiply-adds of a chain of dense layers whose widths per sample are ``kept``
    (``[in, hidden_1, ..., out]``, each [B] or a number): ``Σ_l kept_l · kept_{l+1}``."""
    return sum(kept[i] * kept[i + 1] for i in range(len(kept) - 1))


# ---- the pruned network ----------------------------------------------------------------
class FTWTMLP(nn.Module):
    """The offline MLP with a decision head per hidden layer; outputs ``out``, ``features``
    and, for the plugin, ``ftwt_logits`` / ``ftwt_targets`` [B, Σ hidden] and
    ``ftwt_flops`` [B] (kept backbone multiply-adds)."""

    def __init__(self, mlp: nn.Module, mass: float):
        super().__init__()
        self.trunk, self.head, self.mass = mlp.trunk, mlp.head, mass
        linears = [m for m in mlp.trunk if isinstance(m, nn.Linear)]
        self.heads = nn.ModuleList(nn.Linear(m.in_features, m.out_features) for m in linears)
        for h in self.heads:
            nn.init.zeros_(h.weight)
            nn.init.constant_(h.bias, KEEP_BIAS)
        self.in_dim = linears[0].in_features
        self.full_flops = float(
            masked_flops(
                [self.in_dim] + [m.out_features for m in linears] + [self.head.out_features]
            )
        )
        self.head_flops = float(sum(m.in_features * m.out_features for m in linears))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits: List[torch.Tensor] = []
        targets: List[torch.Tensor] = []
        kept = [torch.full((x.shape[0],), float(self.in_dim), device=x.device)]
        h, heads = x, iter(self.heads)
        for module in self.trunk:
            if isinstance(module, nn.Linear):
                logit = next(heads)(h.detach())  # decoupled: the head loss stays off the trunk
                h = module(h)
            else:
                h = module(h)  # the activation; the mask gates the layer's output after it
                mask = binary_mask(logit)
                targets.append(mass_targets(h, self.mass))
                logits.append(logit)
                h = h * mask
                kept.append(mask.sum(dim=1))
        kept.append(torch.full_like(kept[0], float(self.head.out_features)))
        return {
            "out": self.head(h),
            "features": h,
            "ftwt_logits": torch.cat(logits, dim=1),
            "ftwt_targets": torch.cat(targets, dim=1),
            "ftwt_flops": masked_flops(kept),
        }


# ---- the plugin ------------------------------------------------------------------------
@dataclass(frozen=True)
class FTWTParams:
    mass: float = 0.9
    """Mass threshold r of the keep targets (smaller keeps fewer units, fewer FLOPs)."""
    head_weight: float = 1.0
    """Weight of the heads' binary cross-entropy (official 1)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.mass <= 1.0:
            raise ValueError(f"ftwt.mass must be in (0, 1], got {self.mass}")
        if self.head_weight <= 0:
            raise ValueError(f"ftwt.head_weight must be > 0, got {self.head_weight}")


@register_plugin
class FTWT(Plugin):
    """Fire Together Wire Together (Elkerdawy et al. 2022): per-input unit masks from decision heads."""

    name = "ftwt"
    Params = FTWTParams
    tasks = frozenset({"classification", "regression"})
    conflicts = MODEL_REPLACING
    conflict_reason = "FTWT replaces the MLP by one with decision heads on its hidden layers"

    def __init__(self, params: FTWTParams, info: TaskInfo):
        super().__init__(params, info)
        self._reset()

    def _reset(self) -> None:
        self.flops, self.agree, self.count = 0.0, 0.0, 0

    def wrap_model(self, model: nn.Module) -> nn.Module:
        trunk = getattr(model, "trunk", None)
        if not isinstance(trunk, nn.Sequential) or not hasattr(model, "head"):
            raise ValueError("ftwt needs the default MLP (model.arch: mlp)")
        return FTWTMLP(model, self.params.mass)

    def setup(self, model, optimizer, make_optimizer) -> None:
        self.full_flops, self.head_flops = model.full_flops, model.head_flops

    def extra_loss(self, outputs, batch, model, epoch):
        logits, targets = outputs["ftwt_logits"], outputs["ftwt_targets"]
        loss = head_loss(logits, targets)
        return self.params.head_weight * loss, {
            "head_loss": loss.detach(),
            "target_kept": targets.mean(),
        }

    def observe(self, batch, outputs, epoch) -> None:
        n = outputs["ftwt_flops"].shape[0]
        self.flops += float(outputs["ftwt_flops"].sum())
        agree = binary_mask(outputs["ftwt_logits"]) == outputs["ftwt_targets"]
        self.agree += float(agree.float().mean(dim=1).sum())
        self.count += n

    def on_epoch_end(self, epoch, model):
        if not self.count:
            return {}
        kept = self.flops / self.count / self.full_flops
        heads = (self.flops / self.count + self.head_flops) / self.full_flops
        out = {
            "kept_flops": torch.tensor(kept),
            "kept_flops_with_heads": torch.tensor(heads),
            "mask_accuracy": torch.tensor(self.agree / self.count),
        }
        self._reset()
        return out
