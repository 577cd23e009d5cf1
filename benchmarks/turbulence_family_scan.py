"""Constant scan of every closure family: which family has headroom over SMARL's Smagorinsky,
and what its best constant is — measured before any RL (issue 21 §1; docs/smarl_families.md).

For each family (``envs/turbulence/families``) every point of its scan grid (fixed in the
family's module before this ran) drives 16 LES from the reference's initial conditions for
``--time`` time units after ``--spinup``, with the metrics of ``regrl eval`` (log-enstrophy-
spectrum error of the time-averaged spectrum, vorticity-PDF tails P(|ω| > 3σ) over the DNS's).
Every row is paired per simulation (same initial conditions) against Smagorinsky C_s = 0.17,
which runs in the same scan: mean ± 95% Student t over the simulations.

Rows are appended to ``--out`` (JSON) as they finish, and a rerun skips the rows already there,
so an interrupted scan loses at most one row. ``--report`` prints the tables from the file.

Run:  nice -n 5 .venv/bin/python benchmarks/turbulence_family_scan.py \
          --out docs/smarl_families.json [--families smagorinsky,smagorinsky_hyper] [--report]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.data_cli import atomic_output
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import cross_fitted, paired_differences, rollout

BASELINE = ("smagorinsky", (0.17,))
ORDER = (  # the baseline's family first, the two-term families (the question) next
    "smagorinsky",
    "smagorinsky_hyper",
    "jansen_held",
    "smagorinsky_hyper8",
    "smagorinsky_local",
    "leith_local",
    "leith",
)
KEYS = ("enstrophy_spectrum_error", "tail_ratio")
# --fine: second grids, each chosen after seeing the coarse scan. Around the coarse optimum of
# the two-term family (its optimum in C_4 is sharp: at C_s = 0 the error is 0.069 / 0.042 /
# 0.059 at C_4 = 0.29 / 0.31 (the backscatter family's c_b = 0 row, the same model) / 0.32);
# the Leith families' grids extended upward (each error still falling at the top of its grid,
# C_L = 0.29: 0.141 domain-mean, 0.136 pointwise).
LEITH_UP = ((0.32, 0.35, 0.38, 0.41, 0.44),)
FINE = {
    "smagorinsky_hyper": ((0.0, 0.03, 0.06), (0.295, 0.30, 0.305, 0.31, 0.315)),
    "leith": LEITH_UP,
    "leith_local": LEITH_UP,
}


def _key(name, roots) -> str:
    return families.get_family(name).label(roots)


def scan(args) -> None:
    ref = load_reference(args.reference)
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    before = done.get("args", {})
    reference = None if args.reference is None else str(args.reference)
    if done["rows"]:
        same_reference(args.out, before.get("reference"), reference, hint=": use another --out")
    done["args"] = {"sims": args.sims, "time": args.time, "spinup": args.spinup}
    if reference is not None:
        done["args"]["reference"] = reference
    points = list(before.get("points", []))  # earlier invocations' command-line grid points
    points += [k for k in (_key(*t) for t in args.point) if k not in points]
    if points:
        done["args"]["points"] = points
    have = {r["name"] for r in done["rows"]}
    todo = [(n, p) for n in args.families for p in families.get_family(n).scan_points()]
    if args.fine:
        todo += [(n, p) for n, grid in FINE.items() for p in itertools.product(*grid)]
    todo += args.extra + args.point
    print(f"{len(todo) - len(have & {_key(*t) for t in todo})} rows to run", flush=True)
    for name, roots in todo:
        label = _key(name, roots)
        if label in have:
            continue
        start = time.time()
        family = families.get_family(name)
        r = rollout(
            ref,
            closure=name,
            coeff=family.coefficient(roots),
            seeds=args.sims,
            time_units=args.time,
            spinup=args.spinup,
        )
        r.update(name=label, family=name, roots=list(roots))
        for key in ("enstrophy_spectrum", "energy_spectrum", "pdf"):
            r.pop(key, None)  # the tables need the per-simulation numbers, not the curves
        done["rows"].append(r)
        with atomic_output(args.out) as fh:
            fh.write(json.dumps(done, indent=1).encode())
        err, tail = r["enstrophy_spectrum_error"], r["tail_ratio"]
        print(
            f"  {label}: error {err:.4f}, tails {tail:.2f}, diverged {r['diverged']}, "
            f"{time.time() - start:.0f} s",
            flush=True,
        )


def _grid_labels() -> set:
    """Row names of every point of the families' scan grids and of the fine grids."""
    points = [(n, p) for n in families.FAMILIES for p in families.get_family(n).scan_points()]
    points += [(n, p) for n, grid in FINE.items() for p in itertools.product(*grid)]
    return {_key(n, p) for n, p in points}


