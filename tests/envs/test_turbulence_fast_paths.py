"""The cheaper paths of the SMARL LES's step and decision (issue 21 §5, closure cost) against the
paths they replace: the spectrum as one matrix product against its direct sums, the in-step
field's kept work arrays against the out-of-place (autograd) step, the interpolation as one
matrix against the separable einsum, and the numpy observations against the torch ones."""

import numpy as np
import pytest
import torch

from regrl.envs.turbulence import Turbulence2D
from regrl.envs.turbulence.closures import _cardinal_matrix, upsample_agent_actions
from regrl.envs.turbulence.env import agent_points, observe_agents, observe_agents_torch
from regrl.envs.turbulence.solver import StrainScaled

D = torch.float64


@pytest.mark.parametrize("dealias", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_spectrum_matrix_equals_the_direct_sums(dealias, dtype):
    # a state with no symmetry: a wrong weight (a dropped mirror row, the k_y = 0 column
    # counted twice) moves some bin by far more than round-off
    sim = Turbulence2D(
        32, nu=1e-3, alpha=0.1, dt=1e-3, seed=5, batch=3, dealias=dealias, dtype=dtype
    )
    sim.step(4)
    direct = sim._spectrum_sums(torch.view_as_real(sim._w_hat).square().sum(-1))
    tol = 1e-12 if dtype == D else 1e-5
    torch.testing.assert_close(sim.enstrophy_spectrum(), direct, rtol=tol, atol=0)
    assert sim._spectrum_matrix is not None  # the 32² grid takes the matrix path


def test_large_grid_keeps_the_direct_sums():
    sim = Turbulence2D(256, nu=1e-4, alpha=0.1, dt=1e-4, seed=1)
    z = sim.enstrophy_spectrum()
    assert sim._spectrum_matrix is None  # a 45 MB matrix per call would be slower
    torch.testing.assert_close(z[:, 0] + 2 * z[:, 1:].sum(1), sim.enstrophy(), rtol=1e-12, atol=0)


def _field_run(track: bool, batch: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    field = upsample_agent_actions(2e-3 * torch.rand(batch, 4, 4, generator=gen, dtype=D), 32)
    if track:  # autograd records: the step builds its grid arrays out of place
        field.requires_grad_(True)
    sim = Turbulence2D(32, nu=1e-3, alpha=0.1, dt=2e-3, batch=batch, seed=3)
    sim.step(2)  # bare steps first: the spectral history, then the switch to the grid one
    sim.step(5, eddy_viscosity=StrainScaled(field))
    sim.step(2, eddy_viscosity=0.01)  # a uniform viscosity continues with the grid history
    sim.step(6, eddy_viscosity=StrainScaled(field, pointwise=True))
    sim.detach_()  # the history is then a detached view of a kept array
    sim.step(3, eddy_viscosity=StrainScaled(field))
    return sim.omega.detach()


@pytest.mark.parametrize("batch", [2, 20])  # 20: arrays over 256 KiB, allocated per step
def test_kept_work_arrays_give_the_out_of_place_step(batch):
    # the products of a step must not overwrite the AB2 history they alternate with
    kept, fresh = _field_run(track=False, batch=batch), _field_run(track=True, batch=batch)
    assert (kept - fresh).abs().max() < 1e-12 * fresh.abs().max()


def test_interpolation_matrix_equals_the_separable_product():
    gen = torch.Generator().manual_seed(0)
    actions = torch.rand(3, 4, 4, generator=gen, dtype=D)
    w = _cardinal_matrix(4, 32, D, torch.device("cpu"))
    separable = torch.einsum("ia,bac,jc->bij", w, actions, w)
    torch.testing.assert_close(upsample_agent_actions(actions, 32), separable, rtol=0, atol=1e-14)
    # a transposed agent lattice (x and y swapped) would not pass
    assert (upsample_agent_actions(actions.transpose(1, 2), 32) - separable).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numpy_observations_equal_the_torch_ones(dtype):
    n = 32
    sim = Turbulence2D(n, nu=1e-3, alpha=0.1, dt=1e-3, seed=6, batch=3, dtype=dtype)
    sim.step(5)
    ix, iy = agent_points(n, 4)
    log_ref = np.linspace(-3.0, -8.0, n // 2 - 1)
    expected = observe_agents_torch(sim, ix, iy, torch.as_tensor(log_ref, dtype=dtype))
    expected = expected.numpy().astype(np.float32)
    got = observe_agents(sim, ix, iy, log_ref)
    assert got.dtype == np.float32 and got.shape == expected.shape == (3, 16, 6 + n // 2 - 1)
    # the local part the same operations in the same precision; log10 may differ by an ulp
    np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == D else 1e-5, atol=1e-6)
    np.testing.assert_array_equal(observe_agents(sim, ix, iy, log_ref, count=2), got[:2])
    spectrum = sim.enstrophy_spectrum().numpy()
    np.testing.assert_array_equal(observe_agents(sim, ix, iy, log_ref, spectrum), got)
