"""Objective terms of the RLVR learner: adapters from a token batch to ``agents.objectives``.

Same style as :mod:`trainers.rllib.terms`: each term has a frozen params dataclass (its YAML
keys) and ``fn(ctx, params) -> (loss, metrics)``; the math lives in :mod:`agents.objectives`
(papers and equations are cited there). Tensors are token-shaped ``[B, T]`` so the
aggregation modes (token-mean, seq-mean-token-mean, seq-mean-token-sum) keep their meaning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Literal, Optional, Tuple

import torch

from agents import objectives as obj
from agents.registry import Registry
from trainers.checks import require as _check

Metrics = Dict[str, torch.Tensor]
Agg = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"]
RLVR_TERMS = Registry("RLVR objective term")


@dataclass
class TokenContext:
    """One micro-batch of B completions of length T (right-padded)."""

    tokens: torch.Tensor               # [B, T] sampled token ids o_t
    logp: torch.Tensor                 # [B, T] log pi_theta(o_t) at the rollout temperature
    old_logp: torch.Tensor             # [B, T] behaviour log-prob (rollout)
    advantages: torch.Tensor           # [B] GRPO advantage per completion
    mask: torch.Tensor                 # [B, T] bool, False after EOS
    entropy: torch.Tensor              # [B, T] entropy of pi_theta at each position
    logits: torch.Tensor               # [B, T, V] pi_theta logits / temperature
    proxy_logp: Optional[torch.Tensor] = None   # [B, T] Lp-Reg min-p proxy of pi_old
    ref_logp: Optional[torch.Tensor] = None     # [B, T] frozen initial (reference) policy
    demo_logits: Optional[torch.Tensor] = None  # [B, T, V] frozen SFT policy / temperature


@dataclass(frozen=True)
class TermInfo:
    fn: Callable[[TokenContext, Any], Tuple[torch.Tensor, Metrics]]
    params_cls: type
    is_surrogate: bool = False
    needs_proxy: bool = False
    needs_reference: bool = False
    needs_demo: bool = False


def term(name: str, description: str, params_cls: type, **flags: bool):
    def deco(fn):
        RLVR_TERMS.register(name, description)(TermInfo(fn, params_cls, **flags))
        return fn
    return deco


def _check_clips(clip_low: float, clip_high: float) -> None:
    _check(0 < clip_low < 1, f"clip_low must be in (0, 1), got {clip_low}")
    _check(clip_high > 0, f"clip_high must be > 0, got {clip_high}")


@dataclass(frozen=True)
class PolicyParams:
    clip_low: float = 0.2
    """epsilon_low: ratio >= 1 - clip_low."""
    clip_high: float = 0.28
    """epsilon_high (DAPO clip-higher when > clip_low)."""
    dual_clip: Optional[float] = None
    """Dual-clip constant c > 1 for negative advantages (Ye et al. 2019); null disables."""
    agg: Agg = "token-mean"
    """Loss aggregation mode."""

    def __post_init__(self) -> None:
        _check_clips(self.clip_low, self.clip_high)
        _check(self.dual_clip is None or self.dual_clip > 1,
               f"dual_clip must be > 1 (or null), got {self.dual_clip}")


@term("policy", "GRPO/PPO token surrogate: clip-higher, dual-clip", PolicyParams,
      is_surrogate=True)
def policy_term(ctx: TokenContext, p: PolicyParams) -> Tuple[torch.Tensor, Metrics]:
    loss, m = obj.policy_loss(ctx.logp, ctx.old_logp, ctx.advantages, ctx.mask,
                              clip_low=p.clip_low, clip_high=p.clip_high,
                              dual_clip=p.dual_clip, agg=p.agg)
    clip_low_frac, clip_high_frac = _clip_sides(ctx, p.clip_low, p.clip_high)
    return loss, {"policy_loss": loss.detach(), "clip_frac": m["clip_frac"],
                  "clip_frac_low": clip_low_frac, "clip_frac_high": clip_high_frac,
                  "dual_clip_frac": m["dual_clip_frac"], "approx_kl": m["approx_kl"]}


def _clip_sides(ctx: TokenContext, clip_low: float, clip_high: float):
    """Fractions of valid tokens clipped at 1 - eps_low (A < 0) and 1 + eps_high (A > 0),
    i.e. where the clipped term is active (verl's pg_clipfrac split by side)."""
    ratio = torch.exp((ctx.logp - ctx.old_logp).detach().clamp(-20, 20))
    A = ctx.advantages.unsqueeze(-1).expand_as(ratio)
    m = ctx.mask.to(ratio.dtype)
    n = m.sum().clamp_min(1.0)
    low = ((ratio < 1 - clip_low) & (A < 0)).to(ratio.dtype)
    high = ((ratio > 1 + clip_high) & (A > 0)).to(ratio.dtype)
    return (low * m).sum() / n, (high * m).sum() / n


@dataclass(frozen=True)
class LpRegParams:
    rho: float = 0.01
    """Fraction of negative-advantage tokens that are candidates (lowest pi_theta)."""
    beta: float = 1.0
    """Weight of the k3 KL to the min-p proxy."""
    kappa: float = 0.02
    """Min-p threshold of the proxy (computed by the rollout from pi_old)."""
    clip_low: float = 0.2
    """epsilon_low of the default tokens."""
    clip_high: float = 0.28
    """epsilon_high of the default tokens."""
    agg: Agg = "token-mean"
    """Loss aggregation mode."""

    def __post_init__(self) -> None:
        _check(0 < self.rho <= 1, f"rho must be in (0, 1], got {self.rho}")
        _check(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        _check(0 < self.kappa <= 1, f"kappa must be in (0, 1], got {self.kappa}")
        _check_clips(self.clip_low, self.clip_high)


@term("lp_reg", "Lp-Reg surrogate: k3 KL to the min-p proxy on the lowest-prob negative tokens",
      LpRegParams, is_surrogate=True, needs_proxy=True)
def lp_reg_term(ctx: TokenContext, p: LpRegParams) -> Tuple[torch.Tensor, Metrics]:
    loss, m = obj.lp_reg_loss(ctx.logp, ctx.old_logp, ctx.proxy_logp, ctx.advantages, ctx.mask,
                              rho=p.rho, beta=p.beta, clip_low=p.clip_low,
                              clip_high=p.clip_high, agg=p.agg)
    clip_low_frac, clip_high_frac = _clip_sides(ctx, p.clip_low, p.clip_high)
    return loss, {"policy_loss": loss.detach(), "clip_frac": m["clip_frac"],
                  "clip_frac_low": clip_low_frac, "clip_frac_high": clip_high_frac,
                  "approx_kl": m["approx_kl"], "lp_reg_token_num": m["reg_token_num"],
                  "lp_reg_token_frac": m["reg_token_frac"], "kl_to_proxy": m["kl_to_proxy"]}


@dataclass(frozen=True)
class EntropyParams:
    coeff: float = 0.0
    """Entropy bonus weight: the loss adds -coeff * H[pi_theta] (aggregated over tokens)."""
    agg: Agg = "token-mean"
    """Aggregation of the per-token entropies."""


@term("entropy", "Entropy bonus -coeff * H[pi_theta] over completion tokens", EntropyParams)
def entropy_term(ctx: TokenContext, p: EntropyParams) -> Tuple[torch.Tensor, Metrics]:
    entropy = obj.aggregate(ctx.entropy, ctx.mask, p.agg)
    return -p.coeff * entropy, {"entropy_bonus": (p.coeff * entropy).detach()}


@dataclass(frozen=True)
class KLParams:
    coeff: float = 0.001
    """Weight of the KL to the frozen initial policy (verl kl_loss_coef)."""
    kind: Literal["k1", "k2", "k3"] = "k3"
    """Sample estimator at the sampled tokens (k3 = verl low_var_kl)."""

    def __post_init__(self) -> None:
        _check(self.coeff >= 0, f"coeff must be >= 0, got {self.coeff}")


@term("kl", "KL(pi_theta || pi_ref) to the frozen initial policy, k1/k2/k3 at sampled tokens",
      KLParams, needs_reference=True)
def kl_term(ctx: TokenContext, p: KLParams) -> Tuple[torch.Tensor, Metrics]:
    kl = obj.aggregate(obj.kl_penalty(ctx.logp, ctx.ref_logp, p.kind), ctx.mask, "token-mean")
    return p.coeff * kl, {"kl_ref": kl.detach()}


@dataclass(frozen=True)
class DemoKLParams:
    coeff: float = 0.1
    """lambda of the demonstration-regularised objective (Tiapkin et al. 2024)."""
    checkpoint: str = ""
    """The SFT policy pi_BC: a regrl SFT run directory, a checkpoint or an HF model dir."""
    estimator: Literal["full", "k3"] = "full"
    """``full``: exact KL over the vocabulary per position; ``k3``: sampled-token estimate."""

    def __post_init__(self) -> None:
        _check(self.coeff >= 0, f"coeff must be >= 0, got {self.coeff}")
        _check(bool(self.checkpoint), "demo_kl needs checkpoint: the SFT run of pi_BC "
                                      "(train one with configs/sft_arith.yaml)")


@term("demo_kl", "lambda * KL(pi_theta || pi_BC) to a frozen SFT policy (Tiapkin et al. 2024)",
      DemoKLParams, needs_demo=True)
def demo_kl_term(ctx: TokenContext, p: DemoKLParams) -> Tuple[torch.Tensor, Metrics]:
    if p.estimator == "full":
        per_token = obj.demo_kl(ctx.logits, ctx.demo_logits, dist="categorical")
    else:
        demo_logp = torch.log_softmax(ctx.demo_logits.float(), -1)
        tokens_logp = demo_logp.gather(-1, ctx.tokens.long().unsqueeze(-1)).squeeze(-1)
        per_token = obj.kl_penalty(ctx.logp, tokens_logp.detach(), "k3")
    kl = obj.aggregate(per_token, ctx.mask, "token-mean")
    return p.coeff * kl, {"demo_kl": kl.detach()}


def term_agg(spec) -> str:
    """Aggregation mode of a configured term: its ``agg`` parameter, else ``token-mean``
    (kl and demo_kl average over valid tokens)."""
    return getattr(spec.params, "agg", "token-mean")


def total_loss(ctx: TokenContext, terms,
               weight: Optional[Callable[[Any], float]] = None) -> Tuple[torch.Tensor, Metrics]:
    """Sum the configured terms; metrics of all terms plus ``total_loss``.

    ``weight(spec)``, when given, is the micro-batch's share of a term's normaliser in the
    mini-batch; the term's loss and metrics are scaled by it, so shares add up to the
    mini-batch values."""
    total = torch.zeros((), dtype=ctx.logp.dtype, device=ctx.logp.device)
    metrics: Metrics = {}
    for spec in terms:
        loss, m = RLVR_TERMS.get(spec.name).fn(ctx, spec.params)
        if weight is not None:
            w = weight(spec)
            loss, m = loss * w, {k: v * w for k, v in m.items()}
        total = total + loss
        metrics.update(m)
    metrics["total_loss"] = total.detach()
    return total, metrics
