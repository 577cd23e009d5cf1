"""RIFT's realism and controllability statistics of CBV episodes (Chen et al. 2025, arXiv
2505.03344, docs/methods.md#rift-metrics): pure numpy/scipy functions of logged per-step metrics, next to
the environment that logs them (as envs/turbulence/metrics.py does for SMARL)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np


def shapiro_w(x: np.ndarray) -> float:
    """Shapiro–Wilk W (closer to 1: closer to Gaussian); scipy needs 3 <= n; we subsample
    evenly above 5000, where scipy's p-value (not W) stops being accurate."""
    from scipy.stats import shapiro

    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan")
    if len(x) > 5000:
        x = x[np.linspace(0, len(x) - 1, 5000).astype(int)]
    return float(shapiro(x).statistic)


def gaussian_w2(x: np.ndarray, y: np.ndarray) -> float:
    """2-Wasserstein distance between Gaussian fits of two samples: sqrt((μx−μy)² + (σx−σy)²)
    (RIFT's WD speed, docs/methods.md#rift-metrics)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    return float(np.hypot(x.mean() - y.mean(), x.std() - y.std()))


STUCK_SPEED = 0.5
"""m/s below which a vehicle counts as standing (CARLA's leaderboard blocks an agent below 0.1
m/s for 90 s; at our 10–30 s episodes a shorter window and a looser threshold, which also
catches creeping, say the same thing)."""
STUCK_STEPS = 30
"""Consecutive standing steps (3 s at 10 Hz) that make a vehicle stuck."""
PENALTY_VEHICLE = 0.60
"""CARLA leaderboard infraction coefficient of a collision with a vehicle (or pedestrian-like
object, here none); RIFT's driving score is route completion x the product of these."""
PENALTY_OBJECT = 0.65
"""CARLA leaderboard coefficient of a collision with a static object (buildings, barriers)."""


def longest_run_below(x: np.ndarray, threshold: float) -> int:
    """Length of the longest run of consecutive entries of ``x`` below ``threshold``."""
    below = np.concatenate([[False], np.asarray(x, float) < threshold, [False]])
    edges = np.flatnonzero(np.diff(below.astype(np.int8)))  # run starts and ends alternate
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def stuck(speed: np.ndarray, threshold: float = STUCK_SPEED, steps: int = STUCK_STEPS) -> bool:
    """Whether a vehicle's per-step ``speed`` series stands still (below ``threshold``) for at
    least ``steps`` consecutive steps: the hesitation / blocked failure the paper's CBV
    metrics do not show (a stuck CBV has low RP but no collision and no off-road step)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return longest_run_below(speed, threshold) >= steps


def driving_score(
    route_completion: np.ndarray, vehicle_hits: np.ndarray, object_hits: np.ndarray
) -> np.ndarray:
    """CARLA-leaderboard-style driving score per vehicle: route completion in [0, 1] times
    ``PENALTY_VEHICLE ** vehicle_hits * PENALTY_OBJECT ** object_hits``. Off-road ends our
    episode, so (as in CARLA, where off-road distance does not count) it lowers only the
    route completion."""
    rc = np.clip(np.asarray(route_completion, float), 0.0, 1.0)
    return (
        rc
        * PENALTY_VEHICLE ** np.asarray(vehicle_hits, float)
        * PENALTY_OBJECT ** np.asarray(object_hits, float)
    )


def summarise(roll: Dict[str, Any], demo_speed: Optional[np.ndarray]) -> Dict[str, float]:
    """RIFT's CBV metrics over a set of episodes (totals, not means of episode ratios)."""
    s, eps = roll["steps"], roll["episodes"]
    n = max(len(s["speed"]), 1)
    km = max(s["progress_m"].sum() / 1000.0, 1e-3)
    out = {
        "cpk": float(s["collision"].sum() / km),
        "orr": 100.0 * s["offroad"].sum() / n,
        "uc": 100.0 * s["uncomfortable"].sum() / n,
        "rp": float(np.mean([e.get("rp", np.nan) for e in eps])) if eps else float("nan"),
        "sw_speed": shapiro_w(s["speed"]),
        "sw_acc": shapiro_w(s["acc"]),
        "speed": float(s["speed"].mean()) if len(s["speed"]) else float("nan"),
        "wd_speed": gaussian_w2(s["speed"], demo_speed) if demo_speed is not None else float("nan"),
        "cbv_steps": float(len(s["speed"])),
    }
    for key in (
        "ego_route_completion",
        "ego_crash",
        "sim_error",
        "invalid_action",
        "stuck",
        "cbv_rc",
        "cbv_ds",
        "collided",
        "arrived",
    ):
        vals = [e[key] for e in eps if key in e]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out
