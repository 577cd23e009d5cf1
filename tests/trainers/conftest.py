"""Fixtures shared by the trainer tests."""

import dataclasses

import pytest

from regrl.envs.turbulence.reference import generate_reference, load_reference, save_reference
from tests.envs.conftest import TINY

# The tiny 32² → 16² reference of tests/envs/conftest.py with a shorter averaging window: the
# solver-in-the-loop and EKI tests fit constants against it.
TINY_FIT = dataclasses.replace(TINY, average_time=0.4)


@pytest.fixture(scope="module")
def ref_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "ref.npz"
    save_reference(path, generate_reference(TINY_FIT))
    return path


@pytest.fixture(scope="module")
def ref(ref_path):
    return load_reference(ref_path)
