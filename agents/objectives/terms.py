"""One objective-term layer for every backend: a term is written once against a
:class:`TermContext` with a token axis and declares what it needs by flags.

A term is ``fn(ctx, params) -> (loss, metrics)`` plus a frozen params dataclass (the YAML keys
next to ``name`` in ``objective.terms``). Terms hold no math of their own: they call the pure
functions of :mod:`regrl.agents.objectives`, where the papers and equations are cited. The RLlib
learner (a simulator step is a length-1 sequence, T = 1) and the RLVR learner (T tokens of a
completion) only build the context; neither looks at a term's name. Torch only, no ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Literal, Optional, Tuple

import torch

from regrl.agents import objectives as obj
from regrl.agents.registry import Registry

Metrics = Dict[str, torch.Tensor]
Agg = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]
TERMS = Registry("objective term")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class TermContext:
    """One (micro-)batch of B sequences of T steps; a simulator step is a sequence of length 1.

    Optional fields are filled by the backend only when a configured term's flag asks for them.
    """

    logp: torch.Tensor  # [B, T] log pi_theta(a_t) (at the rollout temperature)
    old_logp: torch.Tensor  # [B, T] behaviour log-prob pi_old(a_t), from the batch
    advantages: torch.Tensor  # [B] (broadcast over T) or [B, T]
    mask: torch.Tensor  # [B, T] bool, False on padding / bootstrap steps
    entropy: torch.Tensor  # [B, T] entropy of pi_theta
    dist_inputs: torch.Tensor  # [B, T, A] logits (/ temperature) or [B, T, 2D] mean|log_std
    actions: torch.Tensor  # [B, T] (discrete) or [B, T, D]
    dist: Literal["categorical", "gaussian"] = "categorical"
    old_dist_inputs: Optional[torch.Tensor] = None  # [B, T, ...] of pi_old (candidate_policy)
    proxy_logp: Optional[torch.Tensor] = None  # [B, T] Lp-Reg min-p proxy of pi_old
    values: Optional[torch.Tensor] = None  # [B, T] V(s)
    value_targets: Optional[torch.Tensor] = None  # [B, T]
    reference: Dict[Optional[str], torch.Tensor] = field(default_factory=dict)
    """Dist inputs [B, T, ...] of frozen policies by checkpoint; key None = this run's initial
    weights."""
    candidate_advantages: Optional[torch.Tensor] = None  # [B, T, G] per-candidate (RIFT)
    candidate_valid: Optional[torch.Tensor] = None  # [B, T, G] bool
    term_state: Dict[str, float] = field(default_factory=dict)
    """Controller state of stateful terms (``adaptive_entropy``'s coefficient), kept by the
    backend across optimizer steps and checkpoints; terms read it, :func:`update_state` writes
    it after each optimizer step."""

    def ref_logp(self, key: Optional[str]) -> torch.Tensor:
        """[B, T] log-prob of the taken actions under the frozen policy ``key``."""
        return _logp_of(self.reference[key], self.actions, self.dist).detach()


def _logp_of(dist_inputs: torch.Tensor, actions: torch.Tensor, dist: str) -> torch.Tensor:
    if dist == "categorical":
        logp = torch.log_softmax(dist_inputs.float(), -1)
        return logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).to(dist_inputs.dtype)
    mean, log_std = dist_inputs.chunk(2, dim=-1)
    normal = torch.distributions.Normal(mean, log_std.exp())
    return normal.log_prob(actions).sum(-1)


@dataclass(frozen=True)
class TermInfo:
    """A registered term and what it needs from the backend (flags, never names)."""

    fn: Callable[[TermContext, Any], Tuple[torch.Tensor, Metrics]]
    params_cls: type
    is_surrogate: bool = False
    """A policy surrogate (policy, lp_reg, candidate_policy): a config lists at most one."""
    needs_values: bool = False
    """Reads ``values`` / ``value_targets`` (a critic; simulator backends only)."""
    needs_discrete: bool = False
    """Needs a categorical head (Discrete actions, or tokens)."""
    needs_proxy: bool = False
    """Reads ``proxy_logp``; the params carry ``kappa``."""
    needs_reference: bool = False
    """Reads ``reference[key]`` for the keys :func:`reference_keys` returns."""
    needs_candidates: bool = False
    """Reads per-candidate advantages (needs ``advantages.estimator: candidates``)."""
    update: Optional[Callable[[Any, Dict[str, float], Dict[str, float]], None]] = None
    """``update(params, state, minibatch_metrics)`` after each optimizer step: a stateful
    term's controller (the backend persists ``state``)."""


def term(name: str, description: str, params_cls: type, update=None, **flags: bool):
    def deco(fn):
        TERMS.register(name, description)(TermInfo(fn, params_cls, update=update, **flags))
        return fn

    return deco


def update_state(terms, state: Dict[str, float], metrics: Dict[str, Any]) -> None:
    """Run the controllers of the configured stateful terms on one optimizer step's
    mini-batch ``metrics`` (floats or 0-d tensors, the terms' own metric names)."""
    plain = {k: float(v) for k, v in metrics.items()}
    for spec in terms:
        hook = info(spec).update
        if hook is not None:
            hook(spec.params, state, plain)


def info(spec) -> TermInfo:
    """The registry entry of a configured term (``spec.name``)."""
    return TERMS.get(spec.name)


def reference_keys(terms) -> Tuple[Optional[str], ...]:
    """Checkpoints of the frozen policies the configured terms read (None = initial weights);
    a term's params may switch its reference off (``uses_reference``)."""
    keys = []
    for spec in terms:
        if not info(spec).needs_reference:
            continue
        declared = getattr(spec.params, "reference_checkpoints", None)
        if declared is None:
            on = getattr(spec.params, "uses_reference", True)
            declared = (getattr(spec.params, "checkpoint", None) or None,) if on else ()
        keys += [key for key in declared if key not in keys]
    return tuple(keys)


def proxy_kappa(terms) -> Optional[float]:
    """kappa of the term that reads the min-p proxy (None when no term does)."""
    return next((s.params.kappa for s in terms if info(s).needs_proxy), None)


def needs(terms, flag: str) -> bool:
    """Whether any configured term sets ``flag``."""
    return any(getattr(info(s), flag) for s in terms)


def term_agg(spec) -> str:
    """Aggregation of a configured term: its ``agg`` parameter, else ``token-mean``."""
    return getattr(spec.params, "agg", "token-mean")


def total_loss(
    ctx: TermContext, terms, weight: Optional[Callable[[Any], float]] = None
) -> Tuple[torch.Tensor, Metrics]:
    """Sum the configured terms; metrics of all terms plus ``total_loss``.

    ``weight(spec)``, when given, is the micro-batch's share of a term's normaliser in the
    mini-batch; the term's loss and metrics are scaled by it, so shares add up to the
    mini-batch values (the RLVR learner's micro-batching)."""
    total = torch.zeros((), dtype=ctx.logp.dtype, device=ctx.logp.device)
    metrics: Metrics = {}
    for spec in terms:
        loss, m = info(spec).fn(ctx, spec.params)
        if weight is not None:
            w = weight(spec)
            loss, m = loss * w, {k: v * w for k, v in m.items()}
        total = total + loss
        metrics.update(m)
    metrics["total_loss"] = total.detach()
    return total, metrics


def _clip_checks(clip_low: float, clip_high: float) -> None:
    _require(
        clip_low > 0, f"clip_low must be > 0 (>= 1 switches the lower clip off), got {clip_low}"
    )
    _require(clip_high > 0, f"clip_high must be > 0, got {clip_high}")


def _clip_sides(
    ctx: TermContext, clip_low: float, clip_high: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fractions of valid tokens clipped at 1 - eps_low (A < 0) and 1 + eps_high (A > 0),
    i.e. where the clipped term is active (verl's pg_clipfrac split by side)."""
    ratio = torch.exp((ctx.logp - ctx.old_logp).detach().clamp(-20, 20))
    A = obj.policy._broadcast_advantages(ctx.advantages, ratio)
    m = ctx.mask.to(ratio.dtype)
    n = m.sum().clamp_min(1.0)
    low = ((ratio < 1 - clip_low) & (A < 0)).to(ratio.dtype)
    high = ((ratio > 1 + clip_high) & (A > 0)).to(ratio.dtype)
    return (low * m).sum() / n, (high * m).sum() / n


def _surrogate_metrics(
    ctx: TermContext, loss: torch.Tensor, m: Metrics, clip_low: float, clip_high: float
) -> Metrics:
    """What every clipped surrogate term logs: its loss, clip fractions (both sides) and KL."""
    low, high = _clip_sides(ctx, clip_low, clip_high)
    return {
        "policy_loss": loss.detach(),
        "clip_frac": m["clip_frac"],
        "clip_frac_low": low,
        "clip_frac_high": high,
        "approx_kl": m["approx_kl"],
    }


# ------------------------------------------------------------------------------ policy
@dataclass(frozen=True)
class PolicyParams:
    clip_low: float = 0.2
    """epsilon_low: ratio >= 1 - clip_low; >= 1 switches the lower clip off."""
    clip_high: float = 0.2
    """epsilon_high (DAPO clip-higher when > clip_low; the RLVR configs use 0.28)."""
    dual_clip: Optional[float] = None
    """Dual-clip constant c > 1 for negative advantages (Ye et al. 2019; RIFT: 3); null disables."""
    agg: Agg = "token-mean"
    """Loss aggregation mode (verl's loss_agg_mode)."""

    def __post_init__(self) -> None:
        _clip_checks(self.clip_low, self.clip_high)
        _require(
            self.dual_clip is None or self.dual_clip > 1,
            f"dual_clip must be > 1 (or null), got {self.dual_clip}",
        )


@term(
    "policy", "PPO/GRPO clipped surrogate: clip-higher, dual-clip", PolicyParams, is_surrogate=True
)
def policy_term(ctx: TermContext, p: PolicyParams) -> Tuple[torch.Tensor, Metrics]:
    loss, m = obj.policy_loss(
        ctx.logp,
        ctx.old_logp,
        ctx.advantages,
        ctx.mask,
        clip_low=p.clip_low,
        clip_high=p.clip_high,
        dual_clip=p.dual_clip,
        agg=p.agg,
    )
    metrics = _surrogate_metrics(ctx, loss, m, p.clip_low, p.clip_high)
    return loss, {**metrics, "dual_clip_frac": m["dual_clip_frac"]}


# ------------------------------------------------------------------------------ lp-reg
@dataclass(frozen=True)
class LpRegParams:
    rho: float = 0.01
    """Fraction of negative-advantage tokens that are candidates (lowest current pi_theta)."""
    beta: float = 1.0
    """Weight of the k3 KL to the min-p proxy (recipe ppo_kl_coef = 1)."""
    kappa: float = 0.02
    """Min-p threshold of the proxy: keep actions with pi_old >= kappa * max pi_old."""
    clip_low: float = 0.2
    """epsilon_low of the default tokens; the official recipe uses 1.0 (no lower clip)."""
    clip_high: float = 0.2
    """epsilon_high of the default tokens; the official recipe uses 9.0 (ratio <= 10)."""
    agg: Agg = "token-mean"
    """Loss aggregation mode."""

    def __post_init__(self) -> None:
        _require(0 < self.rho <= 1, f"rho must be in (0, 1], got {self.rho}")
        _require(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        _require(0 < self.kappa <= 1, f"kappa must be in (0, 1], got {self.kappa}")
        _clip_checks(self.clip_low, self.clip_high)


@term(
    "lp_reg",
    "Lp-Reg surrogate: k3 KL to the min-p proxy on the lowest-prob negative tokens",
    LpRegParams,
    is_surrogate=True,
    needs_discrete=True,
    needs_proxy=True,
)
def lp_reg_term(ctx: TermContext, p: LpRegParams) -> Tuple[torch.Tensor, Metrics]:
    """Lp-Reg (arXiv 2510.03222 §3.2, :func:`regrl.agents.objectives.lp_reg_loss`). Selected tokens
    lose the lower clip, and their k3 pull toward the proxy is exactly 0 once
    pi_proxy / pi > ~13.6 (the official [-10, 10] clamp of k3 binds)."""
    loss, m = obj.lp_reg_loss(
        ctx.logp,
        ctx.old_logp,
        ctx.proxy_logp,
        ctx.advantages,
        ctx.mask,
        rho=p.rho,
        beta=p.beta,
        clip_low=p.clip_low,
        clip_high=p.clip_high,
        agg=p.agg,
    )
    return loss, {
        **_surrogate_metrics(ctx, loss, m, p.clip_low, p.clip_high),
        "lp_reg_token_num": m["reg_token_num"],
        "lp_reg_token_frac": m["reg_token_frac"],
        "kl_to_proxy": m["kl_to_proxy"],
    }


# ------------------------------------------------------------------------------ value
@dataclass(frozen=True)
class ValueParams:
    coeff: float = 0.5
    """Weight of the value loss."""
    clip: Optional[float] = 10.0
    """Clamp of the squared error (RLlib's vf_clip_param); null disables."""

    def __post_init__(self) -> None:
        _require(self.coeff >= 0, f"coeff must be >= 0, got {self.coeff}")
        _require(self.clip is None or self.clip > 0, "clip must be > 0 or null")


@term(
    "value",
    "Squared-error value loss against GAE value targets (needs a critic)",
    ValueParams,
    needs_values=True,
)
def value_term(ctx: TermContext, p: ValueParams) -> Tuple[torch.Tensor, Metrics]:
    err = (ctx.values - ctx.value_targets) ** 2
    vf_loss = obj.aggregate(err if p.clip is None else err.clamp(0, p.clip), ctx.mask, "token-mean")
    target = ctx.value_targets[ctx.mask]
    resid = target - ctx.values[ctx.mask]
    explained = 1 - resid.var(unbiased=False) / target.var(unbiased=False).clamp_min(1e-8)
    return p.coeff * vf_loss, {"vf_loss": vf_loss.detach(), "vf_explained_var": explained.detach()}


# ------------------------------------------------------------------------------ entropy
@dataclass(frozen=True)
class EntropyParams:
    coeff: float = 0.0
    """Entropy bonus weight: the loss adds -coeff * H[pi_theta]."""
    agg: Agg = "token-mean"
    """Aggregation of the per-step entropies."""


@term("entropy", "Entropy bonus -coeff * H[pi_theta]", EntropyParams)
def entropy_term(ctx: TermContext, p: EntropyParams) -> Tuple[torch.Tensor, Metrics]:
    entropy = obj.aggregate(ctx.entropy, ctx.mask, p.agg)
    return -p.coeff * entropy, {"entropy_bonus": (p.coeff * entropy).detach()}


@dataclass(frozen=True)
class AdaptiveEntropyParams:
    """Skywork-OR1 adaptive entropy control (He et al. 2025, arXiv:2505.22312, §3.2.2)."""

    target: float = 0.2
    """Target entropy (nats per step/token; Skywork-OR1's tgt-ent = 0.2)."""
    init_coeff: float = 0.0
    """alpha_0 (Skywork-OR1 starts at 0: no bonus until the entropy falls below the target)."""
    delta: float = 0.005
    """Controller step Delta per optimizer step (Skywork-OR1: 0.005)."""
    max_coeff: float = 0.05
    """Upper bound on alpha (ours: bounds the bonus if the target is never reached)."""
    agg: Agg = "token-mean"
    """Aggregation of the per-step entropies."""

    def __post_init__(self) -> None:
        _require(self.target > 0, "adaptive_entropy: target must be > 0")
        _require(self.delta > 0, "adaptive_entropy: delta must be > 0")
        _require(
            0 <= self.init_coeff <= self.max_coeff,
            "adaptive_entropy: need 0 <= init_coeff <= max_coeff",
        )


ADAPTIVE_COEFF_KEY = "adaptive_entropy/coeff"


def adaptive_entropy_coeff(state: Dict[str, float], p: AdaptiveEntropyParams) -> float:
    """The controller's current alpha_k (alpha_0 before the first update)."""
    return float(state.get(ADAPTIVE_COEFF_KEY, p.init_coeff))


def adaptive_entropy_step(alpha: float, entropy: float, p: AdaptiveEntropyParams) -> float:
    """alpha_{k+1} = clip(alpha_k + Delta * sign(target - H_k), 0, max_coeff): up while the
    entropy is below the target, down while above (Skywork-OR1 §3.2.2)."""
    step = p.delta if entropy < p.target else -p.delta if entropy > p.target else 0.0
    return min(max(alpha + step, 0.0), p.max_coeff)


def _adaptive_entropy_update(
    p: AdaptiveEntropyParams, state: Dict[str, float], metrics: Dict[str, float]
) -> None:
    alpha = adaptive_entropy_coeff(state, p)
    state[ADAPTIVE_COEFF_KEY] = adaptive_entropy_step(alpha, metrics["adaptive_entropy"], p)


@term(
    "adaptive_entropy",
    "Skywork-OR1 adaptive entropy control: -alpha_k * 1[H <= target] * H, alpha_k tracks a "
    "target entropy",
    AdaptiveEntropyParams,
    update=_adaptive_entropy_update,
)
def adaptive_entropy_term(
    ctx: TermContext, p: AdaptiveEntropyParams
) -> Tuple[torch.Tensor, Metrics]:
    """Loss -alpha_k * 1[H_k <= target] * H_k, where H_k is this batch's aggregated entropy:
    the bonus acts only while the entropy is at or below the target, so it can hold entropy up
    but never pushes it past the target (TRL's ``use_adaptive_entropy`` gates the same way)."""
    entropy = obj.aggregate(ctx.entropy, ctx.mask, p.agg)
    alpha = adaptive_entropy_coeff(ctx.term_state, p)
    gate = float(entropy.detach() <= p.target)
    value = torch.as_tensor(alpha, dtype=entropy.dtype, device=entropy.device)
    return -alpha * gate * entropy, {
        "adaptive_entropy": entropy.detach(),
        "adaptive_entropy_coeff": value,
        "adaptive_entropy_bonus": (alpha * gate * entropy).detach(),
    }


# ------------------------------------------------------------------------------ KL terms
_K3_NOTE = (
    "k3 at actions sampled from pi_theta, differentiated through log pi_theta only, "
    "has the gradient of the forward KL(pi_ref || pi_theta), not of KL(pi_theta || pi_ref)"
)


@dataclass(frozen=True)
class KLParams:
    coeff: float = 0.001
    """Weight of the KL to this run's frozen initial policy (verl kl_loss_coef)."""
    estimator: Literal["k1", "k2", "k3", "full"] = "k3"
    """``k1``/``k2``/``k3`` sample estimators at the taken actions (k3 = verl low_var_kl; its
    gradient is the forward KL's, see :data:`_K3_NOTE`); ``full``: the exact
    KL(pi_theta || pi_ref) over the action distribution."""

    def __post_init__(self) -> None:
        _require(self.coeff >= 0, f"coeff must be >= 0, got {self.coeff}")


@term(
    "kl",
    "KL(pi_theta || pi_ref) to this run's frozen initial policy (k1/k2/k3 or full)",
    KLParams,
    needs_reference=True,
)
def kl_term(ctx: TermContext, p: KLParams) -> Tuple[torch.Tensor, Metrics]:
    if p.estimator == "full":
        per_step = obj.demo_kl(
            _dist_params(ctx, ctx.dist_inputs),
            _dist_params(ctx, ctx.reference[None]),
            dist=ctx.dist,
        )
    else:
        per_step = obj.kl_penalty(ctx.logp, ctx.ref_logp(None), p.estimator)
    kl = obj.aggregate(per_step, ctx.mask, "token-mean")
    return p.coeff * kl, {"kl_ref": kl.detach()}


def _dist_params(ctx: TermContext, x: torch.Tensor) -> torch.Tensor:
    return x.float() if ctx.dist == "categorical" else x


@dataclass(frozen=True)
class DemoKLParams:
    coeff: float = 0.1
    """lambda of the demonstration-regularised objective (Tiapkin et al., arXiv 2310.17303)."""
    checkpoint: str = ""
    """The behaviour-cloned policy pi_BC: a regrl run directory or checkpoint (for RLVR an SFT
    run or HF model dir). For a KL to this run's initial weights use the ``kl`` term."""
    estimator: Literal["full", "k3"] = "full"
    """``full`` (default): the exact KL(pi_theta || pi_BC) per state, the paper's direction;
    ``k3``: sampled-action estimate whose gradient is the forward KL(pi_BC || pi_theta)'s."""
    smoothing: float = 0.0
    """Regularised BC (the paper's log-regulariser, as smoothing): pi_BC is replaced by
    (1 - smoothing) pi_BC + smoothing * uniform, so KL(pi_theta || pi_BC) stays finite
    (categorical heads only)."""

    def __post_init__(self) -> None:
        _require(self.coeff >= 0, f"coeff must be >= 0, got {self.coeff}")
        _require(
            bool(self.checkpoint),
            "demo_kl needs checkpoint: the behaviour-cloned policy "
            "(an RLVR SFT run: configs/sft_arith.yaml); for a KL to the initial weights "
            "use the kl term",
        )
        _require(0 <= self.smoothing < 1, f"smoothing must be in [0, 1), got {self.smoothing}")


@term(
    "demo_kl",
    "lambda * KL(pi_theta || pi_BC) to a frozen behaviour-cloned policy (Tiapkin et al. 2024)",
    DemoKLParams,
    needs_reference=True,
)
def demo_kl_term(ctx: TermContext, p: DemoKLParams) -> Tuple[torch.Tensor, Metrics]:
    bc = ctx.reference[p.checkpoint]
    if p.smoothing > 0:
        _require(ctx.dist == "categorical", "demo_kl smoothing needs a categorical head")
        bc = obj.smooth_logits(bc.float(), p.smoothing)
    if p.estimator == "full":
        per_step = obj.demo_kl(
            _dist_params(ctx, ctx.dist_inputs), _dist_params(ctx, bc), dist=ctx.dist
        )
    else:
        per_step = obj.kl_penalty(ctx.logp, _logp_of(bc, ctx.actions, ctx.dist).detach(), "k3")
    kl = obj.aggregate(per_step, ctx.mask, "token-mean")
    return p.coeff * kl, {"demo_kl": kl.detach()}


# ------------------------------------------------------------------------- candidate policy
@dataclass(frozen=True)
class CandidatePolicyParams:
    clip: float = 0.2
    """Clip epsilon of the ratio of every candidate (RIFT: 0.2)."""
    dual_clip: Optional[float] = 3.0
    """Dual-clip constant c > 1 on negative-advantage candidates (RIFT: 3); null disables
    (the GRPO baseline)."""
    kl_coeff: float = 0.0
    """Weight of the KL to the frozen reference scorer (RIFT: 0; GRPO baseline: 0.2)."""
    kl: Literal["reference", "demo"] = "reference"
    """``reference``: RIFT repo's GRPO baseline, mean over valid (s, g) of
    pi_ref(g) (log pi_ref(g) - log pi_theta(g)) (torch ``kl_div`` per entry);
    ``demo``: Tiapkin et al. 2024, mean over states of KL(pi_theta || pi_BC)."""
    checkpoint: Optional[str] = None
    """RLModule checkpoint (or run dir) of the reference / behaviour-cloned scorer; null =
    this run's initial weights, i.e. the stage-1 (imitation) planner."""

    def __post_init__(self) -> None:
        _require(0 < self.clip < 1, f"clip must be in (0, 1), got {self.clip}")
        _require(
            self.dual_clip is None or self.dual_clip > 1,
            f"dual_clip must be > 1 (or null), got {self.dual_clip}",
        )
        _require(self.kl_coeff >= 0, f"kl_coeff must be >= 0, got {self.kl_coeff}")

    @property
    def uses_reference(self) -> bool:
        """Whether the KL term is on (the loss reads the reference scorer)."""
        return self.kl_coeff > 0

    @property
    def reference_checkpoints(self) -> Tuple[Optional[str], ...]:
        """Frozen scorers the learner keeps: always the initial weights (None, the stage-1 IL
        scorer), whose ``kl_to_il`` every arm logs, plus ``checkpoint`` when the KL term is on."""
        extra = (self.checkpoint,) if self.uses_reference and self.checkpoint else ()
        return (None,) + extra


def _masked_log_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # invalid candidates carry -1e8 logits; zero their log-probs so ratios stay finite
    logp = torch.log_softmax(logits, dim=-1)
    return torch.where(valid, logp, torch.zeros_like(logp))


@term(
    "candidate_policy",
    "RIFT: dual-clip surrogate over all candidates of each state "
    "(+ optional KL to the frozen scorer: GRPO / demo-KL baselines)",
    CandidatePolicyParams,
    is_surrogate=True,
    needs_discrete=True,
    needs_reference=True,
    needs_candidates=True,
)
def candidate_policy_term(
    ctx: TermContext, p: CandidatePolicyParams
) -> Tuple[torch.Tensor, Metrics]:
    """RIFT's loss (Chen et al., arXiv 2505.03344; docs/methods.md#rift-loss): the policy is the
    categorical over the G candidates; every valid candidate g of every state contributes
    ``obj_g = min(A_g rho_g, A_g clip(rho_g, 1-eps, 1+eps))``, and for A_g < 0
    ``max(obj_g, c A_g)``; loss = -mean over valid (s, g) — ``policy_loss`` on [N, G].
    Unlike RIFT's trainer, log(rho_g) is clamped to +-20 (verl's guard), so the two differ
    only for candidates whose probability moved by a factor > e^20 in one update.

    Also logs ``top1_best``, the share of states (with unequal advantages) whose highest-scoring
    valid candidate has the largest advantage, i.e. the best RIFT return: how often the greedy
    policy already makes the choice the surrogate's optimum makes (docs/rift.md, "Can the
    scoring head learn RIFT's ranking?"); and ``kl_to_il``, the mean over states of KL(pi_theta || pi_IL) over the valid
    candidates, pi_IL = the frozen initial (stage-1 imitation) scorer: how far fine-tuning has
    moved the policy (0 before the first update), whatever the loss."""
    _require(
        ctx.candidate_advantages is not None and ctx.candidate_valid is not None,
        "candidate_policy needs per-candidate advantages in the batch "
        "(an environment in candidate action mode)",
    )
    G = ctx.dist_inputs.shape[-1]
    logits, old = ctx.dist_inputs.reshape(-1, G), ctx.old_dist_inputs.reshape(-1, G)
    valid = ctx.candidate_valid.reshape(-1, G).bool()
    logp, old_logp = _masked_log_softmax(logits, valid), _masked_log_softmax(old.detach(), valid)
    loss, m = obj.policy_loss(
        logp,
        old_logp,
        ctx.candidate_advantages.reshape(-1, G),
        valid,
        clip_low=p.clip,
        clip_high=p.clip,
        dual_clip=p.dual_clip,
    )
    metrics = {
        "policy_loss": loss.detach(),
        "clip_frac": m["clip_frac"],
        "dual_clip_frac": m["dual_clip_frac"],
        "approx_kl": m["approx_kl"],
        "neg_ratio_max": _neg_ratio_max(logp, old_logp, ctx.candidate_advantages, valid),
        "top1_best": _top1_best(logits.detach(), ctx.candidate_advantages.reshape(-1, G), valid),
    }
    if p.kl_coeff > 0:
        kl = _candidate_kl(logits, ctx.reference[p.checkpoint].reshape(-1, G).detach(), p.kl, valid)
        loss = loss + p.kl_coeff * kl
        metrics["candidate_kl"] = kl.detach()
    if None in ctx.reference:  # the IL scorer (initial weights); absent only in bare contexts
        il = ctx.reference[None].reshape(-1, G).detach()
        metrics["kl_to_il"] = _candidate_kl(logits.detach(), il, "demo", valid)
    return loss, metrics


def _neg_ratio_max(logp, old_logp, advantages, valid) -> torch.Tensor:
    """Largest ratio pi_theta / pi_old among valid negative-advantage candidates (the dual
    clip binds where it exceeds c; logged with or without the dual clip), 0 if there are none."""
    negative = valid & (advantages.reshape(valid.shape) < 0)
    ratio = torch.exp((logp - old_logp).detach().clamp(-20.0, 20.0))
    return torch.where(negative, ratio, torch.zeros_like(ratio)).max()


TOP1_TIE = 1e-6
"""Advantages within this of the group's largest count as a best candidate (normalised
advantages of tied returns differ by round-off only)."""


def _top1_best(logits, advantages, valid) -> torch.Tensor:
    """Share of states whose argmax-logit valid candidate has the largest valid advantage,
    over the states whose valid advantages are not all equal (a group with nothing to rank
    counts for neither); 0 if there are none."""
    adv = advantages.reshape(valid.shape)
    lo = torch.full_like(adv, -torch.inf)
    best = torch.where(valid, adv, lo).amax(-1)
    worst = torch.where(valid, adv, -lo).amin(-1)
    ranked = valid.any(-1) & (best - worst > TOP1_TIE)
    pick = torch.where(valid, logits, torch.full_like(logits, -torch.inf)).argmax(-1)
    hit = adv.gather(-1, pick[:, None]).squeeze(-1) >= best - TOP1_TIE
    return (hit & ranked).sum().to(adv.dtype) / ranked.sum().clamp_min(1).to(adv.dtype)


def _candidate_kl(
    logits: torch.Tensor, ref: torch.Tensor, kind: str, valid: torch.Tensor
) -> torch.Tensor:
    rows = valid.any(-1)
    if kind == "demo":  # per-state KL(pi_theta || pi_BC), averaged over states
        kl = obj.demo_kl(logits, ref, dist="categorical")
        return (kl * rows).sum() / rows.sum().clamp_min(1)
    # per-entry pi_ref (log pi_ref - log pi_theta) summed over g is KL(pi_ref || pi_theta)
    kl = obj.categorical_kl(ref, logits)
    return (kl * rows).sum() / valid.sum().clamp_min(1)
