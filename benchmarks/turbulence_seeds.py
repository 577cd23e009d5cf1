"""Learned SMARL closures of several training seeds against the classical closures, evaluated
on the same LES initial conditions (the baselines are deterministic, so they run once): per-seed
rows and mean ± 95% Student-t interval of each learned arm over its seeds; the baselines' own
interval is over the simulations (docs/smarl.md §Results).

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_seeds.py [RUN_DIR ...]
         [--arm NAME=PATH,PATH,...] [--sims 4] [--time 20] [--spinup 2] [--out seeds.json]
         [--baselines-from seeds.json] [--paired-from seeds.json] [--reference FILE.npz]
``--reference`` scores every row (and feeds the policies' spectrum observation) against another
reference file, e.g. the 16-trajectory ensemble of ``benchmarks/turbulence_dns_floor.py
--write-reference``; ``--baselines-from`` and ``--constants-from`` files must have used the same.
A PATH is a run directory (its latest checkpoint) or a policy file (FILE.pt with FILE.json,
``regrl export`` / ``regrl turbulence pretrain-policy``); positional RUN_DIRs form the arm
"learned". ``--baselines-from`` reuses the baseline rows of an earlier ``--out`` with the same
options: they are deterministic, so they need not run again. ``--constants-from`` takes the
rows of a closure-family scan (``benchmarks/turbulence_family_scan.py --out``, same options) and
pairs every arm also against the best constant **of its own family** there (lowest pooled
spectrum error among the stable rows).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from turbulence_family_scan import (  # this folder: which rows may be a family's best
    check_reference,
    grid_rows,
    same_reference,
)

from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.checkpoint import latest_checkpoint
from regrl.trainers.evaluate import load_module
from regrl.trainers.kinds import load_run_config
from regrl.trainers.rllib.policy_file import load_policy
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import (
    BASELINES,
    coeff_range_of,
    markdown_table,
    module_policy,
    paired_differences,
    rollout,
)

METRICS = ("enstrophy_spectrum_error", "energy_spectrum_error", "pdf_hellinger", "tail_ratio")


def _policy_of(path: Path):
    """(module, config, squashed) of a run directory, a policy file or a SAC output directory
    (``benchmarks/smarl_sac.py``: its module and sac.json)."""
    if path.is_file():
        module, cfg, _ = load_policy(path)
        return module, cfg, False
    if (path / "sac.json").is_file():
        info = json.loads((path / "sac.json").read_text())
        cfg = SimpleNamespace(env=SimpleNamespace(kwargs=info["env_kwargs"]), seed=info["seed"])
        module = load_module(path, "shared")
        module.eval()
        return module, cfg, True
    return load_module(latest_checkpoint(path), "shared"), load_run_config(path, "rl"), False


def learned_rows(arm: str, paths, ref, opts, sample_seed=None) -> list:
    rows = []
    for path in paths:
        module, cfg, squashed = _policy_of(Path(path))
        env_kw = dict(cfg.env.kwargs)
        r = rollout(
            ref,
            closure=env_kw.get("closure", "smagorinsky"),
            policy=module_policy(module, coeff_range_of(env_kw), squashed, sample_seed),
            **opts,
            steps_per_action=int(env_kw.get("steps_per_action", 10)),
            agents_per_side=int(env_kw.get("agents_per_side", 4)),
        )
        family = env_kw.get("closure", "smagorinsky")
        rows.append(dict(r, name=f"{arm}, seed {cfg.seed}", arm=arm, path=str(path), family=family))
        print(
            f"  {rows[-1]['name']}: diverged {r['diverged']}/{r['simulations']}, "
            f"enstrophy error {r['enstrophy_spectrum_error']:.4f}",
            flush=True,
        )
    return rows


def baseline_rows(ref, opts, earlier, reference=None) -> list:
    if earlier:
        data = json.loads(Path(earlier).read_text())
        if data["options"] != opts:
            raise SystemExit(f"error: {earlier} was evaluated with {data['options']}, not {opts}")
        same_reference(earlier, data.get("reference"), reference)
        names = {b.name for b in BASELINES}
        return [r for r in data["rows"] if r["name"] in names]
    rows = []
    for b in BASELINES:
        rows.append(dict(rollout(ref, closure=b.closure, coeff=b.coeff, **opts), name=b.name))
        print(f"  {b.name}: enstrophy error {rows[-1]['enstrophy_spectrum_error']:.4f}", flush=True)
    return rows


def interval_row(arm: str, rows) -> dict:
    out = {"name": f"{arm}, mean ± 95% CI over {len(rows)} seeds", "arm": arm}
    for key in METRICS:
        mean, half = t_interval([r[key] for r in rows])
        out[key], out[key + "_ci"] = mean, half
    out["diverged"] = sum(r["diverged"] for r in rows)
    out["simulations"] = sum(r["simulations"] for r in rows)
    return out


def simulation_interval(row: dict) -> dict:
    """A baseline's mean ± 95% interval over its simulations (per-simulation metrics)."""
    per = row.get("per_simulation", {})
    out = {"name": f"{row['name']} (over {len(per.get('tail_ratio', []))} simulations)"}
    for key in ("enstrophy_spectrum_error", "tail_ratio"):
        out[key], out[key + "_ci"] = t_interval(per.get(key, []))
    return out


def _cell(row: dict, key: str) -> str:
    half = row.get(key + "_ci")
    return f"{row[key]:.4f} ± " + ("n/a" if half is None else f"{half:.4f}")


PAIRED_AGAINST = ("Smagorinsky C_s=0.17", "Leith C_L=0.17")


def family_best(scan_rows: list, family: str):
    """The stable constant of ``family`` with the lowest pooled spectrum error in a scan."""
    stable = [r for r in scan_rows if r.get("family") == family and not r["diverged"]]
    return min(stable, key=lambda r: r["enstrophy_spectrum_error"]) if stable else None


