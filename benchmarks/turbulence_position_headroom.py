"""Does an agent's position relative to the forcing matter? A headroom probe before any RL
(issue 21 §3: "position relative to the forcing if it matters — say which").

SMARL's 4×4 agents sit one forcing wavelength apart (grid spacing n/4 = 2π/4 = 2π/k_f for
k_f = 4), so every agent sees the same phase of F = k_f (cos k_f x + cos k_f y) and a shared
policy cannot place dissipation by it. This probe asks whether a closure that *could* would
gain anything: a family's best constant, with every coefficient multiplied by a fixed field
1 + a·P(x, y) of zero mean, for two patterns of the forcing

- ``forcing``: P = (cos k_f x + cos k_f y) / 2 — more dissipation where F > 0 (a > 0) or
  where F < 0 (a < 0). The two are the same flow statistically: the shift by a half forcing
  wavelength in x and y turns F into −F and P into −P, and the mirror x → −x with ω → −ω turns
  the −F flow back into the F flow, leaving P, the spectrum and |ω|'s distribution as they
  were. So its effect is even in a: what it measures is dissipation that follows the forcing's
  cells, not its sign;
- ``strength``: P = cos k_f x · cos k_f y — more where F's two parts add (|F| large), less on
  its nodal lines (a > 0), or the reverse (no such symmetry relates the two signs),

and amplitudes |a| ≤ 0.5 (ν stays ≥ 0.5 of the constant's everywhere). The field is set on a
16×16 agent lattice (a quarter forcing wavelength apart) through the env's own periodic Fourier
interpolation (``upsample_agent_actions``), which reproduces both patterns exactly (their
wavenumbers, k_f = 4 per axis, are below the lattice's 8). Each row is 16 LES × 20 time
units after 2, paired per simulation against the unmodulated constant run in the same file:
a modulation that lowers the spectrum error with an interval excluding 0 is a place-dependent
gain that agents seeing their position (or the local forcing) could learn; none means the
position does not matter at this resolution, and observations need not include it.

Rows are appended to ``--out`` as they finish; a rerun skips those already there.

Run:  nice -n 5 .venv/bin/python benchmarks/turbulence_position_headroom.py \\
          --reference envs/turbulence/data/reference_kf4_ens16.npz \\
          --family smagorinsky_hyper8 --roots 0.03,0.38 --out docs/smarl_position.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from turbulence_family_scan import check_reference  # this folder: one --reference check

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import les_from_reference, load_reference
from regrl.trainers.data_cli import atomic_output
from regrl.trainers.stats import t_interval
from regrl.trainers.turbulence.smarl import paired_differences, rollout

PATTERNS = ("forcing", "strength")
AMPLITUDES = (-0.5, -0.25, 0.25, 0.5)  # fixed before the probe ran
# Added after seeing the first rows (every amplitude of the forcing pattern, of either sign,
# scored below the constant): a modulation 1000× smaller takes the same field path through
# the solver (the departure from the mean explicit) with no measurable change of the closure.
# Any shift of its paired mean is the field path's, not the modulation's; its spread is the
# decorrelation of chaotic trajectories under any perturbation.
CONTROL = ("forcing", 1e-3)
LATTICE = 16  # agents per side: a quarter forcing wavelength apart at k_f = 4 on 64²
KEYS = ("enstrophy_spectrum_error", "tail_ratio")


def pattern(name: str, agents_per_side: int, kf: int) -> np.ndarray:
    """The zero-mean pattern [a·a] at the agent points x_i = 2π i / a (row-major, i along the
    first axis, as the env's agents), of the forcing F = k_f (cos k_f x + cos k_f y)."""
    x = 2 * np.pi * np.arange(agents_per_side) / agents_per_side
    cx, cy = np.cos(kf * x)[:, None], np.cos(kf * x)[None, :]
    if name == "forcing":
        p = (cx + cy) / 2
    elif name == "strength":
        p = cx * cy
    else:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {name!r}")
    return p.reshape(-1)


def modulated(coeff, name: str, amplitude: float, agents_per_side: int, kf: int) -> np.ndarray:
    """Per-agent coefficients [a·a, m]: each of the family's coefficients ``coeff`` times
    1 + amplitude·P; refuses an amplitude that would make a coefficient negative."""
    p = pattern(name, agents_per_side, kf)
    factor = 1.0 + amplitude * p
    if (factor < 0).any():
        raise ValueError(f"amplitude {amplitude} makes 1 + a·P negative (|a| must be <= 1)")
    return factor[:, None] * np.asarray(coeff, dtype=float)[None, :]


def fixed_policy(values: np.ndarray):
    """A 'policy' that ignores its observations [batch, agents, obs] and returns ``values``
    [agents, m] for every simulation: the fixed field as the env's agents would set it."""
    return lambda obs: np.broadcast_to(values, (obs.shape[0],) + values.shape).copy()


def run_probe(args, variants, setup_extra=None) -> None:
    """Run every row of a modulation probe not yet in ``args.out`` and append it there (a
    rerun skips finished rows): the unmodulated constant ("constant"), then each of
    ``variants`` [(name, amplitude, make_policy)], ``make_policy(coeff, ref)`` the fixed
    'policy' of that row on the ``LATTICE``. Each row records ``name`` under the key
    ``args.kind`` ('pattern' here, 'feature' in the state probe); ``setup_extra`` joins the
    setup a rerun must match."""
    ref = load_reference(args.reference)
    coeff = families.get_family(args.family).coefficient(args.roots)
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    setup = {
        "reference": str(args.reference),
        "family": args.family,
        "roots": list(args.roots),
        "sims": args.sims,
        "time": args.time,
        "spinup": args.spinup,
        **(setup_extra or {}),
    }
    if done["rows"] and done.get("args") != setup:
        raise SystemExit(f"error: {args.out} holds rows of another setup: {done.get('args')}")
    done["args"] = setup
    have = {r["name"] for r in done["rows"]}
    for name, amp, make_policy in [("none", 0.0, None)] + list(variants):
        label = f"{name} a={amp:+g}" if name != "none" else "constant"
        if label in have:
            continue
        start = time.time()
        kwargs = dict(seeds=args.sims, time_units=args.time, spinup=args.spinup)
        if make_policy is None:
            r = rollout(ref, closure=args.family, coeff=coeff, **kwargs)
        else:
            policy = make_policy(coeff, ref)
            r = rollout(ref, closure=args.family, policy=policy, agents_per_side=LATTICE, **kwargs)
        r.update({"name": label, args.kind: name, "amplitude": amp})
        for key in ("enstrophy_spectrum", "energy_spectrum", "pdf"):
            r.pop(key, None)
        done["rows"].append(r)
        with atomic_output(args.out) as fh:
            fh.write(json.dumps(done, indent=1).encode())
        print(
            f"  {label}: error {r['enstrophy_spectrum_error']:.4f}, tails "
            f"{r['tail_ratio']:.2f}, diverged {r['diverged']}, {time.time() - start:.0f} s",
            flush=True,
        )


def forcing_variants():
    """The position probe's rows: each pattern and amplitude, then the field-path control."""
    todo = [(p, a) for p in PATTERNS for a in AMPLITUDES] + [CONTROL]

    def make(name, amp):
        def policy_of(coeff, ref):
            kf = les_from_reference(ref, 1).kf  # the forcing wavenumber the LES runs with
            return fixed_policy(modulated(coeff, name, amp, LATTICE, kf))

        return policy_of

    return [(name, amp, make(name, amp)) for name, amp in todo]


def report(path: Path) -> str:
    data = json.loads(path.read_text())
    rows = data["rows"]
    base = next((r for r in rows if r["name"] == "constant"), None)
    if base is None:
        raise SystemExit(f"error: {path} has no unmodulated 'constant' row to pair against")
    a = data["args"]
    out = [
        f"Best constant {a['family']} {tuple(a['roots'])} with every coefficient times "
        f"1 + a·P(x, y); {a['sims']} LES × {a['time']:g} time units after {a['spinup']:g}, "
        "paired per simulation against the unmodulated constant (* = 95% interval excludes 0).",
        "",
        "| row | spectrum error | tails | diverged | Δ error | Δ tails |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = []
        for key in KEYS:
            if r is base or r["diverged"]:
                cells.append("—")
                continue
            mean, half = t_interval(paired_differences(r, base, key))
            star = " *" if half is not None and abs(mean) > half else ""
            cells.append(f"{mean:+.4f} ± {half:.4f}{star}")
        out.append(
            f"| {r['name']} | {r['enstrophy_spectrum_error']:.4f} | {r['tail_ratio']:.2f} | "
            f"{r['diverged']}/{r['simulations']} | {cells[0]} | {cells[1]} |"
        )
    return "\n".join(out)


def constant_options(doc: str) -> argparse.ArgumentParser:
    """A parser with the options every run of one family constant takes (this probe, the
    state probe, ``turbulence_fresh_starts``, ``turbulence_stationarity``): ``--out``,
    ``--reference``, ``--family``, ``--roots`` (the order-8 best constant by default) and
    ``--report``; ``parse_constant`` checks the pair."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference", type=Path, default=None)
    parser.add_argument("--family", default="smagorinsky_hyper8")
    parser.add_argument("--roots", default="0.03,0.38", help="the family's best constant")
    parser.add_argument("--report", action="store_true", help="print the table and stop")
    return parser


def parse_constant(args) -> tuple:
    """``args.roots`` as a tuple of floats, checked against ``args.family`` (a SystemExit
    naming both options, before any run); returns the family's coefficients."""
    try:
        args.roots = tuple(float(v) for v in args.roots.split(","))
        return families.get_family(args.family).coefficient(args.roots)
    except ValueError as exc:
        raise SystemExit(f"error: --family/--roots: {exc}") from None


def probe_arguments(doc: str, kind: str):
    """The probes' shared command line, parsed and checked (``--family``/``--roots`` before
    any run); ``kind`` names what a row varies ('pattern', 'feature')."""
    parser = constant_options(doc)
    parser.add_argument("--sims", type=int, default=16)
    parser.add_argument("--time", type=float, default=20.0)
    parser.add_argument("--spinup", type=float, default=2.0)
    args = parser.parse_args()
    args.kind = kind
    parse_constant(args)
    if not args.report:
        check_reference(args.reference)
        torch.set_num_threads(1)
    return args


def main() -> None:
    args = probe_arguments(__doc__, "pattern")
    if not args.report:
        run_probe(args, forcing_variants())
    print(report(args.out))


if __name__ == "__main__":
    main()
