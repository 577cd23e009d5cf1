"""Three routes to a closure on one paired evaluation (issue 21 §2, §4): multi-agent RL
(PPO), solver-in-the-loop (constants and the policy network through the differentiable LES)
and supervised learning (the D4-equivariant CNN that predicts Π, docs/closures.md), the CNN
also fine-tuned a posteriori through the solver (``solver_loop.fit_field_closure``: spectrum
through 200-step unrolls plus its supervised loss as an anchor), and (``--arms correction``)
the same architecture trained through the solver from zero as a learned correction added to
the best two-term constant (Kochkov et al. 2021's learned correction).

Every row is evaluated on the same 16 LES from the reference's initial conditions, 20 time
units after 2 of spin-up, so rows pair per simulation across files: the rollouts are
deterministic, which is why the constant, RL and solver-in-the-loop rows are read from the files
that evaluated them (``--constants-from`` a family scan, ``--arms-from`` turbulence_seeds
outputs) and only the CNN arms run here, one supervised training seed each, then fine-tuned.

Intervals: an arm with seeds → mean ± 95% Student t over its seeds (of the per-seed mean
paired difference for the paired columns); a single constant → over the simulations.

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_routes.py --dataset DATA.npz
         [--snapshots 30] [--seeds 3] [--out docs/smarl_routes.json] [--report]
The output JSON is resumable: finished rows are kept and skipped on the next run.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from turbulence_fits import mean_roots  # this folder: one definition of the fitted means

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import load_reference
from regrl.files import atomic_output
from regrl.trainers.offline import build_model, load_offline_config
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.closures import (
    CONFIGS,
    a_priori,
    cnn_closure,
    heldout_les,
    train_closure,
    training_files,
)
from regrl.trainers.turbulence.smarl import cross_fitted, paired_differences, rollout
from regrl.trainers.turbulence.solver_loop import (
    FitSpec,
    fit_field_closure,
    spun_up_states,
    zero_output,
)

KEY, TAILS = "enstrophy_spectrum_error", "tail_ratio"
ROUNDING = 1e-9
"""A paired difference smaller than this is float rounding (a zero correction added to the
constant's step differs from the constant's own step by ~1e-17), not better or worse."""
GOAL_TAILS = (0.9, 1.1)
"""Issue 21 goal (b): P(|ω| > 3σ) within 0.9–1.1 of the DNS's, spectrum error ≤ half the best
constant Smagorinsky's."""
SUPERVISED = "supervised D4-CNN Π"
FINE_TUNED = "D4-CNN Π fine-tuned a posteriori"
CORRECTION = "best two-term constant + learned D4-CNN correction"
CORRECTION_FAMILY = "smagorinsky_hyper"
CORRECTION_UPDATES = 100
"""The correction arm's updates, set before any run of it (10 time units of unrolls)."""
VALIDATION_SIMS = 4
VALIDATION_START = 24.0
"""Validation LES start from ``VALIDATION_SIMS`` initial conditions (drawn with seed
1000 + training seed) stepped ``VALIDATION_START`` time units with the base constant: past the
evaluation window's end (2 + 20), so early stopping never sees the evaluated stretch."""
VALIDATION_WINDOW = (1.0, 5.0)
"""Each validation rollout: (spin-up, statistics window) in time units from those states —
25× a training unroll's 0.2, so it sees the drift that a 200-step loss misses."""


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, default=Path("data/closures/dataset30.npz"))
    p.add_argument("--snapshots", type=int, default=30, help="training snapshots of the CNN")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument(
        "--first-seed", type=int, default=0, help="run seeds first-seed … first-seed + seeds − 1"
    )
    p.add_argument("--cnn-steps", type=int, default=250, help="supervised AdamW steps")
    p.add_argument("--sims", type=int, default=16)
    p.add_argument("--time", type=float, default=20.0)
    p.add_argument("--spinup", type=float, default=2.0)
    p.add_argument("--fit-iterations", type=int, default=40)
    p.add_argument("--fit-sims", type=int, default=4)
    p.add_argument("--fit-lr", type=float, default=1e-3)
    p.add_argument(
        "--anchor-weight",
        type=float,
        default=0.01,
        help="λ of the supervised anchor; 0.01 puts it at the spectrum loss's scale (anchor MSE ≈ 0.8, "
        "spectrum loss ≈ 0.002 at the start of a fine-tune; set from those, before any evaluation)",
    )
    p.add_argument("--constants-from", type=Path, default=Path("docs/smarl_families.json"))
    p.add_argument("--fits-from", type=Path, default=Path("docs/smarl_fits.json"))
    p.add_argument(
        "--arms-from",
        type=Path,
        nargs="*",
        default=[Path("docs/smarl_hyper_rl.json"), Path("docs/smarl_policy_fit.json")],
    )
    p.add_argument("--work", type=Path, default=Path("runs/smarl_routes"))
    p.add_argument("--out", type=Path, default=Path("docs/smarl_routes.json"))
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument(
        "--arms",
        choices=("both", "supervised", "fine-tuned", "correction"),
        default="both",
        help="fine-tuned: only fine-tune and evaluate (the supervised weights must exist); "
        "correction: only the learned correction of the best two-term constant",
    )
    p.add_argument(
        "--correction-lr",
        type=float,
        default=1e-3,
        help="Adam step of the learned correction (the fine-tune's, set before any evaluation)",
    )
    p.add_argument(
        "--validate-every",
        type=int,
        default=0,
        help="correction arm: early stopping, scoring the spectrum error of validation rollouts "
        "(VALIDATION_* below) before the first update and every N updates, and keeping the best",
    )
    p.add_argument("--report", action="store_true", help="only print the table of --out")
    return p.parse_args()


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"rows": {}}


