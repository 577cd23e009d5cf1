"""Advantage estimators: GRPO group-relative advantages (DeepSeekMath, arXiv 2402.03300; Dr.GRPO, arXiv 2503.20783) and GAE (Schulman et al., arXiv 1506.02438)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from regrl.agents.objectives._registry import OBJECTIVES

_STD_MODES = ("unbiased", "population", None)


def _group_sums(x: torch.Tensor, inverse: torch.Tensor, n_groups: int) -> torch.Tensor:
    return torch.zeros(n_groups, dtype=x.dtype, device=x.device).index_add_(0, inverse, x)


def _group_extreme(
    x: torch.Tensor, inverse: torch.Tensor, n_groups: int, reduce: str
) -> torch.Tensor:
    init = torch.zeros(n_groups, dtype=x.dtype, device=x.device)
    return init.scatter_reduce(0, inverse, x, reduce=reduce, include_self=False)


@OBJECTIVES.register(
    "group_advantages", "GRPO / Dr.GRPO group-relative advantage (r - mean_g) / (std_g + eps)"
)
def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    eps: float = 1e-6,
    std: Optional[str] = "unbiased",
) -> torch.Tensor:
    """Group-relative advantage of GRPO (Shao et al., DeepSeekMath, arXiv 2402.03300, §4.1.2).

    ``A_i = (r_i - mean_g(r)) / (std_g(r) + eps)`` over the samples i that share group g.

    Args:
        rewards: [N] float, one scalar reward per sample.
        group_ids: [N] integer group label per sample; any integers, not necessarily contiguous.
        eps: added to the std (verl uses 1e-6, RIFT 1e-5, TRL 1e-4).
        std: ``"unbiased"`` (n-1, verl / OpenRLHF ``torch.std``), ``"population"`` (n, RIFT's
            ``np.std``) or ``None`` (Dr.GRPO, Liu et al. arXiv 2503.20783: ``r - mean_g`` only).

    Returns:
        [N] advantages. A group whose rewards are all equal (including a group of one) gets
        exactly 0.0, never NaN. verl instead gives a group of one r / (1 + eps) (its mean 0 and
        std 1 convention for singletons); we choose 0 because a lone sample has no group
        baseline, so GRPO has no signal for it (with ``group_size: 1`` nothing is learned).
    """
    if std not in _STD_MODES:
        raise ValueError(f"std must be one of {_STD_MODES}, got {std!r}")
    if rewards.dim() != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            f"rewards and group_ids must both be [N]; got {tuple(rewards.shape)} and {tuple(group_ids.shape)}"
        )
    if group_ids.is_floating_point() or group_ids.is_complex():
        raise ValueError(f"group_ids must be an integer tensor, got {group_ids.dtype}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    labels, inverse = torch.unique(group_ids, return_inverse=True)
    n_groups = labels.numel()
    count = _group_sums(torch.ones_like(rewards), inverse, n_groups)
    mean = _group_sums(rewards, inverse, n_groups) / count
    centred = rewards - mean[inverse]
    # Float round-off can leave r - mean ~ 1e-17 in a constant group; pin those to exactly 0.
    constant = _group_extreme(rewards, inverse, n_groups, "amax") == _group_extreme(
        rewards, inverse, n_groups, "amin"
    )
    centred = torch.where(constant[inverse], torch.zeros_like(centred), centred)
    if std is None:
        return centred
    sq_sum = _group_sums(centred.square(), inverse, n_groups)
    dof = (count - 1.0).clamp_min(1.0) if std == "unbiased" else count
    denom = (sq_sum / dof).sqrt() + eps
    denom = torch.where(constant, torch.ones_like(denom), denom)  # 0 / 1, not 0 / 0, when eps = 0
    return centred / denom[inverse]


def _check_gae_inputs(tensors: dict, gamma: float, lam: float) -> None:
    shape = tensors["rewards"].shape
    if len(shape) not in (1, 2):
        raise ValueError(
            f"gae inputs must be [T] or [B, T] (time last), got rewards of shape {tuple(shape)}"
        )
    if shape[-1] == 0:
        raise ValueError("gae needs at least one time step")
    for name, t in tensors.items():
        if t.shape != shape:
            raise ValueError(
                f"gae: {name} has shape {tuple(t.shape)}, expected {tuple(shape)} like rewards"
            )
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise ValueError(f"gae needs gamma and lam in [0, 1], got gamma={gamma}, lam={lam}")


@OBJECTIVES.register(
    "gae", "generalised advantage estimation with separate terminations and truncations"
)
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminateds: torch.Tensor,
    truncateds: torch.Tensor,
    *,
    gamma: float,
    lam: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., arXiv 1506.02438, eq. 16).

    ``delta_t = r_t + gamma * (1 - term_t) * V(s_{t+1}) - V(s_t)``
    ``A_t = delta_t + gamma * lam * (1 - term_t) * (1 - trunc_t) * A_{t+1}``

    A termination zeroes the bootstrap; a truncation still bootstraps from ``next_values[t]``
    (the value of the final observation) but stops the lambda-chain, since step t+1 belongs
    to a new episode.

    Args:
        rewards, values, next_values, terminateds, truncateds: all [T] or [B, T], time last.
            ``next_values[t]`` is V(s_{t+1}) for transition t; the flags are bool or 0/1.

    Returns:
        (advantages, returns), both shaped like ``rewards``; ``returns = advantages + values``.
        Gradients flow into ``values``/``next_values`` if they require grad; detach them first
        for the usual fixed-target use.
    """
    _check_gae_inputs(
        dict(
            rewards=rewards,
            values=values,
            next_values=next_values,
            terminateds=terminateds,
            truncateds=truncateds,
        ),
        gamma,
        lam,
    )
    not_term = 1.0 - terminateds.to(rewards.dtype)
    not_trunc = 1.0 - truncateds.to(rewards.dtype)
    delta = rewards + gamma * not_term * next_values - values
    carry = gamma * lam * not_term * not_trunc
    adv = _reverse_recursion(delta, carry)
    return adv, adv + values


def _reverse_recursion(delta: torch.Tensor, carry: torch.Tensor) -> torch.Tensor:
    """``A_t = delta_t + carry_t * A_{t+1}`` along the last axis.

    The recursion is sequential in t; per-step torch ops cost ~10 us each, so on the CPU
    without autograd it runs in numpy (``benchmarks/bench_objectives.py`` measures both).
    """
    if delta.device.type != "cpu" or delta.requires_grad or carry.requires_grad:
        steps, last = [], torch.zeros_like(delta[..., 0])
        for t in range(delta.shape[-1] - 1, -1, -1):
            last = delta[..., t] + carry[..., t] * last
            steps.append(last)
        return torch.stack(steps[::-1], dim=-1)
    d, c = delta.numpy(), carry.numpy()
    if d.ndim == 2 and d.shape[0] == 1:
        return _reverse_recursion(delta[0], carry[0]).unsqueeze(0)
    out = np.empty_like(d)
    if d.ndim == 1:  # python floats beat numpy scalars for a single long row
        last, dl, cl, acc = 0.0, d.tolist(), c.tolist(), [0.0] * d.shape[0]
        for t in range(d.shape[0] - 1, -1, -1):
            last = dl[t] + cl[t] * last
            acc[t] = last
        out[:] = acc
    else:
        last = np.zeros(d.shape[:-1], dtype=d.dtype)
        for t in range(d.shape[-1] - 1, -1, -1):
            last = d[..., t] + c[..., t] * last
            out[..., t] = last
    return torch.from_numpy(out)
