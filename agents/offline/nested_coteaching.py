"""Nested Dropout + Co-teaching (Chen, Hu, Shen, Ai, Suykens, "Compressing Features for Learning with Noisy Labels", IEEE TNNLS 2022, arXiv 2206.13140; Co-teaching: Han et al., NeurIPS 2018, arXiv 1804.06872)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn as nn

from regrl.agents.offline.base import Plugin, TaskInfo, plugin_generator, register_plugin


# ---- Nested Dropout ---------------------------------------------------------------------
def nested_dropout_probs(D: int, sigma: float, mu: float = 0.0) -> torch.Tensor:
    """p(k) ∝ exp(-((k - mu) / sigma)^2) for k = 1..D (arXiv 2206.13140, §3.2; official
    ``GaussianDist(mu, std, N)``). Returns a float64 [D] vector summing to 1."""
    if D < 1 or sigma <= 0:
        raise ValueError(f"need D >= 1 and sigma > 0, got D={D}, sigma={sigma}")
    k = torch.arange(1, D + 1, dtype=torch.float64)
    logits = -(((k - mu) / sigma) ** 2)
    return torch.softmax(logits, dim=0)  # = exp(.) / sum exp(.), without underflow


def nested_dropout_mask(D: int, k: int) -> torch.Tensor:
    """The nested mask ``[1]*k + [0]*(D-k)``: keep only the first k feature channels."""
    if not 1 <= k <= D:
        raise ValueError(f"k must be in [1, {D}], got {k}")
    mask = torch.zeros(D)
    mask[:k] = 1.0
    return mask


def nested_keep_probs(probs: torch.Tensor) -> torch.Tensor:
    """E[mask_j] = P(k >= j) = sum_{k >= j} p(k): channel j's keep probability. Scaling the
    features by it gives the expected logits over k of a linear head (dropout's test-time
    rule, carried over to the nested mask)."""
    return torch.flip(torch.cumsum(torch.flip(probs, [0]), 0), [0])


def sample_nested_k(probs: torch.Tensor, generator: torch.Generator) -> int:
    """Draw k in 1..D from ``probs`` (one k per forward pass, as the official code does)."""
    return int(torch.multinomial(probs, 1, generator=generator)) + 1


@dataclass(frozen=True)
class NestedDropoutParams:
    sigma: float = 10.0
    """Width sigma of p(k) (paper: 10 for CIFAR-10, 100 for CIFAR-100 with D = 512)."""
    mu: float = 0.0
    """Centre mu of p(k) (paper: 0)."""
    test_k: Optional[int] = None
    """Test-time channels: null scales channel j by P(k >= j) (expected mask); an integer K
    keeps the first K channels (the paper picks K on a validation set)."""

    def __post_init__(self) -> None:
        if self.sigma <= 0:
            raise ValueError(f"nested_dropout.sigma must be > 0, got {self.sigma}")
        if self.test_k is not None and self.test_k < 1:
            raise ValueError(f"nested_dropout.test_k must be >= 1, got {self.test_k}")


@register_plugin
class NestedDropout(Plugin):
    """Nested Dropout (Chen et al. 2022) on the penultimate features: train with only the first k ~ p(k) channels."""

    name = "nested_dropout"
    Params = NestedDropoutParams

    def __init__(self, params: NestedDropoutParams, info: TaskInfo):
        super().__init__(params, info)
        self.gen = plugin_generator(info.seed, 21, 0)
        self.last_k = 0

    def test_mask(self, D: int) -> torch.Tensor:
        if self.params.test_k is not None:
            return nested_dropout_mask(D, min(self.params.test_k, D))
        return nested_keep_probs(nested_dropout_probs(D, self.params.sigma, self.params.mu)).float()

    def wrap_model(self, model: nn.Module) -> nn.Module:
        D = model.head.in_features
        probs = nested_dropout_probs(D, self.params.sigma, self.params.mu)
        test_mask = self.test_mask(D)

        def mask_features(module, args):  # a closure, so deep copies (co-teaching) share it
            if module.training:
                self.last_k = sample_nested_k(probs, self.gen)
                return (args[0] * nested_dropout_mask(D, self.last_k).to(args[0]),)
            return (args[0] * test_mask.to(args[0]),)

        model.head.register_forward_pre_hook(mask_features)
        return model

    def on_epoch_start(self, epoch, model) -> None:
        self.gen = plugin_generator(self.info.seed, 21, epoch)

    def on_epoch_end(self, epoch, model):
        return {"last_k": torch.tensor(float(self.last_k))}


# ---- Co-teaching ------------------------------------------------------------------------
def coteaching_forget_rate(
    epoch: int, forget_rate: float, num_gradual: int, exponent: float = 1.0
) -> float:
    """Co-teaching schedule (arXiv 1804.06872, Alg. 1; official ``rate_schedule``): ramps
    linearly from 0 to ``forget_rate ** exponent`` over the first ``num_gradual`` epochs, then
    stays at ``forget_rate``."""
    if epoch >= num_gradual:
        return forget_rate
    return forget_rate**exponent * epoch / max(num_gradual - 1, 1)


def coteaching_select(
    loss_1: torch.Tensor, loss_2: torch.Tensor, forget_rate: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Small-loss selection of Co-teaching (arXiv 1804.06872, Alg. 1 step 4-5; official
    ``SampleSelection``): each network keeps the ``int((1 - forget_rate) * B)`` samples with the
    smallest loss (at least one). Network 1 is then trained on ``idx_2`` and network 2 on
    ``idx_1``.

    Args:
        loss_1, loss_2: [B] per-sample losses of the two networks.
    Returns:
        (idx_1, idx_2): long indices selected by network 1 and by network 2.
    """
    if not 0.0 <= forget_rate < 1.0:
        raise ValueError(f"forget_rate must be in [0, 1), got {forget_rate}")
    keep = max(1, int((1.0 - forget_rate) * loss_1.shape[0]))
    return torch.argsort(loss_1)[:keep], torch.argsort(loss_2)[:keep]


