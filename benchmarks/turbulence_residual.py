"""Where a constant closure's spectrum error sits (issue 21): per wavenumber, the mean over the
evaluation's simulations of log10 Ẑ_LES(k) − log10 Ẑ_ref(k) (each simulation's 20-time-unit
average) with its 95% Student-t interval, and each wavenumber's share of the squared error, for
the given family constants.

The evaluation's spectrum error is the root mean square of the pooled residual over 1 ≤ k < k_c
(``log_spectrum_error``), so a residual that a closure family cannot shape — a pile-up at the
last resolved wavenumbers, a deficit over a band — is what a learned closure within that
family would have to remove, and what a richer family would be needed for.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_residual.py
         --reference envs/turbulence/data/reference_kf4_ens16.npz
         --point jansen_held=0.315,1.0 [--point smagorinsky_hyper=0,0.295]
         [--sims 16] [--time 20] [--spinup 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from turbulence_family_scan import (  # this folder: one --reference check, one point parser
    check_reference,
    parse_point,
)

from regrl.envs.turbulence import families
from regrl.envs.turbulence.metrics import EPS
from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import rollout


def residual(z_sims: np.ndarray, z_ref: np.ndarray) -> dict:
    """Per-wavenumber residual of per-simulation spectra ``z_sims`` [sims, K] against ``z_ref``
    [K] over the shells k ≥ 1 where the reference has energy (``log_spectrum_error``'s: the
    2/3-rule cut removes the rest): the per-simulation log10 differences [sims, k], the pooled
    residual (log10 of the mean spectrum minus the reference's, what the evaluation's error is
    the root mean square of) and each k's share of its squared sum."""
    k = np.flatnonzero(np.asarray(z_ref)[1:] > EPS) + 1
    per_sim = np.log10(z_sims[:, k] + EPS) - np.log10(z_ref[k])
    pooled = np.log10(z_sims[:, k].mean(0) + EPS) - np.log10(z_ref[k])
    share = pooled**2 / max(float((pooled**2).sum()), 1e-300)
    return {
        "k": k,
        "per_simulation": per_sim,
        "pooled": pooled,
        "share": share,
        "error": float(np.sqrt((pooled**2).mean())),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", default=None, help="reference file (default: the packaged)")
    p.add_argument("--point", action="append", required=True, metavar="FAMILY=R1,R2")
    p.add_argument("--sims", type=int, default=16)
    p.add_argument("--time", type=float, default=20.0)
    p.add_argument("--spinup", type=float, default=2.0)
    args = p.parse_args()
    points = [parse_point(t, "--point") for t in args.point]
    check_reference(args.reference)
    torch.set_num_threads(1)
    ref = load_reference(args.reference)
    print(
        f"Residual log10 Ẑ_LES(k) − log10 Ẑ_ref(k) against {args.reference or 'the packaged'} "
        f"reference; {args.sims} LES × {args.time:g} time units after {args.spinup:g}; per k: "
        "mean over simulations ± 95% t, and the pooled residual's share of the squared error."
    )
    for name, roots in points:
        fam = families.get_family(name)
        out = rollout(ref, closure=fam.name, coeff=list(fam.coefficient(roots)), seeds=args.sims,
                      time_units=args.time, spinup=args.spinup, spectra=True)  # fmt: skip
        if out["diverged"]:
            print(f"\n{fam.label(roots)}: {out['diverged']} simulations diverged; skipped")
            continue
        r = residual(np.array(out["per_simulation"]["enstrophy_spectrum"]),
                     ref.enstrophy_spectrum)  # fmt: skip
        print(f"\n### {fam.label(roots)}: spectrum error {out['enstrophy_spectrum_error']:.4f} "
              f"(root mean square of the pooled column: {r['error']:.4f})\n")  # fmt: skip
        print("| k | mean ± 95% t over simulations | pooled | share of squared error |")
        print("|---|---|---|---|")
        for i, k in enumerate(r["k"]):
            mean, half = t_interval(r["per_simulation"][:, i].tolist())
            print(f"| {k} | {mean:+.3f} ± {half:.3f} | {r['pooled'][i]:+.3f} | "
                  f"{100 * r['share'][i]:.0f}% |")  # fmt: skip


if __name__ == "__main__":
    main()
