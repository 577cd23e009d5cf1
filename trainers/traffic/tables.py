"""The RIFT comparison's tables and bar plots: mean ± std over evaluation blocks, 95%
t-intervals over training runs (regrl.trainers.stats), differences to IL only and paired
ablations. numpy only (matplotlib when a plot is drawn): no torch, no Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from regrl.trainers.stats import t_interval

METRICS = (  # key, column title, format, better
    ("cpk", "CPK ↓", "{:.1f}", "low"),
    ("orr", "ORR % ↓", "{:.1f}", "low"),
    ("uc", "UC %", "{:.1f}", None),
    ("rp", "RP m ↑", "{:.0f}", "high"),
    ("sw_speed", "SW speed ↑", "{:.3f}", "high"),
    ("sw_acc", "SW acc ↑", "{:.3f}", "high"),
    ("wd_speed", "WD speed ↓", "{:.2f}", "low"),
    ("speed", "speed m/s", "{:.2f}", None),
    ("ego_route_completion", "ego RC ↑", "{:.2f}", "high"),
    ("ego_crash", "ego crash ↓", "{:.2f}", "low"),
)
METHOD_ORDER = ["IL only", "PPO (raw actions)", "GRPO+KL", "demo-KL", "RIFT w/o dual clip", "RIFT"]
"""Row order of every table and plot; methods not listed come last."""


def mean_std(rows: List[Dict[str, float]]):
    """Per metric, the mean and std over ``rows`` ignoring NaN (NaN where no row is finite)."""
    keys = rows[0].keys() if rows else []
    mean = {
        k: float(np.nanmean([r[k] for r in rows]))
        if any(np.isfinite(r[k]) for r in rows)
        else float("nan")
        for k in keys
    }
    std = {
        k: float(np.nanstd([r[k] for r in rows]))
        if any(np.isfinite(r[k]) for r in rows)
        else float("nan")
        for k in keys
    }
    return mean, std


def _cell(mean: float, std: float, fmt: str) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return fmt.format(mean) + ("" if not np.isfinite(std) else " ± " + fmt.format(std))


def markdown_table(rows: List[Dict[str, Any]]) -> str:
    """One line per method: mean ± std over its evaluation units (runs x seed blocks)."""
    head = "| method | units | " + " | ".join(t for _, t, _, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for r in rows:
        cells = [_cell(r["mean"][k], r["std"][k], f) for k, _, f, _ in METRICS]
        lines.append(f"| {r['method']} | {len(r['blocks'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_bars(path: Path, rows: List[Dict[str, Any]]) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(17, 6))
    for ax, (key, title, _, _) in zip(axes.ravel(), METRICS):
        means = [r["mean"][key] for r in rows]
        stds = [r["std"][key] if np.isfinite(r["std"][key]) else 0.0 for r in rows]
        ax.bar(
            range(len(rows)),
            np.nan_to_num(means),
            yerr=stds,
            capsize=3,
            color=[f"C{i}" for i in range(len(rows))],
        )
        ax.set_xticks(
            range(len(rows)), [r["method"] for r in rows], rotation=30, ha="right", fontsize=8
        )
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [str(path)]


# ---------------------------------------------------------------- 95% intervals over seeds
BASELINE, PAIRS = "IL only", (("RIFT", "RIFT w/o dual clip"), ("RIFT", "GRPO+KL"))
"""Differences reported with intervals: every method minus IL only (all runs start from its
scorer), and RIFT minus an ablation paired by training seed."""


def run_means(row: Dict[str, Any]) -> Dict[str, float]:
    """One run's value of each metric: the mean over its evaluation blocks (equal sizes)."""
    return mean_std(row["blocks"])[0]


def _ci_cell(values: List[float], fmt: str, signed: bool = False) -> str:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "n/a"
    mean, half = t_interval(values)
    text = (("{:+" + fmt[2:]) if signed else fmt).format(mean)
    if half is None:
        return text
    sep = "" if not signed or abs(mean) <= half else " *"
    return f"{text} ± {fmt.format(half)}{sep}"


