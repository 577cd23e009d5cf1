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
