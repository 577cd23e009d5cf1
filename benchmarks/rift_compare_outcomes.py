"""Per-CBV outcome columns of a ``regrl traffic compare`` output (issue 25): driving score,
route completion, collided, stuck and arrived shares beside route progress and CPK, which the
compare tables (RIFT's paper metrics) do not show. Reads OUT/compare_runs.json (every run's
held-out blocks); per method, mean ± 95% t-interval over its runs (one value per run: the
mean over its blocks; a method with one run, IL only, over its blocks), then each method
minus IL only per run (* = the interval excludes 0).

``--across DIR DIR ...`` reads several compare outputs, each with its own IL only (e.g. one
per stage-1 seed), and reports each method's difference to its own IL only: per directory
(mean over its runs), mean ± 95% t over the directories (the stage-1 seed as the unit), and
pooled over all runs. ``--unit-table MD ...`` adds units known only by the per-run difference
table of an outcomes file this script wrote (the table's rounded means): they count in the mean
over units, not in the pooled runs.

Several compare directories of one stage-1 planner (arms compared in different sessions, each
against the same IL only) merge into one table: their IL only runs must be the same run, block
for block, or the script refuses. ``--versus METHOD`` adds every other method minus METHOD
(Welch's interval over runs: training seeds are not paired across arms).

Run: python benchmarks/rift_compare_outcomes.py data/rift_dense_pilot [--out docs/X.md]
     python benchmarks/rift_compare_outcomes.py data/A data/A_more --versus "RIFT" [--out ...]
     python benchmarks/rift_compare_outcomes.py --across data/A data/B data/C [--out docs/X.md]
     python benchmarks/rift_compare_outcomes.py --across data/D data/E --unit-table docs/A.md docs/B.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np

from regrl.trainers.stats import t_interval, welch_interval

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


def interval_text(mean: float, half, fmt: str, signed: bool) -> str:
    """'mean ± half' in ``fmt`` (a sign with ``signed``, then * where the interval excludes 0)."""
    text = (fmt.replace("{:", "{:+") if signed else fmt).format(mean)
    if half is None:
        return text
    return text + " ± " + fmt.format(half) + (" *" if signed and abs(mean) > half else "")


def cell(values, fmt: str, signed: bool = False) -> str:
    vals = [v for v in values if np.isfinite(v)]
    if not vals:
        return "n/a"
    return interval_text(*t_interval(vals), fmt, signed)


def baseline_run(label: str, runs: list) -> dict:
    """The one IL only run of a compare output (refuses none or several)."""
    base = [r for r in runs if r["method"] == BASELINE]
    if len(base) != 1:
        raise SystemExit(f"{label}: needs exactly one {BASELINE} run, found {len(base)}")
    return base[0]


def merged(named_runs: list) -> list:
    """The runs of several compare outputs of one stage-1 planner as one list, with one IL only:
    refuses when their IL only runs differ (another planner or other episodes), since every
    method's difference is taken to that one run."""
    runs, base = [], None
    for label, rs in named_runs:
        il = baseline_run(label, rs)
        if base is None:
            base = (label, il)
            runs.append(il)
        elif il["blocks"] != base[1]["blocks"]:
            raise SystemExit(
                f"{label}: its {BASELINE} run differs from {base[0]}'s: not the same stage-1 "
                "planner and episodes, so they cannot share one table (use --across)"
            )
        runs += [r for r in rs if r["method"] != BASELINE]
    return runs


def welch_cell(a, b, fmt: str) -> str:
    """mean(a) − mean(b) with Welch's interval, as ``cell`` prints a signed difference."""
    a = [v for v in a if np.isfinite(v)]
    b = [v for v in b if np.isfinite(v)]
    if not a or not b:
        return "n/a"
    return interval_text(*welch_interval(a, b), fmt, signed=True)


