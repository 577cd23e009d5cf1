"""float32 LES against float64 on the evaluation's metrics and cost (issue 21 §5): the same
closures, the same 16 initial conditions, both precisions in this run; paired differences
(float32 − float64) per simulation, mean ± 95% Student t, and the seconds per time unit ratio.
The closures: SMARL's constant, the two-term family's best constant, and each ``--policies``
file's learned closure (its mean action, as ``regrl eval`` runs it; observations are formed in
the LES's precision, the policy itself runs in float32 either way).

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_float32.py [--sims 16] [--time 20]
         [--spinup 2] [--policies A.pt,B.pt] [--out docs/smarl_float32.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import paired_differences, rollout

# SMARL's constant, and the two-term family's best constant of docs/smarl_families.md
CLOSURES = (("smagorinsky", (0.17,)), ("smagorinsky_hyper", None))
# the shipped learned closures: SMARL's family (the cost benchmark's learned row) and the
# two-term family (make demo's start)
POLICIES = "data/turbulence/policies/smarl_ppo.pt,data/turbulence/policies/smarl_hyper_ppo.pt"


def learned(path: str):
    """(label, closure family, policy) of a policy file, its mean action mapped like the env."""
    from regrl.trainers.rllib.policy_file import load_policy
    from regrl.trainers.turbulence.smarl import coeff_range_of, module_policy

    module, _, provenance = load_policy(path)
    kwargs = provenance["config"]["env"]["kwargs"]
    policy = module_policy(module, coeff_range_of(kwargs))
    return f"learned {Path(path).name}", kwargs.get("closure", "smagorinsky"), policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=16)
    parser.add_argument("--time", type=float, default=20.0)
    parser.add_argument("--spinup", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--policies", default=POLICIES, help="comma-separated policy files ('' for none)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_reference()
    opts = dict(seeds=args.sims, time_units=args.time, spinup=args.spinup)
    print("| closure | precision | spectrum error | P(|ω|>3σ) ratio | diverged | s per time unit |")
    print("|---|---|---|---|---|---|")
    out = []
    arms = []
    for name, roots in CLOSURES:
        fam = families.get_family(name)
        roots = roots or fam.best or fam.classical
        arms.append((fam.label(roots), dict(closure=name, coeff=fam.coefficient(roots))))
    for path in filter(None, args.policies.split(",")):
        label, closure, policy = learned(path)
        arms.append((label, dict(closure=closure, policy=policy)))
    for arm, kwargs in arms:
        rows = {}
        for label, dtype in (("float64", torch.float64), ("float32", torch.float32)):
            r = rollout(ref, dtype=dtype, **kwargs, **opts)
            rows[label] = r
            print(
                f"| {arm} | {label} | {r['enstrophy_spectrum_error']:.4f} | "
                f"{r['tail_ratio']:.2f} | {r['diverged']}/{r['simulations']} | "
                f"{r['seconds_per_time_unit']:.3f} |",
                flush=True,
            )
        diffs = {
            key: t_interval(paired_differences(rows["float32"], rows["float64"], key))
            for key in ("enstrophy_spectrum_error", "tail_ratio")
        }
        speed = rows["float64"]["seconds_per_time_unit"] / rows["float32"]["seconds_per_time_unit"]
        out.append({"closure": arm, "float32_minus_float64": diffs, "speedup": speed})
    print("\nfloat32 − float64, paired over the simulations (mean ± 95% t); speed-up of float32:\n")
    for row in out:
        cells = ", ".join(
            f"{k}: {m:+.4f} ± {h:.4f}" for k, (m, h) in row["float32_minus_float64"].items()
        )
        print(f"- {row['closure']}: {cells}; x{row['speedup']:.2f} faster")
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": out}))


if __name__ == "__main__":
    main()
