"""Reference statistics of a resolved simulation, filtered to the LES grid (SMARL,
Mojgani et al. 2023, arXiv 2312.00907: the reward needs only the enstrophy spectrum of a few
high-fidelity samples; evaluation compares spectra and vorticity-PDF tails).

``generate_reference`` spins a DNS up to statistical steady state, then averages the spectra
of the DNS filtered to the LES grid, the vorticity PDF of the filtered field, and keeps a few
filtered snapshots as LES initial conditions. ``regrl turbulence reference`` calls it.
"""

from __future__ import annotations

import json
import math
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np
import torch

from regrl.envs.turbulence.solver import Turbulence2D
from regrl.files import atomic_output, package_commit

DEFAULT_REFERENCE = Path(__file__).resolve().parent / "data" / "reference_kf4.npz"

# Bounds that refuse a run before it starts instead of after minutes of simulation.
MAX_GRID = 4096
"""Largest DNS grid (one 4096² float64 field is 128 MiB and the solver holds dozens)."""
MAX_STEPS = 10**8
"""Most DNS steps (spin-up + averaging): the default reference takes 2·10⁵."""
MAX_SAMPLES = 10_000
"""Most snapshots of the averaging window (each filtered field is kept in memory)."""
MAX_PDF_BINS = 10_000
VELOCITY_SCALE = 10.0
"""Velocity scale of the k_f = 4 forced flow for the CFL-style bound on ``dt`` (max |u| of
the packaged reference's filtered fields is 6.4). A ``dt`` beyond dx / VELOCITY_SCALE (CFL
number 1) diverges for certain with the explicit AB2 advection; smaller ones may still
diverge (5e-4 did at 256², CFL ~ 0.2), which the spin-up loop detects."""
ARRAY_KEYS = (
    "enstrophy_spectrum",
    "energy_spectrum",
    "enstrophy_spectrum_dns",
    "energy_spectrum_dns",
    "pdf_edges",
    "pdf",
    "omega_std",
    "tail_3sigma",
    "initial_conditions",
)


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


def _number(
    name: str, value: Any, low: float, *, strict: bool = True, integer: bool = False
) -> List[str]:
    """[] when ``value`` is a finite number (an integer if ``integer``) > ``low`` (>= when not
    ``strict``), else the one problem with it."""
    kinds = (int,) if integer else (int, float)
    try:
        ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        ok = False
    if ok and (value > low if strict else value >= low):
        return []
    what = "an integer" if integer else "a finite number"
    return [f"{name} must be {what} {'>' if strict else '>='} {low:g}, got {value!r:.60}"]


def _grid_problems(spec: ReferenceSpec) -> List[str]:
    out = _number("n_dns", spec.n_dns, 4, strict=False, integer=True)
    out += _number("n_les", spec.n_les, 4, strict=False, integer=True)
    out += _number("kf", spec.kf, 1, strict=False, integer=True)
    if out:
        return out
    if spec.n_dns % 2 or spec.n_les % 2 or spec.n_dns > MAX_GRID:
        out.append(
            f"n_dns and n_les must be even and n_dns <= {MAX_GRID}, got {spec.n_dns}, {spec.n_les}"
        )
    if spec.n_les > spec.n_dns:
        out.append(f"n_les must be <= n_dns, got {spec.n_les} > {spec.n_dns}")
    if spec.kf >= spec.n_les / 3:  # forcing must survive the LES grid's 2/3 de-aliasing
        out.append(f"kf must be < n_les/3 = {spec.n_les / 3:g}, got {spec.kf}")
    return out


def _time_problems(spec: ReferenceSpec) -> List[str]:
    out = _number("dt", spec.dt, 0) + _number("les_dt", spec.les_dt, 0)
    out += _number("spinup_time", spec.spinup_time, 0, strict=False)
    out += _number("average_time", spec.average_time, 0)
    out += _number("sample_every", spec.sample_every, 0)
    if out:
        return out
    for name, dt, n in (("dt", spec.dt, spec.n_dns), ("les_dt", spec.les_dt, spec.n_les)):
        bound = cfl_dt_bound(n)
        if dt > bound:
            out.append(
                f"{name} must be <= {bound:.3g} (CFL bound dx/|u| on the {n}² grid at "
                f"|u| = {VELOCITY_SCALE:g}), got {dt:g}"
            )
    if spec.dt > spec.sample_every:
        out.append(f"dt must be <= sample_every, got {spec.dt:g} > {spec.sample_every:g}")
    samples = spec.average_time / spec.sample_every
    steps = (spec.spinup_time + spec.average_time) / spec.dt
    if samples > MAX_SAMPLES or steps > MAX_STEPS:
        out.append(
            f"average_time/sample_every ({samples:.3g}) must be <= {MAX_SAMPLES} and "
            f"(spinup_time + average_time)/dt ({steps:.3g}) <= {MAX_STEPS:.0e}"
        )
    return out


