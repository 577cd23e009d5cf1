"""How much can a closure that sees only the enstrophy spectrum gain over the best constant?
(SMARL, Mojgani et al. 2023, arXiv 2312.00907: the agents observe the global log enstrophy
spectrum and local invariants; issue 13: no learned closure beat C_s = 0.17.)

Two probes on the same LES (the reference's initial conditions, paired), with the metrics of
``regrl eval``:
- a fine scan of constant coefficients around C_s = 0.17, so that "the best constant" is the
  best one, not the best of a coarse grid;
- a hand-written spectrum-feedback controller, the kind of state-dependent rule the agents'
  global observation allows: one uniform C_s² = 0.17² · 10^(γ·d), d = the mean over the
  highest resolved wavenumbers (k = 11..20, below the 2/3-rule cut-off 21) of
  log10 Ẑ_LES(k) − log10 Ẑ_ref(k), i.e. more dissipation while the small scales hold too much
  enstrophy; clipped to the RL action range [0, 2·0.17²]. It reads exactly the agents'
  observation (``env.observe_agents``), so a policy could represent it. γ ∈ {1, 3} fixed
  before the run.
Paired differences against C_s = 0.17 per simulation, mean ± 95% Student t over simulations.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_headroom.py [--sims 16] [--time 20]
         [--spinup 2] [--out docs/smarl_headroom.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from regrl.envs.turbulence.env import N_INVARIANTS
from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import markdown_table, paired_differences, rollout

BASE_CS2 = 0.17**2
COEFF_MAX = 2 * BASE_CS2  # the RL action range of configs/smarl_demo.yaml
HIGH_K = range(11, 21)  # resolved high wavenumbers of the 64² LES (2/3 rule: |k| < 21⅓)


def feedback_policy(gamma: float):
    """obs [batch, agents, 6 + 31] → uniform C_s² [batch, agents] from the global spectrum
    features (feature 6 + k − 1 = log10 Ẑ_LES(k) − log10 Ẑ_ref(k), k ≥ 1)."""
    cols = [N_INVARIANTS + k - 1 for k in HIGH_K]

    def policy(obs: np.ndarray) -> np.ndarray:
        deviation = obs[:, :, cols].astype(np.float64).mean(-1)  # [batch, agents], all equal
        return np.clip(BASE_CS2 * 10.0 ** (gamma * deviation), 0.0, COEFF_MAX)

    return policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=16)
    parser.add_argument("--time", type=float, default=20.0)
    parser.add_argument("--spinup", type=float, default=2.0)
    parser.add_argument("--cs", default="0.15,0.16,0.17,0.18,0.19")
    parser.add_argument("--gammas", default="1,3")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_reference()
    window = dict(seeds=args.sims, time_units=args.time, spinup=args.spinup)
    rows = []
    for cs in (float(c) for c in args.cs.split(",")):
        r = rollout(ref, closure="smagorinsky", coeff=cs * cs, **window)
        rows.append(dict(r, name=f"Smagorinsky C_s={cs:g}"))
        print(f"  C_s={cs:g}: {r['enstrophy_spectrum_error']:.4f}", flush=True)
    for gamma in (float(g) for g in args.gammas.split(",")):
        r = rollout(ref, closure="smagorinsky", policy=feedback_policy(gamma), **window)
        rows.append(dict(r, name=f"spectrum feedback γ={gamma:g}"))
        print(f"  feedback γ={gamma:g}: {r['enstrophy_spectrum_error']:.4f}", flush=True)
    print(markdown_table(rows))
    base = next(r for r in rows if r["name"] == "Smagorinsky C_s=0.17")
    print("\nPaired over the simulations, minus C_s = 0.17 (mean ± 95% t):\n")
    print("| closure | Δ log-enstrophy-spectrum error | Δ P(|ω|>3σ) ratio |\n|---|---|---|")
    for r in rows:
        if r is base or r["diverged"]:
            continue
        cells = []
        for key in ("enstrophy_spectrum_error", "tail_ratio"):
            mean, half = t_interval(paired_differences(r, base, key))
            cells.append(f"{mean:+.4f} ± {half:.4f}")
        print(f"| {r['name']} | {cells[0]} | {cells[1]} |")
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}))


if __name__ == "__main__":
    main()