def check_reference(path) -> None:
    """A clear error for a ``--reference`` file that does not exist, before any run (the
    benchmarks against the ensemble reference name a file another command writes)."""
    if path is not None and not Path(path).is_file():
        raise SystemExit(
            f"error: --reference {path}: no such file (the packaged one is the default; an "
            "ensemble reference is written by benchmarks/turbulence_dns_floor.py "
            "--write-reference PATH)"
        )


def same_reference(path, had, want, verb: str = "scored", hint: str = "") -> None:
    """Refuse to mix references: ``path`` was made against reference ``had``, this run is
    against ``want`` (None: the packaged one)."""
    if had != want:
        raise SystemExit(
            f"error: {path} was {verb} against {had or 'the packaged'} reference, not "
            f"{want or 'the packaged one'}{hint}"
        )


def grid_rows(data: dict) -> list:
    """The rows of a scan file that are grid points (the families' grids, the fine grids and
    ``--point``s), not ``--extra`` constants: the only candidates for a family's best."""
    grid = _grid_labels() | set(data.get("args", {}).get("points", []))
    return [r for r in data["rows"] if r["name"] in grid]


def _paired(row, base, key) -> str:
    mean, half = t_interval(paired_differences(row, base, key))
    return "n/a" if half is None else f"{mean:+.4f} ± {half:.4f}"


def report(path: Path, against=(), held_out=()) -> str:
    """The scan file's tables; ``against``: (family, roots) rows of the file (grid points or
    --extra constants) to pair every family's best constant with, beside C_s = 0.17;
    ``held_out``: families whose best constant is also chosen held out (two interleaved folds
    of the simulations, each scored by the grid point best on the other: ``cross_fitted`` of
    benchmarks/turbulence_routes.py), to pair against the same rows without the winner's
    curse of a grid's minimum."""
    data = json.loads(path.read_text())
    rows = data["rows"]
    base = next((r for r in rows if r["name"] == _key(*BASELINE)), None)
    out = []
    for name in [n for n in ORDER if any(r["family"] == n for r in rows)]:
        family = families.get_family(name)
        mine = [r for r in rows if r["family"] == name]
        out += [
            f"\n### {name}: {family.summary}\n",
            "| constant | spectrum error | P(|ω|>3σ) ratio | diverged | "
            "Δ error vs C_s=0.17 | Δ tails vs C_s=0.17 |",
            "|---|---|---|---|---|---|",
        ]
        for r in mine:
            stable = not r["diverged"] and base is not None and r is not base
            d_err = _paired(r, base, KEYS[0]) if stable else "—"
            d_tail = _paired(r, base, KEYS[1]) if stable else "—"
            coeffs = ", ".join(f"{c}={v:g}" for c, v in zip(family.coefficients, r["roots"]))
            out.append(
                f"| {coeffs} | {r['enstrophy_spectrum_error']:.4f} | "
                f"{r['tail_ratio']:.2f} | {r['diverged']}/{r['simulations']} | "
                f"{d_err} | {d_tail} |"
            )
    out += [
        "\n### Best constant of each family (lowest pooled spectrum error, stable, grid points "
        "only: fitted constants added with --extra are in their family's table, never 'best')\n",
        "| family | best constant | spectrum error | tails | Δ error vs C_s=0.17 |",
        "|---|---|---|---|---|",
    ]
    grid = grid_rows(data)
    bests = {}
    for name in [n for n in ORDER if any(r["family"] == n for r in rows)]:
        stable = [r for r in grid if r["family"] == name and not r["diverged"]]
        if not stable:
            gridded = any(r["family"] == name for r in grid)
            out.append(f"| {name} | {'none stable' if gridded else 'no grid point'} | | | |")
            continue
        best = bests[name] = min(stable, key=lambda r: r["enstrophy_spectrum_error"])
        d = _paired(best, base, KEYS[0]) if base is not None and best is not base else "—"
        out.append(
            f"| {name} | {best['name']} | {best['enstrophy_spectrum_error']:.4f} | "
            f"{best['tail_ratio']:.2f} | {d} |"
        )
    smag = bests.get("smagorinsky")
    if smag is not None and len(bests) > 1:
        out.append(
            f"\nPaired per simulation against the best Smagorinsky constant ({smag['name']}):"
        )
        for name, best in bests.items():
            if name != "smagorinsky":
                out.append(
                    f"- {best['name']}: error {_paired(best, smag, KEYS[0])}, "
                    f"tail ratio {_paired(best, smag, KEYS[1])}"
                )
    chosen = []
    for name in held_out:
        stable = [r for r in grid if r["family"] == name and not r["diverged"]]
        if not stable:
            raise SystemExit(f"error: --held-out {name}: no stable grid point in {path}")
        held = cross_fitted(stable, name)
        held["name"] = f"{name} chosen held out ({held['name']})"
        chosen.append(held)
    for name, roots in against:
        label = _key(name, roots)
        row = next((r for r in rows if r["name"] == label), None)
        if row is None:
            raise SystemExit(f"error: --against {label!r}: no such row in {path}")
        out.append(f"\nPaired per simulation against {label}:")
        out += [
            f"- {best['name']}: error {_paired(best, row, KEYS[0])}, "
            f"tail ratio {_paired(best, row, KEYS[1])}"
            for best in list(bests.values()) + chosen
            if best is not row
        ]
    return "\n".join(out)


