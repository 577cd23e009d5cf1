"""Learned SMARL closures of several training seeds against the classical closures, evaluated
on the same LES initial conditions (the baselines are deterministic, so they run once): per-seed
rows and mean ± 95% Student-t interval of the learned rows (docs/smarl.md §Results).

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_seeds.py RUN_DIR [RUN_DIR ...]
         [--sims 4] [--time 20] [--spinup 2] [--out seeds.json] [--baselines-from seeds.json]
(``--baselines-from`` reuses the baseline rows of an earlier ``--out`` with the same options:
they are deterministic, so they need not run again.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.checkpoint import latest_checkpoint
from regrl.trainers.evaluate import load_module
from regrl.trainers.run import load_run_config
from regrl.trainers.sweep import t_interval
from regrl.trainers.turbulence.smarl import (
    BASELINES,
    coeff_range_of,
    markdown_table,
    module_policy,
    rollout,
)

METRICS = ("enstrophy_spectrum_error", "energy_spectrum_error", "pdf_hellinger", "tail_ratio")


def learned_rows(run_dirs, ref, opts) -> list:
    rows = []
    for run_dir in run_dirs:
        cfg = load_run_config(Path(run_dir))
        env_kw = dict(cfg.env.kwargs)
        policy = module_policy(
            load_module(latest_checkpoint(Path(run_dir)), "shared"), coeff_range_of(env_kw)
        )
        r = rollout(
            ref,
            closure=env_kw.get("closure", "smagorinsky"),
            policy=policy,
            **opts,
            steps_per_action=int(env_kw.get("steps_per_action", 10)),
            agents_per_side=int(env_kw.get("agents_per_side", 4)),
        )
        rows.append(dict(r, name=f"learned, seed {cfg.seed}"))
        print(
            f"  {rows[-1]['name']}: diverged {r['diverged']}/{r['simulations']}, "
            f"enstrophy error {r['enstrophy_spectrum_error']:.4f}",
            flush=True,
        )
    return rows


def baseline_rows(ref, opts, earlier) -> list:
    if earlier:
        data = json.loads(Path(earlier).read_text())
        if data["options"] != opts:
            raise SystemExit(f"error: {earlier} was evaluated with {data['options']}, not {opts}")
        names = {b.name for b in BASELINES}
        return [r for r in data["rows"] if r["name"] in names]
    rows = []
    for b in BASELINES:
        rows.append(dict(rollout(ref, closure=b.closure, coeff=b.coeff, **opts), name=b.name))
        print(f"  {b.name}: enstrophy error {rows[-1]['enstrophy_spectrum_error']:.4f}", flush=True)
    return rows


def interval_row(rows) -> dict:
    out = {"name": f"learned, mean ± 95% CI over {len(rows)} seeds"}
    for key in METRICS:
        mean, half = t_interval([r[key] for r in rows])
        out[key], out[key + "_ci"] = mean, half
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--sims", type=int, default=4)
    parser.add_argument("--time", type=float, default=20.0)
    parser.add_argument("--spinup", type=float, default=2.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--baselines-from", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_reference()
    opts = dict(seeds=args.sims, time_units=args.time, spinup=args.spinup)
    rows = baseline_rows(ref, opts, args.baselines_from)
    learned = learned_rows(args.runs, ref, opts)
    print(markdown_table(rows + learned))
    summary = interval_row(learned)
    print("\n| " + " | ".join(["closure"] + list(METRICS)) + " |\n|" + "---|" * 5)
    print(
        f"| {summary['name']} | "
        + " | ".join(
            f"{summary[k]:.4f} ± "
            + ("n/a" if summary[k + "_ci"] is None else f"{summary[k + '_ci']:.4f}")
            for k in METRICS
        )
        + " |"
    )
    if args.out:
        keep = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows + learned]
        Path(args.out).write_text(
            json.dumps(
                {"rows": keep, "learned_mean_ci": summary, "options": opts, "runs": args.runs},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