def paired_rows(learned: dict, baselines: list, scan_rows: list = ()) -> list:
    """Each arm minus each of ``PAIRED_AGAINST`` (and the best constant of its family in
    ``scan_rows``) on the same simulations: per seed, the mean over simulations of learned −
    baseline; mean ± 95% t over the seeds."""
    base = {r["name"]: r for r in baselines if r["name"] in PAIRED_AGAINST}
    out = []
    for arm, rows in learned.items():
        row = {"arm": arm}
        own = family_best(scan_rows, rows[0].get("family", "smagorinsky")) if scan_rows else None
        against = dict(base, **({f"best constant ({own['name']})": own} if own else {}))
        for name, b in against.items():
            for key in ("enstrophy_spectrum_error", "tail_ratio"):
                diffs = [
                    statistics.fmean(paired_differences(r, b, key))
                    for r in rows
                    if not r["diverged"]
                ]
                row[f"{key} − {name}"] = t_interval(diffs)
        out.append(row)
    return out


def print_paired(paired: list) -> None:
    if not paired:
        return
    keys = [k for k in paired[0] if k != "arm"]
    print("\nPaired (per seed: mean over the same simulations of learned − baseline; mean ± 95% t)")
    print("\n| arm | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1))
    for row in paired:
        cells = [
            f"{m:+.4f} ± " + ("n/a" if h is None else f"{h:.4f}") for m, h in (row[k] for k in keys)
        ]
        print(f"| {row['arm']} | " + " | ".join(cells) + " |")


def parse_arms(positional, arms) -> dict:
    out = {"learned": list(positional)} if positional else {}
    for text in arms or []:
        name, sep, paths = text.partition("=")
        if not sep or not name or not paths:
            raise SystemExit(f"error: --arm wants NAME=PATH,PATH,..., got {text!r}")
        out[name] = [p for p in paths.split(",") if p]
    for name, paths in out.items():
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise SystemExit(f"error: arm {name}: no such run directory or policy file {missing}")
    if not out:
        raise SystemExit("error: give RUN_DIRs or --arm NAME=PATH,...")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*")
    parser.add_argument("--arm", action="append", metavar="NAME=PATH,PATH,...")
    parser.add_argument("--sims", type=int, default=4)
    parser.add_argument("--time", type=float, default=20.0)
    parser.add_argument("--spinup", type=float, default=2.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--baselines-from", default=None)
    parser.add_argument(
        "--sampled",
        action="store_true",
        help="also evaluate every arm with actions sampled from the policy (the SMARL "
        "authors' evaluation), as the arm '<name>, sampled'",
    )
    parser.add_argument(
        "--constants-from", default=None, help="a family scan's JSON with the same options"
    )
    parser.add_argument(
        "--paired-from", default=None, help="print the paired table of an earlier --out and stop"
    )
    parser.add_argument(
        "--reference", default=None, help="reference file to score against (default: packaged)"
    )
    args = parser.parse_args()
    if args.paired_from:
        data = json.loads(Path(args.paired_from).read_text())
        learned = {}
        for r in data["rows"]:
            if "arm" in r:
                learned.setdefault(r["arm"], []).append(r)
        print_paired(paired_rows(learned, data["rows"]))
        return
    arms = parse_arms(args.runs, args.arm)
    check_reference(args.reference)
    torch.set_num_threads(1)
    opts = dict(seeds=args.sims, time_units=args.time, spinup=args.spinup)
    scan_rows = []
    if args.constants_from:
        scan = json.loads(Path(args.constants_from).read_text())
        want = {"sims": opts["seeds"], "time": opts["time_units"], "spinup": opts["spinup"]}
        want["reference"] = args.reference
        used = {k: scan["args"].get(k) for k in want}
        if used != want:
            raise SystemExit(f"error: {args.constants_from} used {used}, not {want}")
        scan_rows = grid_rows(scan)  # a fitted --extra constant is never the family's best
    ref = load_reference(args.reference)
    start = time.time()
    rows = baseline_rows(ref, opts, args.baselines_from, args.reference)
    learned = {arm: learned_rows(arm, paths, ref, opts) for arm, paths in arms.items()}
    if args.sampled:
        for arm, paths in arms.items():
            name = f"{arm}, sampled"
            learned[name] = learned_rows(name, paths, ref, opts, sample_seed=0)
    every = [r for rs in learned.values() for r in rs]
    print(markdown_table(rows + every))
    summaries = [interval_row(arm, rs) for arm, rs in learned.items()]
    sims = [simulation_interval(r) for r in rows if "per_simulation" in r]
    print("\n| " + " | ".join(["closure"] + list(METRICS) + ["diverged"]) + " |\n|" + "---|" * 6)
    for summary in summaries:
        cells = " | ".join(_cell(summary, k) for k in METRICS)
        print(f"| {summary['name']} | {cells} | {summary['diverged']}/{summary['simulations']} |")
    print("\n| baseline | enstrophy_spectrum_error | tail_ratio |\n|---|---|---|")
    for row in sims:
        print(
            f"| {row['name']} | {_cell(row, 'enstrophy_spectrum_error')} | "
            f"{_cell(row, 'tail_ratio')} |"
        )
    paired = paired_rows(learned, rows, scan_rows)
    print_paired(paired)
    print(f"wall time {time.time() - start:.0f} s", flush=True)
    if args.out:
        keep = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows + every]
        Path(args.out).write_text(
            json.dumps(
                {
                    "rows": keep,
                    "arms": summaries,
                    "baselines_over_simulations": sims,
                    "paired": paired,
                    "options": opts,
                    "paths": arms,
                    **({"reference": args.reference} if args.reference else {}),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
