"""RIFT traffic env in candidate mode (one MetaDrive engine for the whole module: MetaDrive
allows one per process and takes seconds to start). The engine is started with the network
blocked, to show that headless mode never tries to download MetaDrive's assets."""

import socket
import urllib.request

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

pytest.importorskip("metadrive")  # the `traffic` extra

from regrl.envs.traffic import backend, parallel_env, scene  # noqa: E402
from regrl.envs.traffic.scene import R, T  # noqa: E402

K, M = 2, 3
ATTEMPTS = []


@pytest.fixture(scope="module")
def env():
    mp = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        ATTEMPTS.append(args[:1])
        raise OSError("network disabled in this test")

    import metadrive.engine.base_engine as base_engine

    mp.setattr(base_engine, "pull_asset", refuse)  # MetaDrive's downloader itself
    mp.setattr(urllib.request, "urlretrieve", refuse)
    mp.setattr(urllib.request, "urlopen", refuse)
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    e = parallel_env(num_cbv=K, map="intersection", horizon=25, num_modes=M, traffic_density=0.05)
    try:
        e.reset(seed=0)  # starts the engine (and would trigger MetaDrive's asset pull)
    finally:
        mp.undo()
    yield e
    e.close()


def test_headless_engine_starts_offline_without_download_attempts(env):
    from metadrive.engine.base_engine import BaseEngine

    assert ATTEMPTS == []
    # the bypass is scoped to engine creation: MetaDrive's own check is back in place
    assert (
        BaseEngine.__dict__["try_pull_asset"].__func__.__qualname__ == "BaseEngine.try_pull_asset"
    )


def test_rendering_without_assets_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(backend, "assets_present", lambda: False)
    with pytest.raises(RuntimeError, match="pull_asset"):
        with backend.offline_engine_start(render=True):
            pass


def test_pettingzoo_parallel_api(env):
    parallel_api_test(env, num_cycles=30)


def test_reset_obs_infos_and_candidate_returns(env):
    obs, infos = env.reset(seed=1)
    assert env.agents == ["cbv_0", "cbv_1"]
    for a in env.agents:
        assert obs[a].shape == (scene.OBS_DIM,) and obs[a].dtype == np.float32
        o = scene.unflatten(obs[a])
        np.testing.assert_allclose(o["agent_hist"][-1, :4], [0, 0, 1, 0], atol=1e-5)
        assert o["lane_mask"][0] == 1.0 and o["lane_width"][0] > 2.0
        ret, valid = infos[a]["candidate_returns"], infos[a]["candidate_valid"]
        assert ret.shape == (R * M,) and ret.dtype == np.float32
        assert valid.dtype == bool and valid[:M].all()
        np.testing.assert_array_equal(valid, np.repeat(o["lane_mask"] > 0.5, M))
        assert np.all(ret[~valid] == 0.0)


def test_steps_report_metrics_and_dense_reward(env):
    obs, infos = env.reset(seed=2)
    for _ in range(5):
        acts = {a: int(np.argmax(infos[a]["candidate_returns"])) for a in env.agents}
        obs, rew, term, trunc, infos = env.step(acts)
    for a, info in infos.items():
        m = info["metrics"]
        assert {"speed", "acc", "collision", "offroad", "uncomfortable", "progress_m"} <= set(m)
        assert all(isinstance(v, float) for v in m.values())
        assert np.isfinite(rew[a])
    assert max(m["speed"] for m in (i["metrics"] for i in infos.values())) > 0.5


def test_episode_is_deterministic_per_seed(env):
    def roll():
        obs, infos = env.reset(seed=3)
        trace = [np.stack([obs[a] for a in sorted(obs)])]
        for _ in range(8):
            obs, *_ = env.step({a: 1 for a in env.agents})
            trace.append(np.stack([obs[a] for a in sorted(obs)]))
        return trace

    for x, y in zip(roll(), roll()):
        np.testing.assert_array_equal(x, y)


def test_horizon_truncates_with_episode_metrics(env):
    env.reset(seed=4)
    steps = 0
    while env.agents:
        _, _, term, trunc, infos = env.step({a: 0 for a in env.agents})  # hard braking
        steps += 1
    assert steps <= env.horizon
    if steps == env.horizon:
        assert all(trunc.values())
    last = next(iter(infos.values()))["metrics"]
    assert {"cpk", "orr", "uc", "rp", "sim_error", "episode_steps"} <= set(last)


def test_injected_candidate_fn_is_used_and_checked(env):
    calls = []

    def stand_still(batch):
        calls.append(batch.shape)
        return np.zeros((len(batch), R * M, T, 2), np.float32)

    env.candidate_fn = stand_still
    try:
        obs, infos = env.reset(seed=5)
        assert calls[-1] == (K, scene.OBS_DIM)
        env.step({a: 0 for a in env.agents})
        assert len(calls) == 2
        env.candidate_fn = lambda batch: np.zeros((len(batch), 5, T, 2))
        with pytest.raises(ValueError, match="candidate_fn returned shape"):
            env.reset(seed=5)
    finally:
        env.candidate_fn = None


