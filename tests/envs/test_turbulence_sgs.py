"""Exact sub-grid term, Smagorinsky model term, least-squares local coefficient and the closure
dataset (envs/turbulence/sgs.py, dataset.py) against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from regrl.envs.turbulence.closures import smagorinsky_viscosity
from regrl.envs.turbulence.dataset import DatasetSpec, build_dataset, load_dataset, save_dataset
from regrl.envs.turbulence.reference import load_reference
from regrl.envs.turbulence.sgs import (
    eddy_viscosity_term,
    exact_sgs,
    least_squares_cs2,
    les_filter,
    project,
    region_sums,
    smagorinsky_unit_term,
    spectral_upsample,
    step_with_sgs,
)
from regrl.envs.turbulence.solver import Turbulence2D

D = torch.float64


def grid(n):
    x = torch.arange(n, dtype=D) * 2 * math.pi / n
    return torch.meshgrid(x, x, indexing="ij")


def pair(omega_dns, n_les, kind="spectral"):
    """(dns, les) solvers holding a DNS field [B, n, n] and its filtered LES field."""
    n = omega_dns.shape[-1]
    dns = Turbulence2D(n, nu=0.0, alpha=0.0, dt=1e-3, forcing=False, batch=len(omega_dns))
    dns.omega = omega_dns
    les = Turbulence2D(n_les, nu=0.0, alpha=0.0, dt=1e-3, forcing=False, batch=len(omega_dns))
    les.omega = les_filter(omega_dns, n_les, kind)
    return dns, les


def test_sgs_vanishes_for_a_field_resolved_by_the_les():
    """All modes below the LES 2/3-rule cut-off: the LES Jacobian is exact, Π ≡ 0."""
    g = torch.Generator().manual_seed(0)
    w = project(torch.randn(2, 16, 16, generator=g, dtype=D))  # |k| < 16/3
    w64 = spectral_upsample(w, 64)
    for kind in ("spectral",):
        dns, les = pair(w64, 16, kind)
        pi = exact_sgs(dns, les, kind)
        assert float(pi.abs().max()) < 1e-12 * float(w.abs().max()) ** 2 * 100


def test_sgs_of_two_unresolved_modes_matches_the_hand_computed_triad():
    """ω = cos(p·x) + 2 cos(q·x), p = (9, 1), q = (8, 3), both above the 16² cut-off:
    J(ψ, ω) = AB c (1/|p|² − 1/|q|²) sin(p·x) sin(q·x), c = p_y q_x − p_x q_y = −19, whose
    resolved part is ½ AB c (1/82 − 1/73) cos((p − q)·x) = (171/5986) cos(x − 2y);
    the filtered field is 0, so Π is exactly that."""
    x, y = grid(64)
    w = torch.cos(9 * x + y) + 2 * torch.cos(8 * x + 3 * y)
    dns, les = pair(w[None], 16)
    assert float(les.omega.abs().max()) < 1e-12
    xl, yl = grid(16)
    expected = 171.0 / 5986.0 * torch.cos(xl - 2 * yl)
    torch.testing.assert_close(exact_sgs(dns, les)[0], expected, atol=1e-12, rtol=0)


def test_sgs_is_equivariant_under_reflections_of_the_pseudoscalar_vorticity():
    """Reflecting the flow maps ω to −ω∘R and Π must follow: Π[−ωᵀ] = −Π[ω]ᵀ and
    Π[−ω(−x, y)] = −Π[ω](−x, y)."""
    g = torch.Generator().manual_seed(1)
    w = project(torch.randn(1, 64, 64, generator=g, dtype=D))
    pi = exact_sgs(*pair(w, 16))
    pi_t = exact_sgs(*pair(-w.transpose(-2, -1), 16))
    torch.testing.assert_close(pi_t, -pi.transpose(-2, -1), atol=1e-10, rtol=0)
    mirror = lambda f: torch.roll(torch.flip(f, (-2,)), 1, -2)  # noqa: E731, i -> −i mod n
    torch.testing.assert_close(exact_sgs(*pair(-mirror(w), 16)), -mirror(pi), atol=1e-10, rtol=0)


def test_smagorinsky_unit_term_of_a_single_mode():
    """ω = cos(3x + 2y): ν_e = Δ²⟨|S̄|²⟩^½ = (2π/16)² √½ is uniform, so
    M = ∇×∇·(−2ν_e S̄) = −ν_e ∇²ω = 13 ν_e cos(3x + 2y)."""
    x, y = grid(16)
    sim = Turbulence2D(16, nu=0.0, alpha=0.0, dt=1e-3, forcing=False)
    sim.omega = torch.cos(3 * x + 2 * y)
    nu0 = (2 * math.pi / 16) ** 2 * math.sqrt(0.5)
    torch.testing.assert_close(
        smagorinsky_unit_term(sim)[0], 13 * nu0 * torch.cos(3 * x + 2 * y), atol=1e-13, rtol=0
    )


def test_step_with_sgs_equals_the_solver_eddy_viscosity_step():
    """A field closure returning the solver's own Π(ν_e) reproduces ``step(eddy_viscosity)``."""
    g = torch.Generator().manual_seed(2)
    a = Turbulence2D(16, nu=1e-3, alpha=0.1, dt=1e-3, batch=2, seed=3)
    b = Turbulence2D(16, nu=1e-3, alpha=0.1, dt=1e-3, batch=2, seed=3)
    cs2 = 0.05 * torch.rand(2, 16, 16, generator=g, dtype=D)
    for _ in range(5):
        a.step(1, eddy_viscosity=smagorinsky_viscosity(a, cs2))
    step_with_sgs(b, lambda s: eddy_viscosity_term(s, smagorinsky_viscosity(s, cs2)), 5)
    torch.testing.assert_close(b.omega, a.omega, atol=1e-12, rtol=0)


