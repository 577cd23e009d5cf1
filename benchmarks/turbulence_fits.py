"""Solver-in-the-loop fits of closure-family constants over seeds (issue 21 §2): each seed fits
from its own draw of initial conditions (``FitSpec.seed``); per family and target the fitted
roots' mean ± 95% Student t over the seeds, and the ``--extra`` arguments that evaluate every
fitted constant in the family scan (``benchmarks/turbulence_family_scan.py``), on the same 16
LES × 20 time units as the scanned constants.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_fits.py --out docs/smarl_fits.json
         [--families smagorinsky_hyper,jansen_held] [--targets spectrum,spectrum+tails]
         [--seeds 3] [--iterations 150]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.sweep import t_interval
from regrl.trainers.turbulence.solver_loop import FitSpec, fit_constants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", default="smagorinsky_hyper,jansen_held")
    parser.add_argument("--targets", default="spectrum,spectrum+tails")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument(
        "--extra-means",
        action="store_true",
        help="print only the scan's --extra arguments of each family and target's mean roots "
        "over the seeds in --out, and stop",
    )
    args = parser.parse_args()
    if args.extra_means:
        print(" ".join(extra_means(json.loads(args.out.read_text())["fits"])))
        return
    torch.set_num_threads(1)
    ref = load_reference()
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"fits": []}
    have = {(f["closure"], f["target"], f["seed"]) for f in done["fits"]}
    for name in args.families.split(","):
        for target in args.targets.split(","):
            for seed in range(args.seeds):
                if (name, target, seed) in have:
                    continue
                spec = FitSpec(
                    closure=name, target=target, seed=seed, iterations=args.iterations, lr=args.lr
                )
                r = fit_constants(ref, spec, say=lambda m: print(m, flush=True))
                done["fits"].append(
                    {"closure": name, "target": target, "seed": seed, "roots": r["roots"],
                     "final_loss": r["history"][-1]["loss"], "seconds": r["seconds"],
                     "skipped_unrolls": r["skipped_unrolls"], "spec": r["spec"]}
                )  # fmt: skip
                args.out.write_text(json.dumps(done, indent=1))
    print(summary(done["fits"]))


def extra_means(fits) -> list:
    """``--extra FAMILY=R1,R2`` of the mean roots over the seeds, per family and target."""
    out = []
    for key in sorted({(f["closure"], f["target"]) for f in fits}):
        roots = [f["roots"] for f in fits if (f["closure"], f["target"]) == key]
        mean = [sum(r[i] for r in roots) / len(roots) for i in range(len(roots[0]))]
        out.append(f"--extra {key[0]}=" + ",".join(f"{r:.4f}" for r in mean))
    return out


def summary(fits) -> str:
    lines = ["| family | target | roots per seed | mean ± 95% t over seeds |", "|---|---|---|---|"]
    extra = []
    for key in sorted({(f["closure"], f["target"]) for f in fits}):
        mine = [f for f in fits if (f["closure"], f["target"]) == key]
        fam = families.get_family(key[0])
        per_seed = "; ".join(", ".join(f"{r:.4f}" for r in f["roots"]) for f in mine)
        cells = []
        for i, coeff in enumerate(fam.coefficients):
            mean, half = t_interval([f["roots"][i] for f in mine])
            cells.append(f"{coeff} {mean:.4f} ± " + ("n/a" if half is None else f"{half:.4f}"))
        lines.append(f"| {key[0]} | {key[1]} | {per_seed} | {', '.join(cells)} |")
        extra += [f"--extra {key[0]}=" + ",".join(f"{r:.4f}" for r in f["roots"]) for f in mine]
    return "\n".join(lines) + "\n\nevaluate them: " + " ".join(extra)


if __name__ == "__main__":
    main()
