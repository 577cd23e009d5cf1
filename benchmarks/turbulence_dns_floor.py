"""The floor of the SMARL evaluation (issue 21 goal (b)): the filtered DNS itself, run as a
"closure" on the same evaluation as every LES — the reference's 16 initial conditions,
20 time units after 2 of spin-up, sampled every 0.5 and scored by the same statistics
(``dns_rollout`` in trainers/turbulence/smarl.py) — so its log-enstrophy-spectrum error and
tail ratio are what a perfect closure would score: the sampling noise of the reference's one
20-time-unit trajectory and of the evaluation's own window, not model error.

Each row named by ``--against`` (rows of the family scan file, same simulations in the same
order) is paired per simulation against the DNS: mean ± 95% Student t over the simulations.

Run:  nice -n 5 .venv/bin/python benchmarks/turbulence_dns_floor.py \
          [--sims 16] [--time 20] [--spinup 2] [--threads 2] [--out docs/smarl_dns_floor.json]
      (≈ 15 min on 2 free cores: 16 DNS of 256² for 22 time units, float32 as the reference)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from regrl.envs.turbulence.reference import load_reference
from regrl.files import write_text_atomic
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import dns_rollout, paired_differences

KEYS = ("enstrophy_spectrum_error", "tail_ratio")
AGAINST = (  # SMARL's constant, the best constant of SMARL's family, of the two-term family
    # and of the backscatter family (docs/smarl_families.md §2), and the backscatter family's
    # fattest-tailed stable row near the optimum
    "smagorinsky C_s=0.17",
    "smagorinsky C_s=0.16",
    "smagorinsky_hyper C_s=0 C_4=0.31",
    "jansen_held C_4=0.31 c_b=0.3",
    "jansen_held C_4=0.31 c_b=0.9",
)


def _interval(values) -> str:
    mean, half = t_interval(values)
    return f"{mean:+.4f} ± {half:.4f}" if half is not None else f"{mean:+.4f}"


def report(result: dict) -> str:
    dns, rows = result["dns"], result["against"]
    lines = [
        f"filtered DNS {result['args']['n_dns']}² as the closure: {dns['simulations']} "
        f"simulations x {result['args']['time']} time units after {result['args']['spinup']}, "
        f"{dns['seconds']:.0f} s",
        "",
        "| closure | spectrum error (pooled) | per-simulation error, mean ± 95% t | tails "
        "(pooled) | − DNS: spectrum error, per simulation | − DNS: tail ratio |",
        "|---|---|---|---|---|---|",
    ]
    per = dns["per_simulation"]
    lines.append(
        f"| filtered DNS | {dns['enstrophy_spectrum_error']:.4f} | "
        f"{_interval(per['enstrophy_spectrum_error'])[1:]} | {dns['tail_ratio']:.2f} "
        f"(per simulation {_interval(per['tail_ratio'])[1:]}) | — | — |"
    )
    for row in rows:
        d = {k: paired_differences(row, dns, k) for k in KEYS}
        lines.append(
            f"| {row['name']} | {row['enstrophy_spectrum_error']:.4f} | "
            f"{_interval(row['per_simulation']['enstrophy_spectrum_error'])[1:]} | "
            f"{row['tail_ratio']:.2f} | {_interval(d[KEYS[0]])} | {_interval(d[KEYS[1]])} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=16)
    ap.add_argument("--time", type=float, default=20.0)
    ap.add_argument("--spinup", type=float, default=2.0)
    ap.add_argument("--n-dns", type=int, default=None, help="default: the reference's DNS grid")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scan", default="docs/smarl_families.json", help="the family scan file")
    ap.add_argument(
        "--against", default=",".join(AGAINST), help="scan rows to pair, by name ('' for none)"
    )
    ap.add_argument("--out", default="docs/smarl_dns_floor.json")
    ap.add_argument("--report", action="store_true", help="print the table of --out and stop")
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.out).read_text())))
        return 0
    if args.threads < 1 or args.sims < 1 or args.time <= 0 or args.spinup < 0:
        ap.error("--threads and --sims must be >= 1, --time > 0 and --spinup >= 0")
    scan = json.loads(Path(args.scan).read_text())
    by_name = {r["name"]: r for r in scan["rows"]}
    names = [n for n in args.against.split(",") if n]
    missing = [n for n in names if n not in by_name]
    if missing:
        ap.error(f"rows not in {args.scan}: {missing}; it has e.g. {sorted(by_name)[:4]}")
    same = (scan["args"]["sims"], scan["args"]["time"], scan["args"]["spinup"])
    if names and same != (args.sims, args.time, args.spinup):
        ap.error(f"{args.scan} ran {scan['args']}: pair it with the same --sims and --time")
    torch.set_num_threads(args.threads)
    ref = load_reference()
    start = time.time()
    dns = dns_rollout(
        ref,
        sims=args.sims,
        time_units=args.time,
        spinup=args.spinup,
        n_dns=args.n_dns,
        say=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    dns["seconds"] = time.time() - start
    result = {
        "args": dict(vars(args), n_dns=args.n_dns or ref.provenance["spec"]["n_dns"]),
        "dns": dns,
        "against": [by_name[n] for n in names],
    }
    write_text_atomic(Path(args.out), json.dumps(result, indent=1))
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
