"""Scenario families of the RIFT traffic env and the headroom metrics (stuck, route completion,
driving score): presets and overrides, hand-made speed series, and short MetaDrive episodes."""

import numpy as np
import pytest

from regrl.envs.traffic.families import FAMILIES, SCENARIO_KEYS, family_kwargs
from regrl.envs.traffic.metrics import (
    PENALTY_OBJECT,
    PENALTY_VEHICLE,
    STUCK_STEPS,
    driving_score,
    longest_run_below,
    stuck,
    summarise,
)


def test_default_family_is_the_envs_historical_defaults():
    assert FAMILIES["default"] == dict(
        map="intersection",
        pg_map="SCX",
        num_cbv=2,
        horizon=200,
        traffic_density=0.05,
        ego_policy="idm",
    )
    for name, fam in FAMILIES.items():
        assert set(fam) == set(SCENARIO_KEYS), name


def test_family_kwargs_given_keys_win_and_none_means_the_familys():
    out = family_kwargs("contest", num_cbv=3, horizon=None)
    assert out["num_cbv"] == 3 and out["horizon"] == 300 and out["ego_policy"] == "assertive"
    assert family_kwargs("merge")["pg_map"] == "SrSyS"
    with pytest.raises(ValueError, match="family must be one of"):
        family_kwargs("highway")
    with pytest.raises(ValueError, match="not scenario keys"):
        family_kwargs("long", gamma=0.9)


def test_longest_run_below_and_stuck_on_hand_made_speed_series():
    moving, standing = np.full(10, 5.0), np.full(STUCK_STEPS, 0.1)
    assert longest_run_below(np.r_[moving, standing, moving], 0.5) == STUCK_STEPS
    assert longest_run_below(moving, 0.5) == 0 and longest_run_below(np.array([]), 0.5) == 0
    # at the start and at the end of the series count too
    assert stuck(np.r_[standing, moving]) and stuck(np.r_[moving, standing])
    # one step short, or the standing run split by one moving step: not stuck
    assert not stuck(np.r_[moving, standing[1:], moving])
    split = np.r_[standing[:15], 1.0, standing[15:]]
    assert longest_run_below(split, 0.5) == 15 and not stuck(split)
    assert not stuck(np.full(100, 0.5))  # the threshold itself is moving (strictly below)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        stuck(standing, steps=0)


def test_driving_score_is_completion_times_carla_penalties():
    ds = driving_score(
        np.array([0.8, 0.8, 0.8, 1.5]), np.array([0, 1, 2, 0]), np.array([1, 0, 0, 0])
    )
    np.testing.assert_allclose(ds, [0.8 * 0.65, 0.8 * 0.6, 0.8 * 0.36, 1.0])
    assert (PENALTY_VEHICLE, PENALTY_OBJECT) == (0.60, 0.65)


def test_summarise_averages_the_cbv_outcomes_over_episodes():
    steps = {k: np.ones(2) for k in ("speed", "acc", "collision", "progress_m", "offroad")}
    steps["uncomfortable"] = np.zeros(2)
    eps = [{"rp": 1.0, "stuck": 50.0, "cbv_ds": 40.0}, {"rp": 3.0, "stuck": 0.0, "cbv_ds": 80.0}]
    out = summarise({"steps": steps, "episodes": eps}, None)
    assert out["stuck"] == 25.0 and out["cbv_ds"] == 60.0 and np.isnan(out["cbv_rc"])


def test_demo_spec_takes_the_familys_scenario_where_not_given():
    from regrl.envs.traffic.demos import DemoSpec

    spec = DemoSpec(family="roundabout").resolved()
    assert (spec.map, spec.num_cbv, spec.horizon) == ("roundabout", 6, 300)
    assert DemoSpec(family="long", horizon=50).resolved().horizon == 50
    plain = DemoSpec().resolved()  # the historical defaults of `regrl traffic demos`
    assert (plain.map, plain.num_cbv, plain.horizon, plain.traffic_density) == (
        "intersection",
        2,
        200,
        0.05,
    )


# ------------------------------------------------------------------ MetaDrive episodes
def _env(**kw):
    pytest.importorskip("metadrive")
    from regrl.envs.traffic import parallel_env

    return parallel_env(action_mode="raw", **kw)


def test_env_resolves_the_family_and_rejects_an_unknown_one():
    env = _env(family="contest", num_cbv=3)  # no engine yet (MetaDrive starts at reset)
    assert env.num_cbv == 3 and env.horizon == 300 and env.family == "contest"
    assert env._md_config["num_agents"] == 4
    assert env._ego_policy.__name__ == "AssertiveIDMPolicy"
    assert env._ego_policy.NORMAL_SPEED == 50.0
    merge = _env(family="merge")
    assert merge.map == "pg" and merge._md_config["map"] == "SrSyS"
    with pytest.raises(ValueError, match="family must be one of"):
        _env(family="highway")


def _episode(env, action):
    env.reset(seed=0)
    m = {}
    while env.agents:
        _, _, _, _, infos = env.step({a: action for a in env.agents})
        m = next(iter(infos.values()))["metrics"]
    return m


def test_standing_cbvs_are_stuck_with_zero_route_completion_and_idm_ones_are_not():
    env = _env(family="default", horizon=40, traffic_density=0.0)
    try:
        still = _episode(env, np.array([0.0, -1.0], np.float32))
        env.idm_cbvs = True
        idm = _episode(env, np.zeros(2, np.float32))
    finally:
        env.close()
    # standing 40 steps: stuck; route completion counts from the spawn point, so 0 (MetaDrive's
    # own route_completion would credit the spawn point's offset along the first lane)
    assert still["stuck"] == 100.0 and still["cbv_rc"] < 0.5 and still["cbv_ds"] < 0.5
    assert still["collided"] == 0.0 and still["rp"] < 2.0
    assert idm["stuck"] == 0.0 and idm["cbv_rc"] > 5.0 and idm["rp"] > 20.0
    assert idm["cbv_ds"] == pytest.approx(idm["cbv_rc"])  # no collision in this scenario
