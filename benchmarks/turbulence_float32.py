"""float32 LES, and longer LES time steps, against the float64 LES at the reference's time step
on the evaluation's metrics and cost (issue 21 §5): the same closures, the same 16 initial
conditions, every variant in this run; paired differences (variant − float64 at the reference's
dt) per simulation, mean ± 95% Student t, and the seconds per time unit ratio.
The closures: SMARL's constant, the two-term family's best constant, and each ``--policies``
file's learned closure (its mean action, as ``regrl eval`` runs it; observations are formed in
the LES's precision, the policy itself runs in float32 either way).
``--variants``: ``DTYPE`` or ``DTYPE@DT`` (e.g. ``float32,float64@1e-3``). A variant with a
longer time step keeps the agents' decision interval in time (10 steps of the reference's
5·10⁻⁴ = 5·10⁻³ time units, SMARL's): ``steps_per_action`` = interval / dt, which must be a whole
number. Why a longer step is worth checking: at 5·10⁻⁴ the 64² LES runs at a Courant number
|u|dt/dx ≈ 0.03, half that of the 256² reference DNS (dt 2.5·10⁻⁴); dt 10⁻³ puts the LES at
the DNS's own Courant number.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_float32.py [--sims 16] [--time 20]
         [--spinup 2] [--policies A.pt,B.pt] [--variants float32,float64@1e-3]
         [--out docs/smarl_float32.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import (
    STEPS_PER_DECISION,
    les_dt,
    load_reference,
    steps_per_decision,
)
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import paired_differences, rollout

# SMARL's constant, and the two-term family's best constant of docs/smarl_families.md
CLOSURES = (("smagorinsky", (0.17,)), ("smagorinsky_hyper", None))
# the shipped learned closures: SMARL's family (the cost benchmark's learned row) and the
# two-term family (make demo's start)
POLICIES = "data/turbulence/policies/smarl_ppo.pt,data/turbulence/policies/smarl_hyper_ppo.pt"
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def parse_variants(text: str, ref_dt: float) -> list:
    """``DTYPE[@DT],...`` → [(label, dtype, dt, steps per decision)], the baseline (float64 at
    the reference's dt) first; a clear error for an unknown precision, a bad number, a time
    step that does not divide the decision interval, or a variant listed twice."""
    out = [(f"float64, dt {ref_dt:g}", torch.float64, ref_dt, STEPS_PER_DECISION)]
    for item in filter(None, text.split(",")):
        name, _, dt_text = item.partition("@")
        try:
            if name not in DTYPES:
                raise ValueError(f"precision must be one of {sorted(DTYPES)}")
            dt = float(dt_text) if dt_text else ref_dt
            steps = steps_per_decision(dt, ref_dt)
            label = f"{name}, dt {dt:g}"
            if any(label == v[0] for v in out):
                raise ValueError(f"{label} is listed twice (or is the base)")
        except ValueError as exc:
            raise SystemExit(f"error: --variants {item!r}: {exc}") from None
        out.append((label, DTYPES[name], dt, steps))
    return out


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
    parser.add_argument(
        "--variants",
        default="float32",
        help="comma-separated DTYPE or DTYPE@DT, each against float64 at the reference's dt",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_reference()
    variants = parse_variants(args.variants, les_dt(ref.provenance["spec"]))
    opts = dict(seeds=args.sims, time_units=args.time, spinup=args.spinup)
    print("| closure | LES | spectrum error | P(|ω|>3σ) ratio | diverged | s per time unit |")
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
    base = variants[0][0]
    for arm, kwargs in arms:
        rows = {}
        for label, dtype, dt, steps in variants:
            r = rollout(ref, dtype=dtype, dt=dt, steps_per_action=steps, **kwargs, **opts)
            rows[label] = r
            print(
                f"| {arm} | {label} | {r['enstrophy_spectrum_error']:.4f} | "
                f"{r['tail_ratio']:.2f} | {r['diverged']}/{r['simulations']} | "
                f"{r['seconds_per_time_unit']:.3f} |",
                flush=True,
            )
        for label, *_ in variants[1:]:
            diffs = {
                key: t_interval(paired_differences(rows[label], rows[base], key))
                for key in ("enstrophy_spectrum_error", "tail_ratio")
            }
            speed = rows[base]["seconds_per_time_unit"] / rows[label]["seconds_per_time_unit"]
            out.append({"closure": arm, "variant": label, "minus_base": diffs, "speedup": speed})
    print(f"\nvariant − {base}, paired over the simulations (mean ± 95% t); speed-up:\n")
    for row in out:
        cells = ", ".join(f"{k}: {m:+.4f} ± {h:.4f}" for k, (m, h) in row["minus_base"].items())
        print(f"- {row['closure']}, {row['variant']}: {cells}; x{row['speedup']:.2f} faster")
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": out}))


if __name__ == "__main__":
    main()
