"""The RLVR side of the one term layer: a micro-batch of completions as a
:class:`regrl.agents.objectives.terms.TermContext` with a token axis [B, T].

The terms live in :mod:`regrl.agents.objectives.terms` (shared with the RLlib learner); this module
only turns the policy's logits into the context fields the configured terms ask for.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from regrl.agents.models import lm
from regrl.agents.objectives.terms import TERMS, TermContext, term_agg, total_loss

RLVR_TERMS = TERMS  # one registry for both backends; the name stays for existing imports

__all__ = ["RLVR_TERMS", "TERMS", "TermContext", "term_agg", "token_context", "total_loss"]


def token_context(
    *,
    logits: torch.Tensor,
    tokens: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    proxy_logp: Optional[torch.Tensor] = None,
    reference: Optional[Dict[Optional[str], torch.Tensor]] = None,
    term_state: Optional[Dict[str, float]] = None,
) -> TermContext:
    """The term context of B completions: ``logits`` [B, T, V] of pi_theta already divided by
    the rollout temperature, the sampled ``tokens`` [B, T], the behaviour log-probs
    ``old_logp`` [B, T] from the rollout (never recomputed here), ``advantages`` [B],
    ``mask`` [B, T]; ``reference`` maps a checkpoint key (None = the initial policy) to its
    [B, T, V] logits at the same temperature."""
    logp, entropy = lm.token_logprobs(logits, tokens, 1.0)
    return TermContext(
        logp=logp,
        old_logp=old_logp,
        advantages=advantages,
        mask=mask.bool(),
        entropy=entropy,
        dist_inputs=logits,
        actions=tokens,
        dist="categorical",
        proxy_logp=proxy_logp,
        reference=dict(reference or {}),
        term_state=term_state if term_state is not None else {},
    )