def check_spec(spec: ReferenceSpec) -> None:
    """Raise ValueError naming every setting of ``spec`` that would make
    :func:`generate_reference` fail, produce NaNs or run without end, before it starts."""
    out = _grid_problems(spec)
    out += [] if out else _time_problems(spec)  # the CFL bound needs a valid grid
    out += _number("nu", spec.nu, 0) + _number("alpha", spec.alpha, 0, strict=False)
    out += _number("beta", spec.beta, -math.inf)
    out += _number("n_init", spec.n_init, 1, strict=False, integer=True)
    out += _number("seed", spec.seed, 0, strict=False, integer=True)
    bins = _number("pdf_bins", spec.pdf_bins, 2, strict=False, integer=True)
    out += bins or (
        []
        if spec.pdf_bins <= MAX_PDF_BINS
        else [f"pdf_bins must be <= {MAX_PDF_BINS}, got {spec.pdf_bins}"]
    )
    if spec.filter not in ("spectral", "gaussian"):
        out.append(f"filter must be 'spectral' or 'gaussian', got {spec.filter!r:.60}")
    if spec.dtype not in ("float32", "float64"):
        out.append(f"dtype must be 'float32' or 'float64', got {spec.dtype!r:.60}")
    if out:
        raise ValueError("; ".join(out))


def _filter(omega: torch.Tensor, spec: ReferenceSpec) -> torch.Tensor:
    from regrl.envs.turbulence.solver import gaussian_filter, spectral_filter

    fn = {"spectral": spectral_filter, "gaussian": gaussian_filter}.get(spec.filter)
    if fn is None:
        raise ValueError(f"filter must be 'spectral' or 'gaussian', got {spec.filter!r}")
    return fn(omega, spec.n_les)


def _les_view(omega_les: torch.Tensor, spec: ReferenceSpec):
    """A throw-away LES-grid solver holding the filtered field, for its diagnostics."""
    from regrl.envs.turbulence.solver import Turbulence2D

    les = Turbulence2D(
        spec.n_les,
        nu=spec.nu,
        alpha=spec.alpha,
        dt=spec.dt,
        kf=spec.kf,
        beta=spec.beta,
        device=omega_les.device,
    )
    les.omega = omega_les.to(torch.float64)
    return les


def generate_reference(
    spec: ReferenceSpec = ReferenceSpec(),
    *,
    device: str = "cpu",
    progress: Optional[Callable[[str], None]] = None,
) -> Dict[str, np.ndarray]:
    """Run the DNS and return the arrays ``save_reference`` writes."""
    from regrl.envs.turbulence.solver import Turbulence2D

    check_spec(spec)
    say = progress or (lambda msg: None)
    torch.manual_seed(spec.seed)
    dns = Turbulence2D(
        spec.n_dns,
        nu=spec.nu,
        alpha=spec.alpha,
        dt=spec.dt,
        kf=spec.kf,
        beta=spec.beta,
        device=device,
        seed=spec.seed,
        dtype=getattr(torch, spec.dtype),
    )
    start = time.time()
    chunk = max(1, int(round(spec.sample_every / spec.dt)))
    n_spin = int(round(spec.spinup_time / spec.dt))
    for done in range(0, n_spin, chunk):
        dns.step(min(chunk, n_spin - done))
        if not bool(dns.is_finite().all()):
            raise FloatingPointError(f"DNS diverged at t={dns.time:.2f}; lower dt")
        say(
            f"spin-up t={dns.time:7.2f}/{spec.spinup_time}  E={float(dns.energy()[0]):.4f}"
            f"  ({time.time() - start:.0f} s)"
        )
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
    keep = np.linspace(0, n_samples - 1, min(spec.n_init, n_samples)).round().astype(int)
    return dict(
        pooled_statistics(z_les, e_les, z_dns, e_dns, fields_np, spec.pdf_bins),
        initial_conditions=fields_np[keep].astype(np.float32),
    )


