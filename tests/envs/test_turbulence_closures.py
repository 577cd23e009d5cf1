"""Checks of SMARL's eddy-viscosity closures and agent-action upsampling (Mojgani et al. 2023,
arXiv 2312.00907, docs/methods.md#smarl-closures) against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from regrl.envs.turbulence import (
    Turbulence2D,
    dynamic_smagorinsky_cs2,
    leith_viscosity,
    smagorinsky_viscosity,
    upsample_agent_actions,
)

D = torch.float64


def single_mode_sim(n=32, batch=1, **kw):
    """ω = cos(3x + 2y): ψ = cos θ/13, S̄11 = ψ_xy = −6 cos θ/13, S̄12 = ½(ψ_yy − ψ_xx) =
    2.5 cos θ/13, so |S̄|² = 4(S̄11² + S̄12²) = cos²θ and ⟨|S̄|²⟩ = ½; |∇ω| = √13 |sin θ|."""
    x = torch.arange(n, dtype=D) * 2 * math.pi / n
    gx, gy = torch.meshgrid(x, x, indexing="ij")
    sim = Turbulence2D(n, nu=0.0, alpha=0.0, dt=1e-3, forcing=False, batch=batch, **kw)
    sim.omega = torch.cos(3 * gx + 2 * gy)
    return sim, 3 * gx + 2 * gy


def test_smagorinsky_constant_coefficient_matches_hand_formula():
    n = 32
    sim, _ = single_mode_sim(n, batch=2)
    nu_e = smagorinsky_viscosity(sim, 0.0121)
    assert nu_e.shape == (2, n, n)
    expected = 0.0121 * (2 * math.pi / n) ** 2 * math.sqrt(0.5)
    torch.testing.assert_close(nu_e, torch.full((2, n, n), expected, dtype=D), rtol=1e-12, atol=0)


def test_smagorinsky_local_coefficient_field_and_per_element_coefficients():
    n = 32
    sim, _ = single_mode_sim(n, batch=2)
    gen = torch.Generator().manual_seed(0)
    cs2 = 0.25 * torch.rand(2, n, n, generator=gen, dtype=D) - 0.125  # backscatter allowed
    scale = (2 * math.pi / n) ** 2 * math.sqrt(0.5)
    torch.testing.assert_close(smagorinsky_viscosity(sim, cs2), cs2 * scale, rtol=1e-12, atol=0)
    per_element = smagorinsky_viscosity(sim, torch.tensor([0.01, 0.02], dtype=D))
    torch.testing.assert_close(
        per_element[:, 0, 0], torch.tensor([0.01, 0.02], dtype=D) * scale, rtol=1e-12, atol=0
    )


def test_leith_constant_coefficient_matches_hand_formula():
    n = 32
    sim, theta = single_mode_sim(n)
    cl3 = 0.17**3
    grad_mean = float((math.sqrt(13) * torch.sin(theta).abs()).mean())
    assert grad_mean == pytest.approx(math.sqrt(13) * 2 / math.pi, rel=0.02)
    expected = cl3 * (2 * math.pi / n) ** 3 * grad_mean
    torch.testing.assert_close(
        leith_viscosity(sim, cl3), torch.full((1, n, n), expected, dtype=D), rtol=1e-12, atol=0
    )


def test_positive_constant_eddy_viscosity_dissipates_like_extra_viscosity():
    """Π = ∇×∇·(−2ν_e S̄) enters as −dt·Π̂: a positive constant ν_e field must damp a single
    mode like ν → ν + ν_e (explicit instead of Crank–Nicolson: equal to O(dt))."""
    n, nu, nu_e, alpha, dt, steps, k2 = 32, 1e-2, 5e-3, 0.1, 1e-3, 1000, 13
    _, theta = single_mode_sim(n)
    sgs = Turbulence2D(n, nu=nu, alpha=alpha, dt=dt, forcing=False)
    sgs.omega = torch.cos(theta)
    sgs.step(steps, eddy_viscosity=torch.full((1, n, n), nu_e, dtype=D))
    more_nu = Turbulence2D(n, nu=nu + nu_e, alpha=alpha, dt=dt, forcing=False)
    more_nu.omega = torch.cos(theta)
    more_nu.step(steps)
    plain = Turbulence2D(n, nu=nu, alpha=alpha, dt=dt, forcing=False)
    plain.omega = torch.cos(theta)
    plain.step(steps)
    amp = float(sgs.omega.norm() / torch.cos(theta).norm())
    g = (1 - 0.5 * dt * nu * k2 - dt * nu_e * k2) / (1 + dt * alpha + 0.5 * dt * nu * k2)
    assert amp == pytest.approx(g**steps, rel=1e-12)  # explicit SGS update
    assert amp == pytest.approx(float(more_nu.omega.norm() / torch.cos(theta).norm()), rel=1e-5)
    assert amp == pytest.approx(math.exp(-((nu + nu_e) * k2 + alpha) * steps * dt), rel=1e-4)
    assert amp < float(plain.omega.norm() / torch.cos(theta).norm())


def test_smagorinsky_closure_removes_enstrophy_and_backscatter_adds_it():
    runs = {}
    for cs2 in (0.0, 0.05, -0.05):
        sim = Turbulence2D(32, nu=1e-4, alpha=0.1, dt=2e-3, seed=9, forcing=False)
        for _ in range(20):
            sim.step(5, eddy_viscosity=smagorinsky_viscosity(sim, cs2))
        runs[cs2] = float(sim.enstrophy()[0])
    assert runs[0.05] < runs[0.0] < runs[-0.05]


def test_dynamic_smagorinsky_is_finite_and_non_negative_on_turbulence():
    sim = Turbulence2D(64, nu=1e-4, alpha=0.1, dt=2e-3, seed=11, batch=2)
    sim.step(300)
    cs2 = dynamic_smagorinsky_cs2(sim)
    assert cs2.shape == (2,) and bool(torch.isfinite(cs2).all())
    assert bool((cs2 >= 0).all()) and bool((cs2 < 0.1).all())
    assert float(cs2.max()) > 0.0  # forward cascade present: not clipped
    nu_e = smagorinsky_viscosity(sim, cs2)
    assert bool((nu_e >= 0).all())


def test_dynamic_smagorinsky_of_a_field_at_rest_is_zero():
    sim = Turbulence2D(16, nu=1e-4, alpha=0.1, dt=2e-3, forcing=False)
    assert dynamic_smagorinsky_cs2(sim).tolist() == [0.0]


@pytest.mark.parametrize("a,n", [(4, 64), (4, 32), (3, 30), (5, 40)])
def test_upsample_hits_agent_values_and_is_periodic(a, n):
    gen = torch.Generator().manual_seed(a)
    actions = 0.25 * torch.rand(2, a, a, generator=gen, dtype=D) - 0.125
    field = upsample_agent_actions(actions, n)
    assert field.shape == (2, n, n)
    stride = n // a  # agents at linspace(0, n, a, endpoint=False)
    torch.testing.assert_close(field[:, ::stride, ::stride], actions, rtol=0, atol=1e-14)
    # periodic: moving the agents by one lattice cell moves the field by n/a points
    shifted = upsample_agent_actions(torch.roll(actions, (1, -1), (1, 2)), n)
    torch.testing.assert_close(
        shifted, torch.roll(field, (stride, -stride), (1, 2)), rtol=0, atol=1e-14
    )
    # smooth: band-limited to |k| <= a/2
    spec = torch.fft.fft2(field).abs()
    k = torch.fft.fftfreq(n, 1 / n).abs()
    high = (k[:, None] > a / 2) | (k[None, :] > a / 2)
    assert float(spec[:, high].max()) < 1e-10


def test_upsample_constant_and_dtype():
    field = upsample_agent_actions(torch.full((1, 4, 4), 0.05, dtype=torch.float32), 16)
    assert field.dtype == torch.float32
    torch.testing.assert_close(field, torch.full((1, 16, 16), 0.05), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="actions must be"):
        upsample_agent_actions(torch.zeros(1, 4, 3), 16)


@pytest.mark.parametrize("dealias", [True, False])
@pytest.mark.parametrize("uniform", [False, True])
def test_in_step_smagorinsky_equals_the_closure_evaluated_outside_the_step(dealias, uniform):
    from regrl.envs.turbulence.closures import smagorinsky_in_step
    from regrl.envs.turbulence.env import advance

    gen = torch.Generator().manual_seed(3)
    cs2 = 0.06 * torch.rand(3, 4, 4, generator=gen, dtype=D)  # per-simulation local fields
    if uniform:  # one coefficient per simulation: the transform-free path
        cs2 = cs2[:, :1, :1].expand(3, 4, 4).clone()
    old = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=2e-3, batch=3, seed=4, dealias=dealias)
    new = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=2e-3, batch=3, seed=4, dealias=dealias)
    field = upsample_agent_actions(cs2, 32)
    for _ in range(15):  # the reference path: ν_e from the state, then one step
        old.step(1, eddy_viscosity=smagorinsky_viscosity(old, field))
    new.step(15, eddy_viscosity=smagorinsky_in_step(new, field))
    scale = old.omega.abs().max()
    assert (new.omega - old.omega).abs().max() < 1e-12 * scale
    assert (
        old.omega
        - Turbulence2D(32, nu=1e-3, alpha=0.1, dt=2e-3, batch=3, seed=4, dealias=dealias).omega
    ).abs().max() > 1e-3 * scale
    env_path = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=2e-3, batch=3, seed=4, dealias=dealias)
    advance(env_path, cs2, "smagorinsky", 15)
    assert (env_path.omega - old.omega).abs().max() < 1e-12 * scale


def _germano_lilly_by_hand(omega: np.ndarray, ratio: float = 2.0) -> float:
    """Domain-averaged Germano–Lilly C_s² of one vorticity field [n, n], written from the
    textbook tensor form with all four components (S22, L22, M22 explicit, as in SMARL's
    DSMAG.py), full complex FFTs, |S̄| = √(2 S̄ij S̄ij), Δ = 2π/n, |Ŝ| of the filtered strain."""
    n = omega.shape[-1]
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    k2 = np.where(kx**2 + ky**2 == 0, 1.0, kx**2 + ky**2)
    psi_hat = np.fft.fft2(omega) / k2
    real = lambda h: np.fft.ifft2(h).real  # noqa: E731
    u, v = real(1j * ky * psi_hat), real(-1j * kx * psi_hat)
    ux, uy = real(1j * kx * np.fft.fft2(u)), real(1j * ky * np.fft.fft2(u))
    vx, vy = real(1j * kx * np.fft.fft2(v)), real(1j * ky * np.fft.fft2(v))
    S = {(1, 1): ux, (1, 2): 0.5 * (uy + vx), (2, 1): 0.5 * (uy + vx), (2, 2): vy}
    cut = (np.abs(kx) < n / (2 * ratio)) & (np.abs(ky) < n / (2 * ratio))
    F = lambda f: real(np.fft.fft2(f) * cut)  # noqa: E731
    vel = {1: u, 2: v}
    norm = np.sqrt(2 * sum(S[ij] ** 2 for ij in S))
    norm_h = np.sqrt(2 * sum(F(S[ij]) ** 2 for ij in S))
    delta = 2 * np.pi / n
    L = {(i, j): F(vel[i] * vel[j]) - F(vel[i]) * F(vel[j]) for i, j in S}
    trace = 0.5 * (L[1, 1] + L[2, 2])
    M = {ij: 2 * delta**2 * (F(norm * S[ij]) - ratio**2 * norm_h * F(S[ij])) for ij in S}
    aa = sum((L[ij] - (trace if ij[0] == ij[1] else 0.0)) * M[ij] for ij in S).sum()
    bb = sum(M[ij] ** 2 for ij in S).sum()
    return float(aa / bb)


def test_dynamic_smagorinsky_matches_the_tensor_form_by_hand():
    sim = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=2e-3, seed=5, batch=3)
    sim.step(200)
    raw = dynamic_smagorinsky_cs2(sim, clip=False)
    want = [_germano_lilly_by_hand(w) for w in sim.omega.numpy()]
    np.testing.assert_allclose(raw.numpy(), want, rtol=1e-9)
    assert max(abs(w) for w in want) > 1e-5  # not a trivial zero
    # clipping: max(0, C) per simulation, as DSMAG.py's "averaged with clipping"
    np.testing.assert_allclose(
        dynamic_smagorinsky_cs2(sim).numpy(), np.maximum(want, 0.0), rtol=1e-9
    )
    assert (
        abs(
            float(dynamic_smagorinsky_cs2(sim, test_filter_ratio=4.0, clip=False)[0])
            - _germano_lilly_by_hand(sim.omega[0].numpy(), 4.0)
        )
        < 1e-9 * abs(want[0]) + 1e-15
    )
