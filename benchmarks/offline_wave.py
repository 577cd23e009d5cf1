"""Issue 24's offline plugins on the digits noisy-label benchmark: Self-Tuning Networks, the
policy-gradient noise mask and FTWT dynamic pruning against plain cross-entropy trained in the
same run, with 0/20/40% symmetric label noise, mean ± 95% t-interval over seeds.

Same data, split, noise, MLP and schedule as benchmarks/noisy_labels.py (docs/noisy_labels.md).
Extra rows: CE on the 90% of the training rows that STN and the noise-mask policy train on
(they hold out 10% as their tuning split), an STN network whose hyperparameters stay at fixed
values (a 3-point grid, the "search" that STN claims to replace), the noise-mask policy left
untrained (the ablation), and FTWT at two mass thresholds with its kept FLOPs.

Run: nice -n 17 .venv/bin/python benchmarks/offline_wave.py      (about 10 minutes on 2 cores)
Writes docs/offline_wave.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from noisy_labels import MODEL, NOISE, TRAINING, make_files  # noqa: E402

from regrl.trainers.offline import offline_config_from_dict, train_offline  # noqa: E402
from regrl.trainers.stats import t_interval  # noqa: E402

TUNE = 0.1  # tuning split of STN and the noise-mask policy, held out of the training rows
FIXED = {"warmup_epochs": 10_000, "perturb_scale": 1e-4}  # never tuned, no perturbation
# name -> (plugins, tune_fraction)
METHODS: Dict[str, Tuple[List[dict], float]] = {
    "CE": ([], 0.0),
    "CE (90% rows)": ([], TUNE),
    "STN (paper lr 3e-3)": ([{"name": "stn"}], TUNE),
    "STN (lr 3e-2)": ([{"name": "stn", "hyper_lr": 0.03}], TUNE),
    "fixed p=σ=0.05": ([{"name": "stn", "dropout": 0.05, "input_noise": 0.05, **FIXED}], TUNE),
    "fixed p=σ=0.2": ([{"name": "stn", "dropout": 0.2, "input_noise": 0.2, **FIXED}], TUNE),
    "fixed p=σ=0.4": ([{"name": "stn", "dropout": 0.4, "input_noise": 0.4, **FIXED}], TUNE),
    "PG noise mask": ([{"name": "pg_noise_mask"}], TUNE),
    "PG noise mask, untrained policy": ([{"name": "pg_noise_mask", "train_policy": False}], TUNE),
    "FTWT (r=0.9)": ([{"name": "ftwt", "mass": 0.9}], 0.0),
    "FTWT (r=0.7)": ([{"name": "ftwt", "mass": 0.7}], 0.0),
}
GRID = ("fixed p=σ=0.05", "fixed p=σ=0.2", "fixed p=σ=0.4")
EXTRA = (  # plugin metrics kept per run (the last epoch's)
    "plugin/stn/dropout",
    "plugin/stn/input_noise",
    "plugin/ftwt/kept_flops",
    "plugin/ftwt/kept_flops_with_heads",
    "plugin/pg_noise_mask/mask_mean",
)

Runs = Dict[str, Dict[float, List[Dict[str, float]]]]


def run_one(method, noise, seed, train_path, test_path, runs_root, epochs) -> Dict[str, float]:
    plugins, tune = METHODS[method]
    raw = {
        "kind": "offline",
        "name": "wave",
        "seed": seed,
        "runs_root": str(runs_root),
        "task": "classification",
        "data": {"path": str(train_path), "val_path": str(test_path), "tune_fraction": tune},
        "model": MODEL,
        "training": dict(TRAINING, epochs=epochs),
        "plugins": plugins,
        "checkpoint": {"every": epochs, "keep": 1},
    }
    cfg = offline_config_from_dict(raw, source=f"{method} @ {noise:.0%}")
    with contextlib.redirect_stdout(io.StringIO()):
        metrics = train_offline(cfg, progress=False).metrics
    out = {"acc": metrics["val/accuracy"]}
    out.update({k: metrics[k] for k in EXTRA if k in metrics})
    return out


def run_all(methods: Sequence[str], seeds: Sequence[int], epochs: int) -> Tuple[Runs, dict]:
    runs: Runs = {m: {n: [] for n in NOISE} for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        files, test_path, info = make_files(Path(tmp), seeds)
        for method in methods:
            t0 = time.time()
            for noise in NOISE:
                for seed in seeds:
                    runs[method][noise].append(
                        run_one(
                            method,
                            noise,
                            seed,
                            files[(noise, seed)],
                            test_path,
                            Path(tmp) / "runs",
                            epochs,
                        )  # fmt: skip
                    )
            accs = "  ".join(f"{100 * _mean(runs[method][n], 'acc'):5.1f}" for n in NOISE)
            print(f"{method:<34} {accs}   ({time.time() - t0:.0f}s)", flush=True)
    return runs, info


def _mean(rows: List[Dict[str, float]], key: str) -> float:
    return statistics.mean(r[key] for r in rows)


def _ci(rows: List[Dict[str, float]], key: str = "acc") -> Tuple[float, float]:
    values = [r[key] for r in rows]
    return statistics.mean(values), t_interval(values)[1] or 0.0


def _vs(rows, base) -> str:
    """Difference to the baseline with the verdict: claimed only where the intervals do not
    overlap."""
    (m, h), (b, bh) = _ci(rows), _ci(base)
    word = ("better" if m > b else "worse") if abs(m - b) > h + bh else "n.s."
    return f"{100 * (m - b):+.1f} {word}"


def table(runs: Runs) -> str:
    head = "| method | " + " | ".join(f"{n:.0%} noise" for n in NOISE) + " |"
    lines = [head, "|---" * (len(NOISE) + 1) + "|"]
    for method, by_noise in runs.items():
        cells = []
        for n in NOISE:
            m, h = _ci(by_noise[n])
            cell = f"{100 * m:.1f} ± {100 * h:.1f}"
            if method != "CE" and "CE" in runs:
                cell += f" ({_vs(by_noise[n], runs['CE'][n])})"
            cells.append(cell)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extras(runs: Runs) -> str:
    lines = ["| method | quantity | " + " | ".join(f"{n:.0%} noise" for n in NOISE) + " |"]
    lines.append("|---" * (len(NOISE) + 2) + "|")
    for method, by_noise in runs.items():
        for key in EXTRA:
            if key not in by_noise[NOISE[0]][0]:
                continue
            cells = []
            for n in NOISE:
                m, h = _ci(by_noise[n], key)
                cells.append(f"{m:.3f} ± {h:.3f}")
            lines.append(f"| {method} | `{key.split('/')[-1]}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid_best(runs: Runs) -> Dict[float, str]:
    """The grid point with the best mean test accuracy per noise level (an oracle choice:
    it favours the search)."""
    have = [g for g in GRID if g in runs]
    return {n: max(have, key=lambda g: _mean(runs[g][n], "acc")) for n in NOISE} if have else {}


def stn_vs_search(runs: Runs) -> str:
    best = grid_best(runs)
    parts = []
    for stn in (m for m in runs if m.startswith("STN")):
        for n in NOISE:
            g = best.get(n)
            if g is None:
                continue
            parts.append(f"{stn} vs {g} at {n:.0%}: {_vs(runs[stn][n], runs[g][n])}")
    return "; ".join(parts)


def _verdict(runs: Runs, method: str, base: str, noise: float) -> str:
    if method not in runs or base not in runs:
        return "not run"
    return _vs(runs[method][noise], runs[base][noise])


def claims(runs: Runs) -> str:
    """Each paper's claim and what this run shows (verdicts computed from the table)."""
    pct = lambda rows, key: f"{100 * _mean(rows, key):.0f}%"  # noqa: E731
    lines = ["**Self-Tuning Networks** claim that one STN run, tuning regularisation"
             " hyperparameters online, matches or beats a hyperparameter search and that the"
             " schedules it finds can beat any fixed value."]  # fmt: skip
    for stn in (m for m in runs if m.startswith("STN")):
        per = "; ".join(
            f"{n:.0%}: vs CE {_verdict(runs, stn, 'CE', n)}, vs CE on the same rows "
            f"{_verdict(runs, stn, 'CE (90% rows)', n)}, vs the best fixed grid point "
            f"({grid_best(runs).get(n, 'none')}) {_verdict(runs, stn, grid_best(runs).get(n, ''), n)}"
            for n in NOISE
        )
        lines.append(f"- {stn}: {per}")
    lines.append(
        "\n**Policy-gradient noise mask** claims that noise masks learned by a REINFORCE"
        " policy regularise a classifier better than conventional training (RadImageNet, judged"
        ' after fine-tuning the "heated" model; here the model is judged directly).'
    )
    for m in ("PG noise mask", "PG noise mask, untrained policy"):
        if m in runs:
            per = "; ".join(
                f"{n:.0%}: vs CE {_verdict(runs, m, 'CE', n)}, vs CE on the same rows "
                f"{_verdict(runs, m, 'CE (90% rows)', n)}"
                for n in NOISE
            )
            lines.append(f"- {m}: {per}")
    if "PG noise mask" in runs and "PG noise mask, untrained policy" in runs:
        per = "; ".join(
            f"{n:.0%}: {_verdict(runs, 'PG noise mask', 'PG noise mask, untrained policy', n)}"
            for n in NOISE
        )
        lines.append(f"- trained policy vs the same noise from the untrained policy: {per}")
    lines.append(
        "\n**FTWT** claims accuracy close to the dense network at large FLOPs reductions"
        " (CIFAR / ImageNet convolutional networks)."
    )
    for m in (m for m in runs if m.startswith("FTWT")):
        per = "; ".join(
            f"{n:.0%}: vs CE {_verdict(runs, m, 'CE', n)} at "
            f"{pct(runs[m][n], 'plugin/ftwt/kept_flops')} of the dense FLOPs "
            f"({pct(runs[m][n], 'plugin/ftwt/kept_flops_with_heads')} with the heads)"
            for n in NOISE
        )
        lines.append(f"- {m}: {per}")
    return "\n".join(lines)


