"""SMARL environment: PettingZoo conformance, determinism, observations, divergence handling,
reference files and the evaluation metrics."""

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from regrl.envs.turbulence import parallel_env
from regrl.envs.turbulence.env import ACTION_BOUND, action_to_coefficient
from regrl.envs.turbulence.metrics import (
    hellinger,
    kurtosis,
    log_spectrum_error,
    pdf_histogram,
    tail_probability,
    weighted_spectrum_error,
)
from regrl.envs.turbulence.reference import load_reference


def make(ref, **kw):
    kw = dict(dict(reference=str(ref), episode_actions=4, steps_per_action=2), **kw)
    return parallel_env(**kw)


def constant(env, value=0.02):
    return {a: np.array([value], np.float32) for a in env.agents}


def test_pettingzoo_parallel_api(tiny_reference):
    parallel_api_test(make(tiny_reference), num_cycles=12)


def test_spaces_and_observations(tiny_reference):
    env = make(tiny_reference)
    obs, infos = env.reset(seed=0)
    assert len(env.agents) == 16 and set(obs) == set(env.agents)
    space = env.action_space("agent_0")
    assert space.low[0] == -1.0 and space.high[0] == 1.0  # normalised; coeff_range maps it
    space = env.observation_space("agent_0")
    assert space.shape == (6 + 16 // 2 - 1,)
    for o in obs.values():
        assert space.contains(o)
    # every agent sees the same global spectrum part, different local invariants
    assert np.allclose(obs["agent_0"][6:], obs["agent_5"][6:])
    assert not np.allclose(obs["agent_0"][:6], obs["agent_5"][:6])


def episode(ref, seed, value=0.02):
    env = make(ref)
    env.reset(seed=seed)
    rewards, last = [], None
    while env.agents:
        _, r, term, trunc, info = env.step(constant(env, value))
        rewards.append(r["agent_0"])
        last = info["agent_0"]
    return rewards, last


def test_deterministic_for_a_seed_and_reward_shared(tiny_reference):
    r1, info = episode(tiny_reference, seed=3)
    r2, _ = episode(tiny_reference, seed=3)
    assert r1 == r2 and len(r1) == 4
    assert all(-10.0 <= r <= 0.0 for r in r1)
    m = info["metrics"]
    assert m["diverged"] == 0.0 and m["coeff_mean"] == pytest.approx(0.17**2 * 1.02)
    assert m["coeff_std"] == pytest.approx(0.0, abs=1e-12)
    assert m["spectrum_error"] == pytest.approx(-np.mean(r1))


def test_divergence_truncates_with_penalty_not_exception(tiny_reference):
    env = make(tiny_reference, divergence_penalty=-7.0)
    env.reset(seed=0)
    env.sim.omega = torch.full((16, 16), float("nan"), dtype=torch.float64)
    obs, rew, term, trunc, info = env.step(constant(env))
    assert all(trunc.values()) and not any(term.values()) and env.agents == []
    assert set(rew.values()) == {-7.0 * 4}  # -7 for each of the 4 decisions left
    assert all(np.isfinite(o).all() for o in obs.values())
    assert info["agent_0"]["metrics"]["diverged"] == 1.0 and env.diverged_count == 1


def test_blow_up_beyond_threshold_counts_as_divergence(tiny_reference):
    env = make(tiny_reference, divergence_factor=1e-6)  # any flow exceeds the threshold
    env.reset(seed=0)
    _, rew, _, trunc, info = env.step(constant(env))
    assert all(trunc.values()) and info["agent_0"]["metrics"]["diverged"] == 1.0


def test_actions_map_around_the_classical_coefficient_and_never_below_zero():
    # default Smagorinsky range [0, 2·0.17²]: a = 0 is C_s = 0.17, a = −1 (and below) is 0
    rng = (0.0, 2 * 0.17**2)
    got = action_to_coefficient([-3.0, -1.0, 0.0, 0.5, 1.0, 7.0], rng)
    np.testing.assert_allclose(got, [0, 0, 0.0289, 0.0289 * 1.5, 0.0578, 0.0578], atol=1e-15)
    # SMARL's own symmetric range
    assert action_to_coefficient(0.5, (-ACTION_BOUND, ACTION_BOUND)) == pytest.approx(0.0625)


@pytest.mark.parametrize("closure, value", [("smagorinsky", 0.17**2), ("leith", 0.17**3)])
def test_env_applies_the_coefficient_range(tiny_reference, closure, value):
    env = make(tiny_reference, closure=closure)
    env.reset(seed=0)
    *_, info = env.step(constant(env, -1.0))
    assert env._coeffs[-1][0] == pytest.approx(np.zeros((4, 4, 1)))
    env = make(tiny_reference, closure=closure, coeff_range=[-0.125, 0.125])
    env.reset(seed=0)
    env.step(constant(env, 0.0))
    assert env._coeffs[-1][0] == pytest.approx(np.zeros((4, 4, 1)))
    env = make(tiny_reference, closure=closure)
    env.reset(seed=0)
    env.step(constant(env, 0.0))
    assert env._coeffs[-1][0] == pytest.approx(np.full((4, 4, 1), value))


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"closure": "smag"}, "closure must be one of"),
        ({"coeff_range": [0.1, 0.0]}, "low < high"),
        ({"reward": "l2"}, "reward must be one of"),
        ({"agents_per_side": 3}, "must divide the grid"),
        ({"episode_actions": 0}, "episode_actions must be >= 1"),
        ({"spinup": -1.0}, "spinup must be"),
        ({"spinup": float("nan")}, "spinup must be"),
    ],
)
def test_bad_arguments(tiny_reference, kw, msg):
    with pytest.raises(ValueError, match=msg):
        make(tiny_reference, **kw)


