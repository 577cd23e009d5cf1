import pytest
import torch

from regrl.envs.turbulence.reference import ReferenceSpec, generate_reference, save_reference

# A tiny but real reference: 32² "DNS" filtered to a 16² LES grid, short spin-up.
TINY = ReferenceSpec(
    n_dns=32,
    n_les=16,
    nu=1e-3,
    dt=2e-3,
    spinup_time=1.0,
    average_time=0.5,
    sample_every=0.1,
    n_init=4,
    pdf_bins=41,
)


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("turb") / "tiny_ref.npz"
    save_reference(path, generate_reference(TINY))
    return path


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """Grids of 16²–64² gain nothing from intra-op threads, and on a shared 2-core machine
    busy-waiting OpenMP threads can slow each step down many-fold; restored
    afterwards. Applies to every test under tests/envs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
