"""Exact sub-grid term of filtered 2D turbulence and the least-squares local Smagorinsky
coefficient, for supervised closures compared with SMARL's RL closure (Mojgani et al. 2023,
arXiv 2312.00907, docs/methods.md#smarl-solver, #smarl-closures).

Sign convention (the solver's, ``envs/turbulence/solver.py``): the LES equation is
∂ω̄/∂t + J(ψ̄, ω̄) = ν∇²ω̄ − αω̄ − F̄ − Π. Filtering the resolved equation
∂ω/∂t + J(ψ, ω) = … gives ∂ω̄/∂t + filter(J(ψ, ω)) = …, hence the exact sub-grid term

    Π = filter(J(ψ, ω)) − J(ψ̄, ω̄)        (Π = ∇×∇·τ, τ_ij = filter(u_i u_j) − ū_i ū_j)

where the filter maps the DNS grid to the LES grid and projects on the modes the LES keeps
(its 2/3-rule truncation), so Π is exactly the term an LES step would need.
The Smagorinsky model term M is the solver's own Π for the eddy viscosity ν_e of
``closures.smagorinsky_viscosity`` with unit coefficient, so C_s² M is what the LES applies
for a uniform coefficient C_s².
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import torch

from regrl.envs.turbulence.closures import smagorinsky_viscosity
from regrl.envs.turbulence.solver import (
    Turbulence2D,
    _to_spectral,
    gaussian_filter,
    retained_modes,
    spectral_filter,
)

Tensor = torch.Tensor
FILTERS = ("spectral", "gaussian")


def les_filter(omega: Tensor, n_les: int, kind: str = "spectral") -> Tensor:
    """Filter fields [..., n, n] to the n_les grid: sharp spectral cut-off, or a Gaussian
    (width 2Δ_LES) followed by the cut-off. Returns [..., n_les, n_les]."""
    if kind == "spectral":
        return spectral_filter(omega, n_les)
    if kind == "gaussian":
        return gaussian_filter(omega, n_les)
    raise ValueError(f"filter must be one of {FILTERS}, got {kind!r}")


def project(field: Tensor, dealias: bool = True) -> Tensor:
    """Projection of grid fields [..., n, n] on the modes the solver keeps (no mean, no
    Nyquist, the 2/3 rule with ``dealias``)."""
    n = field.shape[-1]
    mask = retained_modes(n, dealias, field.device, field.dtype)
    return torch.fft.irfft2(torch.fft.rfft2(field) * mask, s=(n, n))


def spectral_upsample(omega: Tensor, n: int) -> Tensor:
    """Band-limited interpolation of fields [..., m, m] to an n×n grid (zero padding of the
    spectrum; the coarse Nyquist modes are dropped). Inverse of ``spectral_filter`` on fields
    without Nyquist modes."""
    m = omega.shape[-1]
    if n < m or n % 2:
        raise ValueError(f"cannot upsample a {m}² field to n={n} (need even n >= {m})")
    h = m // 2
    w_hat = torch.fft.rfft2(omega)
    out = w_hat.new_zeros(w_hat.shape[:-2] + (n, n // 2 + 1))
    out[..., :h, :h] = w_hat[..., :h, :h]
    out[..., n - h + 1 :, :h] = w_hat[..., m - h + 1 :, :h]
    return torch.fft.irfft2(out * (n / m) ** 2, s=(n, n))


def exact_sgs(dns: Turbulence2D, les: Turbulence2D, kind: str = "spectral") -> Tensor:
    """Exact Π [batch, n_les, n_les] (module docstring) of the resolved state in ``dns``;
    ``les`` must hold the filtered field (``les.omega = les_filter(dns.omega, …)``)."""
    if dns.batch != les.batch:
        raise ValueError(f"dns batch {dns.batch} != les batch {les.batch}")
    filtered_jac = project(
        les_filter(dns.jacobian("average"), les.n, kind).to(les.dtype), les.dealias
    )
    return filtered_jac - les.jacobian("average")


def eddy_viscosity_term(sim: Turbulence2D, nu_e: Tensor) -> Tensor:
    """Π = ∇×∇·(−2 ν_e S̄) [batch, n, n] on the retained modes, computed by the solver's own
    step code (``Turbulence2D._nonlinear_hat``), so it is exactly what ``sim.step`` applies
    for the eddy-viscosity field ``nu_e`` [batch, n, n]."""
    nu_e = sim._eddy_viscosity(nu_e).expand(sim.batch, sim.n, sim.n)
    _, pi_hat = sim._nonlinear_hat(nu_e)
    mask = retained_modes(sim.n, sim.dealias, sim.device, sim.dtype)
    full = pi_hat.new_zeros(sim.batch, sim.n, sim.n // 2 + 1)
    full[..., : pi_hat.shape[-1]] = pi_hat
    return torch.fft.irfft2(full * mask, s=(sim.n, sim.n))


def smagorinsky_unit_term(sim: Turbulence2D) -> Tensor:
    """M [batch, n, n]: the Smagorinsky model term of SMARL's closure with C_s² = 1."""
    return eddy_viscosity_term(sim, smagorinsky_viscosity(sim, 1.0))


