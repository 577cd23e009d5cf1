import pytest

from envs.turbulence.reference import ReferenceSpec, generate_reference, save_reference

# A tiny but real reference: 32² "DNS" filtered to a 16² LES grid, short spin-up.
TINY = ReferenceSpec(n_dns=32, n_les=16, nu=1e-3, dt=2e-3, spinup_time=1.0, average_time=0.5,
                     sample_every=0.1, n_init=4, pdf_bins=41)


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("turb") / "tiny_ref.npz"
    save_reference(path, generate_reference(TINY))
    return path
