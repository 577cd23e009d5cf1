"""Soft equivariance regulariser, arXiv 2306.00356 (Kim, Lee, Yang, Lee, ICML 2023).

"Regularizing Towards Soft Equivariance Under Mixed Symmetries", for field-to-field
regression on a square periodic grid under the square's symmetry group D4.

The paper trains an unconstrained model with one equivariance regulariser per symmetry type,
each measuring how far the model is from equivariance under that type, so that approximate
symmetries are encouraged, not imposed. Here the two types are the rotations (C4) and the
reflections of D4, each with its own weight (the paper tunes the weights automatically; here
they are fixed hyper-parameters):

    R_G(f) = E_x mean_{g ∈ G \\ {e}} mean_pixels (f(ρ(g)x) − ρ(g) f(x))²          [inferred]

with ρ the pseudo-scalar representation of ``regrl.agents.models.closure.d4_apply`` (vorticity and
the sub-grid term change sign under reflections). An exactly equivariant model has R = 0.
Inputs must be flattened square fields [B, n²]; outputs shaped like the input are
equivariant fields, any other output (a vector of targets or logits) is regularised towards
invariance, f(ρ(g)x) = f(x) (the trivial output representation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Sequence, Tuple

import torch

from regrl.agents.models.closure import d4_apply, square_side
from regrl.agents.offline.base import Plugin, register_plugin

ROTATIONS: Tuple[Tuple[int, bool], ...] = ((1, False), (2, False), (3, False))
REFLECTIONS: Tuple[Tuple[int, bool], ...] = tuple((k, True) for k in range(4))


def equivariance_penalty(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    group: Sequence[Tuple[int, bool]],
    fx: torch.Tensor = None,
    pseudoscalar: bool = True,
    invariant: bool = False,
) -> torch.Tensor:
    """R_G(f) (module docstring) for fields x [B, n, n] and f: [B, n, n] → [B, n, n]
    (``invariant``: f(x) [B, ...] any shape, compared with f(ρ(g)x) untransformed);
    ``fx`` = f(x) if already computed. Returns a scalar."""
    fx = f(x) if fx is None else fx
    terms = []
    for k, flip in group:
        gx = d4_apply(x, k, flip, pseudoscalar)
        target = fx if invariant else d4_apply(fx, k, flip, pseudoscalar)
        terms.append(((f(gx) - target) ** 2).mean())
    return torch.stack(terms).mean()


def soft_equivariance_loss(
    f, x, fx, rotation: float, reflection: float, pseudoscalar: bool = True, invariant: bool = False
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """λ_rot R_C4 + λ_ref R_reflections, with both penalties as metrics."""

    def penalty(group):
        return equivariance_penalty(f, x, group, fx, pseudoscalar, invariant)

    r_rot = penalty(ROTATIONS) if rotation else fx.new_zeros(())
    r_ref = penalty(REFLECTIONS) if reflection else fx.new_zeros(())
    return rotation * r_rot + reflection * r_ref, {
        "rotation": r_rot.detach(),
        "reflection": r_ref.detach(),
    }


@dataclass(frozen=True)
class SoftEquivarianceParams:
    rotation: float = 1.0
    """Weight of the rotation (C4) equivariance regulariser."""
    reflection: float = 1.0
    """Weight of the reflection equivariance regulariser."""
    pseudoscalar: bool = True
    """Fields change sign under reflections (vorticity, its sub-grid term)."""

    def __post_init__(self) -> None:
        if self.rotation < 0 or self.reflection < 0:
            raise ValueError(
                "soft_equivariance weights must be >= 0, got "
                f"rotation={self.rotation}, reflection={self.reflection}"
            )


@register_plugin
class SoftEquivariance(Plugin):
    """Soft D4 equivariance (Kim et al. 2023) of field-to-field regression (rotations and reflections weighted)."""

    name = "soft_equivariance"
    Params = SoftEquivarianceParams
    tasks = frozenset({"regression", "classification"})

    def extra_loss(self, outputs, batch, model, epoch):
        x = batch["x"]
        if x.dim() != 2:
            raise ValueError(
                f"soft_equivariance needs flattened fields [B, n²], got {tuple(x.shape)}"
            )
        n = square_side(x.shape[-1])
        out = outputs["out"]
        invariant = out.shape != x.shape  # not a field: regularise towards invariance

        def f(grid: torch.Tensor) -> torch.Tensor:
            y = model(grid.reshape(len(grid), -1))["out"]
            return y if invariant else y.reshape(-1, n, n)

        p = self.params
        fx = out if invariant else out.reshape(-1, n, n)
        return soft_equivariance_loss(
            f, x.reshape(-1, n, n), fx, p.rotation, p.reflection, p.pseudoscalar, invariant
        )
