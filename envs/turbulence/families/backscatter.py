"""An energetically consistent backscattering closure (Jansen & Held 2014, "Parameterizing
subgrid-scale eddy effects using energetically consistent backscatter", Ocean Modelling 80;
its 2D-turbulence parameters derived by Guan & Hassanzadeh, arXiv 2504.09670): a biharmonic
hyperviscosity drains energy and enstrophy near the cut-off, and a *negative* Laplacian
viscosity returns a fraction c_b of the drained energy to the resolved flow, where a Laplacian
acts most on energy: at the large scales.

    ∂ω/∂t = … − ν₄∇⁴ω + ν₂∇²ω ,   ν₄ = C₄⁴ Δ⁴ ⟨ω²⟩^½ ,
    ν₂ = −c_b ν₄ Σ k²|ω̂|² / Σ |ω̂|²                                         (energy budget)

With E = ½Σ|ω̂|²/k², the hyperviscosity removes dE/dt = −ν₄ Σ k²|ω̂|² and the Laplacian term
adds −ν₂ Σ |ω̂|², so the net energy drain is (1 − c_b) ν₄ Σ k²|ω̂|² ≥ 0 for c_b ≤ 1; by
Cauchy–Schwarz (Σk²|ω̂|²)² ≤ Σ|ω̂|² Σk⁴|ω̂|², the net enstrophy drain is ≥ 0 too: stable by
construction, whatever c_b ∈ [0, 1]. Jansen & Held form ν₂ from a sub-grid energy budget
equation; here the return is instantaneous (the budget closed at each step), the simplest
member of their family. Agents set (C₄⁴, c_b); with a c_b field the negative viscosity is
applied locally (−c_b(x) · ⟨ν₄⟩ · ratio), which keeps the budget only on the domain average.
"""

from __future__ import annotations

from typing import Tuple

import torch

from regrl.envs.turbulence.families.base import ClosureFamily, register
from regrl.envs.turbulence.solver import EnergyReturn, Turbulence2D, VorticityScaled

Tensor = torch.Tensor
CLASSICAL = (0.27, 0.5)  # C₄ of the two-term probe (issue 21); half the drain returned
SCAN_C4 = (0.25, 0.28, 0.31, 0.34)
SCAN_CB = (0.0, 0.3, 0.6, 0.9)
CB_RANGE = (0.0, 1.0)  # c_b > 1 would inject net energy: not in the action range


def jansen_held_viscosities(sim: Turbulence2D, c4_4: Tensor, c_b: Tensor) -> Tuple[Tensor, Tensor]:
    """(ν₂, ν₄) of the current state (module docstring's formulas): ``c4_4`` and ``c_b`` are
    [batch] or [batch, n, n]; ν₄ has the shape of ``c4_4``, ν₂ that of ``c_b``, each [batch]
    (uniform) or [batch, n, n]."""
    rms = sim.vorticity_rms()
    nu_4 = c4_4 * sim.delta**4 * (rms if c4_4.dim() == 1 else rms[:, None, None])
    mean_nu_4 = nu_4 if nu_4.dim() == 1 else nu_4.mean((-2, -1))
    drain = mean_nu_4 * sim.mean_square_wavenumber()
    nu_2 = -c_b * (drain if c_b.dim() == 1 else drain[:, None, None])
    return nu_2, nu_4


def _apply(sim, coeffs, n_steps):
    """Both viscosities formed inside every solver step (``EnergyReturn``, ``VorticityScaled``):
    the numbers of ``jansen_held_viscosities`` of each step's state, to round-off
    (tests/envs/test_turbulence_pinned.py), without a closure call per step."""
    c4_4, c_b = coeffs
    sim.step(
        n_steps,
        eddy_viscosity=EnergyReturn(c_b),
        hyperviscosity=VorticityScaled(c4_4 * sim.delta**4),
    )


JANSEN_HELD = register(
    ClosureFamily(
        name="jansen_held",
        summary="ν₄ = C₄⁴ Δ⁴ ⟨ω²⟩^½ (biharmonic) with ν₂ = −c_b ν₄ ⟨k²⟩_ω (backscatter)",
        coefficients=("C_4", "c_b"),
        powers=(4, 1),
        classical=CLASSICAL,
        scan=(SCAN_C4, SCAN_CB),
        apply=_apply,
        action_range=((0.0, 2.0 * CLASSICAL[0] ** 4), CB_RANGE),
        best=(0.31, 0.3),  # docs/smarl_families.md, chosen after the scan
    )
)
