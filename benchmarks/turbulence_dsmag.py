"""Dynamic Smagorinsky C_s² on the reference's filtered-DNS fields: our procedure
(``closures.dynamic_smagorinsky_cs2``) next to the variants of the SMARL authors' ``DSMAG.py``
(rmojgani/RLonKorali) and a dealiasing-consistent test filter, all in the solver's convention
(ν_e = C_s² Δ² ⟨|S̄|²⟩^½, Δ = 2π/n, |S̄| = √(2 S̄ij S̄ij)) so the numbers compare with the
constant C_s² = 0.17² = 0.0289 (docs/smarl.md §Dynamic Smagorinsky).

Run: nice -n 5 .venv/bin/python benchmarks/turbulence_dsmag.py
"""

from __future__ import annotations

import numpy as np
import torch

from regrl.envs.turbulence.closures import dynamic_smagorinsky_cs2
from regrl.envs.turbulence.reference import les_from_reference, load_reference
from regrl.envs.turbulence.solver import Turbulence2D, wavenumbers


def germano(
    sim: Turbulence2D, cut: float, ratio: float, delta: float, filtered_norm: bool = False
) -> np.ndarray:
    """Raw domain-averaged C_s² [batch] with a sharp test filter keeping |k| < ``cut``, test to
    grid width ``ratio``, grid filter width ``delta``; ``filtered_norm``: DSMAG.py's (|S̄|)^ in
    M's second term instead of |Ŝ|. Rescaled to the solver's Δ (C Δ² is what acts)."""
    u, v = sim.velocity()
    s11, s12 = sim.strain_rate()
    kx, ky = wavenumbers(sim.n, dtype=sim.dtype)
    keep = ((kx.abs() < cut) & (ky.abs() < cut)).to(sim.dtype)
    F = lambda f: torch.fft.irfft2(torch.fft.rfft2(f) * keep, s=(sim.n, sim.n))  # noqa: E731
    norm = 2 * torch.sqrt(s11**2 + s12**2)
    l11 = 0.5 * ((F(u * u) - F(u) ** 2) - (F(v * v) - F(v) ** 2))
    l12 = F(u * v) - F(u) * F(v)
    s11h, s12h = F(s11), F(s12)
    norm_h = F(norm) if filtered_norm else 2 * torch.sqrt(s11h**2 + s12h**2)
    m11 = 2 * delta**2 * (F(norm * s11) - ratio**2 * norm_h * s11h)
    m12 = 2 * delta**2 * (F(norm * s12) - ratio**2 * norm_h * s12h)
    c = (l11 * m11 + l12 * m12).mean((-2, -1)) / (m11**2 + m12**2).mean((-2, -1))
    return (c * (delta / sim.delta) ** 2).numpy()


def main() -> None:
    ref = load_reference()
    b = len(ref.initial_conditions)
    sim = les_from_reference(ref, b)
    n = sim.n
    rows = {
        "ours (Germano–Lilly, test cut n/4, r = 2), raw": dynamic_smagorinsky_cs2(
            sim, clip=False
        ).numpy(),
        "DSMAG.py form: (|S̄|)^ Ŝ in M": germano(sim, n / 4, 2.0, sim.delta, True),
        "dealiasing-consistent: grid cut n/3, test cut n/6, r = 2": germano(
            sim, n / 6, 2.0, 1.5 * sim.delta
        ),
        "dealiasing-consistent: test cut n/4, r = (n/3)/(n/4)": germano(
            sim, n / 4, 4.0 / 3.0, 1.5 * sim.delta
        ),
    }
    print(
        f"{b} filtered-DNS fields ({n}², the LES initial conditions); C_s² in the solver's "
        f"convention; constant C_s = 0.17 is C_s² = 0.0289"
    )
    print(
        "| procedure | mean raw C_s² | min … max | share < 0 | mean after clipping at 0 |\n"
        "|---|---|---|---|---|"
    )
    for name, c in rows.items():
        print(
            f"| {name} | {c.mean():+.5f} | {c.min():+.5f} … {c.max():+.5f} | "
            f"{np.mean(c < 0):.2f} | {np.maximum(c, 0).mean():.5f} |"
        )


if __name__ == "__main__":
    main()
