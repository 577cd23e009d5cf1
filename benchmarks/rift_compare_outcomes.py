"""Per-CBV outcome columns of a ``regrl traffic compare`` output (issue 25): driving score,
route completion, collided, stuck and arrived shares beside route progress and CPK, which the
compare tables (RIFT's paper metrics) do not show. Reads OUT/compare_runs.json (every run's
held-out blocks); per method, mean ± 95% t-interval over its runs (one value per run: the
mean over its blocks; a method with one run, IL only, over its blocks), then each method
minus IL only per run (* = the interval excludes 0).

``--across DIR DIR ...`` reads several compare outputs, each with its own IL only (e.g. one
per stage-1 seed), and reports each method's difference to its own IL only: per directory
(mean over its runs), mean ± 95% t over the directories (the stage-1 seed as the unit), and
pooled over all runs.

Run: python benchmarks/rift_compare_outcomes.py data/rift_dense_pilot [--out docs/X.md]
     python benchmarks/rift_compare_outcomes.py --across data/A data/B data/C [--out docs/X.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from regrl.trainers.stats import t_interval

COLUMNS = (  # key, title, format
    ("cbv_ds", "DS % ↑", "{:.1f}"),
    ("cbv_rc", "RC % ↑", "{:.1f}"),
    ("collided", "collided % ↓", "{:.1f}"),
    ("stuck", "stuck % ↓", "{:.1f}"),
    ("arrived", "arrived % ↑", "{:.1f}"),
    ("rp", "RP m ↑", "{:.0f}"),
    ("cpk", "CPK ↓", "{:.1f}"),
)
BASELINE = "IL only"


def run_value(run: dict, key: str) -> float:
    vals = [b.get(key, np.nan) for b in run["blocks"]]
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def cell(values, fmt: str, signed: bool = False) -> str:
    vals = [v for v in values if np.isfinite(v)]
    if not vals:
        return "n/a"
    mean, half = t_interval(vals)
    text = (fmt.replace("{:", "{:+") if signed else fmt).format(mean)
    if half is None:
        return text
    return text + " ± " + fmt.format(half) + (" *" if signed and abs(mean) > half else "")


def tables(runs: list) -> str:
    groups: dict = {}
    for r in runs:
        groups.setdefault(r["method"], []).append(r)
    head = "| method | n | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    rule = "|---|---|" + "---|" * len(COLUMNS)
    lines = [head, rule]
    for method, rs in groups.items():
        units = rs[0]["blocks"] if len(rs) == 1 else None
        n = f"{len(units)} blocks" if units else f"{len(rs)} runs"
        cells = [
            cell([u.get(k, np.nan) for u in units] if units else [run_value(r, k) for r in rs], f)
            for k, _, f in COLUMNS
        ]
        lines.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    base = groups.get(BASELINE)
    if base and len(base) == 1:
        lines += ["", f"Difference to {BASELINE} per run (* = 95% interval excludes 0):", ""]
        lines += [head, rule]
        for method, rs in groups.items():
            if method == BASELINE:
                continue
            cells = [
                cell([run_value(r, k) - run_value(base[0], k) for r in rs], f, signed=True)
                for k, _, f in COLUMNS
            ]
            lines.append(f"| {method} − {BASELINE} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def across(named_runs: list) -> str:
    """``named_runs``: [(label, runs of one compare output)]; every method against its own
    directory's IL only."""
    diffs: dict = {}  # method -> key -> [per-directory list of per-run differences]
    for label, runs in named_runs:
        base = [r for r in runs if r["method"] == BASELINE]
        if len(base) != 1:
            raise SystemExit(f"{label}: needs exactly one {BASELINE} run, found {len(base)}")
        for r in runs:
            if r["method"] == BASELINE:
                continue
            per_key = diffs.setdefault(r["method"], {}).setdefault(label, {})
            for k, _, _ in COLUMNS:
                per_key.setdefault(k, []).append(run_value(r, k) - run_value(base[0], k))
    head = "| method − IL only | unit | n | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    rule = "|---|---|---|" + "---|" * len(COLUMNS)
    lines = [head, rule]
    for method, by_dir in diffs.items():
        for label, per_key in by_dir.items():
            n = len(per_key[COLUMNS[0][0]])
            cells = [cell(per_key[k], f, signed=True) for k, _, f in COLUMNS]
            lines.append(f"| {method} | {label} (runs) | {n} | " + " | ".join(cells) + " |")
        if len(by_dir) > 1:
            cells = [
                cell([float(np.mean(d[k])) for d in by_dir.values()], f, signed=True)
                for k, _, f in COLUMNS
            ]
            lines.append(
                f"| {method} | directories (mean of each) | {len(by_dir)} | "
                + " | ".join(cells)
                + " |"
            )
            cells = [
                cell([v for d in by_dir.values() for v in d[k]], f, signed=True)
                for k, _, f in COLUMNS
            ]
            total = sum(len(d[COLUMNS[0][0]]) for d in by_dir.values())
            lines.append(f"| {method} | all runs pooled | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("compare_dir", nargs="?", help="the --out directory of regrl traffic compare")
    ap.add_argument("--across", nargs="+", help="several compare directories, each its own IL")
    ap.add_argument("--out", help="also write the tables to this markdown file")
    a = ap.parse_args()
    if (a.compare_dir is None) == (a.across is None):
        ap.error("give one compare directory or --across DIR DIR ...")
    loaded = []
    for d in a.across or [a.compare_dir]:
        path = Path(d) / "compare_runs.json"
        if not path.is_file():
            ap.error(f"{path} does not exist; run `regrl traffic compare ... --out {d}`")
        loaded.append((d, json.loads(path.read_text())))
    text = across(loaded) if a.across else tables(loaded[0][1])
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
