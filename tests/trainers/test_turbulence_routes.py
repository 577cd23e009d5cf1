"""benchmarks/turbulence_routes.py: its resumable, shared output file and the held-out choice
of the best constant."""

from __future__ import annotations

import json
import sys

import pytest

from tests.benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def routes():
    with benchmark_module("turbulence_routes") as module:
        yield module


def test_rows_added_after_a_save_reach_the_file(routes, tmp_path):
    """The arms keep adding to ``state["rows"]`` after each save: a save that replaced the
    dict (instead of merging into it) lost every later row (seen: two fine-tuned rows)."""
    out = tmp_path / "routes.json"
    out.write_text(json.dumps({"rows": {"other process": {"x": 0}}}))
    state = {"rows": {}}
    rows = state["rows"]
    rows["a"] = {"x": 1}
    routes._save(out, state)
    rows["b"] = {"x": 2}
    routes._save(out, state)
    assert set(json.loads(out.read_text())["rows"]) == {"other process", "a", "b"}
    assert set(state["rows"]) == {"other process", "a", "b"}


def test_cross_fitted_best_constant_is_chosen_on_the_other_fold(routes):
    """Fold 0 (simulations 0, 2) takes the constant best on fold 1 and vice versa."""
    key, tails = routes.KEY, routes.TAILS

    def row(name, errs):
        return {
            "name": name,
            "family": "f",
            "diverged": 0,
            "per_simulation": {key: errs, tails: [1.0] * 4},
        }

    a = row("a", [0.1, 0.9, 0.1, 0.9])  # good on fold 0, bad on fold 1
    b = row("b", [0.5, 0.2, 0.5, 0.2])  # good on fold 1
    out = routes.cross_fitted([a, b], "f")
    assert out["name"] == "b / a"
    assert out["per_simulation"][key] == [0.5, 0.9, 0.5, 0.9]


def test_correction_variants_are_separate_arms(routes):
    """A correction run with other updates gets its own label and its own table row."""
    rows = {
        f"{routes.CORRECTION}, seed 0": {},
        f"{routes.CORRECTION}, seed 1": {},
        f"{routes.CORRECTION} (30 updates), seed 0": {},
        "supervised D4-CNN Π, seed 0": {},
    }
    assert routes._arms_of(rows, routes.CORRECTION) == [
        routes.CORRECTION,
        f"{routes.CORRECTION} (30 updates)",
    ]
    assert len(routes._seeded(rows, routes.CORRECTION)) == 2

    class A:
        fit_iterations, validate_every = 30, 0

    assert routes._correction_arm(A) == f"{routes.CORRECTION} (30 updates)"
    A.fit_iterations, A.validate_every = routes.CORRECTION_UPDATES, 10
    stopped = f"{routes.CORRECTION} (early-stopped, validated every 10)"
    assert routes._correction_arm(A) == stopped  # never merged with the unvalidated arm


def test_a_difference_of_float_rounding_is_neither_better_nor_worse(routes):
    """An arm that kept the constant in every seed differs from it by ~1e-17 per simulation
    (another code path): reported as +0.0000 without a verdict; a real difference keeps it."""
    key = routes.KEY
    base = {"per_simulation": {key: [0.04, 0.05, 0.03]}}
    same = {"per_simulation": {key: [0.04 - 1e-17, 0.05 - 1e-17, 0.03 - 2e-17]}}
    assert routes._paired([same, same], base, key) == "+0.0000 ± 0.0000"
    lower = {"per_simulation": {key: [0.03, 0.04, 0.02]}}
    assert routes._paired([lower, lower], base, key).endswith("(better)")


def test_fits_refuse_a_file_fitted_against_another_reference(routes, tmp_path, monkeypatch):
    """benchmarks/turbulence_fits.py: rows fitted against the packaged reference and rows
    against another ``--reference`` must not share a file (their means would mix targets);
    the refusal comes before any fit runs."""
    import turbulence_fits

    out = tmp_path / "fits.json"
    row = {"closure": "jansen_held", "target": "spectrum", "seed": 0, "roots": [0.3, 0.5]}
    out.write_text(json.dumps({"fits": [row]}))
    other = tmp_path / "ens.npz"
    monkeypatch.setattr(sys, "argv", ["x", "--out", str(out), "--reference", str(other)])
    with pytest.raises(SystemExit, match="packaged"):
        turbulence_fits.main()
    out.write_text(json.dumps({"fits": [row], "reference": str(other)}))
    monkeypatch.setattr(sys, "argv", ["x", "--out", str(out)])
    with pytest.raises(SystemExit, match="use another --out"):
        turbulence_fits.main()
