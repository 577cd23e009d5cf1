"""Ensemble Kalman inversion (trainers/turbulence/eki.py): the update by hand, its convergence
on a linear problem, and the inversion moving a family's constant toward a reference spectrum
that needs more (or less) dissipation."""

import dataclasses

import numpy as np
import pytest
import torch

from regrl.envs.turbulence import families
from regrl.trainers.turbulence import eki


def test_eki_update_by_hand():
    """G(θ) = 2θ, members θ = 0, 2 (C^{θG} = 2, C^{GG} = 4 with the 1/J covariances), y = 6:
    Γ = 0 gives the gain 1/2 and both members at the solution 3; Γ = 4 the gain 1/4."""
    theta = np.array([[0.0], [2.0]])
    g = 2 * theta
    y, eta = np.array([6.0]), np.zeros((2, 1))
    out = eki.eki_update(theta, g, y, np.zeros((1, 1)), eta)
    np.testing.assert_allclose(out, [[3.0], [3.0]], rtol=1e-12)
    out = eki.eki_update(theta, g, y, np.array([[4.0]]), eta)
    np.testing.assert_allclose(out, [[1.5], [2.5]], rtol=1e-12)
    # the perturbation enters as data: η = +2 on member 0 moves it like y = 8 would
    out = eki.eki_update(theta, g, y, np.array([[4.0]]), np.array([[2.0], [0.0]]))
    np.testing.assert_allclose(out, [[2.0], [2.5]], rtol=1e-12)


def test_eki_converges_to_the_least_squares_solution_of_a_linear_problem():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 2))
    truth = np.array([0.7, -1.3])
    y = a @ truth
    gamma = 1e-4 * np.eye(6)
    theta = rng.normal(size=(40, 2))
    for _ in range(30):
        eta = rng.multivariate_normal(np.zeros(6), gamma, size=40)
        theta = eki.eki_update(theta, theta @ a.T, y, gamma, eta)
    np.testing.assert_allclose(theta.mean(0), truth, atol=0.02)


@pytest.mark.parametrize("scale, direction", [(1.8, 1), (0.2, -1)])
def test_eki_moves_the_constant_toward_a_reference_that_needs_more_or_less_dissipation(
    ref, scale, direction
):
    """The reference spectrum replaced by the LES's own under C_s² = scale · base: a few EKI
    iterations move the ensemble-mean C_s² up (more dissipation), resp. down, from the base."""
    torch.set_num_threads(1)
    fam = families.get_family("smagorinsky")
    spec = eki.EKISpec(
        closure="smagorinsky", members=8, iterations=4, window=0.2, sample_every=5, spinup=0.2
    )
    sim = eki._les(ref, 8)
    c = np.full((8, 1), scale * fam.base()[0])
    with torch.no_grad():
        families.advance(sim, fam, torch.as_tensor(c)[:, None, None, :], 100)
    k_cut = int(np.flatnonzero(ref.enstrophy_spectrum > 1e-30).max()) + 1
    target = np.zeros_like(ref.enstrophy_spectrum)
    target[1:k_cut] = 10 ** eki.forward(
        sim, fam, c, dataclasses.replace(spec, window=1.0), k_cut
    ).mean(0)
    shifted = dataclasses.replace(ref, enstrophy_spectrum=target)
    result = eki.fit_eki(shifted, spec, say=lambda m: None)
    assert len(result["history"]) == 4 and np.isfinite(result["coeff"]).all()
    low, high = fam.default_range()[0]
    assert low <= result["coeff"][0] <= high
    moved = result["coeff"][0] - fam.base()[0]
    assert direction * moved > 0.1 * fam.base()[0]
    assert result["roots"][0] ** 2 == pytest.approx(result["coeff"][0], rel=1e-12)


def test_eki_spec_refuses_bad_settings():
    with pytest.raises(ValueError, match="members"):
        eki.EKISpec(members=1)
    with pytest.raises(ValueError, match="window"):
        eki.EKISpec(window=0.0)
    with pytest.raises(ValueError, match="closure must be one of"):
        eki.EKISpec(closure="nope")