def test_spinup_starts_episodes_from_the_base_closure_state_once(tiny_reference, monkeypatch):
    """With spinup, reset puts the LES at its initial condition advanced by the base closure
    (a = 0, uniform) for spinup time units; the state is computed once per initial condition."""
    from regrl.envs.turbulence import env as env_module
    from regrl.envs.turbulence.solver import Turbulence2D

    env = make(tiny_reference, spinup=0.1)
    env.reset(seed=3)
    started = env.sim.omega.clone()
    (index,) = env._spun_up
    by_hand = Turbulence2D(env.n, nu=env.sim.nu, alpha=env.sim.alpha, dt=env.sim.dt)
    by_hand.omega = torch.as_tensor(env.ref.initial_conditions[index], dtype=torch.float64)
    fresh = by_hand.omega.clone()
    base = action_to_coefficient(np.zeros((4, 4)), env.coeff_range)
    env_module.advance(by_hand, torch.as_tensor(base)[None], "smagorinsky", env.spinup_steps)
    assert env.spinup_steps == round(0.1 / env.sim.dt) > 0
    torch.testing.assert_close(started, by_hand.omega, rtol=0, atol=1e-12)
    assert float((started - fresh).abs().max()) > 1e-3  # it moved away from the initial condition
    env.step(constant(env, 0.0))
    calls = []
    monkeypatch.setattr(env_module, "advance", lambda *a: calls.append(a))
    env.reset(seed=3)  # same initial condition: the cached state, no spin-up steps
    assert calls == [] and torch.equal(env.sim.omega, started)
    plain = make(tiny_reference)
    plain.reset(seed=3)
    torch.testing.assert_close(plain.sim.omega, fresh, rtol=0, atol=1e-12)


def test_leith_closure_runs(tiny_reference):
    env = make(tiny_reference, closure="leith", reward="z1")
    env.reset(seed=1)
    _, rew, *_ = env.step(constant(env, 0.004913))
    # z1 is SMARL's 1 / ||k (Z_LES - Z_ref)||^2 of the spectrum after the step, shared by all agents
    spec = env.sim.enstrophy_spectrum().cpu().numpy()[0]
    expected = 1.0 / weighted_spectrum_error(
        spec, load_reference(tiny_reference).enstrophy_spectrum
    )
    assert len(rew) > 1 and all(r == pytest.approx(expected, rel=1e-9) for r in rew.values())


