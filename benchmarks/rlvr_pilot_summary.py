"""One line per RLVR run: the entropy / accuracy / Lp-Reg numbers docs/rlvr_experiment.md quotes.

Reads each run's ``metrics.jsonl`` (one JSON object per step). "start" and "end" are means over
the first and last ``--window`` logged steps, so one noisy step does not decide a verdict.

Run: .venv/bin/python benchmarks/rlvr_pilot_summary.py runs/rlvr_exp_collapse_grpo [RUN_OR_EXPERIMENT_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Dict, List

from regrl.trainers.run_files import METRICS_JSONL


def _run_dir(path: Path) -> Path:
    """A run dir (has metrics.jsonl) or an experiment dir (its newest run)."""
    if (path / METRICS_JSONL).is_file():
        return path
    runs = sorted(p for p in path.iterdir() if (p / METRICS_JSONL).is_file())
    if not runs:
        raise SystemExit(f"error: {path}: no metrics.jsonl in it or its runs")
    return runs[-1]


def _series(rows: List[Dict], tag: str) -> List[float]:
    return [r[tag] for r in rows if tag in r]


def _ends(values: List[float], window: int) -> str:
    if not values:
        return "—"
    return f"{statistics.fmean(values[:window]):.3f} → {statistics.fmean(values[-window:]):.3f}"


def summary(run: Path, window: int) -> str:
    rows = [
        json.loads(line) for line in (run / METRICS_JSONL).read_text().splitlines() if line.strip()
    ]
    ent = _series(rows, "learner/entropy")
    change = (
        (statistics.fmean(ent[-window:]) / statistics.fmean(ent[:window]) - 1)
        if ent
        else float("nan")
    )
    lp = _series(rows, "learner/lp_reg_token_num")
    lp_cell = f"{statistics.fmean(lp):.1f} (min {min(lp):.0f})" if lp else "—"
    evals = _series(rows, "eval/pass@1")
    eval_cell = " ".join(f"{v:.2f}" for v in evals) if evals else "—"
    return (
        f"| {run.parent.name} | {len(rows)} | {_ends(ent, window)} ({change:+.0%}) | "
        f"{_ends(_series(rows, 'train/accuracy'), window)} | {eval_cell} | {lp_cell} | "
        f"{_ends(_series(rows, 'train/response_len'), window)} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--window", type=int, default=5, help="steps averaged at each end")
    a = p.parse_args()
    print(
        "| run | steps | learner entropy start → end (change) | train accuracy start → end | "
        "eval pass@1 | Lp-Reg tokens per step (mean) | response length |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in a.runs:
        print(summary(_run_dir(run), a.window))


if __name__ == "__main__":
    main()
