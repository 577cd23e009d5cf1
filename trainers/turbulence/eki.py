"""Ensemble Kalman inversion of a closure family's constants: the derivative-free cross-check
of the solver-in-the-loop fit (issue 21 §2), the calibration Guan & Hassanzadeh (arXiv
2504.09670) use for the Smagorinsky, Leith, biharmonic and Jansen–Held constants of this flow.

EKI (Iglesias, Law & Stuart 2013, "Ensemble Kalman methods for inverse problems", Inverse
Problems 29, eq. 2.2–2.5 — the perturbed-observation form): J members θ_j ∈ ℝ^m, a forward map
G(θ) ∈ ℝ^d (here the window-averaged log10 enstrophy spectrum, k = 1…k_c − 1), data y (the
filtered DNS's), observation noise Γ; one iteration

    C^{θG} = 1/J Σ_j (θ_j − θ̄)(G_j − Ḡ)ᵀ,   C^{GG} = 1/J Σ_j (G_j − Ḡ)(G_j − Ḡ)ᵀ
    θ_j ← θ_j + C^{θG} (C^{GG} + Γ)⁻¹ (y + η_j − G_j),   η_j ~ N(0, Γ)

No gradient is taken: each member is one LES of one solver batch (``families.advance`` takes
coefficients per simulation), so an iteration costs one window of a J-simulation batch.

Choices (fixed before any run):
- θ is the logit of the coefficient in the family's RL action range (``solver_loop.bounded``),
  so every member stays stable and in range; the prior ensemble is N(logit of the family's
  base, 1) per coordinate.
- Γ is the weather: diag of the variance, over the J simulations, of G at the base constant
  over one window — the noise a window-averaged spectrum has whatever the constants.
- The members run online: each iteration continues every LES from where the last window left
  it (after a spin-up with the base constant), so no window restarts from a transient.
- The answer is the ensemble mean of the coefficients after the last iteration.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional

import numpy as np
import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import Reference, les_physics
from regrl.envs.turbulence.solver import Turbulence2D
from regrl.trainers.turbulence.solver_loop import bounded, fit_start, unbounded

VARIANCE_FLOOR = 1e-8
"""Floor on Γ's diagonal (log10 spectrum units²): a wavenumber with no spread between the
simulations (none at 64², but a degenerate reference could) must not make Γ singular."""


@dataclass(frozen=True)
class EKISpec:
    closure: str = "smagorinsky_hyper"
    """Closure family whose constants are inverted (``envs/turbulence/families``)."""
    members: int = 16
    """J: ensemble members, one LES each, initial conditions cycled from the reference's."""
    iterations: int = 10
    """EKI updates."""
    window: float = 2.0
    """Time units per forward evaluation (spectrum averaged over the window)."""
    sample_every: int = 20
    """Solver steps between the window's spectrum samples."""
    spinup: float = 2.0
    """Time units with the base constant before the noise estimate and the first window."""
    prior_std: float = 1.0
    """Standard deviation of the prior ensemble in logit space."""
    seed: int = 0
    """Prior draw and observation perturbations."""

    def __post_init__(self):
        families.get_family(self.closure)
        if int(self.members) < 2 or int(self.iterations) < 1:
            raise ValueError(
                f"members must be >= 2 and iterations >= 1, got {self.members}, {self.iterations}"
            )
        if not self.window > 0 or not self.spinup >= 0 or not self.prior_std > 0:
            raise ValueError("window and prior_std must be > 0 and spinup >= 0")


def eki_update(
    theta: np.ndarray, g: np.ndarray, y: np.ndarray, gamma: np.ndarray, eta: np.ndarray
) -> np.ndarray:
    """One perturbed-observation EKI step (module docstring). theta [J, m], g [J, d] = G(θ_j),
    y [d], gamma [d, d], eta [J, d] the observation perturbations. Returns the new [J, m]."""
    dt, dg = theta - theta.mean(0), g - g.mean(0)
    j = theta.shape[0]
    c_tg, c_gg = dt.T @ dg / j, dg.T @ dg / j
    innovation = (y[None, :] + eta - g).T  # [d, J]
    return theta + (c_tg @ np.linalg.solve(c_gg + gamma, innovation)).T


def _les(ref: Reference, members: int) -> Turbulence2D:
    ics = ref.initial_conditions
    sim = Turbulence2D(ref.n_les, batch=members, **les_physics(ref.provenance["spec"]))
    sim.omega = torch.as_tensor(ics[np.arange(members) % len(ics)], dtype=sim.dtype)
    return sim


