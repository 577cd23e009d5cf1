"""Reference statistics of a resolved simulation, filtered to the LES grid (SMARL,
Mojgani et al. 2023, arXiv 2312.00907: the reward needs only the enstrophy spectrum of a few
high-fidelity samples; evaluation compares spectra and vorticity-PDF tails).

``generate_reference`` spins a DNS up to statistical steady state, then averages the spectra
of the DNS filtered to the LES grid, the vorticity PDF of the filtered field, and keeps a few
filtered snapshots as LES initial conditions. ``regrl turbulence reference`` calls it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch

DEFAULT_REFERENCE = Path(__file__).resolve().parent / "data" / "reference_kf4.npz"


@dataclass(frozen=True)
class ReferenceSpec:
    n_dns: int = 256
    """Resolution of the resolved simulation."""
    n_les: int = 64
    """LES grid the statistics are filtered to."""
    nu: float = 5e-5
    """Viscosity (Re = 20,000 as in SMARL)."""
    alpha: float = 0.1
    """Linear drag."""
    kf: int = 4
    """Forcing wavenumber."""
    beta: float = 0.0
    """beta-plane parameter."""
    dt: float = 2.5e-4
    """Time step of the DNS (5e-4 blew up at 256² in float32 after 28 time units: AB2 is
    weakly unstable for the under-damped high-k advection)."""
    les_dt: float = 5e-4
    """Time step of the LES runs that use this reference (SMARL's dt)."""
    spinup_time: float = 30.0
    """Time units discarded before averaging (drag time 1/alpha = 10)."""
    average_time: float = 20.0
    """Time units over which statistics are averaged."""
    sample_every: float = 0.5
    """Time units between samples of the averaging window."""
    n_init: int = 16
    """Filtered snapshots kept as LES initial conditions."""
    filter: str = "spectral"
    """``spectral`` (sharp cut-off) or ``gaussian``."""
    pdf_bins: int = 81
    """Bins of the vorticity PDF (edges span +-8 sigma of the filtered field)."""
    seed: int = 0
    """Seed of the random initial condition."""
    dtype: str = "float32"
    """Precision of the DNS (float32 is ~3x faster on CPU; statistics agree to ~1e-6)."""


def _filter(omega: torch.Tensor, spec: ReferenceSpec) -> torch.Tensor:
    from envs.turbulence.solver import gaussian_filter, spectral_filter

    fn = {"spectral": spectral_filter, "gaussian": gaussian_filter}.get(spec.filter)
    if fn is None:
        raise ValueError(f"filter must be 'spectral' or 'gaussian', got {spec.filter!r}")
    return fn(omega, spec.n_les)


def _les_view(omega_les: torch.Tensor, spec: ReferenceSpec):
    """A throw-away LES-grid solver holding the filtered field, for its diagnostics."""
    from envs.turbulence.solver import Turbulence2D

    les = Turbulence2D(spec.n_les, nu=spec.nu, alpha=spec.alpha, dt=spec.dt, kf=spec.kf,
                       beta=spec.beta, device=omega_les.device)
    les.omega = omega_les.to(torch.float64)
    return les


def generate_reference(spec: ReferenceSpec = ReferenceSpec(), *, device: str = "cpu",
                       progress: Optional[Callable[[str], None]] = None) -> Dict[str, np.ndarray]:
    """Run the DNS and return the arrays ``save_reference`` writes."""
    from envs.turbulence.solver import Turbulence2D

    say = progress or (lambda msg: None)
    torch.manual_seed(spec.seed)
    if spec.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {spec.dtype!r}")
    dns = Turbulence2D(spec.n_dns, nu=spec.nu, alpha=spec.alpha, dt=spec.dt, kf=spec.kf,
                       beta=spec.beta, device=device, seed=spec.seed,
                       dtype=getattr(torch, spec.dtype))
    start = time.time()
    chunk = max(1, int(round(spec.sample_every / spec.dt)))
    n_spin = int(round(spec.spinup_time / spec.dt))
    for done in range(0, n_spin, chunk):
        dns.step(min(chunk, n_spin - done))
        if not bool(dns.is_finite().all()):
            raise FloatingPointError(f"DNS diverged at t={dns.time:.2f}; lower dt")
        say(f"spin-up t={dns.time:7.2f}/{spec.spinup_time}  E={float(dns.energy()[0]):.4f}"
            f"  ({time.time() - start:.0f} s)")
    samples = _average_window(dns, spec, chunk, say, start)
    samples["provenance"] = np.array(json.dumps(_provenance(spec, device, time.time() - start)))
    return samples


def _average_window(dns, spec: ReferenceSpec, chunk: int, say, start: float):
    z_les, e_les, z_dns, e_dns, fields = [], [], [], [], []
    n_samples = max(1, int(round(spec.average_time / spec.sample_every)))
    for i in range(n_samples):
        dns.step(chunk)
        les = _les_view(_filter(dns.omega, spec), spec)
        z_les.append(les.enstrophy_spectrum()[0].cpu().numpy())
        e_les.append(les.energy_spectrum()[0].cpu().numpy())
        z_dns.append(dns.enstrophy_spectrum()[0].cpu().numpy())
        e_dns.append(dns.energy_spectrum()[0].cpu().numpy())
        fields.append(les.omega[0].cpu().numpy())
        say(f"averaging {i + 1}/{n_samples} t={dns.time:7.2f}  ({time.time() - start:.0f} s)")
    fields_np = np.stack(fields)
    sigma = float(fields_np.std())
    edges = np.linspace(-8 * sigma, 8 * sigma, spec.pdf_bins + 1)
    from envs.turbulence.metrics import pdf_histogram, tail_probability

    keep = np.linspace(0, n_samples - 1, min(spec.n_init, n_samples)).round().astype(int)
    return {
        "enstrophy_spectrum": np.mean(z_les, axis=0), "energy_spectrum": np.mean(e_les, axis=0),
        "enstrophy_spectrum_dns": np.mean(z_dns, axis=0),
        "energy_spectrum_dns": np.mean(e_dns, axis=0),
        "pdf_edges": edges, "pdf": pdf_histogram(fields_np, edges),
        "omega_std": np.array(sigma), "tail_3sigma": np.array(tail_probability(fields_np, sigma)),
        "initial_conditions": fields_np[keep].astype(np.float32),
    }


def _provenance(spec: ReferenceSpec, device: str, seconds: float) -> dict:
    import subprocess

    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {"spec": asdict(spec), "device": device, "seconds": round(seconds, 1),
            "torch": torch.__version__, "code_version": rev or "unknown",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def save_reference(path: Path, data: Dict[str, np.ndarray]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **data)
    return path


@dataclass(frozen=True)
class Reference:
    enstrophy_spectrum: np.ndarray
    energy_spectrum: np.ndarray
    enstrophy_spectrum_dns: np.ndarray
    energy_spectrum_dns: np.ndarray
    pdf_edges: np.ndarray
    pdf: np.ndarray
    omega_std: float
    tail_3sigma: float
    initial_conditions: np.ndarray
    provenance: dict

    @property
    def n_les(self) -> int:
        return int(self.initial_conditions.shape[-1])


def les_dt(spec: dict) -> float:
    """LES time step recorded with a reference (files without one: the DNS time step)."""
    return float(spec.get("les_dt", spec["dt"]))


def load_reference(path: Optional[Path] = None) -> Reference:
    """Load a reference file (default: the committed k_f = 4 reference)."""
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    if not path.is_file():
        raise FileNotFoundError(f"turbulence reference {path} not found; create it with "
                                "`regrl turbulence reference --out PATH`")
    try:
        with np.load(path, allow_pickle=False) as z:
            fields = {k: z[k] for k in z.files}
        return Reference(
            **{k: fields[k] for k in ("enstrophy_spectrum", "energy_spectrum",
                                      "enstrophy_spectrum_dns", "energy_spectrum_dns",
                                      "pdf_edges", "pdf", "initial_conditions")},
            omega_std=float(fields["omega_std"]), tail_3sigma=float(fields["tail_3sigma"]),
            provenance=json.loads(str(fields["provenance"])))
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a valid turbulence reference file: {exc}") from None
