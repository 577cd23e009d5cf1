"""Lp-Reg, low-probability regularisation (Huang et al., "Low-probability Tokens Sustain Exploration in RLVR", arXiv 2510.03222): the min-p proxy and the selective KL-to-proxy loss."""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from regrl.agents.objectives._registry import OBJECTIVES
from regrl.agents.objectives.kl import kl_penalty
from regrl.agents.objectives.policy import (
    AGG_MODES,
    _as_mask,
    _broadcast_advantages,
    _check_clip,
    _clipped_surrogate,
    _masked_mean,
    aggregate,
)

FILTERED_LOGIT = -1e4  # the official code's hard min-p fill value


@OBJECTIVES.register(
    "minp_proxy_logprob", "Lp-Reg min-p proxy log-prob of the taken action (kappa * max p filter)"
)
def minp_proxy_logprob(
    logits: torch.Tensor, actions: torch.Tensor, *, kappa: float = 0.02, temperature: float = 1.0
) -> torch.Tensor:
    """log π_proxy(action) of Lp-Reg's min-p proxy (arXiv 2510.03222, §3.1; ``compute_minp_log_prob``).

    In the official order: filter the raw logits z first, keeping action o iff
    z(o) ≥ max z + log κ (π(o) ≥ κ · max π at temperature 1), set the others to −1e4, then
    divide by the temperature, renormalise with ``log_softmax`` and gather the taken action.
    Filtering after the temperature would keep z(o) ≥ max z + T·log κ instead (identical at
    T = 1, more tokens kept at T < 1). A filtered ("noise") action gets a very negative but
    finite value; a kept action gets π_proxy ≥ π_T. The proxy is a fixed target: detached.

    Args:
        logits: [..., V] raw (temperature-1) logits of the behaviour (old) policy.
        actions: [...] long indices of the taken actions.
        kappa: min-p threshold in (0, 1]; the Lp-Reg recipe uses 0.02.
        temperature: the rollout temperature > 0 applied after the filter.

    Returns:
        [...] proxy log-probabilities.
    """
    if not 0.0 < kappa <= 1.0:
        raise ValueError(f"kappa must be in (0, 1], got {kappa}")
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if logits.dim() == 0 or actions.shape != logits.shape[:-1]:
        raise ValueError(
            f"actions must be shaped like logits[..., 0]: logits {tuple(logits.shape)}, actions {tuple(actions.shape)}"
        )
    if actions.is_floating_point() or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor, got {actions.dtype}")
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= logits.shape[-1]):
        raise ValueError(f"actions must lie in [0, {logits.shape[-1]})")
    logits = logits.detach()
    threshold = logits.max(dim=-1, keepdim=True).values + math.log(kappa)
    filtered = torch.where(logits >= threshold, logits, torch.full_like(logits, FILTERED_LOGIT))
    log_proxy = F.log_softmax(filtered / temperature, dim=-1)
    return log_proxy.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def _select_regularised(
    logp: torch.Tensor, proxy_logp: torch.Tensor, A: torch.Tensor, valid: torch.Tensor, rho: float
) -> torch.Tensor:
    """Boolean mask of the tokens Lp-Reg regularises (docs/methods.md#lp-reg-loss, "Selection").

    Among valid tokens with A < 0 (n_neg of them), the k = max(1, int(n_neg·rho)) with the
    lowest (detached) logp are candidates; a candidate is regularised iff logp < proxy_logp.
    """
    negative = valid & (A < 0)
    n_neg = int(negative.sum().item())
    selected = torch.zeros_like(negative)
    if n_neg == 0:
        return selected
    k = max(1, int(n_neg * rho))
    inf = torch.full_like(logp, math.inf)
    candidates = (
        torch.where(negative, logp.detach(), inf).reshape(-1).topk(k, largest=False).indices
    )
    selected.view(-1)[candidates] = True
    return selected & (logp.detach() < proxy_logp)


