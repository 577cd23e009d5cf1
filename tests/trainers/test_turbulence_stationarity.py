"""benchmarks/turbulence_stationarity.py: its windows and stationary means are the samples'
(by hand), and a tiny run writes a file whose report has one row per window."""

import json
import sys

import numpy as np
import pytest

from regrl.envs.turbulence.metrics import log_spectrum_error
from regrl.envs.turbulence.reference import load_reference
from regrl.trainers.stats import t_interval
from tests.benchmark_modules import benchmark_module


def test_window_means_by_hand():
    times = np.array([0.5, 1.0, 1.5, 2.0, 2.5])
    values = np.array([[1.0, 3.0], [2.0, 2.0], [10.0, 10.0], [20.0, 20.0], [7.0, 9.0]])
    with benchmark_module("turbulence_stationarity") as st:
        rows = st.window_means(values, times, window=1.0)
    # (0, 1]: t = 0.5, 1.0; (1, 2]: 1.5, 2.0; (2, 3]: 2.5 — a sample on a boundary closes it
    assert rows == [(0.0, 1.0, 2.0), (1.0, 2.0, 15.0), (2.0, 3.0, 8.0)]


def test_summarise_takes_windows_and_the_steady_part_per_simulation():
    ref = load_reference()
    z = np.asarray(ref.enstrophy_spectrum)
    times = np.arange(1, 9) * 0.5  # 0.5 … 4.0
    tails = np.stack([np.full(8, 2.0), np.full(8, 1.0)], 1)  # [time, sims]
    tails[4:, 1] = 0.0  # simulation 1's tails vanish after t = 2
    spectra = np.broadcast_to(z, (8, 2, z.size)).copy()
    spectra[4:] *= 10.0  # the second half one decade off
    samples = {"times": times, "tails": tails, "spectra": spectra, "energy": np.ones((8, 2))}
    with benchmark_module("turbulence_stationarity") as st:
        out = st.summarise(samples, ref, window=2.0, steady_from=2.5)
    first, second = out["windows"]
    assert (first["from"], first["to"], first["tails"]) == (0.0, 2.0, 1.5)
    assert first["spectrum_error"] == pytest.approx(0.0, abs=1e-12)
    assert second["tails"] == pytest.approx(1.0)  # (2 + 0) / 2
    assert second["spectrum_error"] == pytest.approx(log_spectrum_error(10 * z, z))
    mean, half = t_interval([2.0, 0.0])  # t = 2.5 … 4.0: each simulation's own mean
    assert out["steady"]["tails"] == pytest.approx(mean)
    assert out["steady"]["tails_ci"] == pytest.approx(half)


def test_a_tiny_run_writes_its_windows(tmp_path, monkeypatch):
    out = tmp_path / "st.json"
    argv = [
        "turbulence_stationarity.py",
        "--out",
        str(out),
        "--sims",
        "2",
        "--time",
        "1",
        "--window",
        "0.5",
        "--steady-from",
        "0.5",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with benchmark_module("turbulence_stationarity") as st:
        st.main()
        text = st.report(json.loads(out.read_text()))
    data = json.loads(out.read_text())
    assert set(data["starts"]) == {"reference", "random"}
    for kind in data["starts"].values():
        assert len(kind["windows"]) == 2
        assert all(np.isfinite(w["tails"]) and w["energy"] > 0 for w in kind["windows"])
    assert (
        sum(
            line.startswith("| 0–0.5 |") or line.startswith("| 0.5–1 |")
            for line in text.splitlines()
        )
        == 2
    )
