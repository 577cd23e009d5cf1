"""benchmarks/turbulence_state_headroom.py: its features are the agents' own observations of
strain and rotation, its rank pattern keeps the mean coefficient, and the 'policy' it runs
reaches the closure as coefficient × (1 + a·P) at the agent points."""

import numpy as np
import pytest
import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.env import agent_points, observe_agents
from regrl.envs.turbulence.families.base import coefficient_fields
from regrl.envs.turbulence.solver import Turbulence2D
from regrl.trainers.turbulence.smarl import closure_coefficients
from tests.benchmark_modules import benchmark_module

N, A = 64, 16


def _sim(batch=2):
    """``batch`` simulations, each from its own smooth random field."""
    fields = []
    for b in range(batch):
        one = Turbulence2D(N, nu=1e-3, alpha=0.1, dt=1e-3, kf=4)
        one.random_initial_condition(seed=b)
        fields.append(one.omega[0])
    sim = Turbulence2D(N, nu=1e-3, alpha=0.1, dt=1e-3, kf=4, batch=batch)
    sim.omega = torch.stack(fields)
    return sim


def test_rank_pattern_is_zero_mean_bounded_and_follows_the_feature():
    with benchmark_module("turbulence_state_headroom") as probe:
        values = np.array([[3.0, -1.0, 10.0, 0.5], [0.0, 0.0, 1.0, 2.0]])
        p = probe.rank_pattern(values)
    np.testing.assert_allclose(p[0], [1 / 3, -1.0, 1.0, -1 / 3])  # ordered as the values
    np.testing.assert_allclose(p.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(p[1], [-1.0, -1 / 3, 1 / 3, 1.0])  # a tie broken by order


def test_features_are_strain_and_rotation_where_the_flow_has_them():
    """At the agent point with the largest ω² the 'rotation' pattern is +1 and the point with
    the largest |S|² is +1 of 'strain': the features read the right observation columns
    (tr S² column 1, tr R² = −ω²/2 column 2) with the right signs."""
    sim = _sim(batch=1)
    ix, iy = agent_points(N, A)
    obs = observe_agents(sim, ix, iy, np.zeros(N // 2 - 1))
    u_x, u_y, v_x, v_y = (sim._phys(op)[0].numpy() for op in _velocity_gradient_ops(sim))
    pts = (np.ravel(ix), np.ravel(iy))
    omega2 = ((v_x - u_y) ** 2)[pts]
    strain2 = (u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2)[pts]
    with benchmark_module("turbulence_state_headroom") as probe:
        rot = probe.rank_pattern(probe.feature(obs, "rotation"))[0]
        strain = probe.rank_pattern(probe.feature(obs, "strain"))[0]
        ow = probe.feature(obs, "okubo_weiss")[0]
        with pytest.raises(ValueError, match="feature must be one of"):
            probe.feature(obs, "vorticity")
    assert rot[np.argmax(omega2)] == 1.0 and rot[np.argmin(omega2)] == -1.0
    assert strain[np.argmax(strain2)] == 1.0 and strain[np.argmin(strain2)] == -1.0
    # Okubo-Weiss (strain minus rotation, each in its RMS units) ranks the most rotating
    # point below the most straining one
    assert ow[np.argmax(strain2)] > ow[np.argmax(omega2)]


def _velocity_gradient_ops(sim):
    u_hat, v_hat = sim._to_phys[0], sim._to_phys[1]
    ikx, iky = 1j * sim._kx, 1j * sim._ky
    ops = [ikx * u_hat, iky * u_hat, ikx * v_hat, iky * v_hat]
    return ops


def test_the_policy_reaches_the_closure_as_coefficient_times_one_plus_a_p():
    family = families.get_family("smagorinsky_hyper8")
    coeff = family.coefficient((0.03, 0.38))
    sim = _sim()
    ix, iy = agent_points(N, A)
    obs_fn = lambda s: observe_agents(s, ix, iy, np.zeros(N // 2 - 1))  # noqa: E731
    with benchmark_module("turbulence_state_headroom") as probe:
        policy = probe.state_policy(coeff, "rotation", 0.5)
        want = 1 + 0.5 * probe.rank_pattern(probe.feature(obs_fn(sim), "rotation"))
        with pytest.raises(ValueError, match="amplitude"):
            probe.state_policy(coeff, "rotation", 1.5)
    c = closure_coefficients(sim, family.name, None, policy, A, obs_fn)
    fields = coefficient_fields(c, N)
    assert len(fields) == 2
    for field, value in zip(fields, coeff):
        assert field.shape == (2, N, N)
        at_agents = field[:, ix, iy].reshape(2, -1).numpy()  # interpolation passes the points
        np.testing.assert_allclose(at_agents, value * want, rtol=1e-9, atol=1e-14)
        # the two simulations see different flows, so their fields differ
        assert not torch.allclose(field[0], field[1])