@OBJECTIVES.register(
    "lp_reg_loss", "Lp-Reg: clipped PG plus k3 KL-to-min-p-proxy on the lowest-prob negative tokens"
)
def lp_reg_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    proxy_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: Optional[torch.Tensor],
    *,
    rho: float = 0.01,
    beta: float = 1.0,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token-mean",
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Lp-Reg policy loss (arXiv 2510.03222, §3.2; official ``compute_policy_loss_lp_reg``).

    Default tokens: ``max(−A·ratio, −A·clip(ratio, 1 − clip_low, 1 + clip_high))`` (no dual clip).
    Regularised tokens (see below) instead get the unclipped term plus a KL to the proxy:
    ``−A·ratio + beta · k3(logp, proxy_logp)``, k3 = exp(proxy − logp) − (proxy − logp) − 1
    (:func:`kl_penalty` ``"k3"``), whose gradient raises π_θ toward π_proxy.

    Selection, per call (the official code does it per micro-batch): among valid tokens with
    A < 0, n_neg = their count; the k = max(1, int(n_neg·rho)) with the lowest logp (detached,
    ``topk(largest=False)``) are candidates; those with logp < proxy_logp are regularised, so
    min-p "noise" tokens (proxy ≈ −1e4) never are. The official code applies this only when
    k > 1 (tiny batches get no Lp-Reg); this contract applies it for every k ≥ 1.

    Two properties of the official loss, kept here: a regularised token loses the lower clip
    (with A < 0 its −A·ratio keeps pushing π down below 1 − clip_low), and k3 is clamped to
    [−10, 10], so its pull toward the proxy is exactly zero once π_proxy/π > ≈ 13.6
    (r − log r − 1 = 10). Unlike the official code, log(ratio) is clamped to ±20 as in verl's
    vanilla loss: the two differ only where |log π_θ − log π_old| > 20 in one update.

    Args:
        logp, old_logp, proxy_logp: [B] or [B, T] log-probs of the sampled tokens under π_θ,
            π_old and the min-p proxy (:func:`minp_proxy_logprob`; treated as a constant).
        advantages: shaped like ``logp`` or [B] (broadcast over T).
        mask: shaped like ``logp`` (bool or float), None = all ones.
        rho: fraction in (0, 1] of negative tokens that are candidates (recipe: 0.01).
        beta: KL coefficient ≥ 0 (recipe ``ppo_kl_coef`` = 1).
        agg: see :func:`regrl.agents.objectives.policy.aggregate`.

    Returns:
        (loss, metrics): detached 0-d ``reg_token_num``, ``reg_token_frac`` (over valid tokens),
        ``clip_frac``, ``approx_kl`` (masked mean of −log ratio), ``kl_to_proxy`` (mean k3 over
        regularised tokens, 0 if none).
    """
    _check_lp_reg_args(rho, beta, clip_low, clip_high, agg, logp, proxy_logp)
    A = _broadcast_advantages(advantages, logp)
    M = _as_mask(mask, logp)
    proxy_logp = proxy_logp.detach()
    log_ratio, ratio, pg_loss1, pg_loss2 = _clipped_surrogate(
        logp, old_logp, A, clip_low, clip_high
    )
    regularised = _select_regularised(logp, proxy_logp, A, M > 0, rho)
    k3 = kl_penalty(logp, proxy_logp, "k3")
    pg_losses = torch.where(regularised, pg_loss1 + beta * k3, torch.maximum(pg_loss1, pg_loss2))
    loss = aggregate(pg_losses, M, agg)
    reg = regularised.to(logp.dtype)
    reg_num = reg.sum()
    metrics = {
        "reg_token_num": reg_num.detach(),
        "reg_token_frac": (reg_num / (M > 0).sum().clamp_min(1)).detach(),
        "clip_frac": _masked_mean((pg_loss2 > pg_loss1).to(logp.dtype), M).detach(),
        "approx_kl": _masked_mean(-log_ratio, M).detach(),
        "kl_to_proxy": ((k3 * reg).sum() / reg_num.clamp_min(1.0)).detach(),
    }
    return loss, metrics


def _check_lp_reg_args(rho, beta, clip_low, clip_high, agg, logp, proxy_logp) -> None:
    if not 0.0 < rho <= 1.0:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    if not beta >= 0.0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    _check_clip(clip_low, clip_high)
    if agg not in AGG_MODES:
        raise ValueError(f"unknown agg {agg!r}; valid: {', '.join(AGG_MODES)}")
    if proxy_logp.shape != logp.shape:
        raise ValueError(
            f"proxy_logp must be shaped like logp {tuple(logp.shape)}, got {tuple(proxy_logp.shape)}"
        )
