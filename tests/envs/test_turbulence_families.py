"""Closure families (envs/turbulence/families): the solver's hyperviscosity and pointwise strain
norm against hand-computed steps, the Jansen–Held energy budget, the registry, and the SMARL env
with two-coefficient actions and the paired lockstep reward."""

import math

import numpy as np
import pytest
import torch

from regrl.envs.turbulence import families, parallel_env
from regrl.envs.turbulence.closures import leith_local_viscosity, leith_viscosity
from regrl.envs.turbulence.families.backscatter import jansen_held_viscosities
from regrl.envs.turbulence.metrics import log_spectrum_error
from regrl.envs.turbulence.reference import load_reference
from regrl.envs.turbulence.solver import (
    EnergyReturn,
    GradientScaled,
    StrainScaled,
    Turbulence2D,
    VorticityScaled,
)

D = torch.float64


def single_mode(n=32, batch=1, **kw):
    """ω = cos(3x + 2y): k² = 13, zero Jacobian, ⟨ω²⟩^½ = 1/√2, |S̄(x)| = |cos θ|,
    |∇ω(x)| = √13 |sin θ| (tests/envs/test_turbulence_closures.py derives these)."""
    x = torch.arange(n, dtype=D) * 2 * math.pi / n
    gx, gy = torch.meshgrid(x, x, indexing="ij")
    kw = {"nu": 0.0, "alpha": 0.0, "dt": 1e-3, "forcing": False, **kw}
    sim = Turbulence2D(n, batch=batch, **kw)
    sim.omega = torch.cos(3 * gx + 2 * gy)
    return sim, 3 * gx + 2 * gy


# ------------------------------------------------------------------ solver terms
@pytest.mark.parametrize("dealias", [True, False])
def test_uniform_hyperviscosity_is_backward_euler_beside_crank_nicolson(dealias):
    nu, alpha, dt, nu_4 = 1e-2, 0.1, 1e-3, 0.05
    sim, _ = single_mode(nu=nu, alpha=alpha, dt=dt, dealias=dealias)
    w0 = sim.omega.clone()
    sim.step(3, hyperviscosity=nu_4)
    den = 1 + dt * alpha + 0.5 * dt * nu * 13
    g = (1 - 0.5 * dt * nu * 13) / (den + dt * nu_4 * 13**2)  # k⁴ = 169
    torch.testing.assert_close(sim.omega, w0 * g**3, rtol=1e-12, atol=1e-14)


def test_vorticity_scaled_hyperviscosity_uses_the_rms_vorticity_of_each_step():
    """ν₄ = field · ⟨ω²⟩^½ of the state the step starts from (drag makes the new state differ)."""
    dt, alpha, field = 1e-3, 5.0, 0.3
    sim, _ = single_mode(dt=dt, alpha=alpha)
    w0 = sim.omega.clone()
    sim.step(2, hyperviscosity=VorticityScaled(field))
    rms, expected = 1 / math.sqrt(2), w0.clone()
    for _ in range(2):
        g = 1 / (1 + dt * alpha + dt * field * rms * 169)
        expected, rms = expected * g, rms * g
    torch.testing.assert_close(sim.omega, expected, rtol=1e-12, atol=1e-14)


