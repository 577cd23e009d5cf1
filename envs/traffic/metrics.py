"""RIFT's realism and controllability statistics of CBV episodes (Chen et al. 2025, arXiv
2505.03344, methods.md §1.6): pure numpy/scipy functions of logged per-step metrics, next to
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
    (RIFT's WD speed, methods.md §1.6)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    return float(np.hypot(x.mean() - y.mean(), x.std() - y.std()))


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
    for key in ("ego_route_completion", "ego_crash", "sim_error", "invalid_action"):
        vals = [e[key] for e in eps if key in e]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    return out
