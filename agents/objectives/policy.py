"""Clipped policy-gradient losses: PPO (Schulman et al., arXiv 1707.06347) with DAPO clip-higher (arXiv 2503.14476), dual-clip (Ye et al., arXiv 1912.09729; RIFT's loss) and verl's loss aggregation modes."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from regrl.agents.objectives._registry import OBJECTIVES

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")
LOG_RATIO_CLAMP = 20.0  # verl clamps log(ratio) to +-20 so exp() stays finite


def _as_mask(mask: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """A float {0,1} (or weight) mask shaped like ``like``; None means every element counts."""
    if mask is None:
        return torch.ones_like(like)
    if mask.shape != like.shape:
        raise ValueError(
            f"mask must have the shape of the loss {tuple(like.shape)}, got {tuple(mask.shape)}"
        )
    return mask.to(like.dtype)


def _broadcast_advantages(advantages: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """Advantages shaped like ``logp``: [B] is broadcast over T when ``logp`` is [B, T]."""
    if logp.dim() not in (1, 2):
        raise ValueError(f"logp must be [B] or [B, T], got shape {tuple(logp.shape)}")
    if advantages.shape == logp.shape:
        return advantages
    if logp.dim() == 2 and advantages.shape == logp.shape[:1]:
        return advantages.unsqueeze(-1).expand_as(logp)
    raise ValueError(
        f"advantages must be [B] or shaped like logp {tuple(logp.shape)}, got {tuple(advantages.shape)}"
    )


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def _check_clip(clip_low: float, clip_high: float) -> None:
    # clip_low >= 1 is allowed: 1 - clip_low <= 0 < ratio, i.e. no lower clip (Lp-Reg's recipe: 1.0)
    if not clip_low > 0.0:
        raise ValueError(f"clip_low must be > 0, got {clip_low}")
    if not clip_high > 0.0:
        raise ValueError(f"clip_high must be > 0, got {clip_high}")


def _clipped_surrogate(logp, old_logp, A, clip_low, clip_high):
    """The PPO terms (log_ratio, ratio, pg_loss1, pg_loss2) of verl's ``compute_policy_loss_vanilla``."""
    if old_logp.shape != logp.shape:
        raise ValueError(
            f"old_logp must be shaped like logp {tuple(logp.shape)}, got {tuple(old_logp.shape)}"
        )
    log_ratio = torch.clamp(logp - old_logp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    pg_loss1 = -A * ratio
    pg_loss2 = -A * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    return log_ratio, ratio, pg_loss1, pg_loss2


@OBJECTIVES.register(
    "aggregate",
    "reduce a [B] or [B, T] loss matrix: token-mean, seq-mean-token-mean, seq-mean-token-sum",
)
def aggregate(loss_mat: torch.Tensor, mask: Optional[torch.Tensor], agg: str) -> torch.Tensor:
    """Reduce per-element losses to a scalar, as verl's ``agg_loss`` (``loss_agg_mode``).

    Args:
        loss_mat: [B] or [B, T] per-element losses L.
        mask: same shape as ``loss_mat`` (bool or float M), or None for all ones.
        agg: ``"token-mean"``: Σ(L·M) / max(ΣM, 1) (verl default, DAPO);
            ``"seq-mean-token-mean"``: mean over the B sequences of Σ_t L·M / max(Σ_t M, 1)
            (original GRPO); ``"seq-mean-token-sum"``: mean over the B sequences of Σ_t L·M
            (Dr.GRPO-like). A [B] input is B sequences of length one. Every sequence counts in
            the outer mean, fully masked ones included.

    Returns:
        0-d loss; 0 (with finite zero gradients) when the mask is all zeros.
    """
    if agg not in AGG_MODES:
        raise ValueError(f"unknown agg {agg!r}; valid: {', '.join(AGG_MODES)}")
    if loss_mat.dim() not in (1, 2):
        raise ValueError(f"loss_mat must be [B] or [B, T], got shape {tuple(loss_mat.shape)}")
    M = _as_mask(mask, loss_mat)
    if agg == "token-mean":
        return _masked_mean(loss_mat, M)
    L2, M2 = (loss_mat.unsqueeze(-1), M.unsqueeze(-1)) if loss_mat.dim() == 1 else (loss_mat, M)
    seq_sum = (L2 * M2).sum(-1)
    if agg == "seq-mean-token-mean":
        seq_sum = seq_sum / M2.sum(-1).clamp_min(1.0)
    return seq_sum.sum() / max(seq_sum.shape[0], 1)


@OBJECTIVES.register(
    "policy_loss",
    "PPO clipped surrogate with clip-higher and optional dual clip (verl vanilla / RIFT)",
)
def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: Optional[torch.Tensor] = None,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: Optional[float] = None,
    agg: str = "token-mean",
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """PPO clipped surrogate (Schulman et al., arXiv 1707.06347, eq. 7) as in verl's ``vanilla`` loss.

    ``ratio = exp(clamp(logp - old_logp, -20, 20))``, ``pg_loss1 = -A·ratio``,
    ``pg_loss2 = -A·clip(ratio, 1 - clip_low, 1 + clip_high)`` (asymmetric = DAPO clip-higher,
    arXiv 2503.14476; ``clip_low >= 1`` means no lower clip), ``pg_losses = max(pg_loss1, pg_loss2)``. With ``dual_clip = c > 1``
    (Ye et al., arXiv 1912.09729, eq. 5; RIFT uses c = 3): for A < 0,
    ``pg_losses = min(pg_losses, -c·A)``, bounding the update on negative-advantage samples.

    Args:
        logp, old_logp: [B] or [B, T] log-probabilities of the taken actions/tokens.
        advantages: shaped like ``logp``, or [B] broadcast over T.
        mask: shaped like ``logp`` (bool or float); None = all ones.
        agg: see :func:`aggregate`.

    Returns:
        (loss, metrics): metrics are detached 0-d tensors ``clip_frac`` (masked mean of
        pg_loss2 > pg_loss1), ``dual_clip_frac`` (masked mean of (pg_losses > -c·A) & (A < 0))
        and ``approx_kl`` (verl's ppo_kl, masked mean of -log ratio).
    """
    _check_clip(clip_low, clip_high)
    if dual_clip is not None and not dual_clip > 1.0:
        raise ValueError(f"dual_clip must be None or > 1, got {dual_clip}")
    if agg not in AGG_MODES:
        raise ValueError(f"unknown agg {agg!r}; valid: {', '.join(AGG_MODES)}")
    A = _broadcast_advantages(advantages, logp)
    M = _as_mask(mask, logp)
    log_ratio, ratio, pg_loss1, pg_loss2 = _clipped_surrogate(
        logp, old_logp, A, clip_low, clip_high
    )
    pg_losses = torch.maximum(pg_loss1, pg_loss2)
    dual_frac = torch.zeros((), dtype=logp.dtype, device=logp.device)
    if dual_clip is not None:
        pg_loss3 = -A * dual_clip
        negative = A < 0
        dual_frac = _masked_mean(((pg_losses > pg_loss3) & negative).to(logp.dtype), M).detach()
        pg_losses = torch.where(negative, torch.minimum(pg_losses, pg_loss3), pg_losses)
    loss = aggregate(pg_losses, M, agg)
    metrics = {
        "clip_frac": _masked_mean((pg_loss2 > pg_loss1).to(logp.dtype), M).detach(),
        "dual_clip_frac": dual_frac,
        "approx_kl": _masked_mean(-log_ratio, M).detach(),
    }
    return loss, metrics
