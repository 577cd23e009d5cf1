"""Ensemble distillation of regularised members (Kim, Kotha, Liang, Hashimoto, "Pre-training under infinite compute", arXiv 2509.14786, 2025).

At fixed data the paper's recipe is: regularise much harder than standard (weight decay about
30x the usual value), ensemble K independently trained regularised models (a lower loss
asymptote than any single one), then distil the ensemble into one student that keeps most
of the ensembling benefit. Here, in one run of the offline learner:

* K members, each a fresh copy of the network (own initialisation), trained on the same
  batches with their own AdamW whose decoupled weight decay is ``member_weight_decay``;
* the ensemble predicts the mean of its members' class probabilities,
  ``p̄(x) = (1/K) Σ_k softmax(f_k(x))`` (:func:`ensemble_probs`);
* the run's model is the student, trained on ``α y + (1 - α) p̄(x)`` (:func:`distill_targets`;
  the paper's student is trained on the teacher's predicted distribution, mixed with the
  data; the mix weight α is ours, the paper's is not given in its abstract).

Deviations, with reasons: members and student train at the same time (the paper trains the
ensemble first, then distils), so one run of the learner produces both and every model sees
the same number of steps; the teacher's probabilities on a batch are taken before the members
step on it. The members' parameters are in the plugin's checkpoint state (``members``), so the
ensemble itself can be evaluated after the run (benchmarks/ensemble_distill.py does).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, register_plugin
from regrl.agents.offline.nested_coteaching import reinitialise

MEMBER_SALT = 7_907  # member k is initialised with seed + MEMBER_SALT * (k + 1)


def ensemble_probs(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean of the members' softmax probabilities, ``(1/K) Σ_k softmax(z_k)`` ([B, C] each)."""
    if not logits:
        raise ValueError("an ensemble needs at least one member")
    return torch.stack([F.softmax(z, dim=-1) for z in logits]).mean(dim=0)


def distill_targets(y: torch.Tensor, teacher: torch.Tensor, alpha: float) -> torch.Tensor:
    """Student targets ``α y + (1 - α) p̄`` (detached), y one-hot [B, C], p̄ [B, C]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return (alpha * y + (1.0 - alpha) * teacher).detach()


@dataclass(frozen=True)
class EnsembleDistillParams:
    members: int = 4
    """Ensemble size K."""
    member_weight_decay: float = 0.1
    """AdamW decoupled weight decay of every member (the paper's point: much larger than the
    usual value; set it against a single model's ``training.weight_decay``)."""
    alpha: float = 0.5
    """Weight of the labels in the student's targets (0 = pure distillation)."""

    def __post_init__(self) -> None:
        if not 1 <= self.members <= 64:
            raise ValueError(f"ensemble_distill.members must be in [1, 64], got {self.members}")
        if self.member_weight_decay < 0:
            raise ValueError("ensemble_distill.member_weight_decay must be >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"ensemble_distill.alpha must be in [0, 1], got {self.alpha}")


@register_plugin
class EnsembleDistill(Plugin):
    """Ensemble distillation (Kim et al. 2025, "Pre-training under infinite compute"): K regularised members -> student."""

    name = "ensemble_distill"
    Params = EnsembleDistillParams
    tasks = frozenset({"classification"})
    provides_targets = True
    conflicts = frozenset({"mixup", "coteaching"})
    conflict_reason = "the members train on the batch's real samples and labels"
    data_parallel = False  # the members are not synchronised across workers

    def setup(self, model, optimizer, make_optimizer) -> None:
        self.models: List[nn.Module] = []
        self.opts = []
        for k in range(self.params.members):
            member = copy.deepcopy(model)
            reinitialise(member, self.info.seed + MEMBER_SALT * (k + 1))
            opt = make_optimizer(member)
            for group in opt.param_groups:
                group["weight_decay"] = self.params.member_weight_decay
            self.models.append(member)
            self.opts.append(opt)

    def teacher(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's mean probabilities on ``x`` (eval mode, no gradient)."""
        with torch.no_grad():
            logits = []
            for m in self.models:
                was = m.training
                m.eval()
                logits.append(m(x)["out"].float())
                m.train(was)
            return ensemble_probs(logits)

    def targets(self, batch, epoch):
        teacher = self.teacher(batch["x"])
        for member, opt in zip(self.models, self.opts):  # the members learn from the labels
            member.train()
            out = member(batch["x"])["out"]
            loss = -(batch["target"] * F.log_softmax(out, dim=-1)).sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return distill_targets(
            batch["target"], teacher.to(batch["target"].dtype), self.params.alpha
        )

    def state_dict(self) -> Dict[str, Any]:
        return {
            "members": [m.state_dict() for m in self.models],
            "opts": [o.state_dict() for o in self.opts],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for m, s in zip(self.models, state["members"]):
            m.load_state_dict(s)
        for o, s in zip(self.opts, state["opts"]):
            o.load_state_dict(s)
