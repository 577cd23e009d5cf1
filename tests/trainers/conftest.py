"""Fixtures shared by the trainer tests."""

import pytest

from regrl.envs.turbulence.reference import (
    ReferenceSpec,
    generate_reference,
    load_reference,
    save_reference,
)

# A tiny but real turbulence reference: a 32² "DNS" filtered to a 16² LES grid (the
# solver-in-the-loop and EKI tests fit constants against it).
TINY_FIT = ReferenceSpec(
    n_dns=32,
    n_les=16,
    nu=1e-3,
    dt=2e-3,
    spinup_time=1.0,
    average_time=0.4,
    sample_every=0.1,
    n_init=4,
    pdf_bins=41,
)


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "ref.npz"
    save_reference(path, generate_reference(TINY_FIT))
    return path


@pytest.fixture(scope="module")
def ref(ref_path):
    return load_reference(ref_path)
