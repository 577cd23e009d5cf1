"""SMARL orchestration: the reference command and the closure comparison of ``regrl eval``.

Evaluation runs long, batched LES rollouts (one batch element per initial condition) for the
classical closures and for the learned policy, and compares time-averaged spectra and the
vorticity PDF with the filtered-DNS reference (docs/methods.md#smarl-evaluation).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from regrl.envs.turbulence import families
from regrl.envs.turbulence.closures import dynamic_smagorinsky_cs2
from regrl.envs.turbulence.env import (
    action_to_coefficient,
    advance,
    agent_points,
    coeff_ranges,
    observe_agents,
    resolve_steps_per_action,
)
from regrl.envs.turbulence.metrics import (
    hellinger,
    log_spectrum_error,
    pdf_histogram,
    tail_probability,
)
from regrl.envs.turbulence.reference import (
    STEPS_PER_DECISION,
    Reference,
    les_from_reference,
    les_physics,
    load_reference,
    pooled_statistics,
)
from regrl.envs.turbulence.sgs import step_with_sgs
from regrl.envs.turbulence.solver import Turbulence2D
from regrl.files import write_text_atomic

_ERROR, _TAILS = "enstrophy_spectrum_error", "tail_ratio"  # ``cross_fitted``'s keys


@dataclass(frozen=True)
class Baseline:
    name: str
    closure: Optional[str]  # None: no SGS model
    coeff: Optional[float]  # None with a closure: dynamic Smagorinsky

    @property
    def family(self) -> Optional[str]:
        """The closure family whose constant this row is (None: no model, dynamic)."""
        return self.closure if self.coeff is not None else None


BASELINES = (
    Baseline("no closure", None, 0.0),
    Baseline("Smagorinsky C_s=0.10", "smagorinsky", 0.10**2),
    Baseline("Smagorinsky C_s=0.14", "smagorinsky", 0.14**2),  # the best of a scan, docs/smarl.md
    Baseline("Smagorinsky C_s=0.17", "smagorinsky", 0.17**2),
    Baseline("Leith C_L=0.17", "leith", 0.17**3),
    Baseline("dynamic Smagorinsky", "smagorinsky", None),
)

# policy(obs [B, agents, d]) -> coefficients [B, agents] (C_s² or C_L³)
Policy = Callable[[np.ndarray], np.ndarray]
# field closure: LES state -> sub-grid term Π [B, n, n]
FieldClosure = Callable[[Turbulence2D], torch.Tensor]


def _sim(ref: Reference, batch: int, dtype=torch.float64, dt=None, initial=None) -> Turbulence2D:
    return les_from_reference(ref, batch, dtype, dt, initial)


def closure_coefficients(sim, closure, coeff, policy, a, obs_fn) -> torch.Tensor:
    """One decision's coefficients [batch, a, a, m]: the policy's on its observations
    ([batch, agents] or [batch, agents, m]), dynamic Smagorinsky's (``coeff`` None), or the
    constant ``coeff`` (a number, or m numbers: the family's coefficients, not roots)."""
    if policy is not None:
        out = torch.as_tensor(policy(obs_fn(sim)), dtype=sim.dtype)
        return out.reshape(sim.batch, a, a, -1)
    if coeff is None:  # dynamic Smagorinsky: one coefficient per simulation, every decision
        return dynamic_smagorinsky_cs2(sim)[:, None, None, None].expand(-1, a, a, 1).to(sim.dtype)
    values = torch.as_tensor(coeff, dtype=sim.dtype).reshape(-1)
    return values.expand(sim.batch, a, a, values.numel()).clone()


def rollout(
    ref: Reference,
    *,
    closure: Optional[str],
    coeff: Optional[float] = None,
    policy: Optional[Policy] = None,
    seeds: int = 4,
    time_units: float = 20.0,
    spinup: float = 2.0,
    steps_per_action: int = STEPS_PER_DECISION,
    agents_per_side: int = 4,
    sample_every: float = 0.5,
    field_closure: Optional[FieldClosure] = None,
    dtype=torch.float64,
    initial: Optional[np.ndarray] = None,
    spectra: bool = False,
    dt: Optional[float] = None,
) -> Dict[str, object]:
    """Run ``seeds`` LES from the reference's initial conditions (or from the states
    ``initial`` [sims, n, n], then ``seeds`` is ignored); statistics over the window
    after ``spinup`` time units. Diverged simulations are frozen and reported, not raised.
    ``field_closure`` (Π of the state, e.g. a CNN) is evaluated once per ``steps_per_action``
    solver steps, as often as the RL agents act; alone it is the whole closure, with
    ``closure`` and ``coeff`` it is a learned correction added to that family's constant
    closure (``step_with_sgs``'s ``base``). ``dtype``: the LES's float precision (statistics
    are computed in float64 either way). ``spectra``: also each simulation's time-averaged
    enstrophy spectrum (``per_simulation["enstrophy_spectrum"]``, [sims][k]). ``dt``: the LES
    time step (default the reference's); the caller scales ``steps_per_action`` with it to
    keep the decision interval in time (benchmarks/turbulence_float32.py)."""
    if field_closure is not None and policy is not None:
        raise ValueError("rollout: give a policy or a field closure, not both")
    seeds = min(seeds, len(ref.initial_conditions)) if initial is None else len(initial)
    sim = _sim(ref, seeds, dtype, dt, initial)
    ix, iy = agent_points(sim.n, agents_per_side)
    log_ref = np.log10(ref.enstrophy_spectrum[1:] + 1e-30)
    obs_fn = lambda s: observe_agents(s, ix, iy, log_ref)  # noqa: E731
    dt = sim.dt
    n_total, n_spin = int(round((spinup + time_units) / dt)), int(round(spinup / dt))
    every = max(
        steps_per_action, int(round(sample_every / dt)) // steps_per_action * steps_per_action
    )
    z, e, fields = [], [], []
    alive = np.ones(seeds, bool)
    diverged_at = np.full(seeds, np.nan)
    start = time.time()
    for step in range(0, n_total, steps_per_action):
        if field_closure is not None:
            base = None
            if closure is not None:
                c = closure_coefficients(sim, closure, coeff, None, agents_per_side, obs_fn)
                base = lambda s, c=c: advance(s, c, closure, 1)  # noqa: E731
            step_with_sgs(sim, field_closure, steps_per_action, every=steps_per_action, base=base)
        elif closure is None:
            sim.step(steps_per_action)
        else:
            c = closure_coefficients(sim, closure, coeff, policy, agents_per_side, obs_fn)
            advance(sim, c, closure, steps_per_action)
        now_alive = (
            alive
            & sim.is_finite().cpu().numpy()
            & (sim.max_abs_omega().cpu().numpy() < 160.0 * ref.omega_std)
        )
        diverged_at[alive & ~now_alive] = sim.time
        alive = now_alive
        if not alive.any():
            break
        if step >= n_spin and (step - n_spin) % every == 0:
            z.append(sim.enstrophy_spectrum().double().cpu().numpy())
            e.append(sim.energy_spectrum().double().cpu().numpy())
            fields.append(sim.omega.double().cpu().numpy())
    seconds = time.time() - start
    out = summarise(ref, z, e, fields, alive, seconds, sim.time, spectra=spectra)
    out["diverged_at"] = [None if np.isnan(t) else round(float(t), 3) for t in diverged_at]
    return out


def dns_rollout(
    ref: Reference,
    *,
    sims: int = 16,
    time_units: float = 20.0,
    spinup: float = 2.0,
    sample_every: float = 0.5,
    n_dns: Optional[int] = None,
    dt: Optional[float] = None,
    steps_per_check: Optional[int] = None,
    dtype=torch.float32,
    say: Callable[[str], None] = lambda msg: None,
    collect: Optional[Dict[str, list]] = None,
) -> Dict[str, object]:
    """The evaluation of :func:`rollout` with the closure replaced by resolution: ``sims``
    DNS on the reference's ``n_dns`` grid (default its own, 256²) started from the same
    initial conditions as the LES (the filtered fields, spectrally interpolated, so the first
    time units regrow the small scales as the LES's spin-up does), filtered to the LES grid
    with the reference's filter at the LES's sample times (after ``spinup``, every
    ``sample_every``, counted in blocks of ``steps_per_check`` steps — by default the
    physical time of 10 LES steps, the agents' decision interval — so that the samples fall
    at the LES's times), and summarised by the same statistics. Its spectrum error is the
    floor a perfect closure would reach on this evaluation: the sampling noise of the
    reference's one 20-time-unit trajectory and of the evaluation's own window. Diverged
    simulations are frozen and reported, as in :func:`rollout`; each simulation's spectrum is
    kept (``per_simulation["enstrophy_spectrum"]``). ``collect`` (a dict) receives the samples
    :func:`ensemble_reference` needs: the filtered ``fields`` and LES-grid spectra ``z``,
    ``e`` and the DNS-grid spectra ``z_dns``, ``e_dns``, one entry per sample time."""
    from regrl.envs.turbulence.sgs import les_filter, spectral_upsample

    p = ref.provenance["spec"]
    n_dns = int(n_dns or p["n_dns"])
    physics = les_physics(p)  # the reference's physics; the DNS's own time step below
    dt = float(dt or p["dt"])
    if n_dns < ref.n_les or n_dns % 2:
        raise ValueError(f"n_dns must be even and >= the LES grid {ref.n_les}, got {n_dns}")
    if steps_per_check is None:
        steps_per_check = max(1, int(round(10 * physics["dt"] / dt)))
    sims = min(sims, len(ref.initial_conditions))
    ics = torch.as_tensor(ref.initial_conditions[:sims], dtype=torch.float64)
    dns = Turbulence2D(n_dns, batch=sims, dtype=dtype, **dict(physics, dt=dt))
    dns.omega = spectral_upsample(ics, n_dns).to(dtype)
    view = les_from_reference(ref, sims)  # LES-grid solver, used for its diagnostics only
    spa = steps_per_check
    n_total, n_spin = int(round((spinup + time_units) / dt)), int(round(spinup / dt))
    every = max(spa, int(round(sample_every / dt)) // spa * spa)
    z, e, fields = [], [], []
    alive = np.ones(sims, bool)
    diverged_at = np.full(sims, np.nan)
    start = time.time()
    for step in range(0, n_total, spa):
        dns.step(spa)
        now_alive = alive & dns.is_finite().cpu().numpy()
        diverged_at[alive & ~now_alive] = dns.time
        alive = now_alive
        if not alive.any():
            break
        if step >= n_spin and (step - n_spin) % every == 0:
            view.omega = les_filter(dns.omega, ref.n_les, p.get("filter", "spectral")).double()
            z.append(view.enstrophy_spectrum().cpu().numpy())
            e.append(view.energy_spectrum().cpu().numpy())
            fields.append(view.omega.cpu().numpy())
            if collect is not None:
                collect.setdefault("z_dns", []).append(dns.enstrophy_spectrum().double().numpy())
                collect.setdefault("e_dns", []).append(dns.energy_spectrum().double().numpy())
            say(
                f"DNS {n_dns}² x {sims}: t = {dns.time:6.2f} / {spinup + time_units:g}, "
                f"sample {len(z)} ({time.time() - start:.0f} s)"
            )
    out = summarise(ref, z, e, fields, alive, time.time() - start, dns.time, spectra=True)
    out["diverged_at"] = [None if np.isnan(t) else round(float(t), 3) for t in diverged_at]
    if collect is not None:
        collect.update(fields=fields, z=z, e=e, alive=alive)
    return out


def ensemble_reference(ref: Reference, collect: Dict[str, list], info: dict) -> Dict[str, object]:
    """A reference file's arrays (``save_reference``) from the samples of a
    :func:`dns_rollout` (its ``collect``): the statistics of all its DNS trajectories pooled —
    for 16 trajectories × 20 time units, 16 times the averaging of a reference made by
    ``regrl turbulence reference`` — with the same initial conditions, physics and PDF bins
    as ``ref``, so LES evaluations start exactly as before and only the target changes.
    ``info`` (the rollout's settings) goes into the provenance."""
    import json as _json

    from regrl.files import package_commit

    alive = np.asarray(collect["alive"], bool)
    if not alive.all():
        raise ValueError(f"{int((~alive).sum())} DNS diverged: no ensemble reference from them")
    w = np.stack(collect["fields"])  # [time, sims, n, n]
    provenance = dict(
        ref.provenance,
        ensemble=dict(info, base=ref.provenance.get("created"), samples=int(w.shape[0])),
        code_version=package_commit(short=True) or "unknown",
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    stats = pooled_statistics(
        *(np.stack(collect[k]) for k in ("z", "e", "z_dns", "e_dns")), w, len(ref.pdf_edges) - 1
    )
    return dict(
        stats,
        initial_conditions=np.asarray(ref.initial_conditions, np.float32),
        provenance=np.array(_json.dumps(provenance)),
    )


def summarise(ref, z, e, fields, alive, seconds, sim_time, spectra=False) -> Dict[str, object]:
    """The evaluation's statistics of sampled LES-grid spectra ``z``, ``e`` [time, sims, k]
    and fields [time, sims, n, n] of the surviving simulations ``alive`` [sims]; with
    ``spectra`` each surviving simulation's time-averaged enstrophy spectrum too."""
    # the batch advances together: cost per simulation = wall time / batch size
    out: Dict[str, object] = {
        "diverged": int((~alive).sum()),
        "simulations": int(alive.size),
        "seconds_per_time_unit": seconds / max(sim_time, 1e-9) / alive.size,
    }
    if not z or not alive.any():
        return dict(
            out,
            enstrophy_spectrum_error=float("nan"),
            energy_spectrum_error=float("nan"),
            pdf_hellinger=float("nan"),
            tail_ratio=float("nan"),
        )
    z_alive, w = np.stack(z)[:, alive], np.stack(fields)[:, alive]  # [time, alive sims, ...]
    zs, es = z_alive.mean(axis=(0, 1)), np.mean(np.stack(e)[:, alive], axis=(0, 1))
    edges, sigma = ref.pdf_edges, ref.omega_std
    tail_ref = max(ref.tail_3sigma, 1e-12)
    per_sim = {  # each surviving simulation on its own: the spread behind the pooled numbers
        "simulation": np.flatnonzero(alive).tolist(),  # which ones: pairing goes by these
        "enstrophy_spectrum_error": [
            log_spectrum_error(z_alive[:, i].mean(0), ref.enstrophy_spectrum)
            for i in range(z_alive.shape[1])
        ],
        "tail_ratio": [tail_probability(w[:, i], sigma) / tail_ref for i in range(w.shape[1])],
    }
    if spectra:
        per_sim["enstrophy_spectrum"] = z_alive.mean(0).tolist()
    pdf = pdf_histogram(w, edges)
    return dict(
        out,
        per_simulation=per_sim,
        enstrophy_spectrum_error=log_spectrum_error(zs, ref.enstrophy_spectrum),
        energy_spectrum_error=log_spectrum_error(es, ref.energy_spectrum),
        pdf_hellinger=hellinger(pdf, ref.pdf, edges),
        tail_ratio=tail_probability(w, sigma) / tail_ref,
        enstrophy_spectrum=zs.tolist(),
        energy_spectrum=es.tolist(),
        pdf=pdf.tolist(),
    )


def coeff_range_of(env_kwargs) -> Tuple[Tuple[float, float], ...]:
    """The coefficient ranges (one pair per coefficient) an env with these kwargs maps its
    actions onto."""
    kw = dict(env_kwargs)
    return coeff_ranges(kw.get("closure", "smagorinsky"), kw.get("coeff_range"))


def actor_forward(module) -> Callable[[torch.Tensor], torch.Tensor]:
    """obs [N, d] → action-distribution inputs [N, 2]. For RLlib's default PPO module (separate
    actor and critic encoders) only the actor's encoder and π head run: ``forward_inference``
    also runs the critic's encoder, which a deterministic evaluation does not use (half of the
    policy's cost in the 20-unit evaluations). Any other module: ``forward_inference``."""
    encoder = getattr(getattr(module, "encoder", None), "actor_encoder", None)
    pi = getattr(module, "pi", None)
    if encoder is None or pi is None:
        return lambda obs: module.forward_inference({"obs": obs})["action_dist_inputs"]
    from ray.rllib.core.models.base import ENCODER_OUT

    return lambda obs: pi(encoder({"obs": obs})[ENCODER_OUT])


def plain_actor(module) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """obs [N, d] → action-distribution inputs [N, 2m] through the actor's own torch layers,
    taken once out of RLlib's default PPO module (``TorchMLPEncoder`` actor encoder, then the
    ``TorchMLPHead`` π head: one ``nn.Sequential`` of the same ``Linear`` and activation
    modules, so the same weights and the same numbers), without the per-call dict wrapping and
    model dispatch of RLlib's encoder and head (a decision of the 64² LES at batch 1 is a few
    dozen small torch calls, so that wrapping is a visible part of it). The head's log-std
    clamp (``clip_log_std``, RLlib's ``log_std_clip_param``) is kept, applied to the second
    half of the outputs as the head does. None for any other module (then ``actor_forward``)."""
    encoder = getattr(getattr(module, "encoder", None), "actor_encoder", None)
    pi = getattr(module, "pi", None)
    if encoder is None or pi is None:
        return None
    from ray.rllib.core.models.torch.encoder import TorchMLPEncoder
    from ray.rllib.core.models.torch.heads import TorchMLPHead

    # exact types: a subclass may override ``_forward``, which the plain layers would skip
    if type(encoder) is not TorchMLPEncoder or type(pi) is not TorchMLPHead:
        return None
    layers = torch.nn.Sequential(*encoder.net.mlp, *pi.net.mlp)
    if not pi.clip_log_std:
        return layers
    bound = float(pi.log_std_clip_param_const)

    def forward(obs: torch.Tensor) -> torch.Tensor:
        means, log_stds = torch.chunk(layers(obs), 2, dim=-1)  # as the head splits them
        return torch.cat((means, log_stds.clamp(-bound, bound)), dim=-1)

    return forward


def module_policy(
    module, coeff_range, squashed: bool = False, sample_seed: Optional[int] = None
) -> Policy:
    """Mean action of an RLlib Gaussian policy, mapped to coefficients like the env does
    (``action_to_coefficient`` onto ``coeff_range``); ``squashed``: a tanh-squashed Gaussian
    (RLlib's SAC), whose deterministic action is tanh(mean). ``sample_seed``: draw the actions
    from the policy's Gaussian instead (mean + std·ε, a numpy generator with that seed), as
    the SMARL authors' evaluation does; clipped to the action bounds by the mapping."""

    forward = plain_actor(module) or actor_forward(module)
    m = len(np.asarray(coeff_range, dtype=np.float64).reshape(-1, 2))
    rng = None if sample_seed is None else np.random.default_rng(sample_seed)

    def policy(obs: np.ndarray) -> np.ndarray:
        b, n_agents, d = obs.shape
        with torch.no_grad():
            out = forward(torch.as_tensor(obs.reshape(-1, d))).double().cpu().numpy()
        mean = out[:, :m]  # a diagonal Gaussian's inputs: the m means, then the log-stds
        if rng is not None:
            mean = mean + np.exp(out[:, m : 2 * m]) * rng.standard_normal(mean.shape)
        mean = np.tanh(mean) if squashed else mean
        coeff = action_to_coefficient(mean, coeff_range)
        return coeff.reshape(b, n_agents) if m == 1 else coeff.reshape(b, n_agents, m)

    return policy


def compare(
    ref: Reference,
    policy: Optional[Policy],
    closure: str,
    *,
    seeds: int,
    time_units: float,
    spinup: float,
    steps_per_action: int,
    agents_per_side: int,
    dt: Optional[float] = None,
    say: Callable[[str], None] = print,
) -> List[Dict[str, object]]:
    """Every baseline, the learned family's own constants and the ``policy`` (if any) on the
    same ``seeds`` LES (``rollout``'s arguments; ``dt`` the LES time step, default the
    reference's)."""
    rows = []
    runs = [(b.name, b.closure, b.coeff, None, b.family) for b in BASELINES]
    fam = families.get_family(closure)
    have = [tuple(np.atleast_1d(b.coeff)) for b in BASELINES if b.family == closure]
    for roots in fam.constants():  # the learned family's own base and best constants
        coeff = fam.coefficient(roots)
        if not any(np.allclose(coeff, c, rtol=1e-9) for c in have):
            runs.append((fam.label(roots), closure, coeff, None, closure))
    if policy is not None:
        runs.append((f"learned ({closure})", closure, None, policy, None))
    for name, cl, coeff, pol, family in runs:
        say(f"eval: {name} ({seeds} simulations x {time_units} time units)")
        r = rollout(
            ref,
            closure=cl,
            coeff=coeff,
            policy=pol,
            seeds=seeds,
            time_units=time_units,
            spinup=spinup,
            steps_per_action=steps_per_action,
            agents_per_side=agents_per_side,
            dt=dt,
        )
        rows.append(dict(r, name=name, family=family))
    dns_cost = _dns_seconds_per_time_unit(ref)
    for row in rows:
        row["cost_vs_reference"] = row["seconds_per_time_unit"] / dns_cost if dns_cost else None
    return rows


def _dns_seconds_per_time_unit(ref: Reference) -> Optional[float]:
    p = ref.provenance
    total = p["spec"]["spinup_time"] + p["spec"]["average_time"]
    return p.get("seconds", 0.0) / total if total else None


def _diverged_text(row: Dict[str, object]) -> str:
    times = [t for t in row.get("diverged_at", []) if t is not None]
    text = f"{row['diverged']}/{row['simulations']}"
    return text + (f" (t = {min(times):.2f}–{max(times):.2f})" if times else "")


def markdown_table(
    rows: List[Dict[str, object]],
    extra: Sequence[Tuple[str, Callable[[Dict[str, object]], str]]] = (),
) -> str:
    """The evaluation table; ``extra`` adds (header, row -> cell text) columns after the name."""
    head = (
        "| closure | "
        + "".join(f"{h} | " for h, _ in extra)
        + "log-enstrophy-spectrum error | log-energy-spectrum error | "
        "PDF Hellinger | P(|ω|>3σ) ratio | diverged | s per time unit | cost vs DNS |"
    )
    lines = [head, "|" + "---|" * (8 + len(extra))]
    for r in rows:
        cost = r.get("cost_vs_reference")
        lines.append(
            f"| {r['name']} | "
            + "".join(f"{fn(r)} | " for _, fn in extra)
            + f"{r['enstrophy_spectrum_error']:.3f} | "
            f"{r['energy_spectrum_error']:.3f} | {r['pdf_hellinger']:.3f} | "
            f"{r['tail_ratio']:.2f} | {_diverged_text(r)} | "
            f"{r['seconds_per_time_unit']:.2f} | "
            f"{'n/a' if cost is None else f'{cost:.3f}'} |"
        )
    return "\n".join(lines)


def paired_differences(row: Dict[str, object], base: Dict[str, object], key: str) -> List[float]:
    """Per-simulation ``key`` of ``row`` minus ``base``, evaluated on the same simulations
    (``rollout``'s ``per_simulation``, same initial conditions in the same order), over the
    simulations that survived in both: the lists hold survivors only, so they are matched by
    their ``simulation`` indices (zipping them paired the wrong simulations once one diverged).
    Rows without indices (files written before they were recorded) pair only when neither
    lost a simulation; otherwise a ValueError."""
    a, b = row["per_simulation"], base["per_simulation"]
    if "simulation" in a and "simulation" in b:
        where = {sim: i for i, sim in enumerate(b["simulation"])}
        return [a[key][i] - b[key][where[s]] for i, s in enumerate(a["simulation"]) if s in where]
    if row.get("diverged") or base.get("diverged") or len(a[key]) != len(b[key]):
        raise ValueError(
            "paired_differences: a row lost simulations and records no simulation indices "
            "(written before they were recorded): rerun it to pair it"
        )
    return [x - y for x, y in zip(a[key], b[key])]


def cross_fitted(rows: List[Dict[str, object]], family: str, folds: int = 2) -> Dict[str, object]:
    """The family's best constant chosen **held out**: the simulations split into ``folds``
    interleaved folds; each fold's per-simulation values come from the constant with the lowest
    mean per-simulation spectrum error on the other folds. Pairing against it removes the
    winner's curse of pairing against the best of a grid on the same simulations."""
    cands = [r for r in rows if r["family"] == family and not r["diverged"]]
    n = len(cands[0]["per_simulation"][_ERROR])
    out = {_ERROR: [0.0] * n, _TAILS: [0.0] * n}
    chosen = []
    for f in range(folds):
        test = [i for i in range(n) if i % folds == f]
        train = [i for i in range(n) if i % folds != f]
        best = min(
            cands, key=lambda r: statistics.fmean(r["per_simulation"][_ERROR][i] for i in train)
        )
        chosen.append(best["name"])
        for key in (_ERROR, _TAILS):
            for i in test:
                out[key][i] = best["per_simulation"][key][i]
    out["simulation"] = list(range(n))  # no candidate lost one: all n, for index pairing
    return {"name": " / ".join(chosen), "per_simulation": out}


def versus_best_constant(
    rows: List[Dict[str, object]], closure: str = "smagorinsky"
) -> Optional[str]:
    """The learned closure against the best constant row **of its own family** (``closure``)
    in this evaluation: the enstrophy-spectrum error difference paired over the simulations
    (same initial conditions), mean ± 95% Student-t half-width, and what it says (better /
    worse only when the interval excludes 0). None without a stable learned row or
    per-simulation numbers."""
    from regrl.trainers.stats import t_interval

    learned = [r for r in rows if str(r["name"]).startswith("learned") and not r["diverged"]]
    consts = [r for r in rows if r.get("family") == closure and not r["diverged"]]
    if not learned or not consts or "per_simulation" not in learned[0]:
        return None
    best = min(consts, key=lambda r: r["enstrophy_spectrum_error"])
    diffs = paired_differences(learned[0], best, "enstrophy_spectrum_error")
    mean, half = t_interval(diffs)
    if half is None:
        return None
    word = "worse" if mean - half > 0 else "better" if mean + half < 0 else "not different"
    return (
        f"learned − best constant ({best['name']}), log-enstrophy-spectrum error paired over "
        f"{len(diffs)} simulations: {mean:+.4f} ± {half:.4f} (95% t): {word}"
    )


EVAL_DEFAULTS = {"time_units": 20.0, "spinup": 2.0, "seeds": 4}


def evaluate_run(
    *, run_dir: Path, cfg, ckpt: Optional[Path], episodes: Optional[int], module=None
) -> Dict[str, object]:
    """``regrl eval`` for smarl_turb2d: baselines vs the learned closure, table + figures.
    The policy is ``module`` (a policy file's) or the checkpoint's."""
    from regrl.trainers.evaluate import load_module

    opts = dict(EVAL_DEFAULTS, **cfg.eval.kwargs)
    unknown = sorted(set(opts) - set(EVAL_DEFAULTS))
    if unknown:
        raise ValueError(
            f"eval.kwargs {unknown} unknown for smarl_turb2d; valid: {sorted(EVAL_DEFAULTS)}"
        )
    env_kw = dict(cfg.env.kwargs)
    ref = load_reference(env_kw.get("reference"))
    closure = env_kw.get("closure", "smagorinsky")
    module = module if module is not None else load_module(ckpt, "shared")
    policy = module_policy(module, coeff_range_of(env_kw))
    rows = compare(
        ref,
        policy,
        closure,
        seeds=int(episodes or opts["seeds"]),
        time_units=float(opts["time_units"]),
        spinup=float(opts["spinup"]),
        # the env's time step and decision interval (TurbulenceEnv's rule when unset)
        steps_per_action=resolve_steps_per_action(
            env_kw.get("steps_per_action"), env_kw.get("dt"), ref.provenance["spec"]
        ),
        agents_per_side=int(env_kw.get("agents_per_side", 4)),
        dt=env_kw.get("dt"),
    )
    table = markdown_table(rows)
    verdict = versus_best_constant(rows, closure)
    table = table + (f"\n\n{verdict}" if verdict else "")
    write_text_atomic(Path(run_dir) / "eval.md", table + "\n")
    step = read_iteration(ckpt) if ckpt is not None else 0
    figures = write_figures(Path(run_dir), ref, rows, step=step)
    summary = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows]
    return {
        "closures": summary,
        "table": "eval.md",
        "versus_best_constant": verdict,
        "figures": figures,
        **opts,
    }


def read_iteration(ckpt: Path) -> int:
    from regrl.trainers.checkpoint import read_state

    return int(read_state(ckpt)["iteration"])


def write_figures(run_dir: Path, ref: Reference, rows, step: int) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regrl.trainers.logging import TensorBoardLogger
    from regrl.trainers.run_files import TB_DIR

    k_max = int(np.flatnonzero(ref.enstrophy_spectrum > 1e-30).max()) + 1  # dealiasing cut
    k = np.arange(k_max)
    centres = 0.5 * (ref.pdf_edges[1:] + ref.pdf_edges[:-1]) / ref.omega_std
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, key, label in (
        (axes[0], "enstrophy_spectrum", "enstrophy"),
        (axes[1], "energy_spectrum", "energy"),
    ):
        ax.loglog(k[1:], getattr(ref, key)[1:k_max], "k-", lw=2.5, label="filtered DNS")
        for r in rows:
            if key in r:
                ax.loglog(k[1:], np.asarray(r[key])[1:k_max], label=r["name"])
        ax.set(xlabel="k", ylabel=f"{label} spectrum", title=f"{label} spectrum")
    axes[2].semilogy(centres, ref.pdf * ref.omega_std, "k-", lw=2.5, label="filtered DNS")
    for r in rows:
        if "pdf" in r:
            axes[2].semilogy(centres, np.asarray(r["pdf"]) * ref.omega_std, label=r["name"])
    axes[2].set(xlabel="ω / σ_ref", ylabel="PDF", title="vorticity PDF")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    path = run_dir / "eval_turbulence.png"
    fig.savefig(path, dpi=100)
    tb = TensorBoardLogger(run_dir / TB_DIR)
    tb.writer.add_figure("eval/spectra_and_pdf", fig, step)
    tb.close()
    plt.close(fig)
    return [str(path)]


def reference_command(args) -> int:
    """``regrl turbulence reference``: run the DNS and write the reference file."""
    from dataclasses import fields

    from regrl.envs.turbulence.reference import (
        DEFAULT_REFERENCE,
        ReferenceSpec,
        generate_reference,
        save_reference,
    )

    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(ReferenceSpec)
        if getattr(args, f.name, None) is not None
    }
    spec = ReferenceSpec(**overrides)
    out = Path(args.out) if args.out else DEFAULT_REFERENCE
    torch.set_num_threads(max(1, int(getattr(args, "threads", 1))))
    print(f"turbulence reference: {spec}")
    data = generate_reference(spec, device=args.device, progress=lambda m: print(m, flush=True))
    save_reference(out, data)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0
