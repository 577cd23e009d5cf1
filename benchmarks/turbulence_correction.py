"""A learned correction of a closure family's best constant, against any reference (issue 21
goal (a)): the D4-CNN Π of docs/closures.md, output layer zeroed, trained through the solver
as a correction added to the family's best scan constant (Kochkov et al. 2021's learned
correction; ``solver_loop.fit_field_closure(base=...)``), early-stopped on validation rollouts
from states past the evaluation window, then evaluated on the scan's paired evaluation.

``benchmarks/turbulence_routes.py`` runs the same arm against the packaged one-trajectory
reference and the two-term family; this file takes the reference, the scan and the family as
arguments (the 16-trajectory ensemble reference leaves ≈ 0.02 of spectrum error above its
floor at the best constants, docs/smarl_families.md §5b) and pairs every seed

  * against its own base constant, which the fit starts from exactly (what the correction adds);
  * against the family's best constant chosen **held out** (``trainers.turbulence.smarl.cross_fitted``:
    per fold of interleaved simulations, the grid point best on the other fold), which removes
    the winner's curse of the base constant being the best of a grid on the same simulations.

A seed whose early stopping keeps update 0 has an exactly zero correction (the zeroed output
layer: Π ≡ 0), so its evaluation is the base constant's row of the scan, reused rather than
rerun (a rerun differs only by float rounding, ~1e-17: the correction's zero is added in another
order); the report says which seeds these are.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_correction.py
         --reference envs/turbulence/data/reference_kf4_ens16.npz
         --constants-from docs/smarl_families_ens16.json --family jansen_held
         [--seeds 3] [--first-seed 0] [--out docs/smarl_correction_ens16.json] [--report]
The output is resumable (finished seeds are skipped) and refuses rows of another reference,
family or evaluation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from turbulence_family_scan import (  # this folder: which rows may be a family's best
    check_reference,
    grid_rows,
    same_reference,
)
from turbulence_routes import (  # this folder: the routes' CNN, fit settings and validation
    GOAL_TAILS,
    KEY,
    TAILS,
    VALIDATION_SIMS,
    VALIDATION_START,
    cnn_architecture,
    fit_field,
    validator,
)

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import load_reference
from regrl.files import write_text_atomic
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.closures import cnn_closure, training_files
from regrl.trainers.turbulence.smarl import cross_fitted, paired_differences, rollout
from regrl.trainers.turbulence.solver_loop import spun_up_states, zero_output

ARM = "best constant + learned D4-CNN correction (early-stopped)"
RUN_KEYS = ("reference", "constants_from", "family", "fit_iterations", "fit_sims", "lr",
            "validate_every", "snapshots")  # fmt: skip
"""Options every row of one output file must share (resuming with others is refused; the
evaluation's size is the scan's)."""


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", required=True, help="reference file the scan was scored on")
    p.add_argument("--constants-from", type=Path, required=True, help="that scan's JSON")
    p.add_argument("--family", default="jansen_held", help="(default %(default)s)")
    p.add_argument("--dataset", type=Path, default=Path("data/closures/dataset30.npz"))
    p.add_argument("--snapshots", type=int, default=30, help="the CNN's σ scales (default 30)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--fit-iterations", type=int, default=100, help="(default %(default)s)")
    p.add_argument("--fit-sims", type=int, default=4, help="(default %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam step (default %(default)s)")
    p.add_argument("--validate-every", type=int, default=10, help="(default %(default)s)")
    p.add_argument("--work", type=Path, default=Path("runs/smarl_correction"))
    p.add_argument("--out", type=Path, default=Path("docs/smarl_correction_ens16.json"))
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--report", action="store_true", help="only print the report of --out")
    return p.parse_args()


def _options(args) -> dict:
    return {k: str(getattr(args, k)) for k in RUN_KEYS}


def _scan(args) -> tuple:
    """(the family's best grid constant row, its stable grid rows; ``--extra`` rows are never
    candidates) of the scan, checked to be scored
    against ``--reference`` with this evaluation's size."""
    scan = json.loads(args.constants_from.read_text())
    a = scan["args"]
    same_reference(args.constants_from, a.get("reference"), args.reference)
    rows = [r for r in grid_rows(scan) if r.get("family") == args.family and not r["diverged"]]
    if not rows:
        raise SystemExit(f"error: {args.constants_from} has no stable {args.family} row")
    args.sims, args.time, args.spinup = int(a["sims"]), float(a["time"]), float(a["spinup"])
    return min(rows, key=lambda r: r[KEY]), rows