def region_sums(field: Tensor, agents_per_side: int) -> Tensor:
    """Sums of fields [batch, n, n] over the a×a square regions centred on the agent points
    (grid indices i·n/a, ``env.agent_points``), periodic. Returns [batch, a, a]."""
    n, a = field.shape[-1], agents_per_side
    if n % a:
        raise ValueError(f"agents_per_side={a} must divide the grid {n}")
    b = n // a
    shifted = torch.roll(field, (b // 2, b // 2), (-2, -1))  # region of agent k -> block k
    return shifted.reshape(field.shape[0], a, b, a, b).sum((2, 4))


def least_squares_cs2(pi: Tensor, m: Tensor, agents_per_side: int) -> Tensor:
    """Per agent region, the C_s² minimising Σ_region (Π − C_s² M)²:
    C_s² = Σ Π M / Σ M² (0 where M vanishes). pi, m [batch, n, n] → [batch, a, a]."""
    pm, mm = region_sums(pi * m, agents_per_side), region_sums(m * m, agents_per_side)
    tiny = torch.finfo(mm.dtype).tiny
    return torch.where(mm > tiny, pm / mm.clamp_min(tiny), torch.zeros_like(mm))


def sgs_pairs(
    dns: Turbulence2D, les: Turbulence2D, agents_per_side: int, kind: str = "spectral"
) -> Dict[str, Tensor]:
    """Π, M and the region-wise least-squares C_s² of the state in ``dns`` (filtered into
    ``les``): {"pi", "m": [batch, n_les, n_les], "cs2": [batch, a, a]}."""
    pi = exact_sgs(dns, les, kind)
    m = smagorinsky_unit_term(les)
    return {"pi": pi, "m": m, "cs2": least_squares_cs2(pi, m, agents_per_side)}


def step_with_sgs(
    sim: Turbulence2D,
    sgs: Callable[[Turbulence2D], Tensor],
    n_steps: int = 1,
    every: int = 1,
    base: Optional[Callable[[Turbulence2D], None]] = None,
) -> None:
    """Advance ``n_steps`` with a sub-grid term Π = ``sgs(sim)`` [batch, n, n] of any form (a
    learned field closure), treated like the solver's eddy-viscosity Π (explicit Euler at the
    old state, docs/methods.md#smarl-solver): ω̂ⁿ⁺¹ = (step without Π) − dt Π̂ⁿ / (1 + dt α + ½ dt ν k²),
    projected on the retained modes. Π is re-evaluated every ``every`` steps (held between).
    ``base(sim)`` takes the one step "without Π" (default ``sim.step(1)``, no closure): a
    closure family's step with its constants makes Π a learned *correction* of that closure
    (the learned-correction model of Kochkov et al. 2021, PNAS 118, eq. 2; Um et al. 2020,
    "Solver-in-the-loop", NeurIPS)."""
    pi_hat = None
    for i in range(int(n_steps)):
        if pi_hat is None or i % every == 0:
            pi = torch.as_tensor(sgs(sim), dtype=sim.dtype, device=sim.device)
            pi_hat = _to_spectral(pi.expand(sim.batch, sim.n, sim.n), sim._c)
        if base is None:
            sim.step(1)
        else:
            base(sim)
        sim._w_hat = sim._w_hat + pi_hat * sim._neg_dt_inv_den
