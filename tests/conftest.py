"""Shared fixtures. Ray binds to loopback in tests; one Ray session per test module."""

import os

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from regrl.trainers.ray_session import init_ray

    init_ray()
    yield ray
    ray.shutdown()
