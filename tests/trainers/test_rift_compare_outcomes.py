"""benchmarks/rift_compare_outcomes.py: per-run differences to IL only, and ``--across`` with the
stage-1 seed as the unit, including units known only by an outcomes table the script wrote
(``--unit-table``)."""

import pytest

from tests.benchmark_modules import benchmark_module


def _run(method, ds, rp):
    keys = ("cbv_ds", "cbv_rc", "collided", "stuck", "arrived", "rp", "cpk")
    block = dict.fromkeys(keys, 0.0)
    return {"method": method, "blocks": [dict(block, cbv_ds=ds, rp=rp)]}


def _dir(il_ds, rift_ds):
    return [_run("IL only", il_ds, 100.0)] + [_run("RIFT", d, 110.0) for d in rift_ds]


def _row(text, start):
    return next(ln for ln in text.splitlines() if ln.startswith(start))


def test_a_table_round_trips_into_a_unit_of_the_mean_over_units(tmp_path):
    with benchmark_module("rift_compare_outcomes") as m:
        md = tmp_path / "a.md"
        md.write_text(m.tables(_dir(40.0, [44.0, 46.0, 48.0])) + "\n")  # RIFT − IL: +6 DS
        unit = m.read_unit_table(md)
        assert unit["RIFT"]["cbv_ds"] == 6.0 and unit["RIFT"]["rp"] == 10.0
        # two directories (+2, +4) and the table's unit (+6): mean over 3 units = +4
        text = m.across(
            [("b", _dir(50.0, [52.0, 52.0])), ("c", _dir(50.0, [54.0, 54.0]))], [("a.md", unit)]
        )
    assert _row(text, "| RIFT | a.md (table) | — | +6.0 |")
    units = _row(text, "| RIFT | units (mean of each) | 3 |")
    assert units.split("|")[4].strip().startswith("+4.0 ± ")  # t(2)·2/√3 = 4.97: not separated
    pooled = _row(text, "| RIFT | all runs pooled (directories only) | 4 |")
    assert pooled.split("|")[4].strip().startswith("+3.0 ± ")  # the table's runs are not in it
    assert "units without" not in text
    with benchmark_module("rift_compare_outcomes") as m:
        loo = m.across(
            [("b", _dir(50.0, [52.0, 52.0])), ("c", _dir(50.0, [54.0, 54.0]))],
            [("a.md", unit)],
            leave_one_out=True,
        )
    # each unit left out in turn: (+2, +4) = +3, (+6, +4) = +5, (+6, +2) = +4
    for label, mean in (("a.md", "+3.0"), ("b", "+5.0"), ("c", "+4.0")):
        row = _row(loo, f"| RIFT | units without {label} | 2 |")
        assert row.split("|")[4].strip().startswith(mean + " ± "), row


def test_a_file_without_the_difference_table_is_one_clear_error(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("| method | n |\n|---|---|\n")
    with benchmark_module("rift_compare_outcomes") as m:
        with pytest.raises(SystemExit, match="no 'Difference to IL only per run' table"):
            m.read_unit_table(md)


def test_one_planners_directories_merge_and_versus_is_welch_over_runs():
    with benchmark_module("rift_compare_outcomes") as m:
        a = _dir(40.0, [44.0, 46.0, 48.0])  # RIFT: 46 ± 2
        b = [_run("IL only", 40.0, 100.0)] + [_run("GRPO+KL", d, 100.0) for d in (40.0, 42.0)]
        runs = m.merged([("a", a), ("b", b)])
        assert [r["method"] for r in runs] == ["IL only"] + ["RIFT"] * 3 + ["GRPO+KL"] * 2
        text = m.tables(runs, versus="RIFT")
        # GRPO+KL (41) − RIFT (46): -5; Welch: se = √(2/2 + 4/3) = 1.53, ν = 2.9 → ±4.9: separated
        row = _row(text, "| GRPO+KL − RIFT | 2 |")
        mean, half = m.welch_interval([40.0, 42.0], [44.0, 46.0, 48.0])
        assert row.split("|")[3].strip() == f"{mean:+.1f} ± {half:.1f} *" and mean == -5.0
        assert _row(text, "| GRPO+KL − IL only | 2 |").split("|")[3].strip().startswith("+1.0 ± ")
        assert "RIFT − RIFT" not in text and "IL only − RIFT" not in text
        with pytest.raises(SystemExit, match="no such method"):
            m.tables(runs, versus="PPO")
        other_il = [_run("IL only", 41.0, 100.0)] + b[1:]  # another planner's IL only
        with pytest.raises(SystemExit, match="differs from a's"):
            m.merged([("a", a), ("c", other_il)])
