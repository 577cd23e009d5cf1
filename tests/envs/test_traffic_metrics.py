"""RIFT's realism statistics (regrl.envs.traffic.metrics), hand-computed cases."""

import math

import numpy as np

from regrl.envs.traffic.metrics import gaussian_w2, shapiro_w, summarise


def test_gaussian_w2_is_the_distance_between_gaussian_fits():
    # N(1, 1) from [0, 2] (population std) vs N(3, 0): sqrt((1-3)^2 + (1-0)^2) = sqrt(5)
    assert math.isclose(gaussian_w2(np.array([0.0, 2.0]), np.array([3.0, 3.0])), math.sqrt(5))
    assert math.isnan(gaussian_w2(np.array([]), np.array([1.0])))


def test_shapiro_w_is_high_for_gaussian_low_for_bimodal_and_nan_when_undefined():
    rng = np.random.default_rng(0)
    gauss, bimodal = rng.normal(size=400), np.r_[np.zeros(200), np.ones(200)]
    assert shapiro_w(gauss) > 0.99 > 0.7 > shapiro_w(bimodal)
    assert math.isnan(shapiro_w(np.ones(10))) and math.isnan(shapiro_w(np.array([1.0, 2.0])))


def test_summarise_uses_totals_over_all_steps():
    steps = {
        "speed": np.array([2.0, 4.0, 6.0, 8.0]),
        "acc": np.array([0.0, 1.0, -1.0, 0.5]),
        "collision": np.array([1.0, 0.0, 1.0, 0.0]),
        "progress_m": np.array([100.0] * 4),
        "offroad": np.array([0.0, 1.0, 0.0, 0.0]),
        "uncomfortable": np.array([1.0, 1.0, 0, 0]),
    }
    out = summarise({"steps": steps, "episodes": [{"rp": 10.0}, {"rp": 30.0}]}, None)
    assert out["cpk"] == 2 / 0.4  # 2 collisions over 400 m of progress
    assert out["orr"] == 25.0 and out["uc"] == 50.0 and out["rp"] == 20.0
    assert out["speed"] == 5.0 and math.isnan(out["wd_speed"]) and out["cbv_steps"] == 4
