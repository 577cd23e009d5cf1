"""Solver-in-the-loop fitting of a closure family's constants: gradients of a statistics loss
through unrolled steps of the torch LES (differentiable a-posteriori training: Kochkov et al.
2021, "Machine learning-accelerated computational fluid dynamics", PNAS 118; List, Chen &
Thuerey 2022, "Learned turbulence modelling with differentiable fluid solvers", JFM 949 — both
backpropagate through unrolled solver steps; the stable-closure recipe of "Learning fast,
accurate, and stable closures of a kinetic theory of an active fluid" fits closures through a
differentiable pseudo-spectral solver the same way).

The loop (``fit_constants``), one LES batch from ``sims`` of the reference's initial
conditions (``seed`` picks which; the evaluation's rollouts start from the same files, and 2
time units of chaotic spin-up decorrelate them), spun up with the family's base constant:

    θ ∈ ℝ^m,  C = low + (high − low)·σ(θ)          the RL action's range (``default_range``)
    repeat: detach the state (truncated backpropagation through time), unroll K steps with
            C, sample Ẑ every ``sample_every`` steps, loss, ∇_θ by autograd, clip, Adam

    spectrum loss  L_Z = mean_{1≤k<k_c} (log10 ⟨Ẑ(k)⟩ − log10 Ẑ_ref(k))²   ⟨·⟩ over samples, batch
    tails arm      L = L_Z + w (log P̃ − log P_ref)²,  P̃ = ⟨σ((|ω| − 3σ_ref)/(τσ_ref))⟩

with P̃ a smooth (sigmoid, width τ) count of |ω| > 3σ_ref, the tail statistic of the evaluation.
The answer is the mean of C over the last quarter of the iterations (Polyak averaging: the loss
of a short unroll carries the flow's weather, the average does not). Stability: the bounded
parameterisation keeps C in the RL action range, and a blown-up unroll (non-finite loss) is
restarted from the spun-up states with the update skipped and counted. Constants need no
further regulariser; the growth penalty for networks is future work (docs/smarl_families.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.reference import Reference, les_physics
from regrl.envs.turbulence.sgs import step_with_sgs
from regrl.envs.turbulence.solver import Turbulence2D
from regrl.files import write_text_atomic
from regrl.trainers.turbulence.closures import cnn_closure

Tensor = torch.Tensor
TARGETS = ("spectrum", "spectrum+tails")


@dataclass(frozen=True)
class FitSpec:
    closure: str = "smagorinsky_hyper"
    """Closure family whose constants are fitted (``envs/turbulence/families``)."""
    target: str = "spectrum"
    """``spectrum`` (log-enstrophy spectrum) or ``spectrum+tails`` (plus P(|ω| > 3σ))."""
    sims: int = 8
    """LES in the batch: ``sims`` of the reference's initial conditions."""
    seed: int = 0
    """Which initial conditions: seed 0 takes the last ``sims``, others a random draw."""
    spinup: float = 2.0
    """Time units with the family's base constant before the first update (no gradient)."""
    unroll: int = 200
    """Solver steps per update, all differentiated (K)."""
    sample_every: int = 20
    """Steps between the spectrum samples of an unroll."""
    iterations: int = 80
    """Updates of θ."""
    lr: float = 0.1
    """Adam step size on θ (the logit of the coefficient in its range)."""
    clip: float = 1.0
    """Gradient-norm clip on θ."""
    tail_weight: float = 1.0
    """w of the tails arm."""
    tail_width: float = 0.25
    """τ: width of the smooth tail indicator, in units of σ_ref."""
    average_last: float = 0.25
    """Fraction of the last iterations whose coefficients are averaged into the answer."""

    def __post_init__(self):
        families.get_family(self.closure)
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        for name in ("sims", "unroll", "sample_every", "iterations"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.unroll % self.sample_every:
            raise ValueError(
                f"unroll ({self.unroll}) must be a multiple of sample_every ({self.sample_every})"
            )
        if not 0 < self.average_last <= 1:
            raise ValueError(f"average_last must be in (0, 1], got {self.average_last}")
        if not (math.isfinite(self.spinup) and self.spinup >= 0):
            raise ValueError(f"spinup must be finite and >= 0, got {self.spinup}")


def bounded(theta: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """C = low + (high − low)·σ(θ): the coefficient in its range for any θ."""
    return low + (high - low) * torch.sigmoid(theta)


def unbounded(coeff: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """θ with ``bounded(θ) = coeff`` (coeff strictly inside the range: on its edge θ = ±∞,
    where σ' = 0 and no gradient could move it, so that is an error)."""
    p = (coeff - low) / (high - low)
    if not bool(((p > 0) & (p < 1)).all()):
        raise ValueError(
            f"coefficients {coeff.tolist()} are not strictly inside their range "
            f"[{low.tolist()}, {high.tolist()}]"
        )
    return torch.log(p) - torch.log1p(-p)


# A constant fit starts at the family's base, moved inside its range by at least this share of
# the range: a base on the range's edge (C_s = 0 of ``smagorinsky_hyper8``) would be θ = −∞.
# Every other family's base is the middle of its range (share 0.5), unchanged by it.
START_MARGIN = 0.05


def fit_start(base: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """The constant fit's first coefficients: ``base`` clamped to the inner part of the range
    that leaves ``START_MARGIN`` of it on each side."""
    margin = START_MARGIN * (high - low)
    return torch.minimum(torch.maximum(base, low + margin), high - margin)


def log_spectrum_loss(z: Tensor, z_ref: Tensor, k_cut: int) -> Tensor:
    """mean_{1≤k<k_cut} (log10 ⟨Ẑ(k)⟩ − log10 Ẑ_ref(k))², ⟨·⟩ over all leading axes of z
    [..., K]: the square of the evaluation's log-spectrum error of the averaged spectrum."""
    mean = z.reshape(-1, z.shape[-1]).mean(0)
    return ((torch.log10(mean[1:k_cut]) - torch.log10(z_ref[1:k_cut])) ** 2).mean()


def soft_tail_probability(omega: Tensor, sigma: float, width: float, n_sigma: float = 3.0):
    """⟨σ((|ω| − n_sigma·sigma) / (width·sigma))⟩: a differentiable P(|ω| > n_sigma·sigma) that
    tends to the count as width → 0."""
    return torch.sigmoid((omega.abs() - n_sigma * sigma) / (width * sigma)).mean()


def _les(ref: Reference, sims: int, seed: int = 0) -> Turbulence2D:
    ics = ref.initial_conditions
    if not 1 <= sims <= len(ics):
        raise ValueError(f"sims must be in 1..{len(ics)} (the reference's initial conditions)")
    pick = np.arange(len(ics) - sims, len(ics))
    if seed:
        pick = np.sort(np.random.default_rng(seed).choice(len(ics), sims, replace=False))
    sim = Turbulence2D(ref.n_les, batch=sims, **les_physics(ref.provenance["spec"]))
    sim.omega = torch.as_tensor(ics[pick], dtype=sim.dtype)
    return sim


Decide = Callable[[Turbulence2D], Tensor]
"""The closure's coefficients [batch, a, a, m] for the current state (held for one sample)."""


def constant(coeff: Tensor, size: int) -> Decide:
    """``Decide`` of uniform coefficients ``coeff`` [m]."""
    return lambda sim: coeff.expand(sim.batch, 1, 1, size)


def statistics_loss(zs: List[Tensor], omega: Tensor, spec: FitSpec, ref: Reference) -> Tensor:
    """The loss of the module docstring from the unroll's spectrum samples ``zs`` (each
    [B, K]) and its final vorticity ``omega`` [B, n, n] (the tails arm)."""
    z = torch.stack(zs)
    k_cut = int(np.flatnonzero(ref.enstrophy_spectrum > 1e-30).max()) + 1  # 2/3-rule cut
    loss = log_spectrum_loss(z, torch.as_tensor(ref.enstrophy_spectrum, dtype=z.dtype), k_cut)
    if spec.target == "spectrum+tails":
        p = soft_tail_probability(omega, ref.omega_std, spec.tail_width)
        loss = loss + spec.tail_weight * torch.log(p / max(ref.tail_3sigma, 1e-12)) ** 2
    return loss


def unroll_loss(sim: Turbulence2D, decide, spec: FitSpec, ref: Reference) -> Tensor:
    """Advance ``sim`` ``spec.unroll`` steps, the family's coefficients from ``decide`` (or a
    tensor [m] of uniform coefficients) re-evaluated every ``sample_every`` steps, and return
    the loss of the module docstring (differentiable in the coefficients, in whatever
    ``decide`` computes them from, and in the state the unroll starts from)."""
    fam = families.get_family(spec.closure)
    if isinstance(decide, Tensor):
        decide = constant(decide, fam.size)
    zs = []
    for _ in range(spec.unroll // spec.sample_every):
        families.advance(sim, fam, decide(sim), spec.sample_every)
        zs.append(sim.enstrophy_spectrum())
    return statistics_loss(zs, sim.omega, spec, ref)


def field_unroll_loss(
    sim: Turbulence2D,
    sgs: Callable[[Turbulence2D], Tensor],
    spec: FitSpec,
    ref: Reference,
    every: int,
    base: Optional[Callable[[Turbulence2D], None]] = None,
) -> Tensor:
    """``unroll_loss`` for a field closure: Π = ``sgs(sim)`` [B, n, n] (e.g. the D4-CNN) added
    as the evaluation adds it (``step_with_sgs``: explicit Euler, re-evaluated every ``every``
    steps and held between, after ``base``'s step), spectra sampled every
    ``spec.sample_every`` steps."""
    if spec.sample_every % every:
        raise ValueError(f"sample_every ({spec.sample_every}) must be a multiple of {every}")
    zs = []
    for _ in range(spec.unroll // spec.sample_every):
        step_with_sgs(sim, sgs, spec.sample_every, every=every, base=base)
        zs.append(sim.enstrophy_spectrum())
    return statistics_loss(zs, sim.omega, spec, ref)


def optimise(
    ref: Reference,
    spec: FitSpec,
    params: List[Tensor],
    loss_of: Callable[[Turbulence2D], Tensor],
    spin: Callable[[Turbulence2D, int], None],
    record: Callable[[], Dict[str, object]],
    say: Callable[[str], None],
    label: Optional[str] = None,
    validate: Optional[Callable[[], float]] = None,
    validate_every: int = 0,
) -> Dict[str, object]:
    """The loop of the module docstring over ``params`` (Adam, clipped gradient norm): the LES
    batch spun up by ``spin(sim, steps)`` (no gradient), then ``spec.iterations`` truncated
    unrolls, each ``loss_of(sim)``; ``record()`` adds what to keep of each iteration to its
    history row.

    ``validate`` (lower is better; non-finite counts as +∞) is scored before the first update
    and after every ``validate_every`` applied updates and the last; the parameters end at the
    best-scoring point (ties: the earlier one), so a fit whose long-horizon behaviour degrades
    returns its last good state, or its start: early stopping (Prechelt 1998, "Early stopping —
    but when?") on a validation rollout longer than the training unrolls, the stability
    regulariser of a network closure trained through truncated unrolls, whose short-horizon
    loss can fall while its long-run statistics degrade."""
    if validate is not None and validate_every < 1:
        raise ValueError(
            f"validate_every must be >= 1 with a validate function, got {validate_every}"
        )
    checks: List[Dict[str, float]] = []
    best: List[object] = []  # [score, updates, parameter copies] of the best check so far

    def check(done: int) -> None:
        score = float(validate())
        checks.append({"updates": done, "score": score})
        score = score if math.isfinite(score) else math.inf
        say(f"validate {label or spec.closure} after {done} updates: {checks[-1]['score']:.5f}")
        if not best or score < best[0]:
            best[:] = [score, done, [p.detach().clone() for p in params]]

    opt = torch.optim.Adam(params, lr=spec.lr)
    sim = _les(ref, spec.sims, spec.seed)
    with torch.no_grad():
        spin(sim, int(round(spec.spinup / sim.dt)))
    start_state = sim.omega.detach().clone()
    history: List[Dict[str, object]] = []
    skipped, started = 0, time.time()
    if validate is not None:
        check(0)
    for it in range(spec.iterations):
        sim.detach_()
        loss = loss_of(sim)
        if not torch.isfinite(loss):  # blown up: restart from the spun-up states, no update
            skipped += 1
            sim.omega = start_state
            continue
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, spec.clip)
        opt.step()
        history.append({"iteration": it, "loss": loss.item(), **record()})
        if it % 10 == 0 or it == spec.iterations - 1:
            say(
                f"fit {label or spec.closure} [{spec.target}] {it + 1}/{spec.iterations}: loss "
                f"{loss.item():.5f}, {history[-1]} ({time.time() - started:.0f} s)"
            )
        if validate is not None and (
            len(history) % validate_every == 0 or it == spec.iterations - 1
        ):
            check(len(history))
    if not history:
        raise FloatingPointError("every unroll blew up; lower lr or unroll")
    out = {
        "spec": asdict(spec),
        "history": history,
        "skipped_unrolls": skipped,
        "seconds": time.time() - started,
    }
    if validate is not None:
        with torch.no_grad():
            for p, kept in zip(params, best[2]):
                p.copy_(kept)
        out.update(validation=checks, selected_update=best[1])
    return out


def _spin(fam: families.ClosureFamily, coeff: Tensor) -> Callable[[Turbulence2D, int], None]:
    """Spin-up with uniform family coefficients ``coeff`` [m]."""
    return lambda sim, n: families.advance(sim, fam, coeff.expand(sim.batch, 1, 1, fam.size), n)


def fit_constants(
    ref: Reference, spec: FitSpec, say: Callable[[str], None] = print
) -> Dict[str, object]:
    """Fit the constants of ``spec.closure`` (module docstring). Returns the per-iteration
    history (loss, coefficients), the averaged answer as coefficients and roots, and the
    number of skipped (blown-up) unrolls."""
    fam = families.get_family(spec.closure)
    low, high = (torch.tensor(b, dtype=torch.float64) for b in zip(*fam.default_range()))
    base = fit_start(torch.tensor(fam.base(), dtype=torch.float64), low, high)
    theta = unbounded(base, low, high).clone().requires_grad_(True)

    def decide(sim):
        return bounded(theta, low, high).expand(sim.batch, 1, 1, fam.size)

    def record():
        return {"coeff": bounded(theta, low, high).detach().tolist()}

    out = optimise(
        ref,
        spec,
        [theta],
        lambda s: unroll_loss(s, decide, spec, ref),
        _spin(fam, base),
        record,
        say,
    )
    tail = out["history"][-max(1, int(round(spec.average_last * len(out["history"])))) :]
    answer = torch.tensor([h["coeff"] for h in tail], dtype=torch.float64).mean(0)
    return dict(out, coeff=answer.tolist(), roots=list(_roots(fam, answer)))


def policy_decider(module, env_kwargs: dict, ref: Reference) -> Decide:
    """``Decide`` of an RLlib policy module as the env maps it, differentiably: the agents'
    observations (``observe_agents_torch``), the actor's mean action, clipped to [−1, 1] and
    mapped linearly onto each coefficient's range (``action_to_coefficient`` in torch)."""
    from regrl.envs.turbulence.env import agent_points, observe_agents_torch
    from regrl.trainers.turbulence.smarl import actor_forward, coeff_range_of

    ranges = torch.tensor(coeff_range_of(env_kwargs), dtype=torch.float64)  # [m, 2]
    m, a = ranges.shape[0], int(env_kwargs.get("agents_per_side", 4))
    log_ref = torch.as_tensor(np.log10(ref.enstrophy_spectrum[1:] + 1e-30))
    forward = actor_forward(module)
    cache = {}

    def decide(sim):
        if sim.n not in cache:
            cache[sim.n] = agent_points(sim.n, a)
        obs = observe_agents_torch(sim, *cache[sim.n], log_ref)  # [B, a², d]
        out = forward(obs.reshape(-1, obs.shape[-1]).float()).double()
        action = out[:, :m].clamp(-1.0, 1.0)
        coeff = ranges[:, 0] + 0.5 * (action + 1.0) * (ranges[:, 1] - ranges[:, 0])
        return coeff.reshape(sim.batch, a, a, m)

    return decide


def fit_policy(
    ref: Reference,
    config: Path,
    spec: FitSpec,
    out: Path,
    overrides=(),
    say: Callable[[str], None] = print,
) -> Dict[str, object]:
    """Train the RL config's policy network deterministically through the solver (its mean
    action; ``spec.sample_every`` is the decision interval, set from the config's
    ``steps_per_action``) and write it as a policy file ``out/policy.pt`` that ``regrl eval``
    and the RL evaluations read like an RL run's."""
    from gymnasium import spaces

    from regrl.envs.turbulence.env import N_INVARIANTS
    from regrl.files import package_commit
    from regrl.trainers.config import load_config, to_dict
    from regrl.trainers.rllib.policy_file import module_spec, save_policy
    from regrl.trainers.turbulence.smarl import coeff_range_of

    cfg = load_config(config, list(overrides))
    env_kw = dict(cfg.env.kwargs)
    fam = families.get_family(env_kw.get("closure", "smagorinsky"))
    spec = dataclasses.replace(
        spec, closure=fam.name, sample_every=int(env_kw.get("steps_per_action", 10))
    )
    torch.manual_seed(spec.seed)
    obs_dim = N_INVARIANTS + ref.n_les // 2 - 1
    module = module_spec(
        cfg,
        spaces.Box(-10.0, 10.0, (obs_dim,), np.float32),
        spaces.Box(-1.0, 1.0, (fam.size,), np.float32),
    ).build()
    decide = policy_decider(module, env_kw, ref)
    params = [p for p in module.parameters() if p.requires_grad]
    ranges = torch.tensor(coeff_range_of(env_kw), dtype=torch.float64)
    start = ranges.mean(1)  # a = 0, where the policy starts and the env spins up
    loss_of = lambda s: unroll_loss(s, decide, spec, ref)  # noqa: E731
    result = optimise(ref, spec, params, loss_of, _spin(fam, start), dict, say)
    cfg_dict = to_dict(cfg)
    cfg_dict["seed"] = spec.seed
    provenance = {
        "config": cfg_dict,
        "seed": spec.seed,
        "commit": package_commit() or "unknown",
        "command": "regrl turbulence fit --policy-config " + str(config),
        "solver_in_the_loop": {k: v for k, v in result.items() if k != "history"},
        "final_loss": result["history"][-1]["loss"],
    }
    module.eval()
    save_policy(module.state_dict(), Path(out) / "policy.pt", provenance)
    return dict(result, policy=str(Path(out) / "policy.pt"))


ANCHOR_BATCH = 4
"""Training pairs per update in the supervised anchor (the CNN's own supervised batch size)."""


def fit_field_closure(
    ref: Reference,
    model: torch.nn.Module,
    sigma_omega: float,
    sigma_pi: float,
    spec: FitSpec,
    *,
    every: int = 10,
    anchor: Optional[Tuple[np.ndarray, np.ndarray]] = None,
    anchor_weight: float = 1.0,
    base: Optional[Tuple[str, Tuple[float, ...]]] = None,
    validate: Optional[Callable[[torch.nn.Module], float]] = None,
    validate_every: int = 0,
    say: Callable[[str], None] = print,
) -> Dict[str, object]:
    """Fine-tune a field closure (the supervised D4-CNN Π model, in place) a posteriori through
    the solver: the loop of the module docstring with ``field_unroll_loss`` (Π every ``every``
    steps, as in the evaluation), spun up with the model itself, plus the **supervised anchor**

        L = L_Z (+ tails arm) + λ · mean ‖f(ω̄ᵢ/σ_ω) − Πᵢ/σ_Π‖²   over a batch of training pairs

    (``anchor`` = the normalised (x, y) training arrays, λ = ``anchor_weight``): the a-priori
    loss the model was trained on keeps it near the exact sub-grid term while the spectrum
    term corrects what the a-priori fit gets wrong a posteriori — the combination of a-priori
    and solver-constrained losses of the active-fluid closure paper (Maddu, Weady & Shelley
    2023, arXiv 2308.06675, its time-stepping constraint replaced by SMARL's spectrum target,
    which needs no time-resolved DNS), and the regulariser that keeps a network's unroll
    stable (without it, one blown-up unroll can push the weights anywhere).

    ``base`` = (family, coefficients) makes the model a learned **correction** of that
    family's constant closure (``family_step``; Kochkov et al. 2021's learned correction,
    Um et al. 2020's solver-in-the-loop): spin-up, unrolls and the evaluation step the family
    with its constants and add Π. With the model's output layer zeroed (``zero_output``) the
    fit starts exactly at the constant closure.

    ``validate(model)`` → a score (lower is better), with ``validate_every``: ``optimise``'s
    early stopping; the model ends at its best-scoring update (update 0 included)."""
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    sgs = cnn_closure(model, sigma_omega, sigma_pi, differentiable=True)
    xa = ya = None
    if anchor is not None:
        xa, ya = (torch.as_tensor(a, dtype=torch.float32) for a in anchor)
    last: Dict[str, object] = {}

    step = None if base is None else family_step(*base)

    def loss_of(sim):
        loss = field_unroll_loss(sim, sgs, spec, ref, every, step)
        if xa is not None and anchor_weight > 0:
            idx = torch.as_tensor(rng.choice(len(xa), min(ANCHOR_BATCH, len(xa)), replace=False))
            mse = ((model(xa[idx])["out"] - ya[idx]) ** 2).mean()
            last["anchor_mse"] = mse.item()
            loss = loss + anchor_weight * mse.to(loss.dtype)
        return loss

    def spin(sim, n):
        step_with_sgs(sim, sgs, n, every=every, base=step)

    def scored() -> float:
        model.eval()
        try:
            with torch.no_grad():
                return float(validate(model))
        finally:
            model.train()

    model.train()
    out = optimise(
        ref,
        spec,
        params,
        loss_of,
        spin,
        lambda: dict(last),
        say,
        "field closure",
        validate=None if validate is None else scored,
        validate_every=validate_every,
    )
    model.eval()
    return out


def family_step(closure: str, coeff: Tuple[float, ...]) -> Callable[[Turbulence2D], None]:
    """One solver step of closure family ``closure`` with uniform ``coeff`` (the family's
    coefficients, e.g. (C_s², C₄⁴), not roots): ``step_with_sgs``'s ``base``."""
    spin = _constant_spin(closure, coeff)
    return lambda sim: spin(sim, 1)


def _constant_spin(closure: str, coeff: Tuple[float, ...]) -> Callable[[Turbulence2D, int], None]:
    """``_spin`` of family ``closure`` with uniform ``coeff`` (its coefficients, checked)."""
    fam = families.get_family(closure)
    values = torch.as_tensor(coeff, dtype=torch.float64).reshape(-1)
    if values.numel() != fam.size:
        raise ValueError(f"closure {closure!r} has {fam.size} coefficients, got {len(values)}")
    return _spin(fam, values)  # families.advance casts to the LES's dtype


def spun_up_states(
    ref: Reference,
    closure: str,
    coeff: Tuple[float, ...],
    sims: int,
    seed: int,
    time_units: float,
) -> np.ndarray:
    """``sims`` of the reference's initial conditions (``_les``'s draw for ``seed``) stepped
    ``time_units`` with family ``closure``'s uniform ``coeff`` (no gradient): start states for
    validation rollouts, as a [sims, n, n] array."""
    sim = _les(ref, sims, seed)
    spin = _constant_spin(closure, coeff)
    with torch.no_grad():  # one call: the coefficient fields are built once, not every step
        spin(sim, int(round(time_units / sim.dt)))
    return sim.omega.detach().cpu().numpy()


def zero_output(model: torch.nn.Module) -> torch.nn.Module:
    """Zero the field model's output layer ``model.head`` (weights and bias), so that Π ≡ 0:
    a learned correction that starts at its base closure."""
    head = getattr(model, "head", None)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no output layer 'head' to zero")
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
    return model


def _roots(fam: families.ClosureFamily, coeff: Tensor) -> tuple:
    return tuple(float(c) ** (1.0 / p) for c, p in zip(coeff.tolist(), fam.powers))


def write_fit(out: Path, result: Dict[str, object]) -> Path:
    return write_text_atomic(Path(out) / "fit.json", json.dumps(result, indent=1))


def evaluate_fit(
    ref: Reference,
    closure: str,
    fitted: Dict[str, object],
    *,
    sims: int,
    time_units: float,
    spinup: float,
    say: Callable[[str], None] = print,
) -> Dict[str, object]:
    """The fitted closure (``fitted``: ``name`` and ``smarl.rollout`` keywords, a constant's
    ``coeff`` or a ``policy``) against its family's base and best constants and SMARL's
    C_s = 0.17, on the evaluation's rollouts, paired per simulation."""
    from regrl.trainers.stats import t_interval
    from regrl.trainers.turbulence.smarl import paired_differences, rollout

    fam = families.get_family(closure)
    first = {k: v for k, v in fitted.items() if k != "name"}
    runs = [(fitted["name"], dict(first, closure=closure))]
    for cl, roots in [(closure, r) for r in fam.constants()] + [("smagorinsky", (0.17,))]:
        kw = dict(closure=cl, coeff=families.get_family(cl).coefficient(roots))
        if not any(run[1] == kw for run in runs):
            runs.append((families.get_family(cl).label(roots), kw))
    rows = []
    for name, kw in runs:
        say(f"eval: {name} ({sims} LES x {time_units} time units)")
        r = rollout(ref, **kw, seeds=sims, time_units=time_units, spinup=spinup)
        rows.append({k: v for k, v in r.items() if not isinstance(v, list)} | {"name": name})
    paired = {}
    for other in rows[1:]:
        if rows[0]["diverged"] or other["diverged"]:
            continue
        for key in ("enstrophy_spectrum_error", "tail_ratio"):
            mean, half = t_interval(paired_differences(rows[0], other, key))
            paired[f"{other['name']}: {key}"] = [mean, half]
    return {"rows": rows, "paired_fitted_minus": paired}


def fit_markdown(result: Dict[str, object]) -> str:
    spec, ev = result["spec"], result.get("evaluation")
    answer = (
        f"policy file {result['policy']}"
        if "policy" in result
        else f"answer (mean of the last {spec['average_last']:.0%}): "
        + ", ".join(f"{r:.4f}" for r in result["roots"])
    )
    lines = [
        f"Solver-in-the-loop fit of {spec['closure']} [{spec['target']}]: "
        f"{spec['iterations']} updates of {spec['unroll']}-step unrolls over {spec['sims']} LES, "
        f"{result['seconds']:.0f} s, {result['skipped_unrolls']} unroll(s) skipped; {answer}",
    ]
    if ev:
        lines += [
            "",
            "| closure | spectrum error | P(|ω|>3σ) ratio | diverged |",
            "|---|---|---|---|",
        ]
        for r in ev["rows"]:
            lines.append(
                f"| {r['name']} | {r['enstrophy_spectrum_error']:.4f} | {r['tail_ratio']:.2f} | "
                f"{r['diverged']}/{r['simulations']} |"
            )
        lines += ["", "Fitted minus each row, paired over the simulations (mean ± 95% t):", ""]
        for name, (mean, half) in ev["paired_fitted_minus"].items():
            half_text = "n/a (one simulation)" if half is None else f"{half:.4f}"
            lines.append(f"- {name}: {mean:+.4f} ± {half_text}")
    return "\n".join(lines) + "\n"


def fit_command(args) -> int:
    """``regrl turbulence fit``: fit, optionally evaluate, write fit.json and fit.md."""
    from regrl.envs.turbulence.reference import load_reference

    spec = FitSpec(
        **{
            f.name: getattr(args, f.name)
            for f in dataclasses.fields(FitSpec)
            if getattr(args, f.name, None) is not None
        }
    )
    torch.set_num_threads(int(args.threads))
    ref = load_reference(args.reference)
    out = Path(args.out)
    say = lambda m: print(m, flush=True)  # noqa: E731
    if args.policy_config:  # the RL config's policy network, trained through the solver
        from regrl.trainers.rllib.policy_file import load_policy
        from regrl.trainers.turbulence.smarl import coeff_range_of, module_policy

        overrides = [f"env.kwargs.reference={args.reference}"] if args.reference else []
        result = fit_policy(ref, Path(args.policy_config), spec, out, overrides, say=say)
        module, cfg, _ = load_policy(result["policy"])
        closure, env_kw = result["spec"]["closure"], dict(cfg.env.kwargs)
        fitted = {
            "name": f"solver-in-the-loop policy ({closure})",
            "policy": module_policy(module, coeff_range_of(env_kw)),
            "steps_per_action": int(env_kw.get("steps_per_action", 10)),
            "agents_per_side": int(env_kw.get("agents_per_side", 4)),
        }
    else:
        result = fit_constants(ref, spec, say=say)
        closure = spec.closure
        label = families.get_family(closure).label(result["roots"])
        fitted = {"name": "fitted " + label, "coeff": result["coeff"]}
    if args.eval_sims:
        result["evaluation"] = evaluate_fit(
            ref,
            closure,
            fitted,
            sims=args.eval_sims,
            time_units=args.eval_time,
            spinup=args.eval_spinup,
            say=say,
        )
    write_fit(out, result)
    text = fit_markdown(result)
    write_text_atomic(out / "fit.md", text)
    print(text)
    print(f"wrote {out / 'fit.json'} and {out / 'fit.md'}")
    return 0
