"""The RLlib side of the one term layer: a batch of simulator steps as a
:class:`regrl.agents.objectives.terms.TermContext` whose sequences have length one.

The terms themselves live in :mod:`regrl.agents.objectives.terms` (shared with the RLVR learner);
this module only reshapes ``[N]`` step tensors to ``[N, 1]`` and computes what the configured
terms' flags ask for. It imports torch and agents only (no ray) so configs validate without Ray.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from regrl.agents import objectives as obj
from regrl.agents.objectives.terms import (
    TERMS,
    CandidatePolicyParams,
    DemoKLParams,
    EntropyParams,
    KLParams,
    LpRegParams,
    PolicyParams,
    TermContext,
    TermInfo,
    ValueParams,
    total_loss,
)

__all__ = [
    "TERMS",
    "TermInfo",
    "TermContext",
    "step_context",
    "total_loss",
    "PolicyParams",
    "LpRegParams",
    "ValueParams",
    "EntropyParams",
    "KLParams",
    "DemoKLParams",
    "CandidatePolicyParams",
]


def _steps(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """[N, ...] -> [N, 1, ...]: every step is a sequence of length one."""
    return None if x is None else x.unsqueeze(1)


def step_context(
    *,
    dist_inputs: torch.Tensor,
    old_dist_inputs: torch.Tensor,
    actions: torch.Tensor,
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    mask: torch.Tensor,
    dist: str,
    proxy_kappa: Optional[float] = None,
    values: Optional[torch.Tensor] = None,
    value_targets: Optional[torch.Tensor] = None,
    reference: Optional[Dict[Optional[str], torch.Tensor]] = None,
    candidate_advantages: Optional[torch.Tensor] = None,
    candidate_valid: Optional[torch.Tensor] = None,
    term_state: Optional[Dict[str, float]] = None,
) -> TermContext:
    """The term context of N simulator steps (all tensors [N, ...]; ``reference`` maps a
    checkpoint key to the frozen policy's [N, ...] dist inputs). With ``proxy_kappa`` the
    Lp-Reg min-p proxy is computed from the behaviour logits, as the RLVR rollout does."""
    proxy = None
    if proxy_kappa is not None:
        if dist != "categorical":
            raise ValueError("the lp_reg term needs a categorical (Discrete) action head")
        proxy = obj.minp_proxy_logprob(old_dist_inputs.detach(), actions.long(), kappa=proxy_kappa)
    return TermContext(
        logp=_steps(logp),
        old_logp=_steps(old_logp),
        advantages=advantages,
        mask=_steps(mask.bool()),
        entropy=_steps(entropy),
        dist_inputs=_steps(dist_inputs),
        actions=_steps(actions),
        dist=dist,
        old_dist_inputs=_steps(old_dist_inputs),
        proxy_logp=_steps(proxy),
        values=_steps(values),
        value_targets=_steps(value_targets),
        reference={k: _steps(v) for k, v in (reference or {}).items()},
        candidate_advantages=_steps(candidate_advantages),
        candidate_valid=_steps(candidate_valid),
        term_state=term_state if term_state is not None else {},
    )