def test_hyperviscosity_field_departure_is_explicit_and_its_mean_implicit():
    """ω¹ = [ω⁰ − dt ∇²((ν₄ − ⟨ν₄⟩)∇²ω⁰)] / (1 + dt ⟨ν₄⟩ k⁴), projected, built with numpy's
    FFT here: a sign error, a missing k², or the explicit part on the new state would fail."""
    n, dt = 32, 1e-3
    sim, theta = single_mode(n, dt=dt)
    x = torch.arange(n, dtype=D) * 2 * math.pi / n
    gx, _ = torch.meshgrid(x, x, indexing="ij")
    nu_4 = 0.05 + 0.03 * torch.cos(gx)  # mean 0.05
    w0 = sim.omega[0].numpy()
    sim.step(1, hyperviscosity=nu_4)
    k = np.fft.fftfreq(n, 1 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    lap = lambda f: np.real(np.fft.ifft2(-k2 * np.fft.fft2(f)))  # noqa: E731
    explicit = w0 - dt * lap((nu_4.numpy() - 0.05) * lap(w0))
    keep = (np.abs(k)[:, None] < n / 3) & (np.abs(k)[None, :] < n / 3) & (k2 > 0)
    expected = np.real(np.fft.ifft2(np.fft.fft2(explicit) * keep / (1 + dt * 0.05 * k2**2)))
    np.testing.assert_allclose(sim.omega[0].numpy(), expected, rtol=0, atol=1e-12)
    assert np.abs(expected - w0 / (1 + dt * 0.05 * 169)).max() > 1e-6  # the field mattered


@pytest.mark.parametrize("dealias", [True, False])
def test_pointwise_strain_norm_in_the_step_equals_the_field_formed_outside(dealias):
    gen = torch.Generator().manual_seed(3)
    cs2 = 0.02 + 0.01 * torch.rand(2, 32, 32, generator=gen, dtype=D)
    sims = [Turbulence2D(32, nu=1e-3, alpha=0.1, dt=1e-3, seed=5, batch=2, dealias=dealias)]
    sims.append(Turbulence2D(32, nu=1e-3, alpha=0.1, dt=1e-3, seed=5, batch=2, dealias=dealias))
    for _ in range(4):
        sims[0].step(1, eddy_viscosity=StrainScaled(cs2 * sims[0].delta ** 2, pointwise=True))
        s11, s12 = sims[1].strain_rate()
        norm = 2 * torch.sqrt(s11**2 + s12**2)  # |S̄(x)|
        sims[1].step(1, eddy_viscosity=cs2 * sims[1].delta ** 2 * norm)
    torch.testing.assert_close(sims[0].omega, sims[1].omega, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dealias", [True, False])
@pytest.mark.parametrize("pointwise", [True, False])
@pytest.mark.parametrize("uniform", [True, False])
def test_leith_in_the_step_equals_the_closure_formed_before_each_step(dealias, pointwise, uniform):
    """``GradientScaled`` (gradient rows in the step's transform; a uniform domain-mean C_L on
    the spectral path) against ``leith_viscosity`` / ``leith_local_viscosity`` evaluated before
    every step, on both step paths (dealiased flux form, average form) and the first step."""
    gen = torch.Generator().manual_seed(3)
    field = torch.tensor([0.004, 0.006], dtype=D)
    if not uniform:
        field = 0.004 + 0.004 * torch.rand(2, 32, 32, generator=gen, dtype=D)
    outside = leith_local_viscosity if pointwise else leith_viscosity
    kw = dict(nu=1e-3, alpha=0.1, dt=1e-3, seed=5, batch=2, dealias=dealias)
    a, b = Turbulence2D(32, **kw), Turbulence2D(32, **kw)
    delta3 = a.delta**3
    a.step(4, eddy_viscosity=GradientScaled(field * delta3, pointwise=pointwise))
    for _ in range(4):
        b.step(1, eddy_viscosity=outside(b, field))
    torch.testing.assert_close(a.omega, b.omega, rtol=0, atol=1e-12)
    assert float((a.omega - Turbulence2D(32, **kw).omega).abs().max()) > 1e-3


@pytest.mark.parametrize("dealias", [True, False])
def test_order_8_hyperviscosity_is_k8_backward_euler_with_the_rms_of_each_step(dealias):
    """``VorticityScaled(order=8)``: −ν₈ k⁸ ω̂ (k⁸ = 13⁴ here), implicit, ν₈ = field·⟨ω²⟩^½ of
    each step's start state; a k⁴ operator (13²) or a missing rescaling would fail."""
    dt, alpha, field = 1e-3, 5.0, 2e-5
    sim, _ = single_mode(dt=dt, alpha=alpha, dealias=dealias)
    w0 = sim.omega.clone()
    sim.step(2, hyperviscosity=VorticityScaled(field, order=8))
    rms, expected = 1 / math.sqrt(2), w0.clone()
    for _ in range(2):
        g = 1 / (1 + dt * alpha + dt * field * rms * 13**4)
        expected, rms = expected * g, rms * g
    torch.testing.assert_close(sim.omega, expected, rtol=1e-12, atol=1e-14)
    assert (expected - w0 / (1 + dt * alpha)).abs().max() > 1e-3  # the k⁸ term mattered


@pytest.mark.parametrize("dealias", [True, False])
def test_order_8_hyperviscosity_field_departure_against_numpy(dealias):
    """ω¹ = [ω_bare − dt ∇⁴((ν₈ − ⟨ν₈⟩)∇⁴ω⁰)] / (1 + dt ⟨ν₈⟩ k⁸), ν₈ = field·⟨ω²⟩^½ and ω_bare
    the step without closure (its advection), with numpy's FFT on a multi-mode state (so the
    explicit product couples modes): the k² row and weight of the biharmonic term, a sign
    error or the departure on the new state would fail."""
    n, dt = 32, 1e-3
    kw = dict(nu=0.0, alpha=0.0, dt=dt, forcing=False, dealias=dealias, seed=3)
    sim, bare = Turbulence2D(n, **kw), Turbulence2D(n, **kw)
    x = torch.arange(n, dtype=D) * 2 * math.pi / n
    gx, _ = torch.meshgrid(x, x, indexing="ij")
    field = 1e-6 * (1.0 + 0.5 * torch.cos(gx))  # mean 1e-6
    w0 = sim.omega[0].numpy()
    rms = float(np.sqrt((w0**2).mean()))
    sim.step(1, hyperviscosity=VorticityScaled(field, order=8))
    bare.step(1)
    k = np.fft.fftfreq(n, 1 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    bilap = lambda f: np.real(np.fft.ifft2(k2**2 * np.fft.fft2(f)))  # noqa: E731  ∇⁴
    departure = (field.numpy() - 1e-6) * rms
    explicit = bare.omega[0].numpy() - dt * bilap(departure * bilap(w0))
    cut = n / 3 if dealias else n / 2
    keep = (np.abs(k)[:, None] < cut) & (np.abs(k)[None, :] < cut) & (k2 > 0)
    implicit = 1 + dt * 1e-6 * rms * k2**4
    expected = np.real(np.fft.ifft2(np.fft.fft2(explicit) * keep / implicit))
    scale = np.abs(w0).max()
    np.testing.assert_allclose(sim.omega[0].numpy(), expected, rtol=0, atol=1e-10 * scale)
    uniform = np.real(np.fft.ifft2(np.fft.fft2(bare.omega[0].numpy()) * keep / implicit))
    assert np.abs(expected - uniform).max() > 1e-4 * scale  # the departure mattered


def test_order_8_refuses_other_orders_and_the_energy_return():
    sim, _ = single_mode()
    with pytest.raises(ValueError, match="order must be one of"):
        sim.step(1, hyperviscosity=VorticityScaled(1e-5, order=6))
    with pytest.raises(ValueError, match="order 4, got 8"):
        sim.step(1, eddy_viscosity=EnergyReturn(0.5), hyperviscosity=VorticityScaled(1e-5, 8))


def test_hyper8_family_is_registered_with_its_scan_and_a_nonzero_action_range():
    fam = families.get_family("smagorinsky_hyper8")
    assert fam.powers == (2, 8) and len(fam.scan_points()) == 16
    assert all(high > low for low, high in fam.default_range())
    # C₈ = 0.39 matches the best biharmonic C₄ = 0.31 at k_c = 21 (module), to its rounding
    kc_delta = 21 * 2 * math.pi / 64
    assert fam.classical[1] ** 8 * kc_delta**8 == pytest.approx(0.31**4 * kc_delta**4, rel=0.05)


@pytest.mark.parametrize("dealias", [True, False])
@pytest.mark.parametrize("uniform", [True, False])
def test_jansen_held_in_the_step_equals_its_viscosities_before_each_step(dealias, uniform):
    """``EnergyReturn`` + ``VorticityScaled`` (one ⟨ω²⟩^½ and the hyperviscosity's rows in the
    step's transforms) against ``jansen_held_viscosities`` of each step's state."""
    gen = torch.Generator().manual_seed(4)
    c4, cb = torch.tensor([0.3, 0.2], dtype=D), torch.tensor([0.5, 0.9], dtype=D)
    if not uniform:
        c4 = 0.2 + 0.2 * torch.rand(2, 32, 32, generator=gen, dtype=D)
        cb = torch.rand(2, 32, 32, generator=gen, dtype=D)
    kw = dict(nu=1e-3, alpha=0.1, dt=1e-3, seed=5, batch=2, dealias=dealias)
    a, b = Turbulence2D(32, **kw), Turbulence2D(32, **kw)
    a.step(4, eddy_viscosity=EnergyReturn(cb), hyperviscosity=VorticityScaled(c4 * a.delta**4))
    for _ in range(4):
        nu_2, nu_4 = jansen_held_viscosities(b, c4, cb)
        b.step(1, eddy_viscosity=nu_2, hyperviscosity=nu_4)
    torch.testing.assert_close(a.omega, b.omega, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="give hyperviscosity= too"):
        a.step(1, eddy_viscosity=EnergyReturn(cb))


def test_pointwise_norms_of_a_single_mode_by_hand():
    sim, theta = single_mode()
    s11, s12 = sim.strain_rate()
    torch.testing.assert_close(2 * torch.sqrt(s11**2 + s12**2)[0], torch.cos(theta).abs())
    grad = leith_local_viscosity(sim, 1.0)[0] / sim.delta**3
    torch.testing.assert_close(grad, math.sqrt(13) * torch.sin(theta).abs())


def test_mean_square_wavenumber_weights_modes_by_their_enstrophy():
    sim, theta = single_mode()
    assert float(sim.mean_square_wavenumber()[0]) == pytest.approx(13.0, rel=1e-12)
    x = torch.arange(32, dtype=D) * 2 * math.pi / 32
    gx, gy = torch.meshgrid(x, x, indexing="ij")
    sim.omega = torch.cos(gx) + 2 * torch.sin(5 * gy)  # k² 1 and 25, enstrophy weights 1 : 4
    assert float(sim.mean_square_wavenumber()[0]) == pytest.approx((1 + 4 * 25) / 5, rel=1e-12)


# ------------------------------------------------------------------ Jansen–Held
def test_jansen_held_viscosities_of_a_single_mode():
    sim, _ = single_mode()
    c4, cb = torch.tensor([0.004], dtype=D), torch.tensor([0.5], dtype=D)
    nu_2, nu_4 = jansen_held_viscosities(sim, c4, cb)
    expected_4 = 0.004 * sim.delta**4 / math.sqrt(2)
    assert float(nu_4[0]) == pytest.approx(expected_4, rel=1e-12)
    assert float(nu_2[0]) == pytest.approx(-0.5 * expected_4 * 13, rel=1e-12)


def test_jansen_held_returns_the_fraction_c_b_of_the_drained_energy():
    """Energy change of one step on turbulence, inviscid and unforced (the solver conserves
    energy to O(dt²) there): c_b = 1 returns all that the hyperviscosity drains."""

    def energy_change(c_b):
        sim = Turbulence2D(32, nu=0.0, alpha=0.0, dt=1e-4, forcing=False, seed=2)
        e0 = float(sim.energy()[0])
        fam = families.get_family("jansen_held")
        families.advance(sim, fam, torch.tensor([[[[0.3, c_b]]]], dtype=D), 1)
        return float(sim.energy()[0]) - e0

    drained, half, bare = energy_change(0.0), energy_change(0.5), energy_change(1.0)
    assert drained < 0
    assert half == pytest.approx(0.5 * drained, rel=0.02)
    assert abs(bare) < 0.02 * abs(drained)


# ------------------------------------------------------------------ registry and advance
def test_registry_coefficients_and_scan():
    hyper = families.get_family("smagorinsky_hyper")
    assert hyper.coefficient((0.1, 0.3)) == pytest.approx((0.01, 0.0081))
    assert len(hyper.scan_points()) == len(hyper.scan[0]) * len(hyper.scan[1])
    assert hyper.label((0.1, 0.3)) == "smagorinsky_hyper C_s=0.1 C_4=0.3"
    assert families.get_family("jansen_held").default_range()[1] == (0.0, 1.0)
    with pytest.raises(ValueError, match="closure must be one of .*smagorinsky_local"):
        families.get_family("smag")
    with pytest.raises(ValueError, match="takes 2 coefficient"):
        hyper.coefficient((0.1,))
    base = families.get_family("smagorinsky").scan_points()
    assert (0.17,) in base  # the baseline of every paired comparison is in its own scan


def test_advance_uniform_coefficients_equal_the_agents_field_path():
    """Uniform agent values take the [batch] path (no transforms), a non-uniform batch the
    interpolated field: the same numbers where the values agree."""
    fam = families.get_family("smagorinsky_hyper")
    a = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=1e-3, seed=4, batch=2)
    b = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=1e-3, seed=4, batch=2)
    uniform = torch.tensor([0.02, 0.004], dtype=D).expand(2, 4, 4, 2).clone()
    mixed = uniform.clone()
    mixed[1, 0, 0, 1] = 0.006  # element 1 differs: the whole batch goes on the field path
    families.advance(a, fam, uniform, 5)
    families.advance(b, fam, mixed, 5)
    torch.testing.assert_close(a.omega[0], b.omega[0], rtol=0, atol=1e-12)
    assert float((a.omega[1] - b.omega[1]).abs().max()) > 1e-9
    with pytest.raises(ValueError, match=r"needs coefficients \[batch, a, a, 2\]"):
        families.advance(a, fam, torch.zeros(2, 4, 4), 1)


@pytest.mark.parametrize("name", sorted(families.FAMILIES))
def test_every_family_dissipates_enstrophy_on_turbulence(name):
    fam = families.get_family(name)
    sim = Turbulence2D(32, nu=0.0, alpha=0.0, dt=1e-3, forcing=False, seed=6)
    free = Turbulence2D(32, nu=0.0, alpha=0.0, dt=1e-3, forcing=False, seed=6)
    coeff = torch.tensor(fam.base(), dtype=D).expand(1, 4, 4, fam.size)
    families.advance(sim, fam, coeff, 20)
    free.step(20)
    assert float(sim.enstrophy()[0]) < float(free.enstrophy()[0]) * (1 - 1e-4)


@pytest.mark.parametrize("field", [False, True])
@pytest.mark.parametrize("name", sorted(families.FAMILIES))
def test_gradients_flow_through_every_in_step_closure(name, field):
    """d⟨ω²⟩/dθ after 15 steps, coefficients = base·(1 + θ) (uniform, or an agents' field),
    by autograd through the step's tracking path against central differences."""
    fam = families.get_family(name)
    ramp = 1 + 0.3 * torch.linspace(0, 1, 16, dtype=D).reshape(1, 4, 4, 1) if field else 1

    def loss(theta):
        sim = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=1e-3, seed=3, batch=2)
        coeff = torch.tensor(fam.base(), dtype=D) * (1 + theta) * ramp
        families.advance(sim, fam, coeff.expand(2, 4, 4, fam.size), 15)
        return (sim.omega**2).mean()

    theta = torch.zeros((), dtype=D, requires_grad=True)
    loss(theta).backward()
    with torch.no_grad():
        eps = torch.tensor(1e-4, dtype=D)
        fd = (loss(eps) - loss(-eps)) / (2 * eps)
    assert abs(float(fd)) > 1e-3
    assert float(theta.grad) == pytest.approx(float(fd), rel=1e-6)