def tables(runs: list, versus: Optional[str] = None) -> str:
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
    if versus is not None:
        if versus not in groups:
            raise SystemExit(f"--versus {versus!r}: no such method (have: {', '.join(groups)})")
        ref = groups[versus]
        lines += ["", f"Difference to {versus} (Welch's 95% interval over runs; * = excludes 0):"]
        lines += ["", head, rule]
        for method, rs in groups.items():
            if method in (versus, BASELINE):
                continue
            cells = [
                welch_cell([run_value(r, k) for r in rs], [run_value(r, k) for r in ref], f)
                for k, _, f in COLUMNS
            ]
            lines.append(f"| {method} − {versus} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_unit_table(path) -> dict:
    """{method: {key: mean}} from the per-run difference table of an outcomes file this script
    wrote (``--out`` of one compare directory): each method's mean difference to its IL only
    over its runs, as printed (rounded to the table's digits). For a stage-1 unit whose compare
    directory is gone but whose table was kept."""
    text = Path(path).read_text()
    _, sep, rest = text.partition(f"Difference to {BASELINE} per run")
    if not sep:
        raise SystemExit(f"error: {path}: no 'Difference to {BASELINE} per run' table")
    out = {}
    for line in rest.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(COLUMNS) + 2 or not cells[0].endswith(f" − {BASELINE}"):
            continue
        method = cells[0][: -len(f" − {BASELINE}")]
        means = {}
        for (key, _, _), text_cell in zip(COLUMNS, cells[2:]):
            value = text_cell.split(" ± ")[0].rstrip(" *")
            means[key] = float("nan") if value == "n/a" else float(value)
        out[method] = means
    if not out:
        raise SystemExit(f"error: {path}: the difference table has no method rows")
    return out


def across(named_runs: list, tables_: list = (), leave_one_out: bool = False) -> str:
    """``named_runs``: [(label, runs of one compare output)]; every method against its own
    directory's IL only. ``tables_``: [(label, ``read_unit_table``'s dict)], more units known
    only by their mean differences: they join the mean over units, not the pooled runs.
    ``leave_one_out``: also the mean over units with each unit left out in turn (does one
    stage-1 planner carry the result?)."""
    diffs: dict = {}  # method -> key -> [per-directory list of per-run differences]
    for label, runs in named_runs:
        base = [baseline_run(label, runs)]
        for r in runs:
            if r["method"] == BASELINE:
                continue
            per_key = diffs.setdefault(r["method"], {}).setdefault(label, {})
            for k, _, _ in COLUMNS:
                per_key.setdefault(k, []).append(run_value(r, k) - run_value(base[0], k))
    head = "| method − IL only | unit | n | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    rule = "|---|---|---|" + "---|" * len(COLUMNS)
    lines = [head, rule]
    for method in list(dict.fromkeys([*diffs, *(m for _, t in tables_ for m in t)])):
        by_dir = diffs.get(method, {})
        units = []  # (label, {key: mean}) per unit: the tables' first, then the directories'
        for label, table in tables_:
            if method in table:
                units.append((label, table[method]))
                cells = [cell([table[method][k]], f, signed=True) for k, _, f in COLUMNS]
                lines.append(f"| {method} | {label} (table) | — | " + " | ".join(cells) + " |")
        for label, per_key in by_dir.items():
            units.append((label, {k: float(np.mean(per_key[k])) for k, _, _ in COLUMNS}))
            n = len(per_key[COLUMNS[0][0]])
            cells = [cell(per_key[k], f, signed=True) for k, _, f in COLUMNS]
            lines.append(f"| {method} | {label} (runs) | {n} | " + " | ".join(cells) + " |")
        if len(units) > 1:
            cells = [cell([u[k] for _, u in units], f, signed=True) for k, _, f in COLUMNS]
            lines.append(
                f"| {method} | units (mean of each) | {len(units)} | " + " | ".join(cells) + " |"
            )
        if leave_one_out and len(units) > 2:
            for drop, (label, _) in enumerate(units):
                rest = [u for i, (_, u) in enumerate(units) if i != drop]
                cells = [cell([u[k] for u in rest], f, signed=True) for k, _, f in COLUMNS]
                lines.append(
                    f"| {method} | units without {label} | {len(rest)} | "
                    + " | ".join(cells)
                    + " |"
                )
        if len(by_dir) > 1:
            cells = [
                cell([v for d in by_dir.values() for v in d[k]], f, signed=True)
                for k, _, f in COLUMNS
            ]
            total = sum(len(d[COLUMNS[0][0]]) for d in by_dir.values())
            which = "all runs pooled" + (" (directories only)" if tables_ else "")
            lines.append(f"| {method} | {which} | {total} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "compare_dir",
        nargs="*",
        help="the --out directory of regrl traffic compare (several: one planner's, merged)",
    )
    ap.add_argument("--across", nargs="+", help="several compare directories, each its own IL")
    ap.add_argument(
        "--unit-table",
        nargs="+",
        default=[],
        metavar="MD",
        help="with --across: more units given by an outcomes file this script wrote for one "
        "compare directory (its per-run difference table's means), e.g. when the directory is gone",
    )
    ap.add_argument(
        "--leave-one-out",
        action="store_true",
        help="with --across: also the mean over units with each left out in turn",
    )
    ap.add_argument(
        "--versus",
        metavar="METHOD",
        help="without --across: also every method minus METHOD (Welch over runs)",
    )
    ap.add_argument("--out", help="also write the tables to this markdown file")
    a = ap.parse_args()
    if bool(a.compare_dir) == (a.across is not None):
        ap.error("give compare directories or --across DIR DIR ...")
    if a.versus and a.across:
        ap.error("--versus goes with compare directories, not --across")
    if (a.unit_table or a.leave_one_out) and not a.across:
        ap.error("--unit-table and --leave-one-out go with --across")
    for md in a.unit_table:
        if not Path(md).is_file():
            ap.error(f"--unit-table {md}: no such file")
    loaded = []
    for d in a.across or a.compare_dir:
        path = Path(d) / "compare_runs.json"
        if not path.is_file():
            ap.error(f"{path} does not exist; run `regrl traffic compare ... --out {d}`")
        loaded.append((d, json.loads(path.read_text())))
    units = [(md, read_unit_table(md)) for md in a.unit_table]
    if a.across:
        text = across(loaded, units, a.leave_one_out)
    else:
        text = tables(merged(loaded), a.versus)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
