"""RIFT traffic env in raw-control mode (the PPO-from-scratch baseline) and the IDM
demonstrations recorded with it; one MetaDrive engine for the module."""

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

pytest.importorskip("metadrive")  # the `traffic` extra

from regrl.envs.traffic import parallel_env, scene  # noqa: E402
from regrl.envs.traffic.demos import DemoSpec, record_demos, save_demos  # noqa: E402


@pytest.fixture(scope="module")
def env():
    e = parallel_env(
        num_cbv=2, map="intersection", horizon=60, action_mode="raw", traffic_density=0.05
    )
    yield e
    e.close()


def test_raw_mode_api(env):
    parallel_api_test(env, num_cycles=20)
    assert env.action_space("cbv_0").shape == (2,)


def test_hard_left_at_full_throttle_leaves_the_road_and_terminates(env):
    env.reset(seed=0)
    done = {}
    for _ in range(env.horizon):
        obs, rew, term, trunc, infos = env.step(
            {a: np.array([1.0, 1.0], np.float32) for a in env.agents}
        )
        for a in term:
            if term[a]:
                done[a] = infos[a]["metrics"]
                assert rew[a] < -4.0  # −5 off-road (or the collision penalty)
        if not env.agents:
            break
    assert done, "no CBV terminated while circling at full throttle"
    assert all(m["offroad"] or m["collision"] for m in done.values())
    assert not set(done) & set(env.agents)  # terminated agents leave env.agents


def test_demos_are_deterministic_and_well_formed(env, tmp_path):
    spec = DemoSpec(episodes=1, seed=3, horizon=30, every=5)
    try:
        a = record_demos(spec, env=env)
        b = record_demos(spec, env=env)
    finally:
        env.idm_cbvs = False
    assert set(a) == {
        "obs",
        "future",
        "future_mask",
        "role",
        "episode",
        "speed",
        "acc",
        "heading",
        "track",
    }
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    S = len(a["obs"])
    assert S > 0 and a["obs"].shape == (S, scene.OBS_DIM)
    assert a["future"].shape == (S, scene.T, 2) and a["future_mask"].shape == (S, scene.T)
    assert set(np.unique(a["role"])) <= {0, 1, 2} and 2 in a["role"]
    # the future of a sample starts near its own position (agent frame) and moves forward
    first = a["future"][:, 0][a["future_mask"][:, 0]]
    assert np.all(np.abs(first) < 3.0)
    assert np.all(a["speed"] >= 0) and len(a["speed"]) == len(a["acc"]) == len(a["track"])
    path = tmp_path / "demos.npz"
    save_demos(path, a, spec)
    with np.load(path) as f:
        np.testing.assert_array_equal(f["obs"], a["obs"])
        assert "intersection" in str(f["spec"])


def test_demos_cli_rejects_bad_input(tmp_path, capsys):
    from regrl.trainers.cli import main

    assert main(["traffic", "demos", "--out", str(tmp_path / "d.npz"), "--map", "moon"]) == 2
    assert "--map must be one of" in capsys.readouterr().err
    assert main(["traffic", "demos", "--out", str(tmp_path / "d.txt")]) == 2
    assert main(["traffic", "demos", "--out", str(tmp_path / "d.npz"), "--episodes", "0"]) == 2


@pytest.mark.slow
def test_demos_cli_is_deterministic_across_processes(tmp_path):
    import subprocess
    import sys

    paths = [tmp_path / f"d{i}.npz" for i in range(2)]
    for p in paths:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "regrl.trainers.cli",
                "traffic",
                "demos",
                "--out",
                str(p),
                "--episodes",
                "2",
                "--horizon",
                "20",
                "--seed",
                "7",
            ],
            check=True,
            capture_output=True,
        )
    with np.load(paths[0]) as a, np.load(paths[1]) as b:
        for k in ("obs", "future", "future_mask", "speed"):
            np.testing.assert_array_equal(a[k], b[k])
