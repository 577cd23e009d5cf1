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

Two schedules (``schedule``):

* ``sequential``, the paper's: the members train alone for the first ``member_epochs`` epochs
  (the student's optimizer step is skipped: its gradients are dropped, so it is not even
  weight-decayed), then the student trains for the rest of the run on the finished ensemble,
  which no longer changes;
* ``simultaneous`` (default): members and student step on every batch, the student's teacher
  being the ensemble as it is at that step (its probabilities taken before the members step
  on the batch). One run of the usual length trains every model, which is why it is the
  default; the sequential schedule needs twice the epochs for the same steps per model.
  docs/ensemble_distill.md measures both at equal steps.

The members' parameters are in the plugin's checkpoint state (``members``), so the ensemble
itself can be evaluated after the run (benchmarks/ensemble_distill.py does).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional, Sequence

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
    schedule: Literal["simultaneous", "sequential"] = "simultaneous"
    """``sequential`` (the paper's): the members train for ``member_epochs``, then the student
    on the finished ensemble. ``simultaneous``: every model steps on every batch (a run of the
    usual length trains them all, hence the default)."""
    member_epochs: Optional[int] = None
    """Sequential only: epochs the members train before the student starts (null = half the
    run, so with ``training.epochs`` = 2E every model gets E epochs of steps)."""

    def __post_init__(self) -> None:
        if not 1 <= self.members <= 64:
            raise ValueError(f"ensemble_distill.members must be in [1, 64], got {self.members}")
        if self.member_weight_decay < 0:
            raise ValueError("ensemble_distill.member_weight_decay must be >= 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"ensemble_distill.alpha must be in [0, 1], got {self.alpha}")
        if self.schedule not in ("simultaneous", "sequential"):
            raise ValueError(
                "ensemble_distill.schedule must be 'simultaneous' or 'sequential', "
                f"got {self.schedule!r}"
            )
        if self.member_epochs is not None and self.schedule != "sequential":
            raise ValueError("ensemble_distill.member_epochs applies to schedule: sequential")
        if self.member_epochs is not None and self.member_epochs < 1:
            raise ValueError(
                f"ensemble_distill.member_epochs must be >= 1, got {self.member_epochs}"
            )


def member_epochs(params: EnsembleDistillParams, epochs: int) -> int:
    """Epochs the members train before the student (sequential): ``member_epochs`` or half
    the run; the run's length when simultaneous (the members train throughout)."""
    if params.schedule == "simultaneous":
        return epochs
    return params.member_epochs if params.member_epochs is not None else epochs // 2


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

    @classmethod
    def check_config(cls, params, task, epochs) -> None:
        if params.schedule == "sequential" and not 1 <= member_epochs(params, epochs) < epochs:
            raise ValueError(
                f"ensemble_distill: schedule sequential trains the members for "
                f"{member_epochs(params, epochs)} epochs and the student after them, so "
                f"training.epochs ({epochs}) must be larger (member_epochs < training.epochs)"
            )

    def setup(self, model, optimizer, make_optimizer) -> None:
        self.member_epochs = member_epochs(self.params, self.info.epochs)
        self.holding = False  # True while the student's step is skipped (sequential)
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

    def step_members(self, batch) -> None:
        """One step of every member on the batch's labels."""
        for member, opt in zip(self.models, self.opts):
            member.train()
            out = member(batch["x"])["out"]
            loss = -(batch["target"] * F.log_softmax(out, dim=-1)).sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def targets(self, batch, epoch):
        sequential = self.params.schedule == "sequential"
        self.holding = sequential and epoch < self.member_epochs
        if self.holding:  # the members' phase: the student waits (before_step)
            self.step_members(batch)
            return None
        teacher = self.teacher(batch["x"])  # before the members step on the batch
        if epoch < self.member_epochs:
            self.step_members(batch)
        return distill_targets(
            batch["target"], teacher.to(batch["target"].dtype), self.params.alpha
        )

    def before_step(self, model) -> None:
        if self.holding:  # no gradient: the optimizer skips the student (no weight decay either)
            for p in model.parameters():
                p.grad = None

    def on_epoch_end(self, epoch, model):
        return {"student_training": float(not self.holding)}

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