def test_region_sums_are_centred_on_the_agent_points():
    """8² grid, 2×2 agents at indices 0 and 4: agent 0's region is rows/cols {6, 7, 0, 1}."""
    f = torch.zeros(1, 8, 8, dtype=D)
    f[0, 0, 0], f[0, 7, 1], f[0, 2, 0], f[0, 5, 3] = 1.0, 2.0, 4.0, 8.0
    expected = torch.tensor([[[3.0, 0.0], [4.0, 8.0]]], dtype=D)
    torch.testing.assert_close(region_sums(f, 2), expected)


def test_least_squares_coefficient_recovers_a_known_one_and_the_hand_value():
    g = torch.Generator().manual_seed(4)
    m = torch.randn(1, 8, 8, generator=g, dtype=D)
    torch.testing.assert_close(
        least_squares_cs2(0.02 * m, m, 2), torch.full((1, 2, 2), 0.02, dtype=D)
    )
    m = torch.zeros(1, 4, 4, dtype=D)
    pi = torch.zeros(1, 4, 4, dtype=D)
    m[0, 0, 0], m[0, 3, 3], pi[0, 0, 0], pi[0, 3, 3] = 1.0, 2.0, 3.0, 1.0
    # agent (0, 0)'s region is rows/cols {3, 0}: C = (3·1 + 1·2) / (1 + 4) = 1; others M = 0
    cs2 = least_squares_cs2(pi, m, 2)
    assert float(cs2[0, 0, 0]) == pytest.approx(1.0)
    assert float(cs2.abs().sum()) == pytest.approx(1.0)


def test_upsample_then_filter_is_the_identity():
    g = torch.Generator().manual_seed(5)
    w = project(torch.randn(1, 16, 16, generator=g, dtype=D), dealias=False)
    torch.testing.assert_close(les_filter(spectral_upsample(w, 64), 16), w, atol=1e-12, rtol=0)


TINY = DatasetSpec(
    n_dns=64,
    n_les=16,
    snapshots=4,
    heldout_snapshots=2,
    spinup_time=0.02,
    sample_every=0.01,
    dt=1e-3,
    train_trajectories=2,
    heldout_trajectories=1,
)


def test_tiny_dataset_shapes_splits_and_targets(tmp_path):
    ref = load_reference()
    lines = []
    arrays = build_dataset(ref, TINY, say=lines.append)
    assert arrays["omega"].shape == (6, 16, 16) and arrays["pi"].shape == (6, 16, 16)
    assert arrays["obs"].shape == (6, 16, 6 + 7) and arrays["cs2"].shape == (6, 16)
    assert arrays["split"].tolist() == [0, 0, 0, 0, 1, 1]
    assert arrays["trajectory"].tolist() == [0, 1, 0, 1, 2, 2]
    assert np.all(np.abs(arrays["cs2"]) <= 0.125)
    assert any("dns snapshot" in m for m in lines)
    # cs2_raw is the region least-squares fit of pi by m
    cs2 = least_squares_cs2(
        torch.as_tensor(arrays["pi"], dtype=D), torch.as_tensor(arrays["m"], dtype=D), 4
    )
    np.testing.assert_allclose(arrays["cs2_raw"], cs2.reshape(6, 16).numpy(), rtol=1e-4, atol=1e-6)
    path = save_dataset(tmp_path / "d.npz", arrays)
    assert load_dataset(path)["pi"].shape == (6, 16, 16)


def test_bad_dataset_input_is_named():
    with pytest.raises(ValueError, match="filter must be one of"):
        DatasetSpec(filter="box")
    with pytest.raises(FileNotFoundError, match="regrl turbulence dataset"):
        load_dataset("/nonexistent/d.npz")