def interval_tables(runs: List[Dict[str, Any]]) -> str:
    """Markdown: each method's metrics as mean ± 95% t-interval over its training runs (one
    value per run: the mean over the held-out blocks every run sees); a method with one run
    (IL only: no stage-2 seed) gets the interval over its evaluation blocks instead, marked
    "blocks". Then each method minus IL only (per run; * = the interval excludes 0) and the
    PAIRS differences matched by training seed."""
    groups = _by_method(runs)
    head = " | ".join(t for _, t, _, _ in METRICS)
    lines = [f"| method | n | {head} |", "|" + "---|" * (len(METRICS) + 2)]
    for method, rs in _ordered(groups):
        units = _units(rs)
        n = f"{len(rs)} runs" if len(rs) > 1 else f"{len(units)} blocks"
        cells = [_ci_cell([u[k] for u in units], f) for k, _, f, _ in METRICS]
        lines.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    base = groups.get(BASELINE)
    if base and len(base) == 1:
        ref = run_means(base[0])
        lines += ["", f"Difference to {BASELINE} (per run; * = 95% interval excludes 0):", ""]
        lines += [f"| method | n | {head} |", "|" + "---|" * (len(METRICS) + 2)]
        for method, rs in _ordered(groups):
            if method != BASELINE:
                diffs = [{k: run_means(r)[k] - ref[k] for k in ref} for r in rs]
                cells = [_ci_cell([d[k] for d in diffs], f, True) for k, _, f, _ in METRICS]
                lines.append(f"| {method} − {BASELINE} | {len(rs)} | " + " | ".join(cells) + " |")
    for a, b in PAIRS:
        by_seed = {m: {r.get("seed"): run_means(r) for r in groups.get(m, [])} for m in (a, b)}
        seeds = sorted(set(by_seed[a]) & set(by_seed[b]) - {None})
        if len(seeds) < 2:
            continue
        diffs = [{k: by_seed[a][s][k] - by_seed[b][s][k] for k in by_seed[a][s]} for s in seeds]
        cells = [_ci_cell([d[k] for d in diffs], f, True) for k, _, f, _ in METRICS]
        lines += ["", f"{a} − {b}, paired by training seed ({len(seeds)} seeds):", ""]
        lines += [f"| pair | n | {head} |", "|" + "---|" * (len(METRICS) + 2)]
        lines.append(f"| {a} − {b} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _by_method(runs: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["method"], []).append(r)
    return groups


def _units(rs: List[Dict[str, Any]]) -> List[Dict[str, float]]:
    """The values an interval is taken over: one per run, or a lone run's blocks."""
    return [run_means(r) for r in rs] if len(rs) > 1 else rs[0]["blocks"]


def interval_rows(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rows for ``write_bars``: per method the mean and, as "std", the 95% half-width (0 when
    there is no interval) of ``interval_tables``' first table."""
    rows = []
    for method, rs in _ordered(_by_method(runs)):
        units, mean, half = _units(rs), {}, {}
        for k, *_ in METRICS:
            vals = [u[k] for u in units if np.isfinite(u[k])]
            m, h = t_interval(vals) if vals else (float("nan"), None)
            mean[k], half[k] = m, 0.0 if h is None else h
        rows.append({"method": method, "mean": mean, "std": half})
    return rows


def _ordered(groups: Dict[str, Any]):
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(groups.items(), key=lambda kv: rank.get(kv[0], len(rank)))


def pool_by_method(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    order = METHOD_ORDER
    groups: Dict[str, Dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(r["method"], {"method": r["method"], "blocks": [], "runs": []})
        g["blocks"] += r["blocks"]
        g["runs"].append(r["run_dir"])
    for g in groups.values():
        g["mean"], g["std"] = mean_std(g["blocks"])
    rank = {m: i for i, m in enumerate(order)}
    return sorted(groups.values(), key=lambda g: rank.get(g["method"], len(order)))