# ------------------------------------------------------------------ env
def make(ref, **kw):
    kw = dict(dict(reference=str(ref), episode_actions=3, steps_per_action=2), **kw)
    return parallel_env(**kw)


def actions(env, value):
    return {a: np.asarray(value, np.float32) for a in env.agents}


def test_two_coefficient_family_has_a_2d_action_and_maps_each_range(tiny_reference):
    env = make(tiny_reference, closure="smagorinsky_hyper")
    env.reset(seed=0)
    assert env.action_space("agent_0").shape == (2,)
    _, _, _, trunc, info = env.step(actions(env, [0.0, 1.0]))
    base = families.get_family("smagorinsky_hyper").base()
    np.testing.assert_allclose(env._coeffs[-1][0, 0, 0], [base[0], 2 * base[1]], rtol=1e-12)
    env = make(tiny_reference, closure="smagorinsky_hyper", coeff_range=[[0, 0.1], [0, 0.2]])
    env.reset(seed=0)
    env.step(actions(env, [-1.0, 0.0]))
    np.testing.assert_allclose(env._coeffs[-1][0, 0, 0], [0.0, 0.1], rtol=1e-12)
    with pytest.raises(ValueError, match="for each of the 2 coefficient"):
        make(tiny_reference, closure="smagorinsky_hyper", coeff_range=[0.0, 0.1])