def pooled_statistics(z_les, e_les, z_dns, e_dns, fields, pdf_bins: int) -> Dict[str, np.ndarray]:
    """A reference's statistics, all but its initial conditions, from filtered samples: the
    spectra (LES grid ``z_les``, ``e_les``; DNS grid ``z_dns``, ``e_dns``; [..., k]) averaged
    over every leading axis (samples, and trajectories when there are several), and of the
    filtered vorticity ``fields`` [..., n, n] its σ, its PDF on ``pdf_bins`` bins over ±8σ and
    P(|ω| > 3σ)."""
    from regrl.envs.turbulence.metrics import pdf_histogram, tail_probability

    def mean(a):
        a = np.asarray(a)
        return a.mean(axis=tuple(range(a.ndim - 1)))

    fields = np.asarray(fields)
    sigma = float(fields.std())
    edges = np.linspace(-8 * sigma, 8 * sigma, pdf_bins + 1)
    return {
        "enstrophy_spectrum": mean(z_les),
        "energy_spectrum": mean(e_les),
        "enstrophy_spectrum_dns": mean(z_dns),
        "energy_spectrum_dns": mean(e_dns),
        "pdf_edges": edges,
        "pdf": pdf_histogram(fields, edges),
        "omega_std": np.array(sigma),
        "tail_3sigma": np.array(tail_probability(fields, sigma)),
    }


