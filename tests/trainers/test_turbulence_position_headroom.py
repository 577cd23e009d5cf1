"""benchmarks/turbulence_position_headroom.py: its patterns are the solver's own forcing at the
agent points, and the field its fixed 'policy' sets through the env's agents reaches the
closure as coefficient × (1 + a·P) on the LES grid."""

import json

import numpy as np
import pytest

from regrl.envs.turbulence import families
from regrl.envs.turbulence.families.base import coefficient_fields
from regrl.envs.turbulence.solver import Turbulence2D, _to_grid
from regrl.trainers.turbulence.smarl import closure_coefficients
from tests.benchmark_modules import benchmark_module

N, KF, A = 64, 4, 16


def test_forcing_pattern_is_the_solvers_forcing_at_the_agent_points():
    sim = Turbulence2D(N, nu=1e-3, alpha=0.1, dt=1e-3, kf=KF)
    forcing = _to_grid(sim._forcing_hat(), N).numpy()  # k_f (cos k_f x + cos k_f y)
    idx = np.arange(A) * (N // A)
    at_agents = forcing[np.ix_(idx, idx)].reshape(-1)
    with benchmark_module("turbulence_position_headroom") as probe:
        p = probe.pattern("forcing", A, KF)
        s = probe.pattern("strength", A, KF)
    np.testing.assert_allclose(p, at_agents / (2 * KF), atol=1e-12)
    # strength: +1 where both forcing parts are +1 or both -1, -1 where they cancel
    c = np.cos(KF * 2 * np.pi * idx / N)
    np.testing.assert_allclose(s, np.outer(c, c).reshape(-1), atol=1e-12)
    assert abs(p.mean()) < 1e-12 and abs(s.mean()) < 1e-12  # the mean coefficient is kept
    assert set(np.round(p, 6)) == {-1.0, -0.5, 0.0, 0.5, 1.0}  # every phase is seen


def test_the_field_reaches_the_closure_as_coefficient_times_one_plus_a_p():
    family = families.get_family("smagorinsky_hyper8")
    coeff = family.coefficient((0.03, 0.38))
    sim = Turbulence2D(N, nu=1e-3, alpha=0.1, dt=1e-3, kf=KF, batch=2)
    with benchmark_module("turbulence_position_headroom") as probe:
        values = probe.modulated(coeff, "strength", 0.5, A, KF)
        policy = probe.fixed_policy(values)
    obs = lambda s: np.zeros((s.batch, A * A, 3), np.float32)  # noqa: E731 (ignored)
    c = closure_coefficients(sim, family.name, None, policy, A, obs)
    fields = coefficient_fields(c, N)
    x = 2 * np.pi * np.arange(N) / N
    want = 1 + 0.5 * np.outer(np.cos(KF * x), np.cos(KF * x))
    assert len(fields) == 2
    for field, value in zip(fields, coeff):
        assert field.shape == (2, N, N)
        np.testing.assert_allclose(field[1].numpy(), value * want, rtol=1e-10, atol=1e-14)


def test_an_amplitude_that_makes_a_coefficient_negative_is_refused():
    with benchmark_module("turbulence_position_headroom") as probe:
        assert (probe.modulated((1.0, 2.0), "forcing", 1.0, A, KF) >= 0).all()
        with pytest.raises(ValueError, match="negative"):
            probe.modulated((1.0, 2.0), "forcing", -1.5, A, KF)
        with pytest.raises(ValueError, match="pattern must be one of"):
            probe.pattern("vorticity", A, KF)


def test_the_report_pairs_every_row_against_the_unmodulated_constant(tmp_path):
    def row(name, errors, tails):
        return {
            "name": name,
            "enstrophy_spectrum_error": float(np.mean(errors)),
            "tail_ratio": float(np.mean(tails)),
            "diverged": 0,
            "simulations": len(errors),
            "per_simulation": {
                "simulation": list(range(len(errors))),
                "enstrophy_spectrum_error": errors,
                "tail_ratio": tails,
            },
        }

    data = {
        "args": {
            "family": "smagorinsky_hyper8",
            "roots": [0.03, 0.38],
            "sims": 3,
            "time": 20,
            "spinup": 2,
        },
        "rows": [
            row("constant", [0.02, 0.03, 0.04], [1.0, 1.0, 1.0]),
            row("forcing a=+0.5", [0.01, 0.02, 0.03], [1.1, 1.1, 1.1]),  # -0.01 on every sim
        ],
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with benchmark_module("turbulence_position_headroom") as probe:
        text = probe.report(path)
    line = next(ln for ln in text.splitlines() if ln.startswith("| forcing a=+0.5"))
    assert "-0.0100 ± 0.0000 *" in line and "+0.1000 ± 0.0000 *" in line
