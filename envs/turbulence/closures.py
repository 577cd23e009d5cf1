"""Eddy-viscosity SGS closures of SMARL (Mojgani et al. 2023, arXiv 2312.00907; docs/methods.md#smarl-closures,
reference code ``turb.smag_cs``, ``turb.leith_cs``, ``DSMAG.py``, ``turb.upsample``): pure
functions of a ``Turbulence2D`` state, returning ν_e(x, y) [batch, n, n] for ``sim.step``."""

from __future__ import annotations

import functools
import math
from typing import Union

import torch

from regrl.envs.turbulence.solver import StrainScaled, Turbulence2D, wavenumbers

Tensor = torch.Tensor
Coefficient = Union[float, Tensor]


def _coefficient_field(coeff: Coefficient, sim: Turbulence2D) -> Tensor:
    """A scalar, [batch] or [batch, n, n] coefficient as a tensor broadcastable to the grid."""
    c = torch.as_tensor(coeff, dtype=sim.dtype, device=sim.device)
    return c.reshape(-1, 1, 1) if c.dim() <= 1 else c


def strain_norm_rms(sim: Turbulence2D) -> Tensor:
    """⟨|S̄|²⟩^{1/2} [batch] with |S̄| = 2√(S̄11² + S̄12²) = √(2 S̄ij S̄ij) (``turb.smag_cs``)."""
    s11, s12 = sim.strain_rate()
    return torch.sqrt((4.0 * (s11**2 + s12**2)).mean((-2, -1)))


def smagorinsky_viscosity(sim: Turbulence2D, cs2: Coefficient) -> Tensor:
    """SMARL's Smagorinsky closure (docs/methods.md#smarl-closures): ν_e(x, y) = C_s²(x, y) Δ² ⟨|S̄|²⟩^{1/2},
    Δ = 2π/n. The strain norm is global (domain RMS), the coefficient local: ``cs2`` is a
    scalar, [batch] or a field [batch, n, n]. Returns [batch, n, n]."""
    c = _coefficient_field(cs2, sim)
    nu_e = c * sim.delta**2 * strain_norm_rms(sim)[:, None, None]
    return nu_e.expand(sim.batch, sim.n, sim.n)


def smagorinsky_in_step(sim: Turbulence2D, cs2: Coefficient) -> StrainScaled:
    """``smagorinsky_viscosity`` for ``sim.step``, evaluated inside every solver step from the
    strain the step computes anyway: the same ν_e(x, y) = C_s² Δ² ⟨|S̄|²⟩^{1/2} to rounding,
    without the closure's own transforms (benchmarks/turbulence_closure_cost.py)."""
    c = torch.as_tensor(cs2, dtype=sim.dtype, device=sim.device)
    return StrainScaled(c * sim.delta**2)  # scalar, [batch] or a grid field, as step takes


def leith_viscosity(sim: Turbulence2D, cl3: Coefficient) -> Tensor:
    """SMARL's Leith closure (docs/methods.md#smarl-closures): ν_e(x, y) = C_L³(x, y) Δ³ ⟨|∇ω|⟩ with the
    domain mean of |∇ω| (``turb.leith_cs``). ``cl3`` scalar, [batch] or [batch, n, n]."""
    wx, wy = sim.vorticity_gradient()
    grad_mean = torch.sqrt(wx**2 + wy**2).mean((-2, -1))
    nu_e = _coefficient_field(cl3, sim) * sim.delta**3 * grad_mean[:, None, None]
    return nu_e.expand(sim.batch, sim.n, sim.n)


def leith_local_viscosity(sim: Turbulence2D, cl3: Coefficient) -> Tensor:
    """Leith's (1996) pointwise form ν_e(x, y) = C_L³(x, y) Δ³ |∇ω̄(x, y)| (the gradient norm at
    each grid point, where ``leith_viscosity`` takes its domain mean). [batch, n, n]."""
    wx, wy = sim.vorticity_gradient()
    return _coefficient_field(cl3, sim) * sim.delta**3 * torch.sqrt(wx**2 + wy**2)


def spectral_test_filter(fields: Tensor, ratio: float) -> Tensor:
    """Sharp spectral test filter on the same grid: keeps |k_x|, |k_y| < n / (2·ratio)."""
    n = fields.shape[-1]
    kx, ky = wavenumbers(n, fields.device, fields.dtype)
    cut = n / (2.0 * ratio)
    keep = ((kx.abs() < cut) & (ky.abs() < cut)).to(fields.dtype)
    return torch.fft.irfft2(torch.fft.rfft2(fields) * keep, s=(n, n))


