"""SMARL multi-agent environment: agents on a grid choose local eddy-viscosity coefficients
of an LES of 2D turbulence (Mojgani et al. 2023, arXiv 2312.00907, docs/methods.md#smarl-environment).

Each agent observes the 6 local invariants of the velocity-gradient and Hessian tensors at its
point plus the global log enstrophy spectrum (as its deviation from the reference), and sets
the coefficients of a closure family (``closure``, ``envs/turbulence/families``: C_s² of
Smagorinsky, C_L³ of Leith, or two coefficients of the two-term and backscattering families)
through a normalised action a ∈ [−1, 1]^m mapped linearly onto ``coeff_range`` (default:
[0, 2·C₀] around the family's base coefficient C₀, e.g. 0.17², so the closure never
anti-diffuses; SMARL's own range is [−0.125, 0.125], docs/smarl.md says why we narrow it). The
agent values are interpolated periodically to the grid. One decision every
``steps_per_action`` solver steps (default: SMARL's interval of 5·10⁻³ time units, 10 steps of
the reference's LES dt, in as many steps of ``dt`` as that takes); all agents get the same
spectrum-matching reward.

``sims``: one env steps that many LES as one batch (the solver's batching makes S simulations
much cheaper than S separate ones), each with its own a×a agents (``sim{b}_agent_{i}``; the
names of a single-sim env stay ``agent_{i}``) and its own initial condition and reward; a sim
that blows up ends for its agents alone, and the episode's metrics, aggregated over the sims,
come with the step on which the last sim ends.

``paired``: the reward is the improvement over a copy of the LES stepped in lockstep from the
same state with the family's constant ``paired_baseline`` (roots, default the family's base):
(baseline's log-spectrum error − the agents'), so that what the agents did, not how far the
episode's flow happens to sit from the reference, sets the reward (the copy is a second batch
element of the same solver and is not observed: about a third more cost, not twice). A
diverging LES truncates every agent with a penalty of ``divergence_penalty`` for each decision
left in the episode (the worst bounded reward for the rest of the horizon), so that diverging
early never pays better than staying alive.

``spinup`` (time units, default 0): each episode starts from the initial condition advanced
that long with the base closure (the coefficient of a = 0, uniform) instead of from the filtered
DNS field itself, so that the agents act on a statistically steady LES, the regime that the
evaluation scores (it discards its first 2 time units). The spun-up state of each initial
condition is computed once and kept.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv

from regrl.envs.turbulence import families
from regrl.envs.turbulence.metrics import kurtosis, log_spectrum_error, weighted_spectrum_error
from regrl.envs.turbulence.reference import (
    Reference,
    les_dt,
    les_physics,
    load_reference,
    steps_per_decision,
)
from regrl.envs.turbulence.solver import Turbulence2D

ACTION_BOUND = 0.125  # [−0.5³, 0.5³], SMARL's bounds for C_s² and C_L³
N_INVARIANTS = 6
REWARDS = ("log", "z1")


def default_coeff_range(closure: str) -> Tuple[Tuple[float, float], ...]:
    """[(low, high)] per coefficient: a ∈ [−1, 1] ↦ C ∈ [0, 2·C₀], so a = 0 is the family's
    base closure and no action anti-diffuses (the backscatter family bounds its c_b to [0, 1])."""
    return families.get_family(closure).default_range()


def coeff_ranges(closure: str, coeff_range=None) -> Tuple[Tuple[float, float], ...]:
    """Validated ranges per coefficient of ``closure``: ``coeff_range`` is [low, high] (a
    one-coefficient family) or [[low, high], ...] (one pair per coefficient); None: the
    family's default."""
    family = families.get_family(closure)
    if coeff_range is None:
        return family.default_range()
    arr = np.asarray(coeff_range, dtype=np.float64)
    arr = arr.reshape(1, -1) if arr.ndim == 1 else arr
    if arr.shape != (family.size, 2) or not np.all(arr[:, 0] < arr[:, 1]):
        raise ValueError(
            f"coeff_range must be [low, high] with low < high for each of the "
            f"{family.size} coefficient(s) of {closure!r}, got {coeff_range}"
        )
    return tuple((float(lo), float(hi)) for lo, hi in arr)


