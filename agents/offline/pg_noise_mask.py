"""Policy-gradient noise mask (Yavuz & Yang, "Policy Gradient-Driven Noise Mask", arXiv 2406.14568, 2024).

A light policy network π_ψ(m | x) outputs, for every input, a per-feature noise mask
``m ∈ (0, 1)^D`` drawn from a Beta distribution (the paper's "differentiable beta
distribution"); the classifier is trained on the noised input, and the policy is trained with
REINFORCE (Williams 1992) on how much that training step improved the classifier on held-out
data::

    x̃ = x + s · m ⊙ ξ,   m ~ Beta(α_ψ(x), β_ψ(x)),   ξ ~ N(0, I)
    r = L_val(θ_before) - L_val(θ_after)          (the step's validation improvement)
    ∇_ψ J = (r - b) ∇_ψ mean_i log π_ψ(m_i | x_i),   b <- μ b + (1 - μ) r

The policy is used only in training (the paper's "heated" model is then evaluated, or
fine-tuned, without it); evaluation never sees a mask.

What the paper states and what is inferred here. Stated (abstract and summary): a very light
policy network, image-specific noise masks from a Beta distribution, REINFORCE with
log-probabilities, the policy dropped at inference. Inferred, because the text we could read
does not give them: how the mask enters the input (here it scales additive Gaussian noise,
strength ``s``), the reward (here the drop in tuning-split loss caused by the training step,
as this project's issue describes the method), the moving-average baseline ``b`` (a standard
variance reduction), and concentrations ``α, β = 1 + softplus(·)`` (unimodal Betas, so a mask
never piles up at exactly 0 or 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Beta
from torch.func import functional_call

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin

POLICY_SALT = 5_527  # the policy's initialisation differs from the classifier's


# ---- the pure math ---------------------------------------------------------------------
def beta_concentrations(raw: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Policy output [B, 2 D] -> (α, β), each [B, D], ``= 1 + softplus``."""
    a, b = raw.chunk(2, dim=-1)
    return 1.0 + F.softplus(a), 1.0 + F.softplus(b)


def apply_noise_mask(
    x: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, strength: float
) -> torch.Tensor:
    """``x + strength · mask ⊙ noise`` (all [B, D])."""
    return x + strength * mask * noise


def mask_log_prob(mask: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """``log π(m | x) = Σ_d log Beta(m_d; α_d, β_d)`` per sample, [B]."""
    return Beta(alpha, beta).log_prob(mask).sum(dim=-1)


def reinforce_loss(log_prob: torch.Tensor, reward: float, baseline: float) -> torch.Tensor:
    """REINFORCE surrogate ``-(r - b) · mean_i log π(m_i | x_i)``; its gradient is the policy
    gradient of the batch's one reward (every mask of the batch shares the step's reward)."""
    return -(reward - baseline) * log_prob.mean()


def update_baseline(baseline: float, reward: float, momentum: float) -> float:
    """Moving-average reward baseline ``μ b + (1 - μ) r``."""
    return momentum * baseline + (1.0 - momentum) * reward


class NoisePolicy(nn.Module):
    """``x [B, D] -> raw [B, 2 D]``: one hidden layer (the paper's "very light-weight" policy)."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * in_dim)
        )

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return beta_concentrations(self.net(x))


# ---- the plugin ------------------------------------------------------------------------
@dataclass(frozen=True)
class PGNoiseMaskParams:
    strength: float = 0.3
    """Noise std ``s`` at mask value 1 (inputs of the digits data lie in [0, 1])."""
    hidden: int = 32
    """Width of the policy's hidden layer."""
    policy_lr: float = 1e-3
    """Adam learning rate of the policy."""
    baseline_momentum: float = 0.9
    """μ of the moving-average reward baseline."""
    train_policy: bool = True
    """False keeps the initial policy (the same noise, never learned): the ablation that
    separates the policy's contribution from plain input noise."""

    def __post_init__(self) -> None:
        if self.strength <= 0:
            raise ValueError(f"pg_noise_mask.strength must be > 0, got {self.strength}")
        if self.hidden < 1:
            raise ValueError(f"pg_noise_mask.hidden must be >= 1, got {self.hidden}")
        if self.policy_lr <= 0:
            raise ValueError(f"pg_noise_mask.policy_lr must be > 0, got {self.policy_lr}")
        if not 0.0 <= self.baseline_momentum < 1.0:
            raise ValueError(
                f"pg_noise_mask.baseline_momentum must be in [0, 1), got {self.baseline_momentum}"
            )


@register_plugin
class PGNoiseMask(Plugin):
    """Policy-Gradient-Driven Noise Mask (Yavuz & Yang 2024): REINFORCE policy noising inputs."""

    name = "pg_noise_mask"
    Params = PGNoiseMaskParams
    tasks = frozenset({"classification", "regression"})
    data_parallel = False  # the policy is stepped in one process
    needs_validation = True

    def __init__(self, params: PGNoiseMaskParams, info: TaskInfo):
        super().__init__(params, info)
        self.baseline = 0.0
        self.pending: Dict[str, Any] = {}

    def setup(self, model, optimizer, make_optimizer) -> None:
        if self.info.in_dim < 1:
            raise ValueError("pg_noise_mask needs flat feature inputs (TaskInfo.in_dim)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.info.seed + POLICY_SALT)
            self.policy = NoisePolicy(self.info.in_dim, self.params.hidden)
        self.policy.to(next(model.parameters()).device)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=self.params.policy_lr)
        self.model = model

    def transform_batch(self, batch, epoch):
        x = batch["x"]
        with torch.no_grad():
            alpha, beta = self.policy(x)
            mask = Beta(alpha, beta).sample()
        if self.params.train_policy:  # the classifier before this step, for the reward
            before = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.pending = {"x": x, "mask": mask, "before": before}
        return dict(batch, x=apply_noise_mask(x, mask, torch.randn_like(x), self.params.strength))

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.info.task == "classification":
            return -(target * F.log_softmax(out, dim=-1)).sum(-1).mean()
        return ((out[..., : target.shape[-1]] - target) ** 2).mean()

    def validation_step(self, model, batch, epoch):
        if not self.pending or not self.params.train_policy:
            return {}
        was_training = model.training
        model.eval()
        with torch.no_grad():
            after = self._loss(model(batch["x"])["out"], batch["target"])
            before_out = functional_call(model, self.pending["before"], (batch["x"],))["out"]
            before = self._loss(before_out, batch["target"])
        model.train(was_training)
        reward = float(before - after)
        alpha, beta = self.policy(self.pending["x"])
        log_prob = mask_log_prob(self.pending["mask"], alpha, beta)
        self.opt.zero_grad(set_to_none=True)
        reinforce_loss(log_prob, reward, self.baseline).backward()
        self.opt.step()
        advantage = reward - self.baseline
        self.baseline = update_baseline(self.baseline, reward, self.params.baseline_momentum)
        mean_mask = self.pending["mask"].mean()
        self.pending = {}
        return {
            "reward": torch.tensor(reward),
            "advantage": torch.tensor(advantage),
            "mask_mean": mean_mask,
        }

    def state_dict(self) -> Dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "opt": self.opt.state_dict(),
            "baseline": self.baseline,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])
        self.baseline = state["baseline"]
