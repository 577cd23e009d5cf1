"""KL terms: sample estimators k1/k2/k3 (Schulman, "Approximating KL divergence", 2020; verl), exact categorical/Gaussian KL, and the demonstration-regularised KL to a BC policy (Tiapkin et al., ICLR 2024, arXiv 2310.17303)."""

from __future__ import annotations

import math
from typing import Tuple, Union

import torch
import torch.nn.functional as F

from regrl.agents.objectives._registry import OBJECTIVES

KL_KINDS = ("k1", "k2", "k3", "low_var_kl", "mse", "kl")
_ALIASES = {"low_var_kl": "k3", "mse": "k2", "kl": "k1"}
_K3_INNER_CLAMP = 20.0
_K3_OUTPUT_CLAMP = 10.0

DistParams = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


@OBJECTIVES.register(
    "kl_penalty", "per-element KL estimators k1, k2, k3 (low_var_kl) between sampled log-probs"
)
def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-element KL(π ‖ π_ref) estimator at sampled actions (Schulman 2020 blog; verl ``kl_penalty``).

    With ``log r = ref_logp - logp`` and samples drawn from π:
    ``"k1"`` (alias ``"kl"``): ``logp - ref_logp`` (unbiased, high variance);
    ``"k2"`` (alias ``"mse"``): ``½ (logp - ref_logp)²``;
    ``"k3"`` (alias ``"low_var_kl"``): ``exp(log r) - log r - 1`` with log r clamped to ±20 and
    the result clamped to [-10, 10] (unbiased and non-negative before the clamp).

    Args:
        logp, ref_logp: log-probabilities of the same sampled actions, same shape [...].

    Returns:
        [...] per-element estimate.
    """
    if kind not in KL_KINDS:
        raise ValueError(f"unknown KL kind {kind!r}; valid: {', '.join(KL_KINDS)}")
    if logp.shape != ref_logp.shape:
        raise ValueError(
            f"logp and ref_logp must have the same shape, got {tuple(logp.shape)} and {tuple(ref_logp.shape)}"
        )
    kind = _ALIASES.get(kind, kind)
    if kind == "k1":
        return logp - ref_logp
    if kind == "k2":
        return 0.5 * (logp - ref_logp).square()
    log_r = torch.clamp(ref_logp - logp, -_K3_INNER_CLAMP, _K3_INNER_CLAMP)
    k3 = torch.exp(log_r) - log_r - 1.0
    return torch.clamp(k3, -_K3_OUTPUT_CLAMP, _K3_OUTPUT_CLAMP)


@OBJECTIVES.register(
    "categorical_kl", "exact KL(p || q) between categorical distributions given by logits"
)
def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(p ‖ q) = Σ_a p(a) (log p(a) − log q(a)) for categoricals given by logits.

    Computed with ``log_softmax`` for stability; terms with p(a) = 0 (logit −inf) contribute 0
    (0·log 0 = 0), with finite gradients. KL is +inf where q(a) = 0 < p(a).

    Args:
        logits_p, logits_q: [..., A] unnormalised logits (broadcastable).

    Returns:
        [...] KL per row.
    """
    if logits_p.dim() == 0 or logits_q.dim() == 0:
        raise ValueError("categorical_kl needs logits with a last (action) dimension")
    if logits_p.shape[-1] != logits_q.shape[-1]:
        raise ValueError(f"action dims differ: {logits_p.shape[-1]} vs {logits_q.shape[-1]}")
    log_p = F.log_softmax(logits_p, dim=-1)
    log_q = F.log_softmax(logits_q, dim=-1)
    p = log_p.exp()
    support = p > 0
    # Mask the difference before multiplying so -inf - -inf (NaN) never reaches the product or its gradient.
    diff = torch.where(support, log_p - log_q, torch.zeros_like(log_p))
    return (p * diff).sum(-1)


