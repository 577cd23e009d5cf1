"""Statistics that compare an LES with the filtered DNS reference (SMARL, Mojgani et al. 2023,
arXiv 2312.00907, docs/methods.md#smarl-evaluation: spectra and vorticity-PDF tails). numpy only."""

from __future__ import annotations

import numpy as np

EPS = 1e-30


def log_spectrum_error(spec: np.ndarray, ref: np.ndarray, k_min: int = 1) -> float:
    """Root-mean-square of log10(spec/ref) over the wavenumbers k >= k_min where the
    reference has energy (k = 0 and the modes removed by dealiasing are empty)."""
    s, r = np.asarray(spec)[k_min:], np.asarray(ref)[k_min:]
    keep = r > EPS
    return float(np.sqrt(np.mean((np.log10(s[keep] + EPS) - np.log10(r[keep])) ** 2)))


def weighted_spectrum_error(spec: np.ndarray, ref: np.ndarray) -> float:
    """SMARL's reward norm ‖k ⊙ (Ẑ_LES(k) − Ẑ_ref(k))‖₂² (docs/methods.md#smarl-environment, rewardtype z1)."""
    k = np.arange(len(ref), dtype=np.float64)
    return float(np.sum((k * (np.asarray(spec) - np.asarray(ref))) ** 2))


def pdf_histogram(omega: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Probability density of the vorticity samples on fixed bin edges (mass outside is lost
    to the tails on purpose: the edges span the reference's range)."""
    counts, _ = np.histogram(np.asarray(omega).ravel(), bins=edges)
    widths = np.diff(edges)
    total = max(np.asarray(omega).size, 1)
    return counts / (total * widths)


def hellinger(p: np.ndarray, q: np.ndarray, edges: np.ndarray) -> float:
    """Hellinger distance between two binned densities: sqrt(1 − Σ sqrt(p q) Δ), in [0, 1]."""
    widths = np.diff(edges)
    bc = float(np.sum(np.sqrt(np.maximum(p, 0) * np.maximum(q, 0)) * widths))
    return float(np.sqrt(max(0.0, 1.0 - min(bc, 1.0))))


def tail_probability(omega: np.ndarray, sigma: float, n_sigma: float = 3.0) -> float:
    """P(|ω| > n_sigma · sigma), with sigma the reference standard deviation."""
    w = np.asarray(omega).ravel()
    return float(np.mean(np.abs(w) > n_sigma * sigma)) if w.size else float("nan")


def kurtosis(omega: np.ndarray) -> float:
    """Excess-free kurtosis ⟨ω⁴⟩/⟨ω²⟩² of the (zero-mean) vorticity; 3 for a Gaussian."""
    w = np.asarray(omega, dtype=np.float64).ravel()
    w = w - w.mean()
    var = np.mean(w**2)
    return float(np.mean(w**4) / var**2) if var > 0 else float("nan")


def pooled_error_difference(arm: np.ndarray, base: np.ndarray, ref: np.ndarray) -> float:
    """The ensemble spectrum error of ``arm`` minus that of ``base`` on the same simulations:
    ``log_spectrum_error`` of the simulations' mean spectrum, for ``arm`` [seeds, sims, k]
    (each training seed's own mean spectrum, the differences averaged over seeds) and
    ``base`` [sims, k]. Unlike the mean of per-simulation errors it leaves out each
    simulation's own sampling noise (the square of its spectrum's scatter about the closure's
    mean spectrum), so it scores the closure's spectrum, not the weather of one window."""
    arm, base = np.asarray(arm, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if arm.ndim == 2:
        arm = arm[None]
    if arm.ndim != 3 or base.ndim != 2 or arm.shape[1:] != base.shape:
        raise ValueError(
            f"pooled_error_difference: arm [seeds, sims, k] and base [sims, k] of the same "
            f"simulations, got {list(arm.shape)} and {list(base.shape)}"
        )
    base_error = log_spectrum_error(base.mean(0), ref)
    return float(np.mean([log_spectrum_error(a.mean(0), ref) for a in arm]) - base_error)


def paired_bootstrap(
    arm: np.ndarray,
    base: np.ndarray,
    ref: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple:
    """(difference, low, high): ``pooled_error_difference`` and its percentile bootstrap
    interval over the simulations (Efron & Tibshirani 1993, ch. 13), resampled with
    replacement with the same draw for every seed of ``arm`` and for ``base``, so that each
    simulation's arms stay paired (they started from one state)."""
    arm, base = np.asarray(arm, dtype=np.float64), np.asarray(base, dtype=np.float64)
    point = pooled_error_difference(arm, base, ref)
    arm = arm[None] if arm.ndim == 2 else arm
    rng = np.random.default_rng(seed)
    sims = base.shape[0]
    draws = [
        pooled_error_difference(arm[:, idx], base[idx], ref)
        for idx in rng.integers(0, sims, size=(int(resamples), sims))
    ]
    low, high = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return point, float(low), float(high)
