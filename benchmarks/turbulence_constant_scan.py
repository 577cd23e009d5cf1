"""Which constant Smagorinsky coefficient is best on this LES? A scan of C_s with the same
rollouts and metrics as ``regrl eval`` (SMARL, Mojgani et al. 2023, arXiv 2312.00907), so that
"beats the best constant" is measured against the best one, not only against C_s = 0.17.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_constant_scan.py [--cs 0.14,0.17,0.2,0.23]
         [--sims 4] [--time 10] [--spinup 1]
"""

from __future__ import annotations

import argparse

import torch

from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.turbulence.smarl import markdown_table, rollout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cs", default="0.14,0.17,0.2,0.23")
    parser.add_argument("--sims", type=int, default=4)
    parser.add_argument("--time", type=float, default=10.0)
    parser.add_argument("--spinup", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_reference()
    rows = []
    for cs in (float(c) for c in args.cs.split(",")):
        r = rollout(
            ref,
            closure="smagorinsky",
            coeff=cs**2,
            seeds=args.sims,
            time_units=args.time,
            spinup=args.spinup,
        )
        rows.append(dict(r, name=f"Smagorinsky C_s={cs:g} (C_s²={cs * cs:.4f})"))
        print(f"  C_s={cs:g}: {r['enstrophy_spectrum_error']:.4f}", flush=True)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
