"""trainers/stats.py: the Student-t and Welch intervals against table values, the per-step band over seeds
and its plot, all without Ray (the module imports neither Ray nor scipy when it is loaded)."""

import math
import subprocess
import sys

import pytest

from regrl.trainers.stats import curve_band, plot_band, t_interval, welch_interval

T_975_1 = 12.706204736174705  # Student t quantile 0.975 with 1 degree of freedom (tables)
T_975_2 = 4.302652729911275  # with 2 degrees of freedom
T_95_2 = 2.919985580355516  # quantile 0.95 (a 90% interval), 2 degrees of freedom


def test_t_interval_known_values():
    mean, half = t_interval([1.0, 2.0, 3.0])  # s = 1, n = 3
    assert mean == 2.0 and half == pytest.approx(T_975_2 / math.sqrt(3), rel=1e-9)
    assert half == pytest.approx(2.484, abs=1e-3)
    assert t_interval([1.0, 2.0, 3.0], confidence=0.9)[1] == pytest.approx(T_95_2 / math.sqrt(3))
    assert t_interval([1.0, 3.0]) == (2.0, pytest.approx(T_975_1))  # s = sqrt(2), n = 2
    assert t_interval([5.0]) == (5.0, None)
    assert t_interval([4.0, 4.0])[1] == 0.0
    mean, half = t_interval([])
    assert math.isnan(mean) and half is None


def test_welch_interval_against_hand_numbers():
    """a = 1, 2, 3 and b = 2, 4, 6, 8: s_a²/n_a = 1/3, s_b²/n_b = 5/3, so the standard error is
    √2 and ν = 2² / ((1/3)²/2 + (5/3)²/3) = 4.0755 (scipy's ttest_ind(equal_var=False) gives
    the interval -6.897975 .. 0.897975)."""
    diff, half = welch_interval([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    assert diff == -3.0 and half == pytest.approx(3.897975451083129, rel=1e-9)
    assert welch_interval([1.0, 2.0], [5.0]) == (-3.5, None)
    assert welch_interval([2.0, 2.0], [1.0, 1.0]) == (1.0, 0.0)
    # two samples of 2 with s² = 2: s²/n = 1 per side, standard error √2, ν = 2
    assert welch_interval([3.0, 1.0], [1.0, 3.0]) == (0.0, pytest.approx(T_975_2 * math.sqrt(2)))
    assert math.isnan(welch_interval([], [1.0])[0])


def test_curve_band_uses_steps_every_seed_logged():
    runs = [
        [{"step": 1, "m": 1.0}, {"step": 2, "m": 2.0}, {"step": 3, "m": 9.0}],
        [{"step": 1, "m": 3.0}, {"step": 2, "m": 4.0}, {"step": 3, "m": None}],
    ]
    steps, mean, half = curve_band(runs, "m")
    assert steps == [1, 2] and mean == [2.0, 3.0]
    assert half[0] == pytest.approx(T_975_1, rel=1e-6)
    assert curve_band(runs, "missing") == ([], [], [])


def test_plot_band_shades_only_steps_with_an_interval():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        plot_band(ax, [1, 2, 3], [1.0, 2.0, 3.0], [None, 0.5, 1.0], "arm", marker=".")
        (line,) = ax.get_lines()
        assert line.get_label() == "arm" and list(line.get_xdata()) == [1, 2, 3]
        (band,) = ax.collections
        ys = band.get_paths()[0].vertices[:, 1]
        assert min(ys) == pytest.approx(1.5) and max(ys) == pytest.approx(4.0)
        assert band.get_facecolor()[0][:3] == pytest.approx(
            matplotlib.colors.to_rgb(line.get_color())
        )
    finally:
        plt.close(fig)


def test_importing_the_module_loads_neither_ray_nor_scipy():
    code = (
        "import sys, regrl.trainers.stats; "
        "print(sorted(m for m in ('ray', 'scipy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
