"""Training data for supervised closures of 2D turbulence, next to SMARL's RL closure
(Mojgani et al. 2023, arXiv 2312.00907; supervised, symmetry-aware closures as in Maddu,
Weady, Shelley 2023, arXiv 2308.06675).

A *snapshot* is one resolved (DNS) vorticity field at one instant. The DNS runs a few
trajectories in one batch, each started from one of the reference's filtered initial
conditions (band-limited interpolation to the DNS grid), spun up for ``spinup_time`` so the
small scales fill in, then sampled every ``sample_every`` time units. The first
``train_trajectories`` trajectories give the training snapshots, the others the held-out
ones. Each snapshot becomes, on the LES grid:

- ``omega`` the filtered vorticity, ``pi`` the exact sub-grid term Π, ``m`` the unit
  Smagorinsky term (``regrl.envs.turbulence.sgs``);
- ``obs`` [agents, 6 + n/2 − 1] the RL agents' observations (``env.observe_agents``:
  the same features as the SMARL policy) and ``cs2`` [agents] the least-squares local
  coefficient of each agent's region, clipped to the action bound (``cs2_raw`` unclipped).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch

from regrl.envs.turbulence.env import ACTION_BOUND, agent_points, observe_agents
from regrl.envs.turbulence.reference import Reference
from regrl.envs.turbulence.sgs import FILTERS, les_filter, sgs_pairs, spectral_upsample
from regrl.envs.turbulence.solver import Turbulence2D
from regrl.files import atomic_output

Say = Callable[[str], None]


@dataclass(frozen=True)
class DatasetSpec:
    n_dns: int = 256
    """Resolution of the resolved simulation."""
    n_les: int = 64
    """LES grid the fields are filtered to (the reference's grid for the RL features)."""
    snapshots: int = 100
    """Training snapshots in total (split evenly over the training trajectories)."""
    heldout_snapshots: int = 16
    """Held-out snapshots (from the held-out trajectories), for a-priori scores."""
    train_trajectories: int = 3
    """DNS trajectories that give training snapshots."""
    heldout_trajectories: int = 1
    """DNS trajectories that give held-out snapshots (never used for training)."""
    spinup_time: float = 3.0
    """Time units run from each initial condition before sampling."""
    sample_every: float = 0.5
    """Time units between snapshots of one trajectory."""
    dt: float = 2.5e-4
    """DNS time step."""
    filter: str = "spectral"
    """``spectral`` (sharp cut-off) or ``gaussian`` (width 2Δ_LES, then the cut-off)."""
    agents_per_side: int = 4
    """Agents per side of the lattice (the RL env's ``agents_per_side``)."""
    dtype: str = "float32"
    """Precision of the DNS (the LES-side computations run in float64)."""

    def __post_init__(self) -> None:
        checks = [
            (self.snapshots >= 1, "snapshots must be >= 1"),
            (self.heldout_snapshots >= 0, "heldout_snapshots must be >= 0"),
            (self.train_trajectories >= 1, "train_trajectories must be >= 1"),
            (self.heldout_trajectories >= 0, "heldout_trajectories must be >= 0"),
            (
                self.heldout_snapshots == 0 or self.heldout_trajectories >= 1,
                "heldout_snapshots > 0 needs heldout_trajectories >= 1",
            ),
            (
                self.spinup_time >= 0 and self.sample_every > 0 and self.dt > 0,
                "spinup_time must be >= 0, sample_every and dt > 0",
            ),
            (self.filter in FILTERS, f"filter must be one of {FILTERS}"),
            (self.dtype in ("float32", "float64"), "dtype must be float32 or float64"),
            (self.n_les % 2 == 0 and self.n_dns >= self.n_les, "n_les must be even and <= n_dns"),
            (self.n_les % self.agents_per_side == 0, "agents_per_side must divide n_les"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"{msg} (got {self})")

    @property
    def per_trajectory(self) -> int:
        train = math.ceil(self.snapshots / self.train_trajectories)
        held = math.ceil(self.heldout_snapshots / max(self.heldout_trajectories, 1))
        return max(train, held)


def _initial_conditions(ref: Reference, spec: DatasetSpec) -> torch.Tensor:
    """One reference initial condition per trajectory (spread over the file), on the DNS grid."""
    ics = ref.initial_conditions
    count = spec.train_trajectories + spec.heldout_trajectories
    idx = np.linspace(0, len(ics) - 1, count).round().astype(int) if count > 1 else np.zeros(1, int)
    fields = torch.as_tensor(ics[idx], dtype=torch.float64)
    if fields.shape[-1] > spec.n_dns:
        raise ValueError(f"reference grid {fields.shape[-1]} is finer than n_dns={spec.n_dns}")
    return spectral_upsample(fields, spec.n_dns)


def run_dns(ref: Reference, spec: DatasetSpec, say: Say = print) -> Dict[str, np.ndarray]:
    """Run the batched DNS; returns ``omega`` [T, S, n_dns, n_dns] float32 (T trajectories,
    S snapshots each) and ``time`` [S]."""
    p = ref.provenance["spec"]
    ics = _initial_conditions(ref, spec)
    dns = Turbulence2D(
        spec.n_dns,
        nu=p["nu"],
        alpha=p["alpha"],
        dt=spec.dt,
        kf=p["kf"],
        beta=p["beta"],
        batch=len(ics),
        dtype=getattr(torch, spec.dtype),
    )
    dns.omega = ics.to(dns.dtype)
    chunk = max(1, int(round(spec.sample_every / spec.dt)))
    n_spin = int(round(spec.spinup_time / spec.dt))
    start = time.time()
    _advance(dns, n_spin, chunk, say, start, "spin-up")
    snaps, times = [], []
    for i in range(spec.per_trajectory):
        _advance(dns, chunk, chunk, lambda m: None, start, "")
        snaps.append(dns.omega.cpu().numpy().astype(np.float32))
        times.append(dns.time)
        say(
            f"dns snapshot {i + 1}/{spec.per_trajectory} t={dns.time:.2f} "
            f"({len(ics)} trajectories, {time.time() - start:.0f} s)"
        )
    return {"omega": np.stack(snaps, 1), "time": np.asarray(times)}


def _advance(dns: Turbulence2D, steps: int, chunk: int, say: Say, start: float, what: str):
    for done in range(0, steps, chunk):
        dns.step(min(chunk, steps - done))
        if not bool(dns.is_finite().all()):
            raise FloatingPointError(f"DNS diverged at t={dns.time:.2f}; lower dt")
        say(f"{what} t={dns.time:.2f} ({time.time() - start:.0f} s)")


def _les(ref: Reference, spec: DatasetSpec, batch: int) -> Turbulence2D:
    p = ref.provenance["spec"]
    return Turbulence2D(
        spec.n_les,
        nu=p["nu"],
        alpha=p["alpha"],
        dt=p.get("les_dt", p["dt"]),
        kf=p["kf"],
        beta=p["beta"],
        batch=batch,
    )


def snapshot_pairs(
    omega_dns: np.ndarray, ref: Reference, spec: DatasetSpec, log_ref: np.ndarray, chunk: int = 8
) -> Dict[str, np.ndarray]:
    """Training pairs (module docstring) of DNS snapshots [S, n_dns, n_dns]."""
    ix, iy = agent_points(spec.n_les, spec.agents_per_side)
    out: Dict[str, list] = {k: [] for k in ("omega", "pi", "m", "obs", "cs2_raw")}
    for s in range(0, len(omega_dns), chunk):
        w = torch.as_tensor(omega_dns[s : s + chunk], dtype=torch.float64)
        dns = Turbulence2D(spec.n_dns, nu=0.0, alpha=0.0, dt=spec.dt, batch=len(w), forcing=False)
        dns.omega = w
        les = _les(ref, spec, len(w))
        les.omega = les_filter(w, spec.n_les, spec.filter)
        pairs = sgs_pairs(dns, les, spec.agents_per_side, spec.filter)
        out["omega"].append(les.omega.numpy())
        out["pi"].append(pairs["pi"].numpy())
        out["m"].append(pairs["m"].numpy())
        out["obs"].append(observe_agents(les, ix, iy, log_ref))
        out["cs2_raw"].append(pairs["cs2"].reshape(len(w), -1).numpy())
    arrays = {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
    arrays["cs2"] = np.clip(arrays["cs2_raw"], -ACTION_BOUND, ACTION_BOUND)
    return arrays


def reference_log_spectrum(ref: Reference, spec: DatasetSpec, omega_dns: np.ndarray) -> np.ndarray:
    """log10 Ẑ_ref(k ≥ 1) of the RL observations: the reference's when it is on the LES grid
    (the SMARL env's features exactly), else the mean filtered spectrum of these snapshots."""
    if ref.n_les == spec.n_les:
        return np.log10(ref.enstrophy_spectrum[1:] + 1e-30)
    les = _les(ref, spec, len(omega_dns))
    les.omega = les_filter(torch.as_tensor(omega_dns, dtype=torch.float64), spec.n_les, spec.filter)
    return np.log10(les.enstrophy_spectrum().mean(0).numpy()[1:] + 1e-30)


def build_dataset(
    ref: Reference, spec: DatasetSpec, say: Say = print, dns: Optional[Dict[str, np.ndarray]] = None
) -> Dict[str, np.ndarray]:
    """DNS (or the given ``dns`` output of ``run_dns``) → the arrays ``save_dataset`` writes.
    Training rows come first (``split`` 0), held-out rows after them (``split`` 1)."""
    dns = dns if dns is not None else run_dns(ref, spec, say)
    omega, times = dns["omega"], dns["time"]
    n_tr = spec.train_trajectories
    train = _take(omega[:n_tr], spec.snapshots)
    held = _take(omega[n_tr:], spec.heldout_snapshots)
    log_ref = reference_log_spectrum(ref, spec, train["omega"])
    parts = [
        snapshot_pairs(part["omega"], ref, spec, log_ref)
        for part in (train, held)
        if len(part["omega"])
    ]
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    arrays["split"] = np.concatenate(
        [np.zeros(len(train["omega"]), np.int64), np.ones(len(held["omega"]), np.int64)]
    )
    arrays["trajectory"] = np.concatenate([train["trajectory"], held["trajectory"] + n_tr])
    arrays["time"] = times[np.concatenate([train["index"], held["index"]])]
    arrays["log_ref"] = log_ref.astype(np.float32)
    arrays["spec"] = np.array(
        json.dumps({"dataset": asdict(spec), "physics": ref.provenance["spec"]})
    )
    say(
        f"dataset: {int((arrays['split'] == 0).sum())} training and "
        f"{int((arrays['split'] == 1).sum())} held-out snapshots on a {spec.n_les}² grid"
    )
    return arrays


def _take(omega: np.ndarray, count: int) -> Dict[str, np.ndarray]:
    """The first ``count`` snapshots in time order, interleaving trajectories ([T, S, n, n])."""
    t, s = omega.shape[:2]
    order = [(j, i) for i in range(s) for j in range(t)][:count]
    traj = np.array([j for j, _ in order], np.int64)
    index = np.array([i for _, i in order], np.int64)
    fields = omega[traj, index] if order else omega.reshape(-1, *omega.shape[2:])[:0]
    return {"omega": fields, "trajectory": traj, "index": index}


def save_dataset(path: Path, arrays: Dict[str, np.ndarray]) -> Path:
    """Write the training pairs atomically to exactly ``path``: an interrupted run leaves the
    old file (or none), never a truncated one that a later ``load_dataset`` would trip on."""
    path = Path(path)
    with atomic_output(path) as fh:
        np.savez_compressed(fh, **arrays)
    return path


def load_dataset(path: Path) -> Dict[str, np.ndarray]:
    """Read a dataset written by ``save_dataset``; errors name the file and the missing key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"closure dataset {path} not found; create it with "
            "`regrl turbulence dataset --out PATH`"
        )
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    need = ("omega", "pi", "m", "obs", "cs2", "split", "spec")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise ValueError(f"{path} is not a closure dataset: missing {missing}")
    return arrays
