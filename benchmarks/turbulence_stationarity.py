"""How far the evaluation's window is from the LES's statistically steady state: a closure's
statistics in consecutive windows of a long run, from the reference's filtered-DNS starts and
from random fields (issue 21; docs/smarl_families.md §5g).

The evaluation (``regrl eval``, every table of docs/smarl_families.md) runs 16 LES from the
reference's initial conditions, filtered DNS states, and averages over time units 2–22. The
LES relaxes from a DNS state to its own attractor on the linear friction's time 1/α = 10, so
that window may hold a transient. This runs one closure constant for ``--time`` time units from
(i) the reference's starts and (ii) ``--sims`` random fields (the solver's
``random_initial_condition``, seed ``--start-seed``), samples every 0.5 time units, and prints
per ``--window`` time units: the vorticity-PDF tails P(|ω| > 3σ) over the reference's, the
log-enstrophy-spectrum error of the window's pooled spectrum, and the energy; then each start
kind's stationary part (t ≥ ``--steady-from``): per simulation its time-mean tails, mean ± 95 %
t over the simulations (independent runs; the windows of one run are correlated).

Run:  nice -n 5 .venv/bin/python benchmarks/turbulence_stationarity.py \\
          --reference envs/turbulence/data/reference_kf4_ens16.npz \\
          --family smagorinsky_hyper8 --roots 0.03,0.38 --out docs/smarl_stationarity.json
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from turbulence_family_scan import check_reference  # this folder: one --reference check
from turbulence_fresh_starts import random_les, uniform_coefficients
from turbulence_position_headroom import constant_options, parse_constant

from regrl.envs.turbulence import families
from regrl.envs.turbulence.metrics import log_spectrum_error
from regrl.envs.turbulence.reference import les_from_reference, load_reference
from regrl.trainers.data_cli import atomic_output
from regrl.trainers.stats import t_interval

SAMPLE_EVERY = 0.5  # time units between samples, the evaluation's
STEPS = 10  # solver steps per ``advance`` call (a decision's)


def window_means(values: np.ndarray, times: np.ndarray, window: float) -> list:
    """[(start, end, mean)] of ``values`` [time, ...] averaged over every axis within each
    consecutive ``window`` of ``times`` (a sample at t belongs to the window ⌈t/w⌉)."""
    index = np.ceil(np.round(np.asarray(times) / window, 9)).astype(int)
    out = []
    for w in np.unique(index):
        keep = index == w
        out.append(((w - 1) * window, w * window, float(np.mean(values[keep]))))
    return out


def run(ref, family: str, roots, sims: int, total: float, random_seed=None) -> dict:
    """Samples of one constant closure's LES: times, tails [time, sims] (over the reference's
    P(|ω| > 3σ)), spectra [time, sims, k] and energy [time, sims]; from the reference's first
    ``sims`` starts, or from random fields of ``random_seed``."""
    fam = families.get_family(family)
    if random_seed is None:
        sim = les_from_reference(ref, sims)
    else:
        sim = random_les(ref, sims, random_seed)
    coeff = uniform_coefficients(sim, fam, roots)
    per_sample = int(round(SAMPLE_EVERY / sim.dt)) // STEPS
    times, tails, spectra, energy = [], [], [], []
    threshold = 3.0 * ref.omega_std
    for _ in range(int(round(total / SAMPLE_EVERY))):
        for _ in range(per_sample):
            families.advance(sim, fam, coeff, STEPS)
        if not bool(sim.is_finite().all()):
            raise SystemExit(f"error: an LES diverged by t = {sim.time:.2f}")
        w = sim.omega.double().cpu().numpy().reshape(sims, -1)
        times.append(sim.time)
        tails.append(np.mean(np.abs(w) > threshold, axis=1) / ref.tail_3sigma)
        spectra.append(sim.enstrophy_spectrum().double().cpu().numpy())
        energy.append(sim.energy().double().cpu().numpy())
    return {
        "times": np.array(times),
        "tails": np.array(tails),
        "spectra": np.array(spectra),
        "energy": np.array(energy),
    }


def summarise(samples: dict, ref, window: float, steady_from: float) -> dict:
    """Per window: tails, the pooled spectrum's error, energy; the stationary tails."""
    t = samples["times"]
    rows = []
    for (a, b, tails), (_, _, energy) in zip(
        window_means(samples["tails"], t, window), window_means(samples["energy"], t, window)
    ):
        keep = (t > a + 1e-9) & (t <= b + 1e-9)
        error = log_spectrum_error(samples["spectra"][keep].mean((0, 1)), ref.enstrophy_spectrum)
        rows.append({"from": a, "to": b, "tails": tails, "spectrum_error": error, "energy": energy})
    steady = t >= steady_from - 1e-9
    per_sim = samples["tails"][steady].mean(0)
    mean, half = t_interval(per_sim.tolist())
    error = log_spectrum_error(samples["spectra"][steady].mean((0, 1)), ref.enstrophy_spectrum)
    return {"windows": rows, "steady": {"tails": mean, "tails_ci": half, "spectrum_error": error}}


