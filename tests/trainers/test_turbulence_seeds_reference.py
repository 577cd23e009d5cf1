"""benchmarks/turbulence_seeds.py --reference: rows scored against one reference never pair
with baselines or scan constants scored against another."""

from __future__ import annotations

import json
import sys

import pytest

from tests.benchmark_modules import benchmark_module

OPTS = {"seeds": 16, "time_units": 20.0, "spinup": 2.0}


@pytest.fixture(scope="module")
def seeds():
    with benchmark_module("turbulence_seeds") as module:
        yield module


def test_baselines_from_another_reference_are_refused(seeds, tmp_path):
    earlier = tmp_path / "seeds.json"
    earlier.write_text(json.dumps({"options": OPTS, "rows": [{"name": "x"}]}))
    with pytest.raises(SystemExit, match="packaged"):
        seeds.baseline_rows(None, OPTS, str(earlier), reference="ens.npz")
    earlier.write_text(json.dumps({"options": OPTS, "rows": [], "reference": "ens.npz"}))
    assert seeds.baseline_rows(None, OPTS, str(earlier), reference="ens.npz") == []
    with pytest.raises(SystemExit, match="ens.npz"):
        seeds.baseline_rows(None, OPTS, str(earlier))


def test_constants_from_a_scan_against_another_reference_are_refused(seeds, tmp_path, monkeypatch):
    """The scan's args carry its --reference (and its --point list, which does not matter):
    a scan against the ensemble reference cannot pair with a packaged-reference evaluation,
    and the refusal comes before any rollout."""
    scan = tmp_path / "scan.json"
    args = {"sims": 16, "time": 20.0, "spinup": 2.0, "reference": "ens.npz", "points": ["a"]}
    scan.write_text(json.dumps({"args": args, "rows": []}))
    policy = tmp_path / "p.pt"
    policy.write_bytes(b"")
    argv = ["x", "--arm", f"a={policy}", "--sims", "16", "--constants-from", str(scan)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="reference"):
        seeds.main()