def _save(path: Path, state: dict) -> None:
    """Merge this process's rows into ``path`` under a lock and replace it atomically: several
    processes (one per seed, ``--first-seed``) may share one output file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"regrl-routes-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = _load(path)
        merged["rows"].update(state["rows"])
        merged["options"] = state.get("options", merged.get("options"))
        with atomic_output(path, "w") as fh:  # a reader never sees half a file
            fh.write(json.dumps(merged, indent=1))
    # in place: the arms hold ``state["rows"]`` and add to it after this save
    state["rows"].update(merged["rows"])


def _evaluate(ref, field, args, closure=None, coeff=None) -> dict:
    """The paired evaluation of a field closure (added to ``closure``'s constant ``coeff``)."""
    return rollout(
        ref,
        closure=closure,
        coeff=coeff,
        field_closure=field,
        seeds=args.sims,
        time_units=args.time,
        spinup=args.spinup,
    )


def fit_field(ref, model, files, args, seed: int, lr: float, **kw) -> dict:
    """``fit_field_closure`` of ``model`` with the arms' unroll settings (200-step unrolls
    over ``--fit-sims`` LES, spectra every 20 steps, Π every 10)."""
    spec = FitSpec(
        sims=args.fit_sims,
        seed=seed,
        spinup=args.spinup,
        unroll=200,
        sample_every=20,
        iterations=args.fit_iterations,
        lr=lr,
    )
    say = lambda m: print(m, flush=True)  # noqa: E731
    return fit_field_closure(
        ref, model, files["sigma_omega"], files["sigma_pi"], spec, every=10, say=say, **kw
    )


def cnn_architecture(files: dict, size: int):
    """The supervised CNN's architecture, untrained (weights are loaded into it)."""
    cfg = load_offline_config(
        CONFIGS["cnn"],
        [f"data.path={files['field_train']}", f"data.val_path={files['field_heldout']}"],
    )
    return build_model(cfg, size, size)


def run_cnn_arms(args, state: dict) -> None:
    """Train, evaluate, fine-tune and evaluate the CNN of each seed (skipping finished rows)."""
    ref = load_reference()
    data = dict(np.load(args.dataset))
    files = training_files(data, args.snapshots, args.work / "data")
    s_w, s_pi = files["sigma_omega"], files["sigma_pi"]
    train = np.load(files["field_train"])
    held = heldout_les(ref, data)
    rows = state["rows"]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        sup, fine = f"{SUPERVISED}, seed {seed}", f"{FINE_TUNED}, seed {seed}"
        weights = args.work / f"cnn_supervised_seed{seed}.pt"
        seconds_file = weights.with_suffix(".json")
        if sup not in rows and args.arms != "fine-tuned":
            if weights.is_file() and seconds_file.is_file():  # trained before an interruption
                model = cnn_architecture(files, train["x"].shape[1])
                model.load_state_dict(torch.load(weights, weights_only=True))
                model.eval()
                seconds = json.loads(seconds_file.read_text())["train_seconds"]
            else:
                print(f"train: {SUPERVISED} on {args.snapshots} snapshots, seed {seed}", flush=True)
                t0 = time.time()
                _, model = train_closure(
                    CONFIGS["cnn"],
                    files["field_train"],
                    files["field_heldout"],
                    f"routes_cnn_seed{seed}",
                    args.work / "runs",
                    args.cnn_steps,
                    [f"seed={seed}", "model.arch=closure_cnn_d4"],
                )
                seconds = time.time() - t0
                torch.save(model.state_dict(), weights)
                seconds_file.write_text(json.dumps({"train_seconds": seconds}))
            field = cnn_closure(model, s_w, s_pi)
            print(f"eval: {sup}", flush=True)
            row = _evaluate(ref, field, args)
            rows[sup] = dict(
                row,
                name=sup,
                train_seconds=seconds,
                a_priori=a_priori(held, data, field=field),
                hr_snapshots=args.snapshots,
            )
            _save(args.out, state)
        if fine not in rows and args.arms != "supervised":
            if not (weights.is_file() and (sup in rows or seconds_file.is_file())):
                raise SystemExit(f"{weights}: no supervised CNN of seed {seed} to fine-tune yet")
            sup_seconds = (
                rows[sup]["train_seconds"]
                if sup in rows
                else json.loads(seconds_file.read_text())["train_seconds"]
            )
            model = cnn_architecture(files, train["x"].shape[1])
            model.load_state_dict(torch.load(weights, weights_only=True))
            print(f"fine-tune: {fine}", flush=True)
            fit = fit_field(
                ref,
                model,
                files,
                args,
                seed,
                args.fit_lr,
                anchor=(train["x"], train["y"]),
                anchor_weight=args.anchor_weight,
            )
            field = cnn_closure(model, s_w, s_pi)
            print(f"eval: {fine}", flush=True)
            row = _evaluate(ref, field, args)
            rows[fine] = dict(
                row,
                name=fine,
                train_seconds=sup_seconds + fit["seconds"],
                fit_seconds=fit["seconds"],
                skipped_unrolls=fit["skipped_unrolls"],
                final_loss=fit["history"][-1]["loss"],
                a_priori=a_priori(held, data, field=field),
                hr_snapshots=args.snapshots,
            )
            _save(args.out, state)


def _correction_arm(args) -> str:
    """The correction arm's row label: its number of updates unless the default 100, and its
    early stopping if any."""
    n, every = args.fit_iterations, args.validate_every
    tags = [] if n == CORRECTION_UPDATES else [f"{n} updates"]
    tags += [f"early-stopped, validated every {every}"] if every else []
    return f"{CORRECTION} ({', '.join(tags)})" if tags else CORRECTION


def validator(ref, fam, coeff, states: np.ndarray, files: dict):
    """``fit_field_closure``'s ``validate``: the pooled log-enstrophy-spectrum error of the
    correction (with its constant) from ``states``."""
    spin, window = VALIDATION_WINDOW

    def score(model) -> float:
        field = cnn_closure(model, files["sigma_omega"], files["sigma_pi"])
        out = rollout(
            ref,
            closure=fam.name,
            coeff=list(coeff),
            field_closure=field,
            initial=states,
            time_units=window,
            spinup=spin,
        )
        return out[KEY] if not out["diverged"] else float("inf")

    return score


def _arms_of(rows: dict, prefix: str) -> list:
    """The arm labels in ``rows`` that start with ``prefix`` (variants of one route)."""
    arms = {n.rsplit(", seed ", 1)[0] for n in rows if n.startswith(prefix)}
    return sorted(arms, key=len)


def run_correction_arm(args, state: dict) -> None:
    """Per seed: a D4-CNN (the supervised arm's architecture, fresh initialisation, output
    layer zeroed) trained a posteriori as a **correction** Π added to the family's best scan
    constant (``fit_field_closure(base=...)``: the spectrum loss through 200-step unrolls, no
    supervised anchor, no filtered-DNS field: only the reference spectrum and the σ_Π scale of
    the training files), then evaluated with that constant. It starts exactly at the best
    constant, so its paired column against it is what the correction adds."""
    ref = load_reference()
    data = dict(np.load(args.dataset))
    files = training_files(data, args.snapshots, args.work / "data")
    size = np.load(files["field_train"])["x"].shape[1]
    consts, _, _ = _external(args)
    best = next(r for n, r in consts.items() if n.startswith("best constant two-term"))
    fam = families.get_family(CORRECTION_FAMILY)
    coeff = fam.coefficient(best["roots"])
    rows = state["rows"]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        name = f"{_correction_arm(args)}, seed {seed}"
        if name in rows:
            continue
        kw = {}
        if args.validate_every:
            print(f"validation states: {VALIDATION_START:g} time units, seed {seed}", flush=True)
            states = spun_up_states(
                ref, fam.name, coeff, VALIDATION_SIMS, 1000 + seed, VALIDATION_START
            )
            kw = dict(
                validate=validator(ref, fam, coeff, states, files),
                validate_every=args.validate_every,
            )
        torch.manual_seed(seed)
        model = zero_output(cnn_architecture(files, size))
        print(f"fit: {name} on {best['name']}", flush=True)
        fit = fit_field(
            ref, model, files, args, seed, args.correction_lr, base=(fam.name, coeff), **kw
        )
        print(f"eval: {name}", flush=True)
        field = cnn_closure(model, files["sigma_omega"], files["sigma_pi"])
        row = _evaluate(ref, field, args, closure=fam.name, coeff=list(coeff))
        rows[name] = dict(
            row,
            name=name,
            base=best["name"],
            train_seconds=fit["seconds"],
            skipped_unrolls=fit["skipped_unrolls"],
            first_loss=fit["history"][0]["loss"],
            final_loss=fit["history"][-1]["loss"],
            **{k: fit[k] for k in ("validation", "selected_update") if k in fit},
        )
        _save(args.out, state)


# ===================================================================== the table
def _seeded(rows: dict, arm: str) -> list:
    return [r for n, r in rows.items() if n.startswith(arm + ", seed ")]


def _check_options(path: Path, sims, time_units, spinup, args) -> None:
    """Rows pair only if they were evaluated the same way (same simulations and window)."""
    if (int(sims), float(time_units), float(spinup)) != (args.sims, args.time, args.spinup):
        raise SystemExit(
            f"{path} was evaluated on {sims} LES x {time_units} time units after {spinup}, "
            f"this run on {args.sims} x {args.time} after {args.spinup}: rows would not pair"
        )


def _fitted_labels(path: Path) -> dict:
    """{(closure, target, method): the scan's row name of the mean fitted constants} of the
    fits file (benchmarks/turbulence_fits.py): those rows are not grid points, so never the
    "best constant" of a family."""
    if not path.is_file():
        return {}
    fits = json.loads(path.read_text())["fits"]
    return {
        key: families.get_family(key[0]).label(roots) for key, roots in mean_roots(fits).items()
    }


def _external(args) -> tuple:
    """(constant rows {label: row}, arm rows {arm: [per-seed rows]}, the scan's grid rows: every
    row but the fitted constants) from the earlier files."""
    got = json.loads(args.constants_from.read_text())
    a = got["args"]
    _check_options(args.constants_from, a["sims"], a["time"], a["spinup"], args)
    fitted = _fitted_labels(args.fits_from)
    scan = got["rows"]
    grid = [r for r in scan if r["name"] not in fitted.values()]
    stable = [r for r in grid if not r["diverged"]]
    consts = {}
    for fam, label in (
        ("smagorinsky", "best constant Smagorinsky"),
        ("smagorinsky_hyper", "best constant two-term"),
        ("jansen_held", "best constant backscatter"),
    ):
        best = min((r for r in stable if r["family"] == fam), key=lambda r: r[KEY])
        consts[f"{label} ({best['name']})"] = best
    by_name = {r["name"]: r for r in scan if not r["diverged"]}
    for method, label in (("solver", "solver-in-the-loop constants"), ("eki", "EKI constants")):
        for fam in ("smagorinsky_hyper", "jansen_held"):
            name = fitted.get((fam, "spectrum", method))
            if name in by_name:  # the mean fitted constants, evaluated in the scan (--extra)
                consts[f"{label} ({name})"] = by_name[name]
    arms = {}
    for path in args.arms_from:
        got = json.loads(path.read_text())
        o = got["options"]
        _check_options(path, o["seeds"], o["time_units"], o["spinup"], args)
        rows = {r["name"]: r for r in got["rows"]}
        for arm in got.get("paths", {}):
            arms[arm] = _seeded(rows, arm)
    return consts, arms, grid


def _cost(rows: list) -> str:
    """Evaluation wall seconds per time unit per simulation (the batch's wall time over its
    size), as measured under whatever load the evaluation ran: a rough cost, not a benchmark."""
    return f"{statistics.fmean(r['seconds_per_time_unit'] for r in rows):.2f}"


def _ci(values) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    mean, half = t_interval(values)
    return f"{mean:.4f} ± {half:.4f}"


def _paired(rows: list, base: dict, key: str) -> str:
    """Mean paired difference ± 95% t: over seeds (each seed's mean over the simulations) for
    an arm, over the simulations for one row."""
    if len(rows) == 1:
        d = paired_differences(rows[0], base, key)
    else:
        d = [statistics.fmean(paired_differences(r, base, key)) for r in rows]
    mean, half = t_interval(d)
    if abs(mean) < ROUNDING:  # the same closure stepped another way: equal up to rounding
        mean = 0.0
    word = " (better)" if mean + half < 0 else " (worse)" if mean - half > 0 else ""
    return f"{mean:+.4f} ± {half:.4f}{word}"


COSTS = {  # training cost of the rows read from other files, as those files' pages state it
    "best constant": "a grid scan (≈ 30 points × 16 LES × 22 t.u.)",
    "solver-in-the-loop constants": "≈ 100 s per seed (150 updates)",
    "EKI constants": "≈ 10 min per seed (16 LES × 24 t.u.)",
    "PPO, paired reward": "20 PPO iterations, ≈ 10–20 min per seed",
    "solver-in-the-loop policy": "60 updates, 1–7 min per seed",
}


def _cost_of(name: str) -> str:
    return next((c for k, c in COSTS.items() if name.startswith(k)), "—")


def report(args, state: dict) -> str:
    consts, arms, grid = _external(args)
    held = cross_fitted(grid, "smagorinsky_hyper")
    smag = next(r for n, r in consts.items() if n.startswith("best constant Smagorinsky"))
    two = next(r for n, r in consts.items() if n.startswith("best constant two-term"))
    entries = [(n, [r], "reference spectrum only", _cost_of(n)) for n, r in consts.items()]
    for arm, rows in arms.items():
        entries.append((arm, rows, "reference spectrum only", _cost_of(arm)))
    for arm in (SUPERVISED, FINE_TUNED, *_arms_of(state["rows"], CORRECTION)):
        rows = _seeded(state["rows"], arm)
        if rows:
            secs = statistics.fmean(r["train_seconds"] for r in rows)
            if arm.startswith(CORRECTION):
                data = "reference spectrum (+ the σ_Π scale)"
            else:
                data = f"{rows[0]['hr_snapshots']} filtered-DNS snapshots"
            if arm == FINE_TUNED:
                data += " + reference spectrum"
            entries.append((arm, rows, data, f"{secs:.0f} s"))
    half = smag[KEY] / 2
    lines = [
        f"Paired evaluation: {args.sims} LES × {args.time:g} time units after {args.spinup:g}; "
        f"arms: mean ± 95% t over seeds; constants: one row (paired columns over the "
        f"simulations). Goal (b): tails ratio in {GOAL_TAILS[0]}–{GOAL_TAILS[1]} and "
        f"spectrum error ≤ {half:.4f} (half the best constant Smagorinsky's). Held-out best "
        f"two-term: per fold of interleaved simulations, the grid constant best on the other "
        f"fold ({held['name']}).",
        "",
        "| route | seeds | log-enstrophy-spectrum error | − best Smagorinsky (paired) | "
        "− best two-term (paired) | − held-out best two-term (paired) | P(|ω|>3σ) ratio | diverged | a-priori corr(Π) | "
        "s per t.u. per LES | high-fidelity data | training cost | goal (b) |",
        "|" + "---|" * 13,
    ]
    for name, rows, data, secs in entries:
        err = [r[KEY] for r in rows]
        tails = [r[TAILS] for r in rows]
        ok = statistics.fmean(err) <= half and GOAL_TAILS[0] <= statistics.fmean(tails)
        ok = ok and statistics.fmean(tails) <= GOAL_TAILS[1]
        prior = [r["a_priori"] for r in rows if "a_priori" in r]
        lines.append(
            f"| {name} | {len(rows)} | {_ci(err)} | {_paired(rows, smag, KEY)} | "
            f"{_paired(rows, two, KEY)} | {_paired(rows, held, KEY)} | {_ci(tails)} | "
            f"{sum(r['diverged'] for r in rows)}/{sum(r['simulations'] for r in rows)} | "
            f"{_ci(prior) if prior else '—'} | {_cost(rows)} | {data} | {secs} | "
            f"{'yes' if ok else 'no'} |"
        )
    lines += early_stopping_lines(state["rows"])
    return "\n".join(lines)


def early_stopping_lines(rows: dict) -> list:
    """Per early-stopped arm: the update each seed kept and its validation curve (spectrum
    error of the validation rollouts at each check)."""
    out = []
    for arm in _arms_of(rows, CORRECTION):
        seeded = [r for r in _seeded(rows, arm) if "validation" in r]
        if not seeded:
            continue
        out += ["", f"{arm}: validation error at each check (updates: error), kept update"]
        for r in seeded:
            curve = ", ".join(f"{c['updates']}: {c['score']:.3f}" for c in r["validation"])
            out.append(f"- {r['name']}: {curve}; kept {r['selected_update']}")
    return out


def main() -> None:
    args = _args()
    state = _load(args.out)
    if not args.report:
        torch.set_num_threads(args.threads)
        state["options"] = {k: str(v) for k, v in vars(args).items()}
        if args.arms == "correction":
            run_correction_arm(args, state)
        else:
            run_cnn_arms(args, state)
    print(report(args, state))


if __name__ == "__main__":
    main()
