"""A confirmatory test of issue 21's goal (a) on fresh starts, with the ensemble spectrum error.

Why: on the 16 reference starts every learned order-8 closure scored *below* the family's best
constant when its simulations' spectra were pooled (SAC 0.0221–0.0230, PPO 0.0229–0.0257
against 0.0237), but *above* it per simulation (SAC +0.0013 ± 0.0024): the per-simulation
error adds each 20-time-unit window's own sampling noise, which a closure with a slightly
noisier spectrum pays for though its mean spectrum is closer to the reference. Which one is
right was seen only after the runs, and a tiny field-path perturbation of the constant itself
(the position probe's control, a = 0.001) also pooled lower (0.0232): so this test is run on
starts none of those runs used, with the rule below fixed in this docstring before it ran.

Setup (fixed before the run):
- starts: ``--sims`` 32 random fields (the solver's ``random_initial_condition``, seed
  ``--start-seed`` 1000), spun up ``--spin`` 30 time units (the reference DNS's own spin-up;
  the linear friction's time is 1/α = 10) by the LES with the family's best constant: fresh
  states of the LES's statistically steady flow that no training episode, scan or earlier
  evaluation started from;
- rows: the best constant; the null control, three closures that differ from the constant by
  nothing measurable but take the learned fields' path through the solver (the constant times
  1 + a·P on the position probe's 16×16 lattice: its forcing pattern at a = ±0.001 and its
  strength pattern at +0.001), analysed like the three seeds of a learned arm (the second and
  third were added after the run had started, before any of its rows was looked at); and each
  learned closure given by ``--arm NAME=PATH,...`` (one path per training seed), mean action;
  20 time units after 2, each simulation's time-averaged spectrum kept;
- primary statistic: the ensemble (pooled) spectrum error difference learned − constant
  (``pooled_error_difference``), mean ± 95 % t over training seeds, and the paired bootstrap
  percentile interval over the 32 starts of its seed average (``paired_bootstrap``, 2000
  draws); secondary: the per-simulation paired difference (the earlier metric) and the
  per-simulation tail ratio P(|ω| > 3σ) difference, each mean ± 95 % t over seeds;
- rule: an arm beats the constant (goal (a)) only if both intervals of its pooled difference
  lie below 0, both of the null control's hold 0, and its tail ratio is not farther from 1
  than the constant's by more than the tails interval allows.

Rows are appended to ``--out`` as they finish (a rerun skips them; the starts are rebuilt from
their seed and checked against the file's checksum).

Run:  nice -n 5 .venv/bin/python benchmarks/turbulence_fresh_starts.py \\
          --reference envs/turbulence/data/reference_kf4_ens16.npz \\
          --arm "SAC=runs/smarl_sac_hyper8/seed0,..." --arm "PPO=..." --out docs/smarl_fresh.json
      .venv/bin/python benchmarks/turbulence_fresh_starts.py --out docs/smarl_fresh.json --report
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from turbulence_family_scan import check_reference  # this folder: one --reference check
from turbulence_position_headroom import (
    CONTROL,
    LATTICE,
    constant_options,
    fixed_policy,
    modulated,
    parse_constant,
)
from turbulence_seeds import learned_rows, parse_arms

from regrl.envs.turbulence import families
from regrl.envs.turbulence.metrics import paired_bootstrap, pooled_error_difference
from regrl.envs.turbulence.reference import les_from_reference, load_reference
from regrl.trainers.data_cli import atomic_output
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import paired_differences, rollout

CONSTANT, NULL = "best constant", "null control (constant × (1 + 0.001·P))"
# the null control's members: (pattern, amplitude) of the position probe; the first (its own
# control) is stored with path None, the others under their label
NULL_MEMBERS = (CONTROL, ("forcing", -1e-3), ("strength", 1e-3))
RESAMPLES = 2000  # bootstrap draws: the interval's ends move by < 1e-4 between draw seeds
SPIN_CHUNK = 10  # steps per ``advance`` call of the spin-up (a decision's worth)


def random_les(ref, sims: int, seed: int):
    """``sims`` LES of the reference's physics started from random fields of ``seed`` (the
    solver's ``random_initial_condition``)."""
    n = ref.n_les
    sim = les_from_reference(ref, sims, initial=np.zeros((sims, n, n)))
    sim.random_initial_condition(seed)
    return sim


