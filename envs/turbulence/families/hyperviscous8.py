"""A steeper cut-off: SMARL's Smagorinsky eddy viscosity plus an order-8 hyperviscosity,

    ∂ω/∂t = … + ∇×∇·(2 ν_e S̄) − ν₈ ∇⁸ω ,   ν_e = C_s² Δ² ⟨|S̄|²⟩^½ ,   ν₈ = C₈⁸ Δ⁸ ⟨ω²⟩^½

Higher-order ("hyper") viscosities are the standard way to confine dissipation to the last
resolved shells of a 2D-turbulence simulation (Basdevant et al. 1981, "A study of barotropic
model flows: intermittency, waves and predictability", J. Atmos. Sci. 38; Frisch et al. 2008,
"Hyperviscosity, Galerkin truncation, and bottlenecks in turbulence", PRL 101, which also shows
the bottleneck a very steep one can cause). Why here: against the 16-trajectory reference the
best biharmonic constants leave 63 % of their log-spectrum error in the last shell, k = 21
(35–43 % too much enstrophy), beside a 3–9 % deficit at k = 8–19 (docs/smarl_families.md §5c):
a k⁴ term that damps k = 21 harder also damps the mid range. A k⁸ term matched to the
biharmonic's rate at the cut-off drains (k/21)⁴ as much below it: 26 % at k = 15.

ν₈ is scaled by the RMS vorticity (a rate), so C₈ is dimensionless like C₄; its uniform part
is backward Euler beside Crank–Nicolson and a field's departure explicit, as for the biharmonic
term (``VorticityScaled(order=8)``). Agents set (C_s², C₈⁸): a 2-d action.
"""

from __future__ import annotations

from regrl.envs.turbulence.families.base import ClosureFamily, register
from regrl.envs.turbulence.solver import StrainScaled, VorticityScaled

# The base point, fixed before any run of this family: C_s = 0 (the biharmonic family's best
# constants have C_s = 0, docs/smarl_families.md) and the C₈ whose rate at the cut-off equals
# that of the best biharmonic constant C₄ = 0.31 on the 64² grid: C₈⁸ (k_c Δ)⁸ = C₄⁴ (k_c Δ)⁴
# with k_c Δ = 21 · 2π/64 = 2.06, i.e. C₈ = (0.31⁴ / 2.06⁴)^{1/8} = 0.388.
CLASSICAL = (0.0, 0.39)
# Scan grid fixed before the scan: C₈ from 0.35× to 2.2× that cut-off rate (rate ∝ C₈⁸), C_s
# from none to below SMARL's 0.17 (a Laplacian part for the mid range, where k⁸ drains little)
SCAN_CS = (0.0, 0.06, 0.10, 0.14)
SCAN_C8 = (0.34, 0.37, 0.40, 0.43)
ORDER = 8


def _apply(sim, coeffs, n_steps):
    cs2, c8_8 = coeffs
    sim.step(
        n_steps,
        eddy_viscosity=StrainScaled(cs2 * sim.delta**2),
        hyperviscosity=VorticityScaled(c8_8 * sim.delta**ORDER, order=ORDER),
    )


SMAGORINSKY_HYPER8 = register(
    ClosureFamily(
        name="smagorinsky_hyper8",
        summary="ν_e = C_s² Δ² ⟨|S̄|²⟩^½ plus ν₈ = C₈⁸ Δ⁸ ⟨ω²⟩^½ (order 8)",
        coefficients=("C_s", "C_8"),
        powers=(2, ORDER),
        classical=CLASSICAL,
        scan=(SCAN_CS, SCAN_C8),
        apply=_apply,
        # C_s = 0 at the base: the Laplacian's range is SMARL's [0, 2·0.17²]
        action_range=((0.0, 2.0 * 0.17**2), (0.0, 2.0 * CLASSICAL[1] ** ORDER)),
        # the scan's lowest error against the 16-trajectory reference, on a fine grid along
        # the coarse grid's valley chosen after seeing it (docs/smarl_families.md §5d); the
        # held-out choice is the same point
        best=(0.03, 0.38),
    )
)
