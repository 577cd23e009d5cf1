"""Objective terms the learner sums: adapters from a batch context to ``agents.objectives``.

Each term has a frozen params dataclass (the YAML keys next to ``name``) and a function
``term(ctx, params) -> (loss, metrics)``. Terms hold no math of their own: they call the
pure functions of :mod:`agents.objectives`, where the papers and equations are cited.
This module imports torch and agents only (no ray) so configs validate without Ray.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Literal, Optional, Tuple

import torch

from agents import objectives as obj
from agents.registry import Registry
from trainers.checks import require as _check

Metrics = Dict[str, torch.Tensor]
TERMS = Registry("objective term")


@dataclass
class LossContext:
    """Everything a term may read, as flat ``[N]`` tensors over valid and padded steps."""

    dist_inputs: torch.Tensor          # [N, A] logits or [N, 2D] mean|log_std of pi_theta
    old_dist_inputs: torch.Tensor      # same, of the behaviour policy that sampled
    actions: torch.Tensor              # [N] (discrete) or [N, D]
    logp: torch.Tensor                 # [N] log pi_theta(a|s)
    old_logp: torch.Tensor             # [N] log pi_old(a|s)
    advantages: torch.Tensor           # [N]
    entropy: torch.Tensor              # [N]
    mask: torch.Tensor                 # [N] bool, False on padding / bootstrap steps
    dist: Literal["categorical", "gaussian"]
    values: Optional[torch.Tensor] = None         # [N] V(s)
    value_targets: Optional[torch.Tensor] = None  # [N]
    ref_dist_inputs: Optional[torch.Tensor] = None  # frozen BC / reference policy
    candidate_advantages: Optional[torch.Tensor] = None  # [N, G] per-candidate (RIFT)
    candidate_valid: Optional[torch.Tensor] = None       # [N, G] bool, valid (state, candidate)

    def masked_mean(self, x: torch.Tensor) -> torch.Tensor:
        m = self.mask.to(x.dtype)
        return (x * m).sum() / m.sum().clamp_min(1.0)


@dataclass(frozen=True)
class TermInfo:
    fn: Callable[[LossContext, Any], Tuple[torch.Tensor, Metrics]]
    params_cls: type
    is_surrogate: bool = False
    needs_reference: bool = False
    needs_candidates: bool = False
    """Reads per-candidate advantages (needs ``advantages.estimator: candidates``)."""


def term(name: str, description: str, params_cls: type, **flags: bool):
    def deco(fn):
        TERMS.register(name, description)(TermInfo(fn, params_cls, **flags))
        return fn
    return deco


# ------------------------------------------------------------------------------ policy
@dataclass(frozen=True)
class PolicyParams:
    clip_low: float = 0.2
    """Lower clip epsilon: ratio >= 1 - clip_low."""
    clip_high: float = 0.2
    """Upper clip epsilon (DAPO clip-higher when > clip_low)."""
    dual_clip: Optional[float] = None
    """Dual-clip constant c > 1 (Ye et al. 2019; RIFT uses 3); null disables."""
    agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "token-mean"
    """Loss aggregation mode."""

    def __post_init__(self) -> None:
        _check(0 < self.clip_low < 1, f"clip_low must be in (0, 1), got {self.clip_low}")
        _check(self.clip_high > 0, f"clip_high must be > 0, got {self.clip_high}")
        _check(self.dual_clip is None or self.dual_clip > 1,
               f"dual_clip must be > 1 (or null), got {self.dual_clip}")


@term("policy", "PPO clipped surrogate with clip-higher and dual-clip", PolicyParams,
      is_surrogate=True)
def policy_term(ctx: LossContext, p: PolicyParams) -> Tuple[torch.Tensor, Metrics]:
    loss, m = obj.policy_loss(ctx.logp, ctx.old_logp, ctx.advantages, ctx.mask,
                              clip_low=p.clip_low, clip_high=p.clip_high,
                              dual_clip=p.dual_clip, agg=p.agg)
    return loss, {"policy_loss": loss.detach(), "clip_frac": m["clip_frac"],
                  "dual_clip_frac": m["dual_clip_frac"], "kl": m["approx_kl"]}


# ------------------------------------------------------------------------------ lp-reg
@dataclass(frozen=True)
class LpRegParams:
    rho: float = 0.01
    """Fraction of negative-advantage samples considered (lowest pi_theta)."""
    beta: float = 1.0
    """Weight of the k3 KL to the min-p proxy."""
    kappa: float = 0.02
    """Min-p threshold of the proxy: keep actions with p >= kappa * max p."""
    clip_low: float = 0.2
    """Lower clip epsilon of the default surrogate."""
    clip_high: float = 0.2
    """Upper clip epsilon of the default surrogate."""
    agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "token-mean"
    """Loss aggregation mode."""

    def __post_init__(self) -> None:
        _check(0 < self.rho <= 1, f"rho must be in (0, 1], got {self.rho}")
        _check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        _check(0 < self.kappa <= 1, f"kappa must be in (0, 1], got {self.kappa}")
        _check(0 < self.clip_low < 1, f"clip_low must be in (0, 1), got {self.clip_low}")
        _check(self.clip_high > 0, f"clip_high must be > 0, got {self.clip_high}")


@term("lp_reg", "Lp-Reg surrogate: protect low-probability actions (categorical heads)",
      LpRegParams, is_surrogate=True)
def lp_reg_term(ctx: LossContext, p: LpRegParams) -> Tuple[torch.Tensor, Metrics]:
    if ctx.dist != "categorical":
        raise ValueError("the lp_reg term needs a categorical (Discrete) action head")
    proxy_logp = obj.minp_proxy_logprob(ctx.old_dist_inputs.detach(), ctx.actions.long(),
                                        kappa=p.kappa)
    loss, m = obj.lp_reg_loss(ctx.logp, ctx.old_logp, proxy_logp, ctx.advantages, ctx.mask,
                              rho=p.rho, beta=p.beta, clip_low=p.clip_low,
                              clip_high=p.clip_high, agg=p.agg)
    return loss, {"policy_loss": loss.detach(), "clip_frac": m["clip_frac"],
                  "kl": m["approx_kl"], "lp_reg_token_num": m["reg_token_num"],
                  "lp_reg_kl_to_proxy": m["kl_to_proxy"]}


# ------------------------------------------------------------------------------ value
@dataclass(frozen=True)
class ValueParams:
    coeff: float = 0.5
    """Weight of the value loss."""
    clip: Optional[float] = 10.0
    """Clamp of the squared error (RLlib's vf_clip_param); null disables."""

    def __post_init__(self) -> None:
        _check(self.coeff >= 0, f"coeff must be >= 0, got {self.coeff}")
        _check(self.clip is None or self.clip > 0, "clip must be > 0 or null")


@term("value", "Squared-error value loss against GAE value targets", ValueParams)
def value_term(ctx: LossContext, p: ValueParams) -> Tuple[torch.Tensor, Metrics]:
    err = (ctx.values - ctx.value_targets) ** 2
    vf_loss = ctx.masked_mean(err if p.clip is None else err.clamp(0, p.clip))
    target = ctx.value_targets[ctx.mask]
    resid = target - ctx.values[ctx.mask]
    explained = 1 - resid.var(unbiased=False) / target.var(unbiased=False).clamp_min(1e-8)
    return p.coeff * vf_loss, {"vf_loss": vf_loss.detach(), "vf_explained_var": explained.detach()}


# ------------------------------------------------------------------------------ entropy
@dataclass(frozen=True)
class EntropyParams:
    coeff: float = 0.0
    """Entropy bonus weight (the loss adds -coeff * entropy)."""


@term("entropy", "Entropy bonus (-coeff * H[pi])", EntropyParams)
def entropy_term(ctx: LossContext, p: EntropyParams) -> Tuple[torch.Tensor, Metrics]:
    entropy = ctx.masked_mean(ctx.entropy)
    return -p.coeff * entropy, {"entropy": entropy.detach()}


# ------------------------------------------------------------------------------ demo-KL
@dataclass(frozen=True)
class DemoKLParams:
    coeff: float = 0.1
    """lambda of the KL-regularised objective (Tiapkin et al. 2024)."""
    checkpoint: Optional[str] = None
    """RLModule checkpoint (or regrl run dir) of the behaviour-cloned policy; null = the
    initial weights of this run, i.e. a frozen reference policy."""

    def __post_init__(self) -> None:
        _check(self.coeff >= 0, f"coeff must be >= 0, got {self.coeff}")


@term("demo_kl", "KL(pi_theta || pi_BC) to a frozen behaviour-cloned/reference policy",
      DemoKLParams, needs_reference=True)
def demo_kl_term(ctx: LossContext, p: DemoKLParams) -> Tuple[torch.Tensor, Metrics]:
    kl = ctx.masked_mean(obj.demo_kl(ctx.dist_inputs, ctx.ref_dist_inputs, dist=ctx.dist))
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
        _check(0 < self.clip < 1, f"clip must be in (0, 1), got {self.clip}")
        _check(self.dual_clip is None or self.dual_clip > 1,
               f"dual_clip must be > 1 (or null), got {self.dual_clip}")
        _check(self.kl_coeff >= 0, f"kl_coeff must be >= 0, got {self.kl_coeff}")

    @property
    def needs_reference(self) -> bool:
        return self.kl_coeff > 0


def _masked_log_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    # invalid candidates carry -1e8 logits; zero their log-probs so ratios stay finite
    logp = torch.log_softmax(logits, dim=-1)
    return torch.where(valid, logp, torch.zeros_like(logp))


@term("candidate_policy", "RIFT: dual-clip surrogate over all candidates of each state "
      "(+ optional KL to the frozen scorer: GRPO / demo-KL baselines)", CandidatePolicyParams,
      is_surrogate=True, needs_reference=True, needs_candidates=True)
def candidate_policy_term(ctx: LossContext, p: CandidatePolicyParams) -> Tuple[torch.Tensor, Metrics]:
    """RIFT's loss (Chen et al., arXiv 2505.03344; methods.md §1.4): the policy is the
    categorical over the G candidates; every valid candidate g of every state contributes
    ``obj_g = min(A_g rho_g, A_g clip(rho_g, 1-eps, 1+eps))``, and for A_g < 0
    ``max(obj_g, c A_g)``; loss = -mean over valid (s, g) — ``policy_loss`` on [N, G]."""
    if ctx.candidate_advantages is None or ctx.candidate_valid is None:
        raise ValueError("candidate_policy needs per-candidate advantages in the batch "
                         "(an environment in candidate action mode)")
    valid = ctx.candidate_valid.bool()
    logp = _masked_log_softmax(ctx.dist_inputs, valid)
    old_logp = _masked_log_softmax(ctx.old_dist_inputs.detach(), valid)
    loss, m = obj.policy_loss(logp, old_logp, ctx.candidate_advantages, valid,
                              clip_low=p.clip, clip_high=p.clip, dual_clip=p.dual_clip)
    metrics = {"policy_loss": loss.detach(), "clip_frac": m["clip_frac"],
               "dual_clip_frac": m["dual_clip_frac"], "kl": m["approx_kl"]}
    if p.kl_coeff > 0:
        kl = _candidate_kl(ctx, p.kl, valid)
        loss = loss + p.kl_coeff * kl
        metrics["candidate_kl"] = kl.detach()
    return loss, metrics


def _candidate_kl(ctx: LossContext, kind: str, valid: torch.Tensor) -> torch.Tensor:
    ref = ctx.ref_dist_inputs.detach()
    rows = valid.any(-1)
    if kind == "demo":  # per-state KL(pi_theta || pi_BC), averaged over states
        kl = obj.demo_kl(ctx.dist_inputs, ref, dist="categorical")
        return (kl * rows).sum() / rows.sum().clamp_min(1)
    # per-entry pi_ref (log pi_ref - log pi_theta) summed over g is KL(pi_ref || pi_theta)
    kl = obj.categorical_kl(ref, ctx.dist_inputs)
    return (kl * rows).sum() / valid.sum().clamp_min(1)


def total_loss(ctx: LossContext, terms) -> Tuple[torch.Tensor, Metrics]:
    """Sum the configured terms; metrics of all terms plus ``total_loss``."""
    total = torch.zeros((), dtype=ctx.logp.dtype, device=ctx.logp.device)
    metrics: Metrics = {}
    for spec in terms:
        loss, m = TERMS.get(spec.name).fn(ctx, spec.params)
        total = total + loss
        metrics.update(m)
    metrics["total_loss"] = total.detach()
    return total, metrics
