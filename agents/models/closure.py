"""Supervised sub-grid closures of 2D turbulence (symmetry-respecting closure networks as in
Maddu, Weady, Shelley 2023, "Learning fast, accurate, and stable closures of a kinetic theory
of an active fluid", arXiv 2308.06675), compared with SMARL's RL closure (Mojgani et al.
2023, arXiv 2312.00907).

- ``LocalCoefficientMLP``: the RL policy's observation → one local coefficient, squashed to
  (−1, 1) (times the action bound outside: the same bound as the RL action).
- ``ClosureCNN``: resolved vorticity ω̄ → sub-grid term Π on the same periodic grid, a small
  CNN with circular padding; ``symmetric=True`` averages it over the 8 transforms of the
  square's symmetry group D4, which makes it exactly equivariant.

Vorticity is a pseudo-scalar: reflecting the flow maps ω(x) to −ω(Rx), and Π (a term of
∂ω/∂t) transforms the same way. ``d4_apply`` implements that representation
ρ(g)x = det(g) · x∘g⁻¹ on [..., n, n] grids: 4 rotations by 90° (det +1) and 4 reflections
(det −1, the field changes sign unless ``pseudoscalar=False``).
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from regrl.agents.models.mlp import ACTIVATIONS, MLP

D4: Tuple[Tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))
"""Elements of D4 as (quarter turns k, reflect first); (0, False) is the identity."""


def d4_apply(x: torch.Tensor, k: int, flip: bool, pseudoscalar: bool = True) -> torch.Tensor:
    """ρ(g)x for g = rotation by k quarter turns after an optional reflection of the last axis,
    on fields [..., n, n]; a reflection negates pseudo-scalars."""
    if flip:
        x = torch.flip(x, dims=(-1,))
        x = -x if pseudoscalar else x
    return torch.rot90(x, k, dims=(-2, -1))


def d4_inverse(y: torch.Tensor, k: int, flip: bool, pseudoscalar: bool = True) -> torch.Tensor:
    """ρ(g)⁻¹y: undo ``d4_apply(·, k, flip)``."""
    y = torch.rot90(y, -k, dims=(-2, -1))
    if flip:
        y = torch.flip(y, dims=(-1,))
        y = -y if pseudoscalar else y
    return y


def square_side(width: int) -> int:
    """n with n² = width; errors name the width (flattened fields must be square grids)."""
    n = int(round(math.sqrt(width)))
    if n * n != width:
        raise ValueError(f"input width {width} is not a square n×n grid")
    return n


class LocalCoefficientMLP(nn.Module):
    """``obs [B, d] -> {"out": tanh(head) [B, 1], "features"}``: the RL policy's features to a
    coefficient in (−1, 1), to be multiplied by the action bound (as the RL action)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 1,
        hidden: Sequence[int] = (128, 128),
        activation: str = "tanh",
    ):
        super().__init__()
        self.mlp = MLP(in_dim, out_dim, hidden, activation)
        self.head = self.mlp.head

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = self.mlp(x)
        return {"out": torch.tanh(out["out"]), "features": out["features"]}


class ClosureCNN(nn.Module):
    """``ω̄ [B, n²] (flattened) -> {"out": Π [B, n²], "features": [B, channels]}``.

    3×3 circular convolutions with ``hidden`` channels per layer (the grid is periodic), a
    1-channel output convolution ``head``. With ``symmetric`` the output is the group average
    f_D4(x) = (1/8) Σ_g ρ(g)⁻¹ f(ρ(g) x) (exactly D4-equivariant for the pseudo-scalar
    representation; costs 8 forward passes, done as one batch).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (16, 16, 16),
        activation: str = "tanh",
        symmetric: bool = True,
        kernel: int = 3,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        layers: List[nn.Module] = []
        prev = 1
        for width in hidden:
            layers += [
                nn.Conv2d(prev, width, kernel, padding=kernel // 2, padding_mode="circular"),
                ACTIVATIONS[activation](),
            ]
            prev = width
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Conv2d(prev, 1, kernel, padding=kernel // 2, padding_mode="circular")
        self.symmetric = bool(symmetric)

    def _raw(self, grid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(grid)
        return self.head(h), h.mean((-2, -1))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        n = square_side(x.shape[-1])
        grid = x.reshape(-1, 1, n, n)
        if not self.symmetric:
            out, feats = self._raw(grid)
            return {"out": out.reshape(x.shape[0], -1), "features": feats}
        stacked = torch.cat([d4_apply(grid, k, f) for k, f in D4])  # [8B, 1, n, n]
        out, feats = self._raw(stacked)
        parts = out.chunk(len(D4))
        avg = torch.stack([d4_inverse(p, k, f) for p, (k, f) in zip(parts, D4)]).mean(0)
        return {"out": avg.reshape(x.shape[0], -1), "features": feats.chunk(len(D4))[0]}
