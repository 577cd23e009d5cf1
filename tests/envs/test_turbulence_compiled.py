"""The compiled LES step (``envs/turbulence/compiled.py``) against the eager solver step: the
bare step and SMARL's in-step Smagorinsky field, through the same wrapper uncompiled (fast) and
compiled by inductor (slow: a C++ compile of each graph takes 10-30 s)."""

import pytest
import torch

from regrl.envs.turbulence import Turbulence2D
from regrl.envs.turbulence.compiled import CompiledLES
from regrl.envs.turbulence.solver import StrainScaled

TOL = {torch.float64: 1e-13, torch.float32: 1e-5}


def _pair(dtype, batch=2):
    kw = dict(nu=1e-3, alpha=0.1, dt=1e-3, kf=4, batch=batch, seed=3, dtype=dtype)
    field = 0.01 * torch.rand(batch, 16, 16, generator=torch.Generator().manual_seed(0))
    return Turbulence2D(16, **kw), Turbulence2D(16, **kw), field.to(dtype)


def _check_against_eager(backend, dtype, steps):
    eager, other, field = _pair(dtype)
    runner = CompiledLES(other, steps=steps, backend=backend)
    # 7 = the eager first step + whole calls + a remainder; then the bare step; then a
    # uniform (one per simulation) field
    eager.step(7, eddy_viscosity=StrainScaled(field))
    runner.advance(7, field)
    eager.step(5)
    runner.advance(5)
    eager.step(4, eddy_viscosity=StrainScaled(field[:, 0, 0]))
    runner.advance(4, field[:, 0, 0])
    scale = eager._w_hat.abs().max()
    torch.testing.assert_close(other._w_hat, eager._w_hat, rtol=0, atol=TOL[dtype] * scale)
    assert (other.steps, other.time) == (eager.steps, pytest.approx(eager.time))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("steps", [1, 3])
def test_uncompiled_wrapper_equals_the_solver_step(dtype, steps):
    _check_against_eager("eager", dtype, steps)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["fx", "dynamo"])
def test_compiled_step_equals_the_solver_step(backend):
    _check_against_eager(backend, torch.float64, 3)


@pytest.mark.parametrize("uniform", [True, False])
def test_fresh_solver_starts_the_grid_history(uniform):
    # the first step after a reset runs eager with the field on the grid (the compiled step
    # continues a grid AB2 history): also for one coefficient per simulation and no closure
    eager, other, field = _pair(torch.float64)
    value = field[:, 0, 0] if uniform else None
    eager.step(4, eddy_viscosity=None if value is None else StrainScaled(value))
    CompiledLES(other, steps=1, backend="eager").advance(4, value)
    torch.testing.assert_close(other._w_hat, eager._w_hat, rtol=0, atol=1e-13)
    assert other._flux_prev is not None


def test_unknown_backend_and_unsupported_solver_are_refused():
    _, sim, _ = _pair(torch.float64)
    with pytest.raises(ValueError, match="backend"):
        CompiledLES(sim, backend="nope").advance(3)
    beta = Turbulence2D(16, nu=1e-3, alpha=0.1, dt=1e-3, beta=1.0, seed=0)
    with pytest.raises(ValueError, match="β = 0"):
        CompiledLES(beta, backend="eager").advance(3)