def write_doc(
    path: Path, runs: Runs, info, seconds: float, command: str, epochs: int, seeds
) -> None:
    text = f"""# Issue 24's offline plugins on digits with noisy labels

Generated by `{command}` in {seconds / 60:.1f} minutes (wall time, 2 shared CPU cores, one
torch thread). Do not edit by hand; rerun the command.

**Setup.** The digits benchmark of [noisy_labels.md](noisy_labels.md): {info["train"]} training
and {info["test"]} clean test samples, symmetric label noise 0/20/40% on the training labels,
MLP 64-{MODEL["hidden"][0]}-{MODEL["hidden"][1]}-10, AdamW lr {TRAINING["lr"]}, batch
{TRAINING["batch_size"]}, {epochs} epochs, no early stopping. Each cell: **test accuracy after
the last epoch** (%), mean ± 95% Student-t half-width over seeds {", ".join(map(str, seeds))}
(the seed sets the initialisation, the shuffling, the noise draw and the tuning split). In
brackets: difference to CE in points, "better"/"worse" only where the two intervals do not
overlap, else "n.s.". STN and the noise-mask policy hold out {TUNE:.0%} of the training rows
(noisy labels included) as their tuning split and train on the rest; "CE (90% rows)" is CE on
those same rows. "fixed p=σ=v" is the STN network with its hyperparameters frozen at dropout v
and input-noise std v (no tuning, no perturbation): the grid search STN claims to replace.
"STN (lr 3e-2)" was added after the paper's hyperparameter learning rate barely moved the
hyperparameters in this 500-step schedule (seen on one seed at 40% noise, test accuracy
included), so it was chosen knowing test results.

{table(runs)}

Final plugin quantities (last epoch; mean ± 95% half-width): STN's tuned dropout rate and
input-noise std, FTWT's kept backbone FLOPs (fraction of the dense MLP's multiply-adds, on the
last epoch's training batches) and the same with the decision heads counted, and the noise
mask's mean value.

{extras(runs)}

**STN against the grid** (the grid point with the best mean test accuracy per noise level,
chosen with the test labels, which favours the search; the grid costs 3 runs, STN one):
{stn_vs_search(runs)}.

## The papers' claims at this scale

"better"/"worse": the 95% intervals do not overlap; "n.s.": they do, and no difference is
claimed.

{claims(runs)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="*", default=list(METHODS), help="subset of METHODS")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=TRAINING["epochs"])
    p.add_argument("--out", default=str(ROOT / "docs" / "offline_wave.md"))
    args = p.parse_args(argv)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"unknown methods {unknown}; known: {list(METHODS)}")
    if args.seeds < 2:
        p.error("--seeds must be >= 2 for an interval")
    torch.set_num_threads(1)  # tiny MLPs: threads only contend on a small machine
    seeds = tuple(range(args.seeds))
    start = time.time()
    runs, info = run_all(args.methods, seeds, args.epochs)
    seconds = time.time() - start
    command = "python benchmarks/offline_wave.py" + (
        "" if argv is None and len(sys.argv) == 1 else " " + " ".join(sys.argv[1:])
    )
    write_doc(Path(args.out), runs, info, seconds, command, args.epochs, seeds)
    Path(args.out).with_suffix(".json").write_text(
        json.dumps(
            {m: {str(n): rows for n, rows in by.items()} for m, by in runs.items()}, indent=1
        )
    )
    print(
        f"\n{table(runs)}\n\n{extras(runs)}\n\n{stn_vs_search(runs)}\nwrote {args.out} in {seconds:.0f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
