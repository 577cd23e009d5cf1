"""The DNS row of the SMARL evaluation (``dns_rollout``): the closure replaced by resolution,
sampled and summarised exactly as the LES rollouts are."""

import numpy as np
import pytest
import torch

from regrl.envs.turbulence.reference import les_from_reference, load_reference
from regrl.trainers.turbulence.smarl import dns_rollout, rollout


@pytest.fixture(scope="module")
def ref():
    return load_reference()  # the packaged reference: 64² LES grid, 256² DNS


def test_on_the_les_grid_it_is_the_no_closure_les(ref):
    """With the LES's grid, time step and decision interval the DNS row must be the
    no-closure LES rollout: same initial conditions, sample times, pooling and statistics
    (a shifted sample time, a skipped spin-up or other physics would all move it)."""
    times = dict(time_units=0.05, spinup=0.02, sample_every=0.01)
    les = rollout(ref, closure=None, seeds=2, steps_per_action=10, spectra=True, **times)
    dns = dns_rollout(
        ref, sims=2, n_dns=ref.n_les, dt=5e-4, steps_per_check=10, dtype=torch.float64, **times
    )
    for key in ("enstrophy_spectrum_error", "energy_spectrum_error", "tail_ratio"):
        assert dns[key] == pytest.approx(les[key], rel=1e-9, abs=1e-12), key
    np.testing.assert_allclose(dns["enstrophy_spectrum"], les["enstrophy_spectrum"], rtol=1e-9)
    np.testing.assert_allclose(
        dns["per_simulation"]["enstrophy_spectrum_error"],
        les["per_simulation"]["enstrophy_spectrum_error"],
        rtol=1e-9,
    )
    per_sim = np.asarray(dns["per_simulation"]["enstrophy_spectrum"])
    assert per_sim.shape == (2, len(dns["enstrophy_spectrum"]))
    np.testing.assert_allclose(per_sim, les["per_simulation"]["enstrophy_spectrum"], rtol=1e-9)
    np.testing.assert_allclose(per_sim.mean(0), dns["enstrophy_spectrum"], rtol=1e-12)


def test_the_finer_grid_starts_from_the_les_initial_conditions(ref):
    """After one microscopic step on a 128² grid, the filtered DNS is still the LES's initial
    condition: the interpolation and the filter invert each other (a wrong (n/m)² scale, a
    missing filter or other initial fields fail this)."""
    out = dns_rollout(
        ref,
        sims=2,
        n_dns=128,
        dt=1e-7,
        steps_per_check=1,
        spinup=0.0,
        time_units=1e-7,
        sample_every=1e-7,
        dtype=torch.float64,
    )
    start = les_from_reference(ref, 2).enstrophy_spectrum().mean(0).numpy()
    np.testing.assert_allclose(out["enstrophy_spectrum"][1:], start[1:], rtol=1e-4)
    assert out["diverged"] == 0


def test_the_finer_grid_is_filtered_not_sampled(ref):
    """After 0.05 time units the 128² DNS holds scales beyond the LES cut-off; the sampled
    statistics must be those of its sharp-cut-off filter (written here with numpy) at the
    sample time: a missing 1/(n/m)² scale, a wrong sample time or the unevolved initial field
    fail this. (Point sampling would pass: it differs from the filter only through modes
    beyond 2/3 of the DNS's cut-off, which alias onto modes the LES grid's dealiasing drops.)"""
    from regrl.envs.turbulence.sgs import spectral_upsample
    from regrl.envs.turbulence.solver import Turbulence2D

    p, m = ref.provenance["spec"], ref.n_les
    out = dns_rollout(
        ref,
        sims=2,
        n_dns=128,
        dt=2.5e-4,
        steps_per_check=200,
        spinup=0.0,
        time_units=0.05,
        sample_every=0.05,
        dtype=torch.float64,
    )
    dns = Turbulence2D(
        128,
        nu=p["nu"],
        alpha=p["alpha"],
        dt=2.5e-4,
        kf=p["kf"],
        beta=p["beta"],
        batch=2,
        dtype=torch.float64,
    )
    dns.omega = spectral_upsample(torch.as_tensor(ref.initial_conditions[:2]).double(), 128)
    dns.step(200)
    w_hat = np.fft.fft2(dns.omega.numpy())
    k = np.fft.fftfreq(128, 1.0 / 128)
    keep = (np.abs(k)[:, None] < m // 2) & (np.abs(k)[None, :] < m // 2)
    coarse = np.zeros((2, m, m), complex)
    idx = np.r_[0 : m // 2, 128 - m // 2 + 1 : 128]
    coarse[:, np.r_[0 : m // 2, m // 2 + 1 : m][:, None], np.r_[0 : m // 2, m // 2 + 1 : m]] = (
        w_hat * keep
    )[:, idx[:, None], idx]
    view = les_from_reference(ref, 2)
    view.omega = torch.as_tensor(np.fft.ifft2(coarse).real * (m / 128) ** 2)
    assert dns.omega.abs().max() > 0 and np.abs(w_hat * ~keep).max() > 1e-3 * np.abs(w_hat).max()
    np.testing.assert_allclose(
        out["enstrophy_spectrum"][1:], view.enstrophy_spectrum().mean(0).numpy()[1:], rtol=1e-8
    )


def test_a_grid_coarser_than_the_les_is_refused(ref):
    with pytest.raises(ValueError, match="n_dns must be even and >= the LES grid 64"):
        dns_rollout(ref, sims=1, n_dns=32)


def test_an_ensemble_reference_is_what_its_dns_rows_score_perfectly(ref, tmp_path):
    """The reference built from the DNS rows' samples (pooled spectra, its own σ, PDF and
    tails, the old initial conditions) is loadable, and the same DNS rows scored against it
    have zero spectrum error, tail ratio 1 and a zero PDF distance (a wrong σ, bin edges,
    pooling or spectrum fail this)."""
    from regrl.envs.turbulence.reference import save_reference
    from regrl.trainers.turbulence.smarl import ensemble_reference

    times = dict(sims=2, n_dns=128, time_units=0.1, spinup=0.0, sample_every=0.05)
    collect = {}
    first = dns_rollout(ref, collect=collect, **times)
    arrays = ensemble_reference(ref, collect, info=dict(times))
    path = save_reference(tmp_path / "ensemble.npz", arrays)
    new = load_reference(path)
    np.testing.assert_array_equal(new.initial_conditions, ref.initial_conditions)
    np.testing.assert_allclose(new.enstrophy_spectrum, first["enstrophy_spectrum"], rtol=1e-12)
    assert (
        new.provenance["ensemble"]["sims"] == 2 and new.provenance["spec"] == ref.provenance["spec"]
    )
    again = dns_rollout(new, **times)
    assert again["enstrophy_spectrum_error"] < 1e-9
    assert again["tail_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert again["pdf_hellinger"] < 1e-6
    assert new.omega_std != pytest.approx(ref.omega_std, rel=1e-3)  # its own σ, not the old one