def run(args, state: dict) -> None:
    best, _ = _scan(args)
    ref = load_reference(args.reference)
    fam = families.get_family(args.family)
    coeff = fam.coefficient(best["roots"])
    files = training_files(dict(np.load(args.dataset)), args.snapshots, args.work / "data")
    size = np.load(files["field_train"])["x"].shape[1]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        name = f"{ARM}, seed {seed}"
        if name in state["rows"]:
            continue
        print(f"validation states: {VALIDATION_START:g} time units, seed {seed}", flush=True)
        states = spun_up_states(ref, fam.name, coeff, VALIDATION_SIMS, 1000 + seed,
                                VALIDATION_START)  # fmt: skip
        torch.manual_seed(seed)
        model = zero_output(cnn_architecture(files, size))
        print(f"fit: {name} on {best['name']}", flush=True)
        fit = fit_field(ref, model, files, args, seed, args.lr, base=(fam.name, coeff),
                   validate=validator(ref, fam, coeff, states, files),
                   validate_every=args.validate_every)  # fmt: skip
        kept = fit["selected_update"]
        if kept == 0:  # Π ≡ 0: the base constant's own evaluation (module docstring)
            row = {k: best[k] for k in (KEY, TAILS, "diverged", "simulations", "per_simulation")}
            row["reused_base_row"] = True
        else:
            print(f"eval: {name} (kept update {kept})", flush=True)
            t0 = time.time()
            field = cnn_closure(model, files["sigma_omega"], files["sigma_pi"])
            row = rollout(ref, closure=fam.name, coeff=list(coeff), field_closure=field,
                          seeds=args.sims, time_units=args.time, spinup=args.spinup)  # fmt: skip
            row["eval_seconds"] = time.time() - t0
            torch.save(model.state_dict(), args.work / f"correction_{args.family}_seed{seed}.pt")
        state["rows"][name] = dict(
            row, name=name, seed=seed, base=best["name"], train_seconds=fit["seconds"],
            skipped_unrolls=fit["skipped_unrolls"], validation=fit["validation"],
            selected_update=kept,
        )  # fmt: skip
        write_text_atomic(args.out, json.dumps(state, indent=1))
        print(f"  {name}: kept update {kept}, error {row[KEY]:.4f}, tails {row[TAILS]:.2f}")


def _interval(values) -> str:
    mean, half = t_interval(values)
    word = "" if half is None else " (better)" if mean + half < 0 else (
        " (worse)" if mean - half > 0 else "")  # fmt: skip
    return f"{mean:+.4f} ± " + ("n/a" if half is None else f"{half:.4f}") + word


def report(args, state: dict) -> str:
    best, grid = _scan(args)
    held = cross_fitted(grid, args.family)
    rows = sorted(state["rows"].values(), key=lambda r: r["seed"])
    if not rows:
        return "no seeds finished yet\n"
    lines = [
        f"Learned correction of the {args.family} family's best constant ({best['name']}: "
        f"spectrum error {best[KEY]:.4f}, tails {best[TAILS]:.2f}) against {args.reference}; "
        f"evaluation {args.sims} LES × {args.time:g} time units after {args.spinup:g}. "
        f"Held-out best constant per fold: {held['name']}.",
        "",
        "| seed | kept update | spectrum error | P(|ω|>3σ) ratio | diverged | − base constant "
        "(paired over sims) | − held-out best (paired) | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    per_seed = {"base": [], "held": [], "tails": []}
    for r in rows:
        d_base = paired_differences(r, best, KEY)
        d_held = paired_differences(r, held, KEY)
        per_seed["base"].append(statistics.fmean(d_base))
        per_seed["held"].append(statistics.fmean(d_held))
        per_seed["tails"].append(statistics.fmean(paired_differences(r, best, TAILS)))
        reused = " (Π ≡ 0: the base row)" if r.get("reused_base_row") else ""
        lines.append(
            f"| {r['seed']} | {r['selected_update']}{reused} | {r[KEY]:.4f} | {r[TAILS]:.2f} | "
            f"{r['diverged']}/{r['simulations']} | {_interval(d_base)} | {_interval(d_held)} | "
            f"{r['train_seconds']:.0f} |"
        )
    err = [r[KEY] for r in rows]
    mean_err, half_err = t_interval(err)
    lines += [
        "",
        f"Over {len(rows)} seeds (each seed's mean over the simulations; mean ± 95% t): "
        f"spectrum error {mean_err:.4f} ± {half_err if half_err is not None else float('nan'):.4f}; "
        f"− base constant {_interval(per_seed['base'])}; − held-out best "
        f"{_interval(per_seed['held'])}; tail ratio − base constant "
        f"{_interval(per_seed['tails'])} (goal (b)'s band {GOAL_TAILS[0]}–{GOAL_TAILS[1]}).",
        "",
        "Validation error at each check (updates: error of the validation rollouts):",
    ]
    for r in rows:
        curve = ", ".join(f"{c['updates']}: {c['score']:.3f}" for c in r["validation"])
        lines.append(f"- seed {r['seed']}: {curve}; kept {r['selected_update']}")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = _args()
    state = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": {}}
    if state["rows"] and state.get("options") != _options(args):
        raise SystemExit(
            f"error: {args.out} holds rows run with {state.get('options')}, not "
            f"{_options(args)}: use another --out"
        )
    if not args.report:
        check_reference(args.reference)
        torch.set_num_threads(args.threads)
        args.work.mkdir(parents=True, exist_ok=True)
        state["options"] = _options(args)
        run(args, state)
    print(report(args, state), end="")


if __name__ == "__main__":
    main()
