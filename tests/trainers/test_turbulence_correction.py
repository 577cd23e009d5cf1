"""benchmarks/turbulence_correction.py: the learned correction's report pairs each seed with its
base constant and the held-out best constant on the same simulations, and files of another
reference or run never mix."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from tests.benchmark_modules import benchmark_module

KEY, TAILS = "enstrophy_spectrum_error", "tail_ratio"


@pytest.fixture(scope="module")
def corr():
    with benchmark_module("turbulence_correction") as module:
        yield module


def _row(name, errs, tails, family="jansen_held"):
    return {"name": name, "family": family, "diverged": 0, "simulations": len(errs),
            KEY: sum(errs) / len(errs), TAILS: sum(tails) / len(tails),
            "per_simulation": {KEY: errs, TAILS: tails}}  # fmt: skip


def _scan(tmp_path, reference="ens.npz"):
    rows = [
        _row("jansen_held C_4=0.31 c_b=1", [0.040, 0.030, 0.040, 0.030], [1.0] * 4),
        _row("jansen_held C_4=0.3 c_b=1", [0.050, 0.020, 0.050, 0.020], [0.9] * 4),
        _row("smagorinsky C_s=0.15", [0.01] * 4, [0.6] * 4, family="smagorinsky"),
        _row("jansen_held C_4=0.3092 c_b=0.3354", [0.001] * 4, [1.0] * 4),  # an --extra row
    ]
    path = tmp_path / "scan.json"
    points = [r["name"] for r in rows[:3]]
    args = {"sims": 4, "time": 20.0, "spinup": 2.0, "reference": reference, "points": points}
    path.write_text(json.dumps({"args": args, "rows": rows}))
    return path


def _args(scan, reference="ens.npz"):
    return SimpleNamespace(reference=reference, constants_from=scan, family="jansen_held")


def test_report_pairs_each_seed_with_its_base_and_the_held_out_best(corr, tmp_path):
    """Base = the family's lowest pooled error among grid points (0.035, C_4=0.31; Smagorinsky's
    lower row is another family, the lowest jansen_held row a fitted --extra constant). Held out: fold 0 (sims 0, 2) takes the constant best on sims 1, 3 (C_4=0.3,
    0.020), fold 1 the one best on sims 0, 2 (C_4=0.31). A seed 0.005 better on every simulation
    is −0.005 against its base, and against the held-out row −0.005 on fold 1 and −0.015 on
    fold 0 (−0.010): a swapped difference or a pairing against another family fails here."""
    scan = _scan(tmp_path)
    seed = dict(_row("x", [0.035, 0.025, 0.035, 0.025], [1.0] * 4), seed=0,
                selected_update=30, train_seconds=1.0,
                validation=[{"updates": 0, "score": 0.05}, {"updates": 30, "score": 0.04}])  # fmt: skip
    text = corr.report(_args(scan), {"rows": {"x": seed}})
    assert "C_4=0.31 c_b=1: spectrum error 0.0350" in text
    assert "jansen_held C_4=0.3 c_b=1 / jansen_held C_4=0.31 c_b=1" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| 0 | 30 |"))
    assert "-0.0050 ± 0.0000 (better)" in line
    assert "-0.0100 ± " in line
    assert "0: 0.050, 30: 0.040; kept 30" in text


def test_scan_of_another_reference_is_refused(corr, tmp_path):
    scan = _scan(tmp_path, reference=None)
    with pytest.raises(SystemExit, match="packaged reference"):
        corr.report(_args(scan), {"rows": {"x": {}}})


def test_resuming_with_other_options_is_refused(corr, tmp_path, monkeypatch):
    scan = _scan(tmp_path)
    out = tmp_path / "corr.json"
    out.write_text(json.dumps({"rows": {"x": {}}, "options": {"lr": "0.1"}}))
    argv = ["x", "--reference", "ens.npz", "--constants-from", str(scan), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv + ["--report"])
    with pytest.raises(SystemExit, match="use another --out"):
        corr.main()


def test_a_missing_reference_file_is_a_message_before_any_run(corr, tmp_path, monkeypatch):
    """The ensemble reference is a file another command writes: naming one that is not there
    stops with a message naming that command, not load_reference's traceback after the
    validation states were built."""
    scan = _scan(tmp_path, reference=str(tmp_path / "ens.npz"))
    argv = ["x", "--reference", str(tmp_path / "ens.npz"), "--constants-from", str(scan)]
    monkeypatch.setattr(sys, "argv", argv + ["--out", str(tmp_path / "c.json")])
    with pytest.raises(SystemExit, match="no such file.*--write-reference"):
        corr.main()