def forward(sim: Turbulence2D, fam, coeff: np.ndarray, spec: EKISpec, k_cut: int) -> np.ndarray:
    """G: advance every member one window with its own uniform coefficients coeff [J, m];
    log10 of its window-averaged enstrophy spectrum, k = 1…k_cut − 1 → [J, d]."""
    c = torch.as_tensor(coeff, dtype=sim.dtype)[:, None, None, :]
    steps = int(round(spec.window / sim.dt))
    zs = []
    with torch.no_grad():
        for _ in range(max(1, steps // spec.sample_every)):
            families.advance(sim, fam, c, spec.sample_every)
            zs.append(sim.enstrophy_spectrum().double().cpu().numpy())
    z = np.mean(zs, axis=0)[:, 1:k_cut]
    return np.log10(np.maximum(z, 1e-300))


def fit_eki(ref: Reference, spec: EKISpec, say: Callable[[str], None] = print) -> Dict[str, object]:
    """Ensemble Kalman inversion of ``spec.closure``'s constants (module docstring). Returns the
    per-iteration history (ensemble mean and spread of the coefficients, data misfit of the
    mean forward map) and the answer as coefficients and roots."""
    fam = families.get_family(spec.closure)
    low, high = (np.array(b, dtype=np.float64) for b in zip(*fam.default_range()))
    lo_t, hi_t = torch.as_tensor(low), torch.as_tensor(high)

    def coeff_of(theta: np.ndarray) -> np.ndarray:
        return bounded(torch.as_tensor(theta), lo_t, hi_t).numpy()

    rng = np.random.default_rng(spec.seed)
    base = fit_start(torch.as_tensor(np.array(fam.base())), lo_t, hi_t)
    theta0 = unbounded(base, lo_t, hi_t).numpy()
    k_cut = int(np.flatnonzero(ref.enstrophy_spectrum > 1e-30).max()) + 1
    y = np.log10(ref.enstrophy_spectrum[1:k_cut])
    sim = _les(ref, spec.members)
    started = time.time()
    base_j = np.repeat(base[None, :], spec.members, 0)
    with torch.no_grad():
        families.advance(
            sim, fam, torch.as_tensor(base_j)[:, None, None, :], int(round(spec.spinup / sim.dt))
        )
    weather = forward(sim, fam, base_j, spec, k_cut)
    gamma = np.diag(np.maximum(weather.var(0, ddof=1), VARIANCE_FLOOR))
    theta = theta0[None, :] + spec.prior_std * rng.standard_normal((spec.members, fam.size))
    history = []
    for it in range(spec.iterations):
        coeff = coeff_of(theta)
        g = forward(sim, fam, coeff, spec, k_cut)
        if not np.isfinite(g).all():
            bad = np.flatnonzero(~np.isfinite(g).all(1)).tolist()
            raise FloatingPointError(
                f"EKI members {bad} blew up at coefficients {coeff[bad].tolist()}: narrow the "
                f"family's range or lower prior_std"
            )
        misfit = float(np.mean((g.mean(0) - y) ** 2))
        eta = rng.multivariate_normal(np.zeros(len(y)), gamma, size=spec.members)
        theta = eki_update(theta, g, y, gamma, eta)
        mean = coeff_of(theta).mean(0)
        history.append(
            {
                "iteration": it,
                "misfit": misfit,
                "coeff": mean.tolist(),
                "spread": coeff_of(theta).std(0).tolist(),
            }
        )
        say(
            f"eki {spec.closure} {it + 1}/{spec.iterations}: misfit of the members' mean G "
            f"{misfit:.5f}, mean coefficients {np.round(mean, 6).tolist()} "
            f"({time.time() - started:.0f} s)"
        )
    answer = coeff_of(theta).mean(0)
    roots = [float(c) ** (1.0 / p) for c, p in zip(answer, fam.powers)]
    return {
        "spec": asdict(spec),
        "history": history,
        "coeff": answer.tolist(),
        "roots": roots,
        "seconds": time.time() - started,
        "noise_std": np.sqrt(np.diag(gamma)).tolist(),
    }


def eki_row(result: Dict[str, object], closure: Optional[str] = None) -> Dict[str, object]:
    """The compact record a benchmark keeps (no history)."""
    spec = result["spec"]
    return {
        "closure": closure or spec["closure"],
        "seed": spec["seed"],
        "roots": result["roots"],
        "final_misfit": result["history"][-1]["misfit"],
        "seconds": result["seconds"],
        "spec": spec,
    }