def agent_points(n: int, agents_per_side: int):
    """Grid indices of the agents: a uniform a×a lattice (SMARL's ``pickcenter``)."""
    idx = np.arange(agents_per_side) * (n // agents_per_side)
    return np.meshgrid(idx, idx, indexing="ij")


def observe_agents_torch(
    sim: Turbulence2D,
    ix: np.ndarray,
    iy: np.ndarray,
    log_ref: torch.Tensor,
    spectrum: Optional[torch.Tensor] = None,
    count: Optional[int] = None,
) -> torch.Tensor:
    """[batch, agents, 6 + n/2 − 1] observations as a torch tensor of the sim's dtype,
    differentiable in the state (solver-in-the-loop training of a policy): the 6 local
    invariants at each agent point, divided by their domain RMS, and the global log10
    enstrophy spectrum (``spectrum`` [batch, n/2] if already computed) minus the reference's
    ``log_ref`` (k ≥ 1), clipped to [−10, 10]. ``count``: of the first ``count`` simulations
    only ([count, agents, …]; the paired env's lockstep copies have no agents to observe)."""
    inv = sim.local_invariants(count)  # [B, 6, n, n]
    scale = torch.linalg.vector_norm(inv, dim=(2, 3)) / sim.n + 1e-12  # domain RMS [B, 6]
    at_agents = inv[:, :, torch.as_tensor(ix).reshape(-1), torch.as_tensor(iy).reshape(-1)]
    local = (at_agents / scale[..., None]).transpose(1, 2)  # [B, agents, 6]
    spectrum = sim.enstrophy_spectrum() if spectrum is None else spectrum
    spectrum = spectrum[: inv.shape[0]]
    spec = torch.log10(spectrum[:, 1:] + 1e-30) - log_ref.to(spectrum.dtype)
    glob = spec[:, None, :].expand(spec.shape[0], local.shape[1], spec.shape[1])
    return torch.cat([local, glob], dim=2).clamp(-10.0, 10.0)


def observe_agents(
    sim: Turbulence2D,
    ix: np.ndarray,
    iy: np.ndarray,
    log_ref: np.ndarray,
    spectrum: Optional[np.ndarray] = None,
    count: Optional[int] = None,
) -> np.ndarray:
    """``observe_agents_torch`` as float32 numpy (``spectrum`` [batch, n/2] numpy if already
    computed; ``count`` as there): what the env and the evaluation's policies see. Not
    differentiable: only the grid work (the invariants, their domain norm and the values at
    the agent points) runs in torch; the few dozen numbers after it are scaled, logged and
    assembled in numpy, whose calls on arrays this small cost a fraction of torch's (a decision
    at batch 1 is call overhead, not arithmetic). The same operations in the sim's precision,
    so the same numbers as ``observe_agents_torch`` to round-off (tested)."""
    with torch.no_grad():
        inv = sim.local_invariants(count)  # [B, 6, n, n]
        points = np.ravel_multi_index((np.ravel(ix), np.ravel(iy)), (sim.n, sim.n))
        at_agents = inv.flatten(2)[:, :, torch.from_numpy(points)].cpu().numpy()  # [B, 6, A]
        norm = torch.linalg.vector_norm(inv, dim=(2, 3)).cpu().numpy()  # [B, 6]
        if spectrum is None:
            spectrum = sim.enstrophy_spectrum().cpu().numpy()
    dtype = at_agents.dtype
    scale = norm / sim.n + dtype.type(1e-12)  # domain RMS
    spectrum = np.asarray(spectrum, dtype=dtype)[: len(at_agents)]
    spec = np.log10(spectrum[:, 1:] + dtype.type(1e-30)) - np.asarray(log_ref, dtype=dtype)
    out = np.empty(at_agents.shape[:1] + at_agents.shape[2:] + (6 + spec.shape[1],), np.float32)
    with np.errstate(invalid="ignore"):  # a blown-up sim's NaN/inf: its caller reports it
        out[..., :6] = (at_agents / scale[..., None]).transpose(0, 2, 1)
    out[..., 6:] = spec[:, None, :]
    return np.clip(out, -10.0, 10.0, out=out)


def _bounds(coeff_range) -> Tuple[np.ndarray, np.ndarray]:
    """(low, high) [m] of a range pair or a list of pairs; broadcast over actions [..., m]
    (a one-coefficient family's actions may omit the last axis)."""
    arr = np.asarray(coeff_range, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def action_to_coefficient(action, coeff_range) -> np.ndarray:
    """Map normalised actions a ∈ [−1, 1] (clipped) linearly onto [low, high] of ``coeff_range``
    (one pair, or one per coefficient along the actions' last axis):
    C = low + (a + 1)(high − low)/2."""
    low, high = _bounds(coeff_range)
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    return low + 0.5 * (a + 1.0) * (high - low)


def coefficient_to_action(coeff, coeff_range) -> np.ndarray:
    """Inverse of :func:`action_to_coefficient`, clipped to the action bounds [−1, 1]."""
    low, high = _bounds(coeff_range)
    return np.clip(2.0 * (np.asarray(coeff, np.float64) - low) / (high - low) - 1.0, -1.0, 1.0)


def resolve_steps_per_action(steps_per_action: Optional[int], dt: Optional[float], spec) -> int:
    """``steps_per_action`` as given, or (None) the steps of time step ``dt`` (default the
    reference's LES dt) in SMARL's decision interval (``reference.steps_per_decision``)."""
    if steps_per_action is not None:
        return int(steps_per_action)
    try:
        return steps_per_decision(float(dt or les_dt(spec)), les_dt(spec))
    except ValueError as exc:
        raise ValueError(f"{exc}; or set steps_per_action") from None


def advance(sim: Turbulence2D, coeff: torch.Tensor, closure: str, n_steps: int) -> None:
    """Step the LES ``n_steps`` with closure family ``closure`` and the agents' coefficients
    [B, a, a] or [B, a, a, m], interpolated to the grid (``families.advance``)."""
    families.advance(sim, families.get_family(closure), coeff, n_steps)


class TurbulenceEnv(ParallelEnv):
    """PettingZoo ``ParallelEnv`` of SMARL closures; see the module docstring."""

    metadata = {"name": "smarl_turb2d_v0", "render_modes": []}

    def __init__(
        self,
        *,
        agents_per_side: int = 4,
        closure: str = "smagorinsky",
        steps_per_action: Optional[int] = None,
        episode_actions: int = 100,
        reward: str = "log",
        divergence_penalty: float = -10.0,
        divergence_factor: float = 20.0,
        reference: Optional[str] = None,
        dt: Optional[float] = None,
        dtype: str = "float64",
        torch_threads: Optional[int] = 1,
        coeff_range: Optional[Sequence[float]] = None,
        spinup: float = 0.0,
        paired: bool = False,
        paired_baseline: Optional[Sequence[float]] = None,
        sims: int = 1,
    ):
        family = families.get_family(closure)
        coeff_range = coeff_ranges(closure, coeff_range)
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        if paired and reward != "log":
            raise ValueError("paired rewards are differences of log-spectrum errors: reward='log'")
        baseline = family.coefficient(paired_baseline or family.classical)
        for name, value in (
            ("agents_per_side", agents_per_side),
            ("steps_per_action", 1 if steps_per_action is None else steps_per_action),
            ("episode_actions", episode_actions),
            ("sims", sims),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not (np.isfinite(spinup) and spinup >= 0):
            raise ValueError(f"spinup must be a finite number of time units >= 0, got {spinup}")
        if torch_threads:  # small FFTs run fastest single-threaded; 2 threads on a busy
            torch.set_num_threads(int(torch_threads))  # 2-core machine were up to 40x slower
        self.ref: Reference = load_reference(reference)
        p = self.ref.provenance["spec"]
        steps_per_action = resolve_steps_per_action(steps_per_action, dt, p)
        self.n = self.ref.n_les
        if self.n % agents_per_side:
            raise ValueError(f"agents_per_side={agents_per_side} must divide the grid {self.n}")
        self.a, self.closure, self.reward_kind = agents_per_side, closure, reward
        self.coeff_range = coeff_range
        self.steps_per_action, self.episode_actions = steps_per_action, episode_actions
        self.penalty, self.div_factor = float(divergence_penalty), float(divergence_factor)
        self.family, self.paired, self.baseline = family, bool(paired), baseline
        self.n_sims = int(sims)
        physics = {**les_physics(p), "dt": dt or les_dt(p), "dtype": getattr(torch, dtype)}
        self._physics = physics
        # elements 0..S-1: the agents' LES; S..2S-1: their lockstep constant-closure copies
        self.sim = Turbulence2D(self.n, batch=self.n_sims * (2 if paired else 1), **physics)
        names = [f"agent_{i}" for i in range(agents_per_side**2)]
        if self.n_sims > 1:
            names = [f"sim{b}_{name}" for b in range(self.n_sims) for name in names]
        self.possible_agents = names
        self._sim_agents = np.array(names).reshape(self.n_sims, -1)  # [S, a²]
        self.agents: list = []
        self._log_ref = np.log10(self.ref.enstrophy_spectrum[1:] + 1e-30)
        obs_dim = N_INVARIANTS + len(self._log_ref)
        self._obs_space = spaces.Box(-10.0, 10.0, (obs_dim,), np.float32)
        self._act_space = spaces.Box(-1.0, 1.0, (family.size,), np.float32)
        self._ix, self._iy = agent_points(self.n, agents_per_side)
        self._rng = np.random.default_rng()
        self.diverged_count = 0
        self.spinup_steps = int(round(float(spinup) / self.sim.dt))
        self._spun_up: Dict[int, torch.Tensor] = {}  # initial condition -> spun-up vorticity

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent):
        return self._obs_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent):
        return self._act_space

    def reset(self, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        ics = self.ref.initial_conditions
        starts = [int(self._rng.integers(len(ics))) for _ in range(self.n_sims)]
        if options and "initial_conditions" in options:  # chosen by the caller, one per sim
            starts = [int(i) for i in options["initial_conditions"]]
            if len(starts) != self.n_sims or not all(0 <= i < len(ics) for i in starts):
                raise ValueError(
                    f"options['initial_conditions'] must be {self.n_sims} indices in "
                    f"0..{len(ics) - 1}, got {options['initial_conditions']}"
                )
        omega = torch.stack([self._start_state(i) for i in starts])
        self.sim.omega = torch.cat([omega, omega]) if self.paired else omega
        self.agents = list(self.possible_agents)
        self._alive = np.ones(self.n_sims, bool)
        self._t, self._coeffs = 0, []
        self._errors = [[] for _ in range(self.n_sims)]
        self._baseline_errors = [[] for _ in range(self.n_sims)]
        self._diverged_sims = np.zeros(self.n_sims, bool)
        obs = self._observe(self._spectrum(), self._alive)
        infos = {}
        for b, start in enumerate(starts):
            infos.update({a: {"initial_condition": start} for a in self._sim_agents[b]})
        return obs, infos

    def step(self, actions: Dict[str, Any]):
        alive = self._alive.copy()
        coeff = self._coefficients(actions, alive)
        self._coeffs.append(coeff[alive])
        batch = [coeff]
        if self.paired:  # the lockstep copies: the baseline constant everywhere
            batch.append(np.broadcast_to(np.asarray(self.baseline), coeff.shape))
        coeffs = torch.as_tensor(np.concatenate(batch), dtype=self.sim.dtype)
        advance(self.sim, coeffs, self.closure, self.steps_per_action)
        self._t += 1
        diverged = alive & self._diverged_mask()
        self.diverged_count += int(diverged.sum())
        self._diverged_sims |= diverged
        spectrum = self._spectrum()
        obs = self._observe(spectrum, alive & ~diverged)
        rewards = {}
        for b in np.flatnonzero(alive):
            if diverged[b]:
                reward = self.penalty * (self.episode_actions - self._t + 1)
                obs.update(
                    {a: np.zeros(self._obs_space.shape, np.float32) for a in self._sim_agents[b]}
                )
            else:
                reward = self._reward(spectrum, b)
            rewards.update({a: reward for a in self._sim_agents[b]})
        ended = diverged | (alive & (self._t >= self.episode_actions))
        self._alive = alive & ~ended
        done = {a: bool(ended[b]) for b in np.flatnonzero(alive) for a in self._sim_agents[b]}
        stepped = list(done)
        info = {"metrics": self.episode_metrics()} if not self._alive.any() else {}
        self.agents = [a for b in np.flatnonzero(self._alive) for a in self._sim_agents[b]]
        return (
            obs,
            rewards,
            {a: False for a in stepped},
            done,
            {a: dict(info) for a in stepped},
        )

    def _coefficients(self, actions: Dict[str, Any], alive: np.ndarray) -> np.ndarray:
        """[S, a, a, m] coefficients: the alive sims' agents' actions mapped onto the ranges,
        the ended sims (not stepped by the agents any more) at the base action a = 0."""
        m = self.family.size
        act = np.zeros((self.n_sims, self.a**2, m))
        for b in np.flatnonzero(alive):
            act[b] = [
                np.asarray(actions[a], np.float64).reshape(-1)[:m] for a in self._sim_agents[b]
            ]
        return action_to_coefficient(act.reshape(self.n_sims, self.a, self.a, m), self.coeff_range)

    def _start_state(self, index: int) -> torch.Tensor:
        """Initial condition ``index``, advanced ``spinup`` with the base closure (cached; one
        LES of its own, so that a batched env spins each condition up once)."""
        ic = torch.as_tensor(self.ref.initial_conditions[index], dtype=self.sim.dtype)
        if not self.spinup_steps:
            return ic
        if index not in self._spun_up:
            sim = Turbulence2D(self.n, **self._physics)
            sim.omega = ic
            base = action_to_coefficient(
                np.zeros((self.a, self.a, self.family.size)), self.coeff_range
            )
            advance(
                sim, torch.as_tensor(base, dtype=sim.dtype)[None], self.closure, self.spinup_steps
            )
            if self._diverged_mask(sim)[0]:
                raise RuntimeError(
                    f"the LES of initial condition {index} diverged during the {self.spinup_steps}"
                    "-step spin-up with the base closure; lower env.kwargs.spinup"
                )
            self._spun_up[index] = sim.omega[0].clone()
        return self._spun_up[index]

    def _diverged_mask(self, sim: Optional[Turbulence2D] = None) -> np.ndarray:
        """[S] the agents' LES that are non-finite or far beyond the reference's tails."""
        sim = self.sim if sim is None else sim
        limit = self.div_factor * 8.0 * self.ref.omega_std  # far beyond the reference tails
        finite = sim.is_finite().cpu().numpy()[: self.n_sims]
        peak = sim.max_abs_omega().cpu().numpy()[: self.n_sims]
        return ~finite | ~(peak <= limit)

    def _spectrum(self) -> np.ndarray:
        return self.sim.enstrophy_spectrum().cpu().numpy()  # [batch, n/2]

    def _reward(self, spectrum: np.ndarray, b: int = 0) -> float:
        """Reward of sim ``b``. ``log``: −RMS log10 spectrum error (bounded variant, in
        [−10, 0]); paired: the baseline copy's error minus the agents' (in [−10, 10]; the
        unpaired value if the copy has blown up); ``z1``: SMARL's 1 / ‖k ⊙ (Ẑ_LES − Ẑ_ref)‖²
        (unbounded, capped at 1e6)."""
        spec, ref = spectrum[b], self.ref.enstrophy_spectrum
        error = log_spectrum_error(spec, ref)
        self._errors[b].append(error)
        if self.reward_kind == "z1":
            return float(min(1e6, 1.0 / max(weighted_spectrum_error(spec, ref), 1e-12)))
        if self.paired:
            base_error = log_spectrum_error(spectrum[self.n_sims + b], ref)
            if np.isfinite(base_error):
                self._baseline_errors[b].append(base_error)
                return float(np.clip(base_error - error, -10.0, 10.0))
        return float(max(-10.0, -error))

    def _observe(self, spectrum: np.ndarray, which: np.ndarray) -> Dict[str, np.ndarray]:
        """Observations of the agents of the sims ``which`` [S] (bool); the paired copies
        (elements S..2S−1) have no agents and are not observed."""
        obs = observe_agents(self.sim, self._ix, self._iy, self._log_ref, spectrum, self.n_sims)
        out = {}
        for b in np.flatnonzero(which):
            out.update({a: obs[b, i] for i, a in enumerate(self._sim_agents[b])})
        return out

    def episode_metrics(self) -> Dict[str, float]:
        """Diagnostics of the episode over its sims, reported in the last step's info
        (TensorBoard ``env/…``): ``diverged`` = number of sims that blew up, mean/std of each
        chosen coefficient (``coeff_…``, ``coeff1_…``), mean log-spectrum error (and the
        paired copies'), and the final vorticity kurtosis of the surviving sims."""
        m = self.family.size
        coeffs = np.concatenate(self._coeffs) if self._coeffs else np.zeros((1, self.a, self.a, m))
        out = {"diverged": float(self._diverged_sims.sum())}
        for i in range(m):  # coeff_mean, coeff_std; coeff1_mean, ... for further coefficients
            tag = "coeff" if i == 0 else f"coeff{i}"
            out[f"{tag}_mean"] = float(coeffs[..., i].mean())
            out[f"{tag}_std"] = float(coeffs[..., i].std())
        errors = [e for sim_errors in self._errors for e in sim_errors]
        if errors:
            out["spectrum_error"] = float(np.mean(errors))
        base = [e for sim_errors in self._baseline_errors for e in sim_errors]
        if base:
            out["baseline_spectrum_error"] = float(np.mean(base))
        fields = self.sim.omega[: self.n_sims][torch.as_tensor(~self._diverged_sims)]
        if len(fields):
            out["vorticity_kurtosis"] = float(np.mean([kurtosis(w.cpu().numpy()) for w in fields]))
        return out

    def state(self) -> np.ndarray:
        return self.sim.omega[: self.n_sims].cpu().numpy().astype(np.float32).squeeze(0)

    def close(self) -> None:
        self.agents = []


def parallel_env(**kwargs: Any) -> TurbulenceEnv:
    """Create the SMARL environment (PettingZoo ``ParallelEnv``)."""
    return TurbulenceEnv(**kwargs)
