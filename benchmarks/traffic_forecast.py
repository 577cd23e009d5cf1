"""Neighbour-forecast fidelity (issue 16 §2): how far the candidate scorer's forecast of a
vehicle's next 4 s lands from where MetaDrive actually drove it. Every demonstration sample
(``regrl traffic demos``: IDM vehicles, agent frame at the decision time) supplies a history,
which each forecast of ``regrl.envs.traffic.scoring.FORECASTS`` extends, and the logged future.

Run: .venv/bin/python benchmarks/traffic_forecast.py [--demos data/traffic_demos.npz]
Prints ADE (mean over the valid steps of 4 s) and FDE at 1, 2 and 4 s per forecast, over all
samples and over the samples whose vehicle is turning (|yaw rate| > 0.1 rad/s now).
"""

from __future__ import annotations

import argparse

import numpy as np

from regrl.envs.traffic import scene, scoring


def errors(demos: dict, forecast: str) -> np.ndarray:
    """Distance [n, T] between the forecast and the logged future (NaN where not logged)."""
    hist = scene.unflatten(demos["obs"])["agent_hist"].astype(np.float64)  # [n, H, 6]
    centres, _ = scoring.forecast_neighbors(hist, scene.T, forecast=forecast)  # [n, T, 2]
    err = np.hypot(*(centres - demos["future"]).transpose(2, 0, 1))
    return np.where(demos["future_mask"], err, np.nan)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--demos", default="data/traffic_demos.npz")
    args = p.parse_args()
    with np.load(args.demos) as d:
        demos = {k: d[k] for k in ("obs", "future", "future_mask")}
    hist = scene.unflatten(demos["obs"])["agent_hist"].astype(np.float64)
    _, _, steer = scoring.last_control(hist)
    turning = np.abs(steer) > np.arctan(scoring.WHEELBASE * 0.1 / 10.0)  # ~0.1 rad/s at 10 m/s
    print(f"{args.demos}: {len(hist)} samples, {int(turning.sum())} turning now")
    for name in sorted(scoring.FORECASTS):
        err = errors(demos, name)
        for label, rows in (("all", slice(None)), ("turning", turning)):
            e = err[rows]
            fde = [np.nanmean(e[:, k - 1]) for k in (10, 20, 40)]
            print(
                f"  {name:17s} {label:8s} ADE {np.nanmean(e):6.2f} m   FDE 1 s {fde[0]:5.2f}"
                f"  2 s {fde[1]:5.2f}  4 s {fde[2]:5.2f} m"
            )


if __name__ == "__main__":
    main()