@dataclass(frozen=True)
class CoTeachingParams:
    forget_rate: float = 0.2
    """Final fraction of large-loss samples dropped per batch (Co-teaching: the noise rate)."""
    num_gradual: int = 10
    """Epochs T_k over which the forget rate ramps up (Co-teaching: 10)."""
    exponent: float = 1.0
    """Exponent c of the ramp (Co-teaching: 1)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.forget_rate < 1.0:
            raise ValueError(f"coteaching.forget_rate must be in [0, 1), got {self.forget_rate}")
        if self.num_gradual < 1:
            raise ValueError(f"coteaching.num_gradual must be >= 1, got {self.num_gradual}")
        if self.exponent <= 0:
            raise ValueError(f"coteaching.exponent must be > 0, got {self.exponent}")


def reinitialise(model: nn.Module, seed: int) -> None:
    """Reset every submodule with ``reset_parameters`` under a fixed seed (a fresh network)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    torch.random.set_rng_state(state)


@register_plugin
class CoTeaching(Plugin):
    """Co-teaching (Han et al. 2018): a peer network; each trains on the other's small-loss samples."""

    name = "coteaching"
    Params = CoTeachingParams
    tasks = frozenset({"classification", "regression"})
    conflicts = frozenset({"mixup"})
    conflict_reason = "small-loss selection ranks real samples; MixUp feeds mixed ones"
    data_parallel = False  # the peer network is not synchronised across workers

    def setup(self, model, optimizer, make_optimizer) -> None:
        self.peer = copy.deepcopy(model)
        reinitialise(self.peer, self.info.seed + 7919)
        self.peer_opt = make_optimizer(self.peer)

    def rate(self, epoch: int) -> float:
        p = self.params
        return coteaching_forget_rate(epoch, p.forget_rate, p.num_gradual, p.exponent)

    def sample_weights(self, batch, outputs, epoch, per_sample_loss) -> torch.Tensor:
        self.peer.train()
        loss_1 = per_sample_loss(outputs).detach()
        loss_2 = per_sample_loss(self.peer(batch["x"]))
        idx_1, idx_2 = coteaching_select(loss_1, loss_2.detach(), self.rate(epoch))
        self.peer_opt.zero_grad(set_to_none=True)
        loss_2[idx_1].mean().backward()  # the peer learns from network 1's selection
        self.peer_opt.step()
        weights = torch.zeros_like(loss_1)
        weights[idx_2] = 1.0  # network 1 learns from the peer's selection
        return weights

    def on_epoch_end(self, epoch, model):
        return {"forget_rate": torch.tensor(self.rate(epoch))}

    def state_dict(self) -> Dict[str, Any]:
        return {"peer": self.peer.state_dict(), "peer_opt": self.peer_opt.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.peer.load_state_dict(state["peer"])
        self.peer_opt.load_state_dict(state["peer_opt"])