def test_bad_actions_and_arguments_are_clear_errors(env):
    env.reset(seed=6)
    with pytest.raises(ValueError, match="missing"):
        env.step({})
    with pytest.raises(ValueError, match="candidate index"):
        env.step({a: R * M for a in env.agents})
    for kw, msg in (
        ({"map": "moon"}, "map must be"),
        ({"action_mode": "x"}, "action_mode"),
        ({"num_cbv": 0}, "num_cbv"),
    ):
        with pytest.raises(ValueError, match=msg):
            parallel_env(**kw)


def test_second_engine_in_one_process_is_a_clear_error(env):
    other = parallel_env(num_cbv=1)
    with pytest.raises(RuntimeError, match="one engine per process"):
        other.reset(seed=0)
    other.close()


def test_simulator_exception_truncates_and_rebuilds(env, monkeypatch):
    env.reset(seed=7)
    monkeypatch.setattr(
        env._md, "step", lambda *a, **k: (_ for _ in ()).throw(AssertionError("bullet blew up"))
    )
    obs, rew, term, trunc, infos = env.step({a: 0 for a in env.agents})
    assert all(trunc.values()) and not any(term.values()) and env.agents == []
    assert all(i["metrics"]["sim_error"] == 1.0 for i in infos.values())
    assert env.sim_errors == 1
    monkeypatch.undo()
    obs, _ = env.reset(seed=7)  # a fresh simulator
    assert env.agents == ["cbv_0", "cbv_1"]
    env.step({a: 0 for a in env.agents})


def test_state_reads_and_the_kept_lane_cache_give_the_same_observation_bits(env):
    from regrl.envs.traffic import features

    env.reset(seed=4)
    for _ in range(3):
        obs, *_ = env.step({a: 1 for a in env.agents})
    now = env.vehicles()
    plain = np.array([features.vehicle_state(v) for v in now])  # through MetaDrive's properties
    np.testing.assert_array_equal(backend.state_rows(now), plain)
    # a lane cache filled in earlier episodes (other map objects) vs a fresh one, same scene
    kept = env._lanes
    assert kept is env._lane_cache(env._network) and len(env._lane_caches) == 1
    vs = [env._vehicle[a] for a in env.agents]
    with_kept = features.scene_batch(vs, now, env._hist, env._network, kept)
    fresh = features.scene_batch(vs, now, env._hist, env._network, features.LaneCache())
    np.testing.assert_array_equal(with_kept, fresh)
    np.testing.assert_array_equal(with_kept, np.stack([obs[a] for a in env.agents]))


def test_float32_yaw_acc_and_readings_are_numpys_bit_for_bit():
    """step_readings' Python-float yaw acceleration is numpy's float32 result
    (wrap_angle(h2 − 2·h1 + h0) / DT² on float32 arrays), also at ±π, ±0 and NaN."""
    from regrl.envs.traffic import env as env_module
    from regrl.envs.traffic.scoring import wrap_angle

    rng = np.random.default_rng(5)
    h = rng.uniform(-np.pi, np.pi, (3, 20000)).astype(np.float32)
    edges = np.array([0.0, -0.0, np.pi, -np.pi, np.pi / 2, 1e-8, -1e-8, np.nan], np.float32)
    h = np.concatenate([h, np.array(np.meshgrid(edges, edges, edges)).reshape(3, -1)], 1)
    want = wrap_angle(h[2] - 2 * h[1] + h[0]) / scene.DT**2
    got = np.array(env_module.yaw_acc_float32(*h.tolist()), np.float32)
    assert want.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # the readings of random observations against the float32 formulas
    batch = rng.standard_normal((6, scene.OBS_DIM)).astype(np.float32)
    batch[0] = 0.0  # a removed vehicle
    o = scene.unflatten(batch)
    r = env_module.step_readings(batch)
    hist, lane = o["agent_hist"], o["lanes"][:, 0]
    heading = np.arctan2(hist[:, -3:, 3], hist[:, -3:, 2])
    yaw = wrap_angle(heading[:, 2] - 2 * heading[:, 1] + heading[:, 0]) / scene.DT**2
    ok = o["lane_mask"][:, 0] > 0.5
    theta = np.arctan2(lane[:, 1, 1] - lane[:, 0, 1], lane[:, 1, 0] - lane[:, 0, 0])
    assert r["gone"] == [True] + [False] * 5
    assert r["speed"] == np.hypot(hist[:, -1, 4], hist[:, -1, 5]).tolist()
    assert r["progress"] == np.hypot(hist[:, -2, 0], hist[:, -2, 1]).tolist()
    assert r["yaw_acc"] == yaw.tolist()
    assert r["d"] == np.where(ok, np.hypot(lane[:, 0, 0], lane[:, 0, 1]), 0).tolist()
    assert r["theta"] == np.where(ok, theta, 0).tolist()
