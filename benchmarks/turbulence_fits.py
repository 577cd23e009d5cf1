"""Solver-in-the-loop fits of closure-family constants over seeds (issue 21 §2): each seed fits
from its own draw of initial conditions (``FitSpec.seed``); per family and target the fitted
roots' mean ± 95% Student t over the seeds, and the ``--extra`` arguments that evaluate every
fitted constant in the family scan (``benchmarks/turbulence_family_scan.py``), on the same 16
LES × 20 time units as the scanned constants.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_fits.py --out docs/smarl_fits.json
         [--families smagorinsky_hyper,jansen_held] [--targets spectrum,spectrum+tails]
         [--seeds 3] [--iterations 150] [--method solver|eki] [--reference FILE.npz]
``--reference``: fit against another reference file (e.g. the 16-trajectory ensemble of
``benchmarks/turbulence_dns_floor.py --write-reference``); a file fitted against one reference
refuses rows against another.
``--method eki``: ensemble Kalman inversion of the same constants (trainers/turbulence/eki.py,
the derivative-free cross-check), spectrum target; its rows join the same file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from turbulence_family_scan import (  # this folder: one --reference check
    check_reference,
    same_reference,
)

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.eki import EKISpec, eki_row, fit_eki
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
        "--method",
        choices=("solver", "eki"),
        default="solver",
        help="solver-in-the-loop gradients, or ensemble Kalman inversion (derivative-free, "
        "spectrum target only; trainers/turbulence/eki.py defaults)",
    )
    parser.add_argument(
        "--extra-means",
        action="store_true",
        help="print only the scan's --extra arguments of each family and target's mean roots "
        "over the seeds in --out, and stop",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="the reference to fit against (default: the packaged one)",
    )
    args = parser.parse_args()
    if args.extra_means:
        print(" ".join(extra_means(json.loads(args.out.read_text())["fits"])))
        return
    torch.set_num_threads(1)
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"fits": []}
    reference = None if args.reference is None else str(args.reference)
    if done["fits"]:
        same_reference(args.out, done.get("reference"), reference, "fitted", ": use another --out")
    if reference is not None:
        done["reference"] = reference
    check_reference(args.reference)
    ref = load_reference(args.reference)
    have = {(f["closure"], f["target"], _method(f), f["seed"]) for f in done["fits"]}
    targets = ["spectrum"] if args.method == "eki" else args.targets.split(",")
    for name in args.families.split(","):
        for target in targets:
            for seed in range(args.seeds):
                if (name, target, args.method, seed) in have:
                    continue
                if args.method == "eki":
                    r = fit_eki(
                        ref, EKISpec(closure=name, seed=seed), say=lambda m: print(m, flush=True)
                    )
                    done["fits"].append(dict(eki_row(r), target=target, method="eki"))
                    args.out.write_text(json.dumps(done, indent=1))
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


def _method(fit) -> str:
    return fit.get("method", "solver")  # fits written before EKI existed are all solver fits


def _key(fit) -> tuple:
    return fit["closure"], fit["target"], _method(fit)


def mean_roots(fits) -> dict:
    """{(closure, target, method): mean roots over the seeds, rounded to the 4 decimals the
    scan's ``--extra`` receives (so ``family.label`` of them is the scan's row name)}."""
    out = {}
    for key in sorted({_key(f) for f in fits}):
        roots = [f["roots"] for f in fits if _key(f) == key]
        mean = [sum(r[i] for r in roots) / len(roots) for i in range(len(roots[0]))]
        out[key] = [float(f"{r:.4f}") for r in mean]
    return out


def extra_means(fits) -> list:
    """``--extra FAMILY=R1,R2`` of the mean roots over the seeds, per family, target and
    method."""
    return [
        f"--extra {closure}=" + ",".join(f"{r:.4f}" for r in roots)
        for (closure, _, _), roots in mean_roots(fits).items()
    ]


def summary(fits) -> str:
    lines = [
        "| family | target | method | roots per seed | mean ± 95% t over seeds | s per fit |",
        "|---|---|---|---|---|---|",
    ]
    extra = []
    for key in sorted({_key(f) for f in fits}):
        mine = [f for f in fits if _key(f) == key]
        fam = families.get_family(key[0])
        per_seed = "; ".join(", ".join(f"{r:.4f}" for r in f["roots"]) for f in mine)
        cells = []
        for i, coeff in enumerate(fam.coefficients):
            mean, half = t_interval([f["roots"][i] for f in mine])
            cells.append(f"{coeff} {mean:.4f} ± " + ("n/a" if half is None else f"{half:.4f}"))
        secs = sum(f["seconds"] for f in mine) / len(mine)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {per_seed} | {', '.join(cells)} | {secs:.0f} |"
        )
        extra += [f"--extra {key[0]}=" + ",".join(f"{r:.4f}" for r in f["roots"]) for f in mine]
    return "\n".join(lines) + "\n\nevaluate them: " + " ".join(extra)


if __name__ == "__main__":
    main()