def uniform_coefficients(sim, fam, roots) -> torch.Tensor:
    """The family's constant ``roots`` as every agent's coefficients [batch, 4, 4, m], the
    input of ``families.advance`` (uniform: no field, no transforms)."""
    return torch.tensor(fam.coefficient(roots), dtype=sim.dtype).expand(sim.batch, 4, 4, fam.size)


def fresh_starts(ref, family: str, roots, sims: int, seed: int, spin: float) -> np.ndarray:
    """``sims`` states [sims, n, n]: random fields of ``seed`` advanced ``spin`` time units by
    the LES with the family's constant ``roots``; refuses a state that diverged."""
    fam = families.get_family(family)
    sim = random_les(ref, sims, seed)
    coeff = uniform_coefficients(sim, fam, roots)
    for _ in range(int(round(spin / sim.dt)) // SPIN_CHUNK):
        families.advance(sim, fam, coeff, SPIN_CHUNK)
    bad = ~sim.is_finite().cpu().numpy()
    if bad.any():
        raise SystemExit(f"error: {int(bad.sum())} start(s) diverged during the spin-up")
    return sim.omega.double().cpu().numpy()


def checksum(states: np.ndarray) -> float:
    return round(float(np.sum(states**2)), 6)


def stats_of(rows, base, ref) -> dict:
    """The docstring's statistics of one arm's rows (one per seed) against the constant."""
    spectra = np.array([r["per_simulation"]["enstrophy_spectrum"] for r in rows])
    base_spectra = np.array(base["per_simulation"]["enstrophy_spectrum"])
    pooled = [pooled_error_difference(s, base_spectra, ref) for s in spectra]
    point, low, high = paired_bootstrap(spectra, base_spectra, ref, resamples=RESAMPLES)
    out = {
        "pooled": t_interval(pooled),
        "bootstrap": (point, low, high),
        "pooled_errors": [r["enstrophy_spectrum_error"] for r in rows],
    }
    for key in ("enstrophy_spectrum_error", "tail_ratio"):
        out[key] = t_interval([statistics.fmean(paired_differences(r, base, key)) for r in rows])
    return out


def _pm(mean, half) -> str:
    if half is None:
        return f"{mean:+.4f}"
    star = " *" if abs(mean) > half else ""
    return f"{mean:+.4f} ± {half:.4f}{star}"


def report(path: Path) -> str:
    data = json.loads(path.read_text())
    ref = load_reference(data["args"]["reference"]).enstrophy_spectrum
    rows = data["rows"]
    base = next((r for r in rows if r["arm"] == CONSTANT), None)
    if base is None:
        raise SystemExit(f"error: {path} has no '{CONSTANT}' row to pair against")
    arms = {}
    for r in rows:
        if r["arm"] != CONSTANT:
            arms.setdefault(r["arm"], []).append(r)
    a = data["args"]
    out = [
        f"{a['sims']} fresh starts (seed {a['start_seed']}, spun up {a['spin']:g} time units "
        f"with {a['family']} {tuple(a['roots'])}), {a['time']:g} time units after "
        f"{a['spinup']:g}; learned − best constant. Best constant: pooled error "
        f"{base['enstrophy_spectrum_error']:.4f}, tails {base['tail_ratio']:.2f}. "
        "Pooled: ensemble spectrum error difference, mean ± 95 % t over seeds; bootstrap: "
        "its seed average with the paired percentile interval over starts; per simulation "
        "and tails: mean ± 95 % t over seeds of the per-start paired means (* = excludes 0).",
        "",
        "| arm | seeds | pooled errors | pooled Δ | bootstrap Δ [95 %] | per-simulation Δ | "
        "tails Δ | diverged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, rs in arms.items():
        alive = [r for r in rs if not r["diverged"]]
        if not alive:
            out.append(f"| {arm} | {len(rs)} | — | — | — | — | — | all |")
            continue
        s = stats_of(alive, base, ref)
        point, low, high = s["bootstrap"]
        star = " *" if high < 0 or low > 0 else ""
        errors = ", ".join(f"{e:.4f}" for e in s["pooled_errors"])
        lost = sum(r["diverged"] for r in rs)
        out.append(
            f"| {arm} | {len(rs)} | {errors} | {_pm(*s['pooled'])} | "
            f"{point:+.4f} [{low:+.4f}, {high:+.4f}]{star} | "
            f"{_pm(*s['enstrophy_spectrum_error'])} | {_pm(*s['tail_ratio'])} | "
            f"{lost}/{sum(r['simulations'] for r in rs)} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = constant_options(__doc__)
    parser.add_argument("--arm", action="append", metavar="NAME=PATH,PATH,...")
    parser.add_argument("--sims", type=int, default=32)
    parser.add_argument("--start-seed", type=int, default=1000)
    parser.add_argument("--spin", type=float, default=30.0)
    parser.add_argument("--time", type=float, default=20.0)
    parser.add_argument("--spinup", type=float, default=2.0)
    args = parser.parse_args()
    if args.report:
        print(report(args.out))
        return
    coeff = parse_constant(args)
    roots = args.roots
    arms = parse_arms([], args.arm)
    check_reference(args.reference)
    torch.set_num_threads(1)
    ref = load_reference(args.reference)
    start = time.time()
    starts = fresh_starts(ref, args.family, roots, args.sims, args.start_seed, args.spin)
    print(f"{args.sims} fresh starts spun up in {time.time() - start:.0f} s", flush=True)
    setup = {
        "reference": str(args.reference),
        "family": args.family,
        "roots": list(roots),
        "sims": args.sims,
        "start_seed": args.start_seed,
        "spin": args.spin,
        "time": args.time,
        "spinup": args.spinup,
        "starts_checksum": checksum(starts),
    }
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    if done["rows"] and done.get("args") != setup:
        raise SystemExit(f"error: {args.out} holds rows of another setup: {done.get('args')}")
    done["args"] = setup
    have = {(r["arm"], r.get("path")) for r in done["rows"]}
    opts = dict(
        seeds=args.sims, time_units=args.time, spinup=args.spinup, initial=starts, spectra=True
    )

    def save(row) -> None:
        for key in ("enstrophy_spectrum", "energy_spectrum", "pdf"):
            row.pop(key, None)
        done["rows"].append(row)
        with atomic_output(args.out) as fh:
            fh.write(json.dumps(done, indent=1).encode())

    kf = les_from_reference(ref, 1).kf
    fixed = [(CONSTANT, None, None)]
    for i, (pattern, amp) in enumerate(NULL_MEMBERS):
        label = None if i == 0 else f"{pattern} a={amp:+g}"
        fixed.append((NULL, label, fixed_policy(modulated(coeff, pattern, amp, LATTICE, kf))))
    for name, label, policy in fixed:
        if (name, label) in have:
            continue
        t0 = time.time()
        kw = dict(policy=policy, agents_per_side=LATTICE) if policy else dict(coeff=coeff)
        r = rollout(ref, closure=args.family, **kw, **opts)
        save(dict(r, name=name if label is None else f"{name}, {label}", arm=name, path=label))
        print(
            f"  {name} {label or ''}: error {r['enstrophy_spectrum_error']:.4f} "
            f"({time.time() - t0:.0f} s)"
        )
    for arm, paths in arms.items():
        for path in paths:
            if (arm, str(path)) in have:
                continue
            for row in learned_rows(arm, [path], ref, opts):
                if row["family"] != args.family:
                    raise SystemExit(
                        f"error: {path} is a {row['family']} closure, not {args.family}"
                    )
                save(row)
    print(report(args.out))
    print(f"wall time {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
