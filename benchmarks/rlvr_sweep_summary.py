"""The RLVR entropy experiment's table and figure from one ``regrl sweep`` of several arms.

Per arm, over its finished seeds (95% Student-t intervals, ``regrl.trainers.stats.t_interval``):
learner entropy at the start and end of the run (means over the first / last ``--window``
logged steps of each seed, so one noisy step does not decide), its relative change, train
accuracy over the last ``--window`` steps, held-out greedy pass@1 at the final evaluation and
averaged over the second half's evaluations, Lp-Reg tokens selected per RLVR step, and the
response length at the end. Then each arm's entropy change and final-half pass@1 minus the
baseline arm's, with a Welch 95% interval (``regrl.trainers.stats.welch_interval``): a
difference is "separated" only when that interval excludes 0. The figure shows entropy, train
accuracy and eval pass@1 curves, mean ± 95% band.

Run: .venv/bin/python benchmarks/rlvr_sweep_summary.py runs/sweeps/rlvr_collapse/<stamp>
         --baseline rlvr_exp_sft8_grpo --out docs/rlvr_collapse
(writes docs/rlvr_collapse.md and docs/rlvr_collapse.png)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Dict, List

from regrl.trainers.run_files import METRICS_JSONL
from regrl.trainers.stats import curve_band, plot_band, t_interval, welch_interval

ENTROPY, ACC, PASS1 = "learner/entropy", "train/accuracy", "eval/pass@1"
LP_TOKENS, STEPS_PER = "learner/lp_reg_token_num", "learner/optimizer_steps"


def _rows(run_dir: str) -> List[Dict]:
    text = (Path(run_dir) / METRICS_JSONL).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _series(rows: List[Dict], tag: str) -> List[float]:
    return [r[tag] for r in rows if r.get(tag) is not None]


def per_seed(rows: List[Dict], window: int) -> Dict[str, float]:
    """The numbers of one seed's run."""
    ent, acc, evals = _series(rows, ENTROPY), _series(rows, ACC), _series(rows, PASS1)
    out = {
        "entropy_start": statistics.fmean(ent[:window]),
        "entropy_end": statistics.fmean(ent[-window:]),
        "accuracy_end": statistics.fmean(acc[-window:]),
        "pass1_final": evals[-1],
        "pass1_second_half": statistics.fmean(evals[len(evals) // 2 :]),
        "response_len_end": statistics.fmean(_series(rows, "train/response_len")[-window:]),
    }
    out["entropy_change"] = out["entropy_end"] / out["entropy_start"] - 1
    lp = _series(rows, LP_TOKENS)
    if lp:  # the metric is per optimizer step (mini-batch): times steps per RLVR step
        per_step = [r[LP_TOKENS] * r.get(STEPS_PER, 1.0) for r in rows if LP_TOKENS in r]
        out["lp_tokens_per_step"] = statistics.fmean(per_step)
    return out


def _cell(values: List[float], fmt: str = "{:.3f}", pct: bool = False) -> str:
    if not values:
        return "—"
    mean, half = t_interval(values)
    f = (lambda x: f"{100 * x:+.0f}%") if pct else fmt.format
    return f"{f(mean)} ± {f(half).lstrip('+')}" if half is not None else f"{f(mean)} (n=1)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", type=Path, help="a sweep directory (has results.json)")
    p.add_argument("--baseline", required=True, help="label of the baseline arm")
    p.add_argument("--out", type=Path, required=True, help="output stem (.md and .png)")
    p.add_argument("--window", type=int, default=5, help="steps averaged at each end")
    a = p.parse_args()
    results = a.sweep / "results.json"
    if not results.is_file():
        raise SystemExit(f"error: {a.sweep}: no results.json (is the sweep finished?)")
    body = json.loads(results.read_text())
    runs: Dict[str, List[List[Dict]]] = {}
    for t in body["trials"]:
        if t["status"] == "finished":
            runs.setdefault(t["label"], []).append(_rows(t["run_dir"]))
    if a.baseline not in runs:
        raise SystemExit(f"error: no finished arm {a.baseline!r}; arms: {', '.join(runs)}")
    seeds = {arm: [per_seed(r, a.window) for r in rs] for arm, rs in runs.items()}
    col = lambda arm, key: [s[key] for s in seeds[arm] if key in s]  # noqa: E731
    lines = [
        f"Sweep `{a.sweep}`; mean ± 95% t half-width over seeds; start/end = mean of the "
        f"first/last {a.window} steps of each seed.",
        "",
        "| arm | n | entropy start | entropy end | change | train acc (end) | eval pass@1 "
        "(final) | eval pass@1 (2nd half) | Lp-Reg tokens / step | response length (end) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in runs:
        lines.append(
            f"| {arm} | {len(seeds[arm])} | {_cell(col(arm, 'entropy_start'))} | "
            f"{_cell(col(arm, 'entropy_end'))} | {_cell(col(arm, 'entropy_change'), pct=True)} | "
            f"{_cell(col(arm, 'accuracy_end'))} | {_cell(col(arm, 'pass1_final'), '{:.2f}')} | "
            f"{_cell(col(arm, 'pass1_second_half'), '{:.2f}')} | "
            f"{_cell(col(arm, 'lp_tokens_per_step'), '{:.0f}')} | "
            f"{_cell(col(arm, 'response_len_end'), '{:.1f}')} |"
        )
    lines += [
        "",
        f"Difference to `{a.baseline}` (Welch 95% interval; **separated** = excludes 0):",
        "",
        "| arm | entropy change − baseline | eval pass@1 (2nd half) − baseline |",
        "|---|---|---|",
    ]
    for arm in runs:
        if arm == a.baseline:
            continue
        cells = []
        for key, pct in (("entropy_change", True), ("pass1_second_half", False)):
            diff, half = welch_interval(col(arm, key), col(a.baseline, key))
            sep = half is not None and abs(diff) > half
            f = (lambda x: f"{100 * x:+.0f} pp") if pct else (lambda x: f"{x:+.3f}")
            text = f"{f(diff)} ± {f(half).lstrip('+')}" if half is not None else f(diff)
            cells.append(text + (" **separated**" if sep else ""))
        lines.append(f"| {arm} | {cells[0]} | {cells[1]} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _figure(runs, a.out.with_suffix(".png"), a.sweep.parent.name)


def smoothed(rows: List[Dict], metric: str, window: int) -> List[Dict]:
    """Each seed's series as a trailing moving mean over ``window`` logged steps (per seed,
    before the band over seeds, so the band shows seed spread, not step noise)."""
    pts = [(r["step"], r[metric]) for r in rows if r.get(metric) is not None]
    out = []
    for i, (step, _) in enumerate(pts):
        vals = [v for _, v in pts[max(0, i - window + 1) : i + 1]]
        out.append({"step": step, metric: statistics.fmean(vals)})
    return out


def _figure(runs: Dict[str, List[List[Dict]]], path: Path, title: str, smooth: int = 10) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = os.path.commonprefix(list(runs)) if len(runs) > 1 else ""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric in zip(axes, (ENTROPY, ACC, PASS1)):
        for arm, rs in runs.items():
            window = smooth if metric != PASS1 else 1  # evaluations are already sparse
            steps, mean, half = curve_band([smoothed(r, metric, window) for r in rs], metric)
            if not steps:
                continue
            plot_band(ax, steps, mean, half, arm[len(prefix) :] or arm, alpha=0.15)
        ax.set(xlabel="RLVR step", ylabel=metric, title=metric)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{title}: mean over seeds, 95% t band (entropy, accuracy: {smooth}-step moving mean)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
