"""benchmarks/turbulence_family_scan.py's report: each family's best grid constant, paired per
simulation against C_s = 0.17 and, with ``--against``, against any row of the file (an
``--extra`` constant such as another family's best), on a small synthetic scan file."""

import json

import pytest

from tests.benchmark_modules import benchmark_module


def _row(family, roots, errors, tails=(1.0, 1.0, 1.0)):
    with benchmark_module("turbulence_family_scan") as scan:
        name = scan._key(family, roots)
    return {
        "name": name,
        "family": family,
        "roots": list(roots),
        "enstrophy_spectrum_error": sum(errors) / len(errors),
        "tail_ratio": sum(tails) / len(tails),
        "diverged": 0,
        "simulations": len(errors),
        "per_simulation": {
            "simulation": list(range(len(errors))),
            "enstrophy_spectrum_error": list(errors),
            "tail_ratio": list(tails),
        },
    }


@pytest.fixture
def scan_file(tmp_path):
    rows = [
        _row("smagorinsky", (0.17,), (0.08, 0.07, 0.09)),
        _row("smagorinsky_hyper8", (0.0, 0.37), (0.05, 0.04, 0.06)),
        _row("smagorinsky_hyper8", (0.06, 0.40), (0.03, 0.025, 0.035), tails=(0.9, 1.0, 1.1)),
        _row("jansen_held", (0.315, 1.0), (0.04, 0.035, 0.045)),  # an --extra, not a grid point
    ]
    path = tmp_path / "scan.json"
    path.write_text(json.dumps({"args": {}, "rows": rows}))
    return path


def test_report_pairs_each_best_against_a_named_extra_row(scan_file):
    with benchmark_module("turbulence_family_scan") as scan:
        text = scan.report(scan_file, [("jansen_held", (0.315, 1.0))])
    best = "smagorinsky_hyper8 C_s=0.06 C_8=0.4"
    assert f"| smagorinsky_hyper8 | {best} | 0.0300 |" in text  # the lower of its two rows
    assert "| jansen_held | no grid point |" in text  # extras are never a family's best
    # per simulation 0.03 − 0.04, 0.025 − 0.035, 0.035 − 0.045: −0.01 with no spread
    assert "Paired per simulation against jansen_held C_4=0.315 c_b=1:" in text
    # tails (0.9, 1, 1.1) − 1: 0 ± t·0.1/√3
    assert f"- {best}: error -0.0100 ± 0.0000, tail ratio +0.0000 ± 0.2484" in text
    # and against C_s = 0.17: 0.03 − 0.08, 0.025 − 0.07, 0.035 − 0.09 → −0.05 ± t·0.005/√3
    assert f"- {best}: error -0.0500 ± 0.0124" in text


def test_report_refuses_an_against_row_that_is_not_in_the_file(scan_file):
    with benchmark_module("turbulence_family_scan") as scan:
        with pytest.raises(SystemExit, match="no such row"):
            scan.report(scan_file, [("jansen_held", (0.31, 0.3))])


def test_report_pairs_the_best_chosen_held_out(scan_file):
    """Two folds (even, odd simulations): hyper8's (0, 0.37) row is best on the even ones,
    (0.06, 0.40) on the odd ones, so each fold is scored by the other's choice."""
    data = json.loads(scan_file.read_text())
    row = data["rows"][1]  # (0, 0.37)
    row["per_simulation"]["enstrophy_spectrum_error"] = [0.02, 0.05, 0.02]
    data["rows"][1] = row
    scan_file.write_text(json.dumps(data))
    with benchmark_module("turbulence_family_scan") as scan:
        text = scan.report(scan_file, [("jansen_held", (0.315, 1.0))], ["smagorinsky_hyper8"])
    # fold 0 = simulations 0, 2, chosen on simulation 1: (0.06, 0.40) with 0.025 < 0.05;
    # fold 1 = simulation 1, chosen on 0 and 2: (0, 0.37) with 0.02 < 0.0325 → 0.05
    # → per simulation 0.03, 0.05, 0.035 − (0.04, 0.035, 0.045) = −0.01, +0.015, −0.01
    held = "smagorinsky_hyper8 C_s=0.06 C_8=0.4 / smagorinsky_hyper8 C_s=0 C_8=0.37"
    assert f"- smagorinsky_hyper8 chosen held out ({held}): error -0.0017 ± 0.0359" in text
