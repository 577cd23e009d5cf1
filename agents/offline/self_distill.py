"""Self-distillation with weighted ground truth (Borup & Andersen, "Even your Teacher Needs Guidance: Ground-Truth Targets Dampen Regularization Imposed by Self-Distillation", NeurIPS 2021, arXiv 2102.13088)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin
from regrl.agents.offline.nested_coteaching import reinitialise


def weighted_distillation_targets(
    y: torch.Tensor, teacher: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Round-t targets ``alpha * y + (1 - alpha) * f^(t-1)(x)`` (arXiv 2102.13088, Eq. 4).

    Args:
        y: [B, ...] ground truth (one-hot for classes, values for regression).
        teacher: [B, ...] the previous round's predictions (class probabilities or values).
        alpha: weight of the ground truth in [0, 1] (alpha = 1: no distillation).
    Returns:
        detached targets shaped like y.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return (alpha * y + (1.0 - alpha) * teacher).detach()


def round_of_epoch(epoch: int, epochs: int, rounds: int) -> int:
    """Rounds split the epochs evenly; the last round takes the remainder."""
    return min(epoch // max(epochs // rounds, 1), rounds - 1)


@dataclass(frozen=True)
class SelfDistillParams:
    rounds: int = 2
    """Distillation rounds; round 0 trains on the labels, round t on the round t-1 model."""
    alpha: float = 0.5
    """Ground-truth weight alpha in [0, 1] (paper: tuned, e.g. 0.2-0.5) [inferred default]."""
    reinit: bool = True
    """Start each round's student from fresh weights (and a fresh optimizer state)."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"self_distill.rounds must be >= 1, got {self.rounds}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"self_distill.alpha must be in [0, 1], got {self.alpha}")


@register_plugin
class SelfDistill(Plugin):
    """Self-distillation (Borup & Andersen 2021) in rounds with targets alpha*y + (1-alpha)*previous-round model."""

    name = "self_distill"
    Params = SelfDistillParams
    tasks = frozenset({"classification", "regression"})
    provides_targets = True

    def __init__(self, params: SelfDistillParams, info: TaskInfo):
        super().__init__(params, info)
        self.teacher: Optional[nn.Module] = None
        self.round = 0

    @classmethod
    def check_config(cls, params, task, epochs) -> None:
        if params.rounds > epochs:
            raise ValueError(
                f"self_distill.rounds={params.rounds} exceeds training.epochs={epochs}"
            )

    def setup(self, model, optimizer, make_optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    def on_epoch_start(self, epoch, model) -> None:
        r = round_of_epoch(epoch, self.info.epochs, self.params.rounds)
        if r == self.round:
            return
        self.round = r
        self.teacher = _frozen_copy(model)
        if self.params.reinit:  # same seed on every worker keeps data-parallel replicas equal
            reinitialise(model, self.info.seed * 31 + r)
            self.optimizer.state.clear()

    @torch.no_grad()
    def targets(self, batch, epoch) -> Optional[torch.Tensor]:
        if self.teacher is None:
            return None
        out = self.teacher(batch["x"])["out"].float()
        teacher = F.softmax(out, dim=-1) if self.info.task == "classification" else out
        return weighted_distillation_targets(
            batch["target"], teacher.to(batch["target"]), self.params.alpha
        )

    def on_epoch_end(self, epoch, model):
        return {"round": torch.tensor(float(self.round))}

    def state_dict(self) -> Dict[str, Any]:
        teacher = None if self.teacher is None else self.teacher.state_dict()
        return {"round": self.round, "teacher": teacher}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.round = int(state["round"])
        self.teacher = None
        if state["teacher"] is not None:
            self.teacher = _frozen_copy(self.model)
            self.teacher.load_state_dict(state["teacher"])


def _frozen_copy(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