def _provenance(spec: ReferenceSpec, device: str, seconds: float) -> dict:
    return {
        "spec": asdict(spec),
        "device": device,
        "seconds": round(seconds, 1),
        "torch": torch.__version__,
        "code_version": package_commit(short=True) or "unknown",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _array_problems(data: Mapping[str, Any]) -> List[str]:
    arrays = {k: np.asarray(data[k]) for k in ARRAY_KEYS}
    out = []
    for key, a in arrays.items():
        if a.dtype.kind not in "fiu":
            out.append(f"{key} is not numeric ({a.dtype})")
        elif not np.isfinite(a).all():
            out.append(f"{key} has {int(np.size(a) - np.isfinite(a).sum())} non-finite values")
    if out:
        return out
    ic = arrays["initial_conditions"]
    if ic.ndim != 3 or ic.shape[0] < 1 or ic.shape[1] != ic.shape[2] or ic.shape[1] < 4:
        return [f"initial_conditions must have shape [k >= 1, n, n], got {ic.shape}"]
    half, edges = ic.shape[-1] // 2, arrays["pdf_edges"]
    shapes = {
        "enstrophy_spectrum": (half,),
        "energy_spectrum": (half,),
        "omega_std": (),
        "tail_3sigma": (),
        "pdf": (max(edges.size - 1, 0),),
    }
    out += [
        f"{k} must have shape {v}, got {arrays[k].shape}"
        for k, v in shapes.items()
        if arrays[k].shape != v
    ]
    out += [
        f"{k} must be 1-D with >= {half} bins, got {arrays[k].shape}"
        for k in ("enstrophy_spectrum_dns", "energy_spectrum_dns")
        if arrays[k].ndim != 1 or arrays[k].size < half
    ]
    return out


def _value_problems(data: Mapping[str, Any]) -> List[str]:
    """Signs and ranges: spectra and PDF >= 0 with a non-zero enstrophy, increasing edges."""
    a = {k: np.asarray(data[k], dtype=np.float64) for k in ARRAY_KEYS}
    out = [
        f"{k} has negative values"
        for k in (
            "enstrophy_spectrum",
            "energy_spectrum",
            "enstrophy_spectrum_dns",
            "energy_spectrum_dns",
            "pdf",
        )
        if (a[k] < 0).any()
    ]
    if not a["enstrophy_spectrum"].sum() > 0:
        out.append("enstrophy_spectrum is all zero (no flow)")
    edges = a["pdf_edges"]
    if edges.ndim != 1 or edges.size < 3 or not (np.diff(edges) > 0).all():
        out.append("pdf_edges must be >= 3 increasing values")
    if not a["omega_std"] > 0 or not 0 <= a["tail_3sigma"] <= 1:
        out.append(
            f"need omega_std > 0 and tail_3sigma in [0, 1], got {float(a['omega_std']):g}, "
            f"{float(a['tail_3sigma']):g}"
        )
    return out


def _provenance_problems(provenance: Any) -> List[str]:
    """The physics an env rebuilds its LES from (``provenance['spec']``) must be usable."""
    try:
        spec = json.loads(str(provenance)) if not isinstance(provenance, dict) else provenance
        p = spec["spec"]
        return (
            _number("nu", p["nu"], 0)
            + _number("alpha", p["alpha"], 0, strict=False)
            + _number("beta", p["beta"], -math.inf)
            + _number("dt", les_dt(p), 0)
            + _number("kf", p["kf"], 1, strict=False, integer=True)
        )
    except (ValueError, TypeError, KeyError) as exc:
        return [
            f"provenance is not a JSON object with the run's spec ({type(exc).__name__}: "
            f"{str(exc)[:200]})"
        ]


def check_reference(data: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``data`` is a usable reference: every array present, finite and
    of consistent shape, spectra and PDF non-negative, and a provenance with the physics."""
    missing = [k for k in ARRAY_KEYS + ("provenance",) if k not in data]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    out = _array_problems(data)
    out = out or _value_problems(data)
    out += _provenance_problems(data["provenance"])
    if out:
        raise ValueError("; ".join(out))


def save_reference(path: Path, data: Dict[str, np.ndarray]) -> Path:
    """Check ``data`` (:func:`check_reference`), then write it atomically: a temporary file in
    the same directory replaces ``path`` only once complete, so a failed or interrupted run
    never leaves a broken file where a good one was."""
    check_reference(data)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a .npz file path")
    with atomic_output(path) as fh:
        np.savez_compressed(fh, **data)
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


def cfl_dt_bound(n: int) -> float:
    """The largest time step the project accepts on an n² grid of [0, 2π]²: dx / |u| at
    |u| = ``VELOCITY_SCALE`` (CFL number 1)."""
    return 2 * math.pi / n / VELOCITY_SCALE


def les_dt(spec: dict) -> float:
    """LES time step recorded with a reference (files without one: the DNS time step)."""
    return float(spec.get("les_dt", spec["dt"]))


# SMARL's decision interval: 10 solver steps of the paper's dt 5e-4 = 5e-3 time units (1000
# decisions per 5-time-unit episode, Mojgani et al. 2023 §3)
STEPS_PER_DECISION = 10


def steps_per_decision(dt: float, ref_dt: float) -> int:
    """Solver steps per decision for an LES of time step ``dt`` that keeps the decision interval
    in time (``STEPS_PER_DECISION`` steps of the reference's LES dt ``ref_dt``); a ValueError
    when ``dt`` does not divide the interval into a whole number of steps."""
    interval = STEPS_PER_DECISION * ref_dt
    steps = interval / dt if math.isfinite(dt) and dt > 0 else 0.0
    if not (abs(steps - round(steps)) < 1e-9 and round(steps) >= 1):
        raise ValueError(
            f"dt {dt!r} must divide the decision interval {interval:g} "
            f"({STEPS_PER_DECISION} steps of the reference's LES dt {ref_dt:g})"
        )
    return int(round(steps))


def les_physics(spec: dict) -> Dict[str, float]:
    """Solver arguments (nu, alpha, dt, kf, beta) of the LES a reference's spec describes."""
    return {
        "nu": spec["nu"],
        "alpha": spec["alpha"],
        "dt": les_dt(spec),
        "kf": spec["kf"],
        "beta": spec["beta"],
    }


def les_from_reference(
    ref: "Reference",
    batch: int,
    dtype=torch.float64,
    dt: Optional[float] = None,
    initial: Optional[np.ndarray] = None,
) -> Turbulence2D:
    """``batch`` LES started from the reference's first ``batch`` initial conditions (or from
    the states ``initial`` [batch, n, n]), with the reference's LES time step or ``dt``
    (checked against the CFL-style bound of the grid)."""
    physics = les_physics(ref.provenance["spec"])
    if dt is not None:
        bound = cfl_dt_bound(ref.n_les)
        if not (math.isfinite(dt) and 0 < dt <= bound):
            raise ValueError(
                f"LES dt must be in (0, {bound:.3g}] (CFL bound dx/|u| on the {ref.n_les}² "
                f"grid at |u| = {VELOCITY_SCALE:g}), got {dt!r}"
            )
        physics["dt"] = float(dt)
    n, held = ref.n_les, len(ref.initial_conditions)
    if initial is None and batch > held:
        raise ValueError(
            f"the reference holds {held} initial conditions, not {batch}: give the states "
            "(initial=) for more simulations"
        )
    if initial is not None and tuple(np.shape(initial)) != (batch, n, n):
        raise ValueError(f"initial states must be [{batch}, {n}, {n}], got {np.shape(initial)}")
    sim = Turbulence2D(n, batch=batch, dtype=dtype, **physics)
    start = ref.initial_conditions[:batch] if initial is None else initial
    sim.omega = torch.as_tensor(start, dtype=sim.dtype)
    return sim


def load_reference(path: Optional[Path] = None) -> Reference:
    """Load a reference file (default: the committed k_f = 4 reference)."""
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    if not path.is_file():
        raise FileNotFoundError(
            f"turbulence reference {path} not found; create it with "
            "`regrl turbulence reference --out PATH`"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            fields = {k: z[k] for k in z.files}
        check_reference(fields)
        return Reference(
            **{
                k: fields[k]
                for k in (
                    "enstrophy_spectrum",
                    "energy_spectrum",
                    "enstrophy_spectrum_dns",
                    "energy_spectrum_dns",
                    "pdf_edges",
                    "pdf",
                    "initial_conditions",
                )
            },
            omega_std=float(fields["omega_std"]),
            tail_3sigma=float(fields["tail_3sigma"]),
            provenance=json.loads(str(fields["provenance"])),
        )
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{path} is not a valid turbulence reference file: {str(exc)[:300]}"
        ) from None
