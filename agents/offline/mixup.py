"""MixUp (Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018, arXiv 1710.09412); the AdaMixUp line (Guo, Mao, Zhang, AAAI 2019) builds on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch

from regrl.agents.offline.base import Plugin, TaskInfo, plugin_generator, register_plugin


def mixup(
    x: torch.Tensor, target: torch.Tensor, lam: float, perm: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """MixUp of a batch with a permutation of itself (arXiv 1710.09412, Eq. 1).

    ``x~ = lam * x_i + (1 - lam) * x_perm(i)`` and ``y~ = lam * y_i + (1 - lam) * y_perm(i)``.
    Targets are dense: one-hot / soft class probabilities, or continuous actions (mixed
    linearly, as for behaviour cloning with continuous actions).

    Args:
        x: [B, ...] float inputs. target: [B, ...] dense targets. lam: in [0, 1].
        perm: long [B] permutation of the batch.
    Returns:
        (mixed x, mixed target).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if perm.shape != (x.shape[0],):
        raise ValueError(f"perm must be [B={x.shape[0]}], got {tuple(perm.shape)}")
    return lam * x + (1.0 - lam) * x[perm], lam * target + (1.0 - lam) * target[perm]


def sample_mixup_lambda(alpha: float, rng: np.random.Generator) -> float:
    """``lam ~ Beta(alpha, alpha)`` (arXiv 1710.09412, §2); alpha = 0 disables mixing (lam = 1)."""
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return 1.0 if alpha == 0 else float(rng.beta(alpha, alpha))


@dataclass(frozen=True)
class MixUpParams:
    alpha: float = 1.0
    """Beta(alpha, alpha) concentration (paper: 1.0 on CIFAR, 0.2 on ImageNet; 0 = off)."""

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError(f"mixup.alpha must be >= 0, got {self.alpha}")


@register_plugin
class MixUp(Plugin):
    """MixUp (Zhang et al. 2018): train on convex combinations of input pairs and of their targets."""

    name = "mixup"
    Params = MixUpParams
    tasks = frozenset({"classification", "regression"})

    def __init__(self, params: MixUpParams, info: TaskInfo):
        super().__init__(params, info)
        self.on_epoch_start(0, None)

    def on_epoch_start(self, epoch, model) -> None:
        self.gen = plugin_generator(self.info.seed, 11, epoch)
        self.rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=self.gen)))

    def transform_batch(self, batch, epoch) -> Dict[str, torch.Tensor]:
        lam = sample_mixup_lambda(self.params.alpha, self.rng)
        perm = torch.randperm(batch["x"].shape[0], generator=self.gen).to(batch["x"].device)
        x, target = mixup(batch["x"], batch["target"], lam, perm)
        return dict(batch, x=x, target=target, mixup_lambda=torch.tensor(lam))
