"""Tracking controller: turns a chosen candidate trajectory into MetaDrive's [steer, throttle].

RIFT executes its chosen candidate with a PID controller (docs/methods.md#rift-planner, "Action
execution"); here steering is a pure-pursuit law (Coulter 1992, "Implementation of the Pure
Pursuit Path Tracking Algorithm", CMU-RI-TR-92-01: δ = atan(2·L·sin α / l_d)) and the
longitudinal command a PID on the speed error plus a feed-forward of the candidate's own
acceleration. Everything runs in the agent frame of the decision (agent at the origin, +x ahead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Tuple

import numpy as np

from regrl.envs.traffic.scene import DT


@dataclass
class PID:
    """Discrete PID with integral clamping (anti wind-up)."""

    kp: float = 0.5
    ki: float = 0.05
    kd: float = 0.0
    i_limit: float = 5.0
    _integral: float = field(default=0.0, init=False)
    _prev: float = field(default=0.0, init=False)

    def reset(self) -> None:
        self._integral, self._prev = 0.0, 0.0

    def __call__(self, error: float, dt: float = DT) -> float:
        # np.clip's value without its overhead (scalars, every step of every CBV)
        self._integral = float(min(max(self._integral + error * dt, -self.i_limit), self.i_limit))
        deriv, self._prev = (error - self._prev) / dt, error
        return self.kp * error + self.ki * self._integral + self.kd * deriv


def pure_pursuit_steer(
    traj: np.ndarray,
    speed: float,
    wheelbase: float,
    max_steer_rad: float,
    gain: float = 0.5,
    min_lookahead: float = 3.0,
) -> float:
    """Normalised steering in [−1, 1] toward the first point of ``traj`` [T, 2] at least the
    look-ahead distance l_d = max(min_lookahead, gain·speed) away (else the last point)."""
    lookahead = max(min_lookahead, gain * speed)
    dist = np.hypot(traj[:, 0], traj[:, 1])
    if dist[-1] < 0.5:  # (nearly) standing: nothing to steer toward
        return 0.0
    far = np.flatnonzero(dist >= lookahead)
    if len(far):
        target = traj[far[0]]
    else:  # short path: extend its last direction to the look-ahead
        moved = np.flatnonzero(np.hypot(*(traj[-1] - traj).T) > 1e-3)
        tail = traj[-1] - (traj[moved[-1]] if len(moved) else np.zeros(2))
        target = traj[-1] + tail / max(np.hypot(*tail), 1e-9) * (lookahead - dist[-1])
    ld = max(float(np.hypot(*target)), 1e-3)
    alpha = np.arctan2(target[1], target[0])
    delta = np.arctan2(2.0 * wheelbase * np.sin(alpha), ld)
    return float(min(max(delta / max_steer_rad, -1.0), 1.0))


def target_motion(
    traj: np.ndarray, speed: float, horizon: int = 3, dt: float = DT
) -> Tuple[float, float]:
    """Target speed (mean over the first ``horizon`` steps of the candidate) and the
    candidate's acceleration over those steps relative to the current ``speed``."""
    step = traj[: horizon + 1].copy()  # displacements: the first from the origin
    step[1:] -= traj[: len(step) - 1]
    step_speed = (np.hypot(step[:, 0], step[:, 1]) / dt).tolist()
    v_target = _mean(step_speed[:horizon])
    return v_target, (step_speed[horizon - 1] - speed) / (horizon * dt)


def _mean(xs: list) -> float:
    """``np.mean`` of a few floats: their sum in order, ((x0 + x1) + x2) + …, as numpy adds
    fewer than 8 values, divided by their number (NaN for none, as numpy)."""
    if not xs:
        return math.nan
    total = xs[0]
    for x in xs[1:]:
        total += x
    return total / len(xs)


class TrajectoryTracker:
    """Pure pursuit + PID tracker of one vehicle; ``reset()`` at each episode start."""

    def __init__(
        self,
        wheelbase: float = 2.6,
        max_steer_rad: float = np.deg2rad(40.0),
        max_accel: float = 5.0,
        pid: PID = None,
    ):
        self.wheelbase, self.max_steer_rad, self.max_accel = wheelbase, max_steer_rad, max_accel
        self.pid = pid or PID()

    def reset(self) -> None:
        self.pid.reset()

    def __call__(self, traj: np.ndarray, speed: float) -> np.ndarray:
        """[steer, throttle] in [−1, 1]² that follow ``traj`` [T, 2] from ``speed`` (m/s)."""
        traj = np.asarray(traj, np.float64)
        steer = pure_pursuit_steer(traj, speed, self.wheelbase, self.max_steer_rad)
        v_target, accel = target_motion(traj, speed)
        throttle = self.pid(v_target - speed) + accel / self.max_accel
        if v_target < 0.2 and speed < 0.5:  # hold still instead of creeping on the PID
            throttle = -1.0
        return np.array([steer, min(max(throttle, -1.0), 1.0)], np.float32)