def test_paired_reward_is_the_baseline_copys_error_minus_the_agents(tiny_reference):
    env = make(tiny_reference, paired=True, paired_baseline=[0.17])
    env.reset(seed=1)
    _, rew, *_ = env.step(actions(env, [0.0]))  # a = 0 is the baseline itself: no improvement
    assert all(r == pytest.approx(0.0, abs=1e-12) for r in rew.values())
    _, rew, *_ = env.step(actions(env, [0.8]))
    ref = load_reference(tiny_reference).enstrophy_spectrum
    spec = env.sim.enstrophy_spectrum().numpy()
    expected = log_spectrum_error(spec[1], ref) - log_spectrum_error(spec[0], ref)
    assert abs(expected) > 1e-6 and rew["agent_0"] == pytest.approx(expected, rel=1e-9)
    *_, info = env.step(actions(env, [0.8]))
    metrics = info["agent_0"]["metrics"]
    assert "baseline_spectrum_error" in metrics and metrics["spectrum_error"] > 0
    with pytest.raises(ValueError, match="paired rewards"):
        make(tiny_reference, paired=True, reward="z1")


def test_batched_env_passes_the_pettingzoo_api(tiny_reference):
    from pettingzoo.test import parallel_api_test

    parallel_api_test(make(tiny_reference, sims=2, closure="smagorinsky_hyper"), num_cycles=8)


