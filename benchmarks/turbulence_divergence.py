"""Why does the learned SMARL closure diverge? Time to blow-up of the 64² LES under
coefficient policies that stand in for an RL policy at different exploration noise levels
(SMARL, Mojgani et al. 2023, arXiv 2312.00907; docs/smarl.md §Diagnosis).

Each scenario draws, at every decision (10 solver steps), one coefficient per agent (4×4) and
simulation, clips it to the action bounds, and steps the LES with SMARL's Smagorinsky closure
from the reference's initial conditions. It prints, per scenario: how many simulations diverged
(non-finite or |ω| > 160 σ_ref, the evaluation's test) and when, the share of negative
coefficients drawn, and the mean coefficient over the last 0.1 time units before blow-up.
Run: nice -n 5 .venv/bin/python benchmarks/turbulence_divergence.py [--sims 4] [--time 6]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict

import numpy as np
import torch

from regrl.envs.turbulence.env import ACTION_BOUND, advance
from regrl.envs.turbulence.reference import les_from_reference, load_reference

CS2_017 = 0.17**2
Draw = Callable[[np.random.Generator, tuple], np.ndarray]


def _gauss(mean: float, std: float, low: float = -ACTION_BOUND) -> Draw:
    return lambda rng, shape: np.clip(rng.normal(mean, std, shape), low, ACTION_BOUND)


SCENARIOS: Dict[str, Draw] = {
    "constant C_s²=0.0289 (C_s=0.17)": _gauss(CS2_017, 0.0),
    "constant C_s²=-0.005": _gauss(-0.005, 0.0),
    "constant C_s²=-0.02": _gauss(-0.02, 0.0),
    "N(0, 0.125) (old init: std = full bound)": _gauss(0.0, 0.125),
    "N(0, 0.0125) (std 0.05 of the range)": _gauss(0.0, 0.0125),
    "N(0.0289, 0.125)": _gauss(CS2_017, 0.125),
    "N(0.0289, 0.0125)": _gauss(CS2_017, 0.0125),
    "new: 0.0289·(1+N(0, 0.1)), bounds [0, 0.0578]": _gauss(CS2_017, 0.1 * CS2_017, 0.0),
}


def run(draw: Draw, sims: int, time_units: float, seed: int) -> Dict[str, object]:
    ref = load_reference()
    sim = les_from_reference(ref, sims)
    rng = np.random.default_rng(seed)
    alive, t_div = np.ones(sims, bool), np.full(sims, np.nan)
    recent, neg, total, last_mean = [], 0, 0, np.full(sims, np.nan)
    window = max(1, int(round(0.1 / (10 * sim.dt))))
    while sim.time < time_units and alive.any():
        c = draw(rng, (sims, 4, 4))
        neg, total = neg + int((c[alive] < 0).sum()), total + int(c[alive].size)
        recent = (recent + [c.mean((1, 2))])[-window:]
        advance(sim, torch.as_tensor(c, dtype=sim.dtype), "smagorinsky", 10)
        ok = sim.is_finite().numpy() & (sim.max_abs_omega().numpy() < 160 * ref.omega_std)
        newly = alive & ~ok
        t_div[newly], last_mean[newly] = sim.time, np.mean(recent, 0)[newly]
        alive &= ok
        if not alive.all():  # freeze diverged elements so NaNs do not spread warnings
            w = sim.omega.clone()
            w[torch.as_tensor(~alive)] = 0.0
            sim.omega = torch.nan_to_num(w)
    return {
        "diverged": int((~alive).sum()),
        "t_div": t_div,
        "neg_share": neg / max(total, 1),
        "mean_before_div": last_mean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=4)
    parser.add_argument("--time", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.sims} simulations x {args.time} time units per scenario, seed {args.seed}")
    print(
        "| coefficients per decision | diverged | t of blow-up | share C_s²<0 | "
        "mean C_s² over the 0.1 t.u. before blow-up |\n|---|---|---|---|---|"
    )
    for name, draw in SCENARIOS.items():
        start = time.time()
        r = run(draw, args.sims, args.time, args.seed)
        times = r["t_div"][~np.isnan(r["t_div"])]
        means = r["mean_before_div"][~np.isnan(r["mean_before_div"])]
        span = f"{times.min():.2f}–{times.max():.2f}" if times.size else "–"
        mspan = f"{means.min():+.4f}…{means.max():+.4f}" if means.size else "–"
        print(
            f"| {name} | {r['diverged']}/{args.sims} | {span} | {r['neg_share']:.2f} | "
            f"{mspan} |  ({time.time() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