@OBJECTIVES.register(
    "gaussian_kl", "exact KL(p || q) between diagonal Gaussians, summed over action dims"
)
def gaussian_kl(
    mu_p: torch.Tensor, log_std_p: torch.Tensor, mu_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """Exact KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)) for diagonal Gaussians.

    Per dimension: ``log σ_q − log σ_p + (σ_p² + (μ_p − μ_q)²) / (2 σ_q²) − ½``, summed over
    the last (action) dimension.

    Args:
        mu_p, log_std_p, mu_q, log_std_q: [..., D] (broadcastable).

    Returns:
        [...] KL per row.
    """
    if mu_p.dim() == 0:
        raise ValueError("gaussian_kl needs tensors with a last (action) dimension")
    var_ratio = torch.exp(2.0 * (log_std_p - log_std_q))
    mean_term = (mu_p - mu_q).square() * torch.exp(-2.0 * log_std_q)
    per_dim = (log_std_q - log_std_p) + 0.5 * (var_ratio + mean_term) - 0.5
    return per_dim.sum(-1)


def _split_gaussian(params: DistParams, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
    if isinstance(params, (tuple, list)):
        if len(params) != 2:
            raise ValueError(
                f"{name}: a Gaussian tuple must be (mean, log_std), got {len(params)} items"
            )
        return params[0], params[1]
    if params.dim() == 0 or params.shape[-1] % 2:
        raise ValueError(
            f"{name}: RLlib diag-Gaussian params need an even last dim [..., 2D], got {tuple(params.shape)}"
        )
    mean, log_std = params.chunk(2, dim=-1)
    return mean, log_std


@OBJECTIVES.register(
    "smooth_logits", "log((1 - lam) softmax(logits) + lam / A): a categorical mixed with uniform"
)
def smooth_logits(logits: torch.Tensor, lam: float) -> torch.Tensor:
    """Log-probs of ``(1 − λ)·π + λ·uniform`` for π = softmax(logits) over the last axis.

    The regularised behaviour cloning of Tiapkin et al. (arXiv 2310.17303, §4: BC with a
    log-regulariser keeps every action's probability ≥ λ/A), so KL(π_θ ‖ π_BC) stays finite
    even where π_BC has (numerically) zero mass. λ = 0 returns ``log_softmax(logits)``.

    Args:
        logits: [..., A]; lam: mixing weight in [0, 1].

    Returns:
        [..., A] normalised log-probabilities.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    log_p = F.log_softmax(logits, dim=-1)
    if lam == 0.0:
        return log_p
    log_u = torch.full_like(log_p, -math.log(logits.shape[-1]))
    return torch.logaddexp(log_p + math.log1p(-lam), log_u + math.log(lam)) if lam < 1.0 else log_u


@OBJECTIVES.register(
    "demo_kl", "demonstration-regularised KL(pi_theta || pi_BC) per state (Tiapkin et al. 2023)"
)
def demo_kl(
    policy_dist_params: DistParams, bc_dist_params: DistParams, *, dist: str = "categorical"
) -> torch.Tensor:
    """Per-state KL(π_θ(·|s) ‖ π_BC(·|s)) of demonstration-regularised RL.

    Tiapkin et al., ICLR 2024, arXiv 2310.17303: solve
    ``max_π V^π − λ · E_π Σ_h KL(π_h(·|s_h) ‖ π^BC_h(·|s_h))``; this returns the KL term per
    row, to be scaled by λ and averaged by the caller. π_BC is a fixed prior: its parameters
    are detached.

    Args:
        policy_dist_params, bc_dist_params: for ``dist="categorical"``, logits [..., A]; for
            ``dist="gaussian"``, RLlib's diag-Gaussian layout [..., 2D] = concat(mean, log_std)
            or a tuple (mean [..., D], log_std [..., D]).

    Returns:
        [...] KL per row.
    """
    if dist == "categorical":
        if isinstance(policy_dist_params, (tuple, list)) or isinstance(
            bc_dist_params, (tuple, list)
        ):
            raise ValueError("categorical demo_kl takes logit tensors, not tuples")
        return categorical_kl(policy_dist_params, bc_dist_params.detach())
    if dist == "gaussian":
        mu_p, log_std_p = _split_gaussian(policy_dist_params, "policy_dist_params")
        mu_q, log_std_q = _split_gaussian(bc_dist_params, "bc_dist_params")
        return gaussian_kl(mu_p, log_std_p, mu_q.detach(), log_std_q.detach())
    raise ValueError(f"unknown dist {dist!r}; valid: categorical, gaussian")