@pytest.mark.parametrize("paired", [False, True])
def test_batched_env_steps_each_sim_like_its_own_env(tiny_reference, paired):
    """Two sims in one env = two single-sim envs from the same initial conditions with the
    same actions: observations and rewards to round-off."""
    batched = make(tiny_reference, sims=2, paired=paired)
    obs, _ = batched.reset(options={"initial_conditions": [2, 1]})
    assert len(obs) == 32 and "sim1_agent_15" in obs
    singles = [make(tiny_reference, paired=paired) for _ in range(2)]
    single_obs = [e.reset(options={"initial_conditions": [i]})[0] for e, i in zip(singles, [2, 1])]
    for b in range(2):
        np.testing.assert_allclose(obs[f"sim{b}_agent_7"], single_obs[b]["agent_7"], rtol=1e-6)
    values = [0.3, -0.2]
    for _ in range(3):
        act = {a: np.asarray([values[int(a[3])]], np.float32) for a in batched.agents}
        obs, rew, _, trunc, info = batched.step(act)
        for b, env in enumerate(singles):
            o, r, _, t, _ = env.step(actions(env, [values[b]]))
            assert rew[f"sim{b}_agent_3"] == pytest.approx(r["agent_3"], rel=1e-9, abs=1e-12)
            np.testing.assert_allclose(obs[f"sim{b}_agent_3"], o["agent_3"], rtol=1e-5, atol=1e-6)
    assert rew["sim0_agent_0"] != pytest.approx(rew["sim1_agent_0"])
    metrics = info["sim0_agent_0"]["metrics"]
    assert batched.agents == [] and metrics["diverged"] == 0.0
    assert metrics["coeff_mean"] == pytest.approx(0.17**2 * (1 + np.mean(values)))


def test_a_blown_up_sim_ends_alone_and_the_metrics_come_at_the_end(tiny_reference):
    env = make(tiny_reference, sims=2, divergence_penalty=-7.0)
    env.reset(seed=0)
    omega = env.sim.omega.clone()
    omega[1] = float("nan")
    env.sim.omega = omega
    _, rew, _, trunc, info = env.step(actions(env, [0.0]))
    assert trunc["sim1_agent_0"] and not trunc["sim0_agent_0"] and rew["sim1_agent_0"] == -21.0
    assert info["sim0_agent_0"] == {} and all(a.startswith("sim0") for a in env.agents)
    while env.agents:
        _, rew, _, trunc, info = env.step(actions(env, [0.0]))
    assert set(rew) == {f"sim0_agent_{i}" for i in range(16)}
    assert info["sim0_agent_0"]["metrics"]["diverged"] == 1.0 and env.diverged_count == 1
    with pytest.raises(ValueError, match="must be 2 indices"):
        env.reset(options={"initial_conditions": [0]})