def dynamic_smagorinsky_cs2(
    sim: Turbulence2D, test_filter_ratio: float = 2.0, clip: bool = True
) -> Tensor:
    """Dynamic Smagorinsky C_s² [batch] (Germano et al. 1991 identity, Lilly 1992 least squares;
    SMARL's ``DSMAG.py`` baseline, docs/methods.md#smarl-closures) for the model τ_ij = −2 C_s² Δ² |S̄| S̄_ij:

        L_ij = (ū_i ū_j)^ − û_i û_j ,   M_ij = 2Δ² [ (|S̄| S̄_ij)^ − r² |Ŝ| Ŝ_ij ] ,
        C_s² = max(0, ⟨L^d_ij M_ij⟩ / ⟨M_ij M_ij⟩)

    with ^ the sharp spectral test filter of width r·Δ (r = ``test_filter_ratio``), L^d the
    deviatoric part, ⟨·⟩ the domain mean and |S̄| = √(2 S̄ij S̄ij). Clipped at 0 (no
    backscatter; ``clip=False`` returns the raw least-squares value); 0 where ⟨M:M⟩ = 0. The
    coefficient belongs to the local-|S̄| model; SMARL feeds it to ``smagorinsky_viscosity``
    (global strain norm) like the static C_s². Differences from the authors' ``DSMAG.py``
    (docs/smarl.md §Dynamic Smagorinsky): there |S̄| = √(S̄ij S̄ij), Δ = 2·2π/n and the second
    term of M is r²·(|S̄|)^·Ŝij (filtered norm) instead of r²|Ŝ|Ŝij (norm of the filtered
    strain, Germano's form used here); their test filter also keeps the k = −n/4 row/column."""
    u, v = sim.velocity()
    s11, s12 = sim.strain_rate()
    s_norm = 2.0 * torch.sqrt(s11**2 + s12**2)
    stack = torch.stack([u, v, u * u, u * v, v * v, s11, s12, s_norm * s11, s_norm * s12], 1)
    f = spectral_test_filter(stack, test_filter_ratio).unbind(1)
    uh, vh, uu_h, uv_h, vv_h, s11h, s12h, ss11_h, ss12_h = f
    l11_d = 0.5 * ((uu_h - uh * uh) - (vv_h - vh * vh))  # L^d_11 = −L^d_22
    l12 = uv_h - uh * vh
    sh_norm = 2.0 * torch.sqrt(s11h**2 + s12h**2)
    two_d2, r2 = 2.0 * sim.delta**2, float(test_filter_ratio) ** 2
    m11 = two_d2 * (ss11_h - r2 * sh_norm * s11h)  # M_22 = −M_11
    m12 = two_d2 * (ss12_h - r2 * sh_norm * s12h)
    lm = (2.0 * (l11_d * m11 + l12 * m12)).mean((-2, -1))
    mm = (2.0 * (m11**2 + m12**2)).mean((-2, -1))
    cs2 = torch.where(mm > 0, lm / mm.clamp_min(torch.finfo(mm.dtype).tiny), torch.zeros_like(mm))
    return cs2.clamp_min(0.0) if clip else cs2


@functools.lru_cache(maxsize=16)  # one per (agents, grid, dtype, device): reused every decision
def _cardinal_matrix(a: int, n: int, dtype, device) -> Tensor:
    """[n, a] values at grid points x_j = 2πj/n of the periodic trigonometric cardinal functions
    D(x − 2πi/a) through a equispaced nodes: D(x) = (1/a)[1 + 2Σ_{1≤k<a/2} cos kx (+ cos(a x/2)
    for even a, the Nyquist term split evenly between ±a/2)]; D = δ at the nodes."""
    x = (
        2.0
        * math.pi
        * (
            torch.arange(n, dtype=dtype, device=device)[:, None] / n
            - torch.arange(a, dtype=dtype, device=device)[None, :] / a
        )
    )
    k = torch.arange(1, (a + 1) // 2, dtype=dtype, device=device)
    d = 1.0 + 2.0 * torch.cos(x[..., None] * k).sum(-1)
    if a % 2 == 0:
        d = d + torch.cos(0.5 * a * x)
    return d / a


def upsample_agent_actions(actions: Tensor, n: int) -> Tensor:
    """Interpolate agent actions [batch, a, a], given at the agent points
    x_i = 2π·i/a (grid index i·n/a, ``linspace(0, n, a, endpoint=False)``), to the n×n grid
    [batch, n, n] by periodic trigonometric (Fourier) interpolation, separable in x and y.
    It passes exactly through the agent values, is periodic and band-limited to |k| ≤ a/2.
    (SMARL uses a quadratic ``RectBivariateSpline`` on the periodically padded points,
    docs/methods.md#smarl-closures; the Fourier interpolant is the smooth, exactly periodic torch
    counterpart.)"""
    if actions.dim() == 2:
        actions = actions[None]
    a = actions.shape[-1]
    if actions.shape[-2] != a:
        raise ValueError(f"actions must be [batch, a, a], got {list(actions.shape)}")
    dtype = actions.dtype if actions.is_floating_point() else torch.float64
    flat = actions.to(dtype).reshape(actions.shape[0], a * a)
    return (flat @ _interpolation_matrix(a, n, dtype, actions.device)).reshape(-1, n, n)


@functools.lru_cache(maxsize=16)  # as ``_cardinal_matrix``
def _interpolation_matrix(a: int, n: int, dtype, device) -> Tensor:
    """[a·a, n·n] the separable interpolation W A Wᵀ (W = ``_cardinal_matrix``) as one matrix
    acting on the flattened agent values: one matrix product per decision instead of an
    einsum's two contractions and permutes (half the time at batch 1; the same values to
    round-off)."""
    w = _cardinal_matrix(a, n, dtype, device)
    return torch.einsum("ia,jc->acij", w, w).reshape(a * a, n * n)
