"""Pure-torch objectives of regrl: advantages, policy losses, KL terms, Lp-Reg and demo-KL.

Every public function is registered in :data:`OBJECTIVES` under its own name;
``get_objective(name)`` looks one up and lists the known names on a miss.
"""

from regrl.agents.objectives._registry import OBJECTIVES, get_objective
from regrl.agents.objectives.advantages import gae, group_advantages
from regrl.agents.objectives.kl import (
    categorical_kl,
    demo_kl,
    gaussian_kl,
    kl_penalty,
    smooth_logits,
)
from regrl.agents.objectives.lp_reg import lp_reg_loss, minp_proxy_logprob
from regrl.agents.objectives.policy import aggregate, policy_loss

__all__ = [
    "OBJECTIVES",
    "get_objective",
    "group_advantages",
    "gae",
    "policy_loss",
    "aggregate",
    "kl_penalty",
    "categorical_kl",
    "gaussian_kl",
    "demo_kl",
    "smooth_logits",
    "minp_proxy_logprob",
    "lp_reg_loss",
]