def report(data: dict) -> str:
    a = data["args"]
    kinds = list(data["starts"])
    out = [
        f"{a['family']} {tuple(a['roots'])}, {a['sims']} LES per start kind, samples every "
        f"{SAMPLE_EVERY:g} time units; per {a['window']:g}-time-unit window: tails P(|ω| > 3σ) "
        "over the reference's, the error of the window's pooled enstrophy spectrum, energy.",
        "",
        "| window | " + " | ".join(f"{k}: tails / error / energy" for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    windows = zip(*(data["starts"][k]["windows"] for k in kinds))
    for row in windows:
        cells = [f"{r['tails']:.2f} / {r['spectrum_error']:.4f} / {r['energy']:.3f}" for r in row]
        out.append(f"| {row[0]['from']:g}–{row[0]['to']:g} | " + " | ".join(cells) + " |")
    out.append("")
    for k in kinds:
        s = data["starts"][k]["steady"]
        half = "n/a" if s["tails_ci"] is None else f"{s['tails_ci']:.2f}"
        out.append(
            f"- {k} starts, t ≥ {a['steady_from']:g}: tails {s['tails']:.2f} ± {half} (95 % t "
            f"over the simulations' time means), pooled spectrum error {s['spectrum_error']:.4f}"
        )
    return "\n".join(out)


def main() -> None:
    parser = constant_options(__doc__)
    parser.add_argument("--sims", type=int, default=16)
    parser.add_argument("--time", type=float, default=80.0)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--steady-from", type=float, default=20.0)
    parser.add_argument("--start-seed", type=int, default=1000)
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return
    parse_constant(args)
    roots = args.roots
    if not (0 < args.steady_from < args.time and 0 < args.window <= args.time):
        raise SystemExit("error: need 0 < --steady-from < --time and 0 < --window <= --time")
    check_reference(args.reference)
    torch.set_num_threads(1)
    ref = load_reference(args.reference)
    data = {
        "args": {
            "reference": str(args.reference),
            "family": args.family,
            "roots": list(roots),
            "sims": args.sims,
            "time": args.time,
            "window": args.window,
            "steady_from": args.steady_from,
            "start_seed": args.start_seed,
        },
        "starts": {},
    }
    for kind, seed in (("reference", None), ("random", args.start_seed)):
        start = time.time()
        samples = run(ref, args.family, roots, args.sims, args.time, seed)
        data["starts"][kind] = summarise(samples, ref, args.window, args.steady_from)
        print(f"  {kind} starts: {time.time() - start:.0f} s", flush=True)
    with atomic_output(args.out) as fh:
        fh.write(json.dumps(data, indent=1).encode())
    print(report(data))


if __name__ == "__main__":
    main()