def test_reference_round_trip_and_bad_files(tiny_reference, tmp_path):
    ref = load_reference(tiny_reference)
    assert ref.n_les == 16 and ref.initial_conditions.shape == (4, 16, 16)
    assert ref.enstrophy_spectrum.shape == (8,) and ref.pdf.shape == (41,)
    assert ref.provenance["spec"]["n_dns"] == 32 and "code_version" in ref.provenance
    mass = float(np.sum(ref.pdf * np.diff(ref.pdf_edges)))
    assert 0.99 < mass <= 1.0 + 1e-9
    with pytest.raises(FileNotFoundError, match="regrl turbulence reference"):
        load_reference(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a valid turbulence reference"):
        load_reference(bad)


def test_metric_functions_by_hand():
    ref = np.array([0.0, 1.0, 0.1, 0.01])
    assert log_spectrum_error(ref * 10.0, ref) == pytest.approx(1.0)
    assert weighted_spectrum_error(ref + np.array([0, 1.0, 0, 0.5]), ref) == pytest.approx(
        1.0 + (3 * 0.5) ** 2
    )
    edges = np.linspace(-2, 2, 5)
    p = pdf_histogram(np.array([-1.5, -0.5, 0.5, 1.5]), edges)
    assert np.allclose(p, 0.25)
    assert hellinger(p, p, edges) == pytest.approx(0.0, abs=1e-12)
    q = pdf_histogram(np.array([-1.5, -1.5]), edges)
    assert hellinger(p, q, edges) == pytest.approx(np.sqrt(1 - np.sqrt(0.25)))
    assert tail_probability(np.array([0.0, 1.0, 3.5, -4.0]), sigma=1.0) == 0.5
    assert kurtosis(np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert kurtosis(rng.normal(size=200_000)) == pytest.approx(3.0, abs=0.05)


def test_observing_a_blown_up_simulation_warns_nothing_and_reads_nan(tiny_reference):
    """The evaluation keeps observing a simulation after it blows up (and reports it): its
    overflowed invariants read NaN without a numpy RuntimeWarning in the user's output (the
    evaluation printed one per blown-up decision); the other simulation's are untouched."""
    import warnings

    from regrl.envs.turbulence.env import agent_points, observe_agents
    from regrl.envs.turbulence.reference import les_from_reference

    ref = load_reference(tiny_reference)
    sim = les_from_reference(ref, 2)
    good = observe_agents(sim, *agent_points(sim.n, 4), np.zeros(sim.n // 2 - 1))
    omega = sim.omega.clone()
    omega[0] *= 1e200  # a blow-up: the invariants overflow to inf, their ratios inf/inf
    sim.omega = omega
    ix, iy = agent_points(sim.n, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        obs = observe_agents(sim, ix, iy, np.zeros(sim.n // 2 - 1))
    assert np.isnan(obs[0, :, :6]).any() and np.array_equal(obs[1], good[1])


def test_les_from_reference_starts_from_given_states_and_refuses_too_many(tiny_reference):
    """More simulations than the reference's initial conditions need their own states (the
    fresh-start evaluation's 32); the states are used as given, and a wrong shape is refused."""
    from regrl.envs.turbulence.reference import les_from_reference

    ref = load_reference(tiny_reference)
    held = len(ref.initial_conditions)
    with pytest.raises(ValueError, match=f"holds {held} initial conditions"):
        les_from_reference(ref, held + 1)
    ics = np.asarray(ref.initial_conditions, dtype=np.float64)  # resolved fields
    states = np.concatenate([ics[::-1], 0.5 * ics[:1]])
    sim = les_from_reference(ref, held + 1, initial=states)
    assert sim.batch == held + 1
    np.testing.assert_allclose(sim.omega.numpy(), states, atol=1e-6 * np.abs(states).max())
    with pytest.raises(ValueError, match="initial states must be"):
        les_from_reference(ref, held + 1, initial=states[:-1])
