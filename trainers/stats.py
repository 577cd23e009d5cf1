"""Confidence intervals over seeds and their band plots, shared by ``regrl sweep``, the domains'
comparisons and the benchmarks.

No Ray, no Tune: scipy (for the t quantile) and matplotlib (an ``Axes`` passed in) are
imported only by the functions that need them, so importing this module is free.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

CONFIDENCE = 0.95
"""Coverage of every interval regrl reports."""


def t_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> Tuple[float, Optional[float]]:
    """(mean, half-width) of the Student-t interval mean ± t_{(1+c)/2, n-1} s/√n; the
    half-width is None for n < 2 (no interval from one seed)."""
    from scipy import stats  # lazy: not at --help

    n = len(values)
    if n == 0:
        return float("nan"), None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf((1 + confidence) / 2, n - 1)) * s / math.sqrt(n)


def welch_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> Tuple[float, Optional[float]]:
    """(mean(a) - mean(b), half-width) of Welch's interval for a difference of means with
    unequal variances: t_{(1+c)/2, ν} · √(s_a²/n_a + s_b²/n_b), ν the Welch-Satterthwaite
    degrees of freedom; the half-width is None with fewer than 2 values on a side."""
    from scipy import stats  # lazy: not at --help

    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return float("nan"), None
    mean_a, mean_b = sum(a) / na, sum(b) / nb
    if na < 2 or nb < 2:
        return mean_a - mean_b, None
    va = sum((x - mean_a) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mean_b) ** 2 for x in b) / (nb - 1) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return mean_a - mean_b, 0.0
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return mean_a - mean_b, float(stats.t.ppf((1 + confidence) / 2, dof)) * se


def curve_band(
    runs: List[List[Dict[str, Any]]], metric: str
) -> Tuple[List[int], List[float], List[Optional[float]]]:
    """Steps logged by every seed, the mean over seeds and the 95% t half-width per step
    (``runs``: per seed, its metrics records ``{"step", metric, ...}``)."""
    series = [{r["step"]: r[metric] for r in recs if r.get(metric) is not None} for recs in runs]
    series = [s for s in series if s]
    if not series:
        return [], [], []
    steps = sorted(set.intersection(*[set(s) for s in series]))
    stats = [t_interval([s[i] for s in series]) for i in steps]
    return steps, [m for m, _ in stats], [h for _, h in stats]


def plot_band(ax, steps, mean, half, label: str, alpha: float = 0.2, **line_kw) -> None:
    """A mean curve and its 95% band on the matplotlib ``ax`` (steps whose half-width is None
    get no band)."""
    (line,) = ax.plot(steps, mean, label=label, **line_kw)
    band = [(i, m, h) for i, m, h in zip(steps, mean, half) if h is not None]
    if band:
        ax.fill_between(
            [b[0] for b in band],
            [b[1] - b[2] for b in band],
            [b[1] + b[2] for b in band],
            color=line.get_color(),
            alpha=alpha,
        )
