"""benchmarks/turbulence_residual.py: the per-wavenumber residual is the one the evaluation's
spectrum error is made of."""

from __future__ import annotations

import numpy as np
import pytest

from regrl.envs.turbulence.metrics import log_spectrum_error
from tests.benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def res():
    with benchmark_module("turbulence_residual") as module:
        yield module


def test_pooled_residual_is_the_evaluations_error(res):
    """The pooled column's root mean square equals ``log_spectrum_error`` of the simulations'
    mean spectrum (the evaluation's pooled error): a residual taken as the mean of the
    per-simulation logs, or over the dealiased (empty) shells, or from k = 0, differs."""
    rng = np.random.default_rng(0)
    ref = np.r_[0.0, np.exp(-0.3 * np.arange(1, 22)), np.zeros(10)]  # k = 0 and the cut empty
    z = ref * np.exp(rng.normal(0.0, 0.5, (6, ref.size)))
    r = res.residual(z, ref)
    assert list(r["k"]) == list(range(1, 22))
    assert r["error"] == pytest.approx(log_spectrum_error(z.mean(0), ref), rel=1e-12)
    mean_of_logs = np.log10(z[:, 1:22]).mean(0) - np.log10(ref[1:22])
    assert not np.allclose(r["pooled"], mean_of_logs, atol=1e-3)
    assert r["share"].sum() == pytest.approx(1.0)
    assert r["per_simulation"].shape == (6, 21)
