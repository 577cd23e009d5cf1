"""Pure-pursuit + PID tracker (regrl.envs.traffic.control), hand-computed cases."""

import math

import numpy as np
import pytest

from regrl.envs.traffic.control import PID, TrajectoryTracker, pure_pursuit_steer, target_motion
from regrl.envs.traffic.scene import DT, T


def line(speed, lateral=0.0):
    k = np.arange(1, T + 1)
    return np.stack([speed * DT * k, lateral * k], -1)


def test_pure_pursuit_hand_computed():
    # target (3, 3) at the 3 m look-ahead: α = 45°, l_d = 3√2, δ = atan(2·2.6·sin α / l_d)
    traj = np.array([[1.0, 1.0], [3.0, 3.0], [6.0, 6.0]])
    delta = math.atan2(2 * 2.6 * math.sin(math.pi / 4), 3 * math.sqrt(2))
    steer = pure_pursuit_steer(traj, 0.0, 2.6, math.radians(40))
    assert steer == pytest.approx(min(delta / math.radians(40), 1.0))
    assert pure_pursuit_steer(line(10.0), 10.0, 2.6, math.radians(40)) == 0.0
    right = pure_pursuit_steer(line(10.0, -0.05), 10.0, 2.6, math.radians(40))
    assert right < 0.0  # MetaDrive: positive steer turns left
    assert pure_pursuit_steer(np.zeros((T, 2)), 0.0, 2.6, 0.7) == 0.0  # standing


def test_target_motion_and_pid():
    v_target, accel = target_motion(line(10.0), 8.0)
    assert v_target == pytest.approx(10.0) and accel == pytest.approx(2.0 / (3 * DT))
    pid = PID(kp=0.5, ki=0.1, kd=0.0)
    assert pid(2.0) == pytest.approx(0.5 * 2.0 + 0.1 * 2.0 * DT)
    assert pid(2.0) == pytest.approx(0.5 * 2.0 + 0.1 * 4.0 * DT)
    pid.reset()
    assert pid(0.0) == 0.0


def test_tracker_brakes_to_hold_and_accelerates_to_follow():
    tracker = TrajectoryTracker()
    np.testing.assert_allclose(tracker(np.zeros((T, 2)), 0.0), [0.0, -1.0])
    steer, throttle = tracker(line(10.0), 5.0)
    assert steer == 0.0 and 0.0 < throttle <= 1.0
    steer, throttle = tracker(line(2.0), 10.0)
    assert throttle < 0.0


def _target_motion_reference(traj, speed, horizon=3, dt=DT):
    """target_motion as numpy computed it before (concatenate, diff, np.mean)."""
    pts = np.concatenate([np.zeros((1, 2)), traj[: horizon + 1]], 0)
    step = pts[1:] - pts[:-1]
    step_speed = np.hypot(step[:, 0], step[:, 1]) / dt
    v_target = float(step_speed[:horizon].mean())
    return v_target, (float(step_speed[horizon - 1]) - speed) / (horizon * dt)


def test_target_motion_gives_numpys_floats():
    # random candidates (float32 values, as the env's), steps of very different sizes
    # (where the order of the mean's additions shows), a standing one, other horizons
    rng = np.random.default_rng(5)
    for case in range(3000):
        scale = rng.choice([1e-3, 1.0, 30.0], (T, 1))
        traj = np.cumsum(rng.normal(0, 1, (T, 2)) * scale, 0).astype(np.float32)
        if case % 50 == 0:
            traj[:] = 0.0
        traj = traj.astype(np.float64)
        speed, horizon = float(rng.uniform(0, 20)), int(rng.choice([3, 3, 1, 5]))
        ours = target_motion(traj, speed, horizon)
        assert ours == _target_motion_reference(traj, speed, horizon)
        assert all(type(x) is float for x in ours)
