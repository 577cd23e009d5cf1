"""benchmarks/turbulence_fresh_starts.py: its starts are reproducible spun-up LES states, its
report's columns are the pooled and per-simulation statistics of the rows it holds, and a rerun
against another setup is refused."""

import json
import sys

import numpy as np
import pytest

from regrl.envs.turbulence.metrics import paired_bootstrap, pooled_error_difference
from regrl.envs.turbulence.reference import les_from_reference, load_reference
from regrl.trainers.stats import t_interval
from tests.benchmark_modules import benchmark_module

FAMILY, ROOTS = "smagorinsky_hyper8", (0.03, 0.38)


def test_fresh_starts_are_reproducible_spun_up_states():
    ref = load_reference()
    with benchmark_module("turbulence_fresh_starts") as fresh:
        a = fresh.fresh_starts(ref, FAMILY, ROOTS, sims=2, seed=7, spin=0.02)
        b = fresh.fresh_starts(ref, FAMILY, ROOTS, sims=2, seed=7, spin=0.02)
        c = fresh.fresh_starts(ref, FAMILY, ROOTS, sims=2, seed=8, spin=0.02)
    assert a.shape == (2, ref.n_les, ref.n_les) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert not np.allclose(a[0], a[1])  # the batch's elements are different draws
    raw = les_from_reference(ref, 2, initial=np.zeros((2, ref.n_les, ref.n_les)))
    raw.random_initial_condition(7)
    drift = np.abs(a - raw.omega.numpy()).max()
    assert drift > 1e-3 * np.abs(a).max()  # the spin-up advanced the random fields


def _row(arm, spectra, tails, path=None):
    per = {
        "simulation": list(range(len(spectra))),
        "enstrophy_spectrum": spectra.tolist(),
        "enstrophy_spectrum_error": [0.0] * len(spectra),
        "tail_ratio": list(tails),
    }
    return {
        "arm": arm,
        "name": arm,
        "path": path,
        "diverged": 0,
        "simulations": len(spectra),
        "per_simulation": per,
        "enstrophy_spectrum_error": 0.0,
        "tail_ratio": 1.0,
    }


def test_report_columns_are_the_rows_statistics(tmp_path):
    ref = load_reference()
    z = np.asarray(ref.enstrophy_spectrum)
    rng = np.random.default_rng(0)
    base = z * np.exp(rng.normal(0, 0.2, (6, z.size)))
    seeds = [base * np.exp(rng.normal(0, 0.05, base.shape)) * 0.9 for _ in range(3)]
    with benchmark_module("turbulence_fresh_starts") as fresh:
        rows = [_row(fresh.CONSTANT, base, [1.0] * 6)]
        rows += [_row("learned", s, [1.1] * 6, path=f"p{i}") for i, s in enumerate(seeds)]
        out = tmp_path / "fresh.json"
        args = {
            "reference": str(tmp_path / "none"),
            "family": FAMILY,
            "roots": list(ROOTS),
            "sims": 6,
            "start_seed": 1,
            "spin": 1.0,
            "time": 1.0,
            "spinup": 0.1,
        }
        out.write_text(json.dumps({"args": args, "rows": rows}))
        fresh.load_reference = lambda path: ref  # the file names no real reference
        text = fresh.report(out)
    line = next(x for x in text.splitlines() if x.startswith("| learned |"))
    mean, half = t_interval([pooled_error_difference(s, base, z) for s in seeds])
    assert f"{mean:+.4f} ± {half:.4f}" in line
    point, low, high = paired_bootstrap(np.stack(seeds), base, z, resamples=2000)
    assert f"{point:+.4f} [{low:+.4f}, {high:+.4f}]" in line
    assert "+0.1000 ± 0.0000" in line  # tails: 1.1 − 1.0 in every simulation and seed
    assert "| 3 |" in line and "0/18" in line


def test_a_rerun_against_another_setup_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "fresh.json"
    out.write_text(json.dumps({"args": {"sims": 99}, "rows": [{"arm": "x", "path": None}]}))
    argv = [
        "turbulence_fresh_starts.py",
        "--out",
        str(out),
        "--sims",
        "2",
        "--spin",
        "0.01",
        "--arm",
        f"x={out}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with benchmark_module("turbulence_fresh_starts") as fresh:
        with pytest.raises(SystemExit, match="another setup"):
            fresh.main()
    assert json.loads(out.read_text())["rows"] == [{"arm": "x", "path": None}]  # kept
