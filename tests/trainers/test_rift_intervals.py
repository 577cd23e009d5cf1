"""The RIFT comparison's 95% intervals (trainers/traffic/tables.py::interval_tables) against
hand computations: t-intervals over training runs, IL only over its blocks, differences to
IL only per run and the RIFT − ablation difference paired by training seed."""

import math
import subprocess
import sys

import pytest

from regrl.trainers.traffic.tables import METRICS, interval_rows, interval_tables

T2 = 4.302652729911275  # Student t, 0.975 quantile, 2 degrees of freedom
T1 = 12.706204736174705  # 1 degree of freedom


def block(rp, cpk=1.0):
    row = {k: 0.0 for k, *_ in METRICS}
    row.update(rp=rp, cpk=cpk)
    return row


def run(method, seed, *rps):
    return {
        "method": method,
        "seed": seed,
        "run_dir": f"/r/{method}/{seed}",
        "blocks": [block(rp) for rp in rps],
    }


def rp_cell(table, label):
    line = next(li for li in table.splitlines() if li.startswith(f"| {label} |"))
    cols = [c.strip() for c in line.strip("|").split("|")]
    return cols[1], cols[2 + [k for k, *_ in METRICS].index("rp")]


def test_intervals_over_runs_blocks_and_paired_seeds():
    runs = [
        run("IL only", None, 90.0, 100.0),  # one run: interval over its 2 blocks
        run("RIFT", 0, 100.0, 110.0),  # run means 105, 115, 95
        run("RIFT", 1, 110.0, 120.0),
        run("RIFT", 2, 90.0, 100.0),
        run("RIFT w/o dual clip", 0, 100.0, 100.0),  # run means 100, 110, 100
        run("RIFT w/o dual clip", 1, 110.0, 110.0),
        run("RIFT w/o dual clip", 2, 100.0, 100.0),
    ]
    table = interval_tables(runs)
    # IL only: blocks 90, 100 -> mean 95, s = 7.071, half = t1 * s / sqrt 2 = 63.5
    assert rp_cell(table, "IL only") == ("2 blocks", f"95 ± {T1 * 5:.0f}")
    # RIFT: run means 105, 115, 95 -> mean 105, s = 10, half = t2 * 10 / sqrt 3 = 24.8
    assert rp_cell(table, "RIFT") == ("3 runs", f"105 ± {T2 * 10 / math.sqrt(3):.0f}")
    # RIFT − IL only: 10, 20, 0 -> +10 ± 24.8, includes 0: no star
    assert rp_cell(table, "RIFT − IL only") == ("3", f"+10 ± {T2 * 10 / math.sqrt(3):.0f}")
    # paired by seed: 105-100, 115-110, 95-100 = 5, 5, -5 -> mean 1.67, s = 5.77
    half = T2 * math.sqrt(100 / 3) / math.sqrt(3)
    assert rp_cell(table, "RIFT − RIFT w/o dual clip") == ("3", f"+2 ± {half:.0f}")


def test_a_difference_whose_interval_excludes_zero_is_starred():
    runs = [run("IL only", None, 50.0)] + [run("RIFT", s, 60.0 + s) for s in range(3)]
    # 10, 11, 12 -> +11 ± t2 * 1 / sqrt 3 = 2.5 -> excludes 0
    assert rp_cell(interval_tables(runs), "RIFT − IL only")[1] == "+11 ± 2 *"


def test_bar_rows_carry_the_interval_half_width():
    runs = [run("IL only", None, 90.0, 100.0)] + [run("RIFT", s, 95.0 + 10 * s) for s in range(3)]
    rows = {r["method"]: r for r in interval_rows(runs)}
    assert rows["RIFT"]["mean"]["rp"] == pytest.approx(105.0)
    assert rows["RIFT"]["std"]["rp"] == pytest.approx(T2 * 10 / math.sqrt(3))
    assert rows["IL only"]["std"]["rp"] == pytest.approx(T1 * 5)
    assert rows["RIFT"]["std"]["cpk"] == 0.0  # all runs equal: zero width


def test_tables_import_neither_torch_nor_ray():
    """The comparison's tables stand alone: this file's tests run without Ray or torch."""
    code = (
        "import sys, regrl.trainers.traffic.tables; "
        "print(sorted({'ray', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