def parse_point(text: str, flag: str, decimals=None) -> tuple:
    """``FAMILY=R1,R2,...`` of a command-line flag → (family name, roots), the roots rounded
    to ``decimals`` if given; a clear error naming ``flag`` for a malformed text, an unknown
    family or the wrong number of coefficients."""
    name, sep, values = text.partition("=")
    try:
        if not sep:
            raise ValueError("wants FAMILY=R1,R2,...")
        roots = tuple(float(v) for v in values.split(","))
        roots = roots if decimals is None else tuple(round(r, decimals) for r in roots)
        families.get_family(name).coefficient(roots)  # right number of coefficients
    except ValueError as exc:
        raise SystemExit(f"error: {flag} {text!r}: {exc}") from None
    return name, roots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--families", default=",".join(ORDER))
    parser.add_argument("--sims", type=int, default=16)
    parser.add_argument("--time", type=float, default=20.0)
    parser.add_argument("--spinup", type=float, default=2.0)
    parser.add_argument("--report", action="store_true", help="print the tables and stop")
    parser.add_argument("--fine", action="store_true", help="add the FINE grids (after --out's)")
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="the reference to score against (default: the packaged one; e.g. the ensemble "
        "reference of benchmarks/turbulence_dns_floor.py --write-reference)",
    )
    parser.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="FAMILY=R1,R2",
        help="one more grid point (unlike --extra, it can be a family's best): a grid given on "
        "the command line, e.g. for a scan against another --reference",
    )
    parser.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="FAMILY=R1,R2",
        help="with --report: also pair each family's best constant against this row of --out",
    )
    parser.add_argument(
        "--held-out",
        default="",
        metavar="FAMILY,...",
        help="with --report and --against: also pair these families' best constants chosen "
        "held out (two folds of the simulations)",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="FAMILY=R1,R2",
        help="one more constant (roots, rounded to 4 decimals), e.g. a solver-in-the-loop fit's",
    )
    args = parser.parse_args()
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    args.extra = [parse_point(text, "--extra", decimals=4) for text in args.extra]
    args.point = [parse_point(text, "--point", decimals=4) for text in args.point]
    args.against = [parse_point(text, "--against", decimals=4) for text in args.against]
    args.held_out = [f.strip() for f in args.held_out.split(",") if f.strip()]
    for name in args.families:
        families.get_family(name)  # unknown names: the registry's message, before any run
    if not args.report:
        check_reference(args.reference)
        torch.set_num_threads(1)
        scan(args)
    print(report(args.out, args.against, args.held_out))


if __name__ == "__main__":
    main()
