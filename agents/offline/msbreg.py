"""MSBReg (Moon, Buracas, Park, Kim, Canny, "An Embedding-Dynamic Approach to Self-supervised Learning", WACV 2023, arXiv 2207.03552): Multiview centroid, Singular value and Brownian diffusive losses."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, TaskInfo, plugin_generator, register_plugin


def multiview_centroid_loss(z_views: torch.Tensor, target_views: torch.Tensor) -> torch.Tensor:
    """(i) Attractive force: pull each view embedding toward the centroid of the sample's
    target-network (delayed-parameter, BYOL-style) view embeddings.

    ``mean_{v,i} || z^_{v,i} - c^_i ||^2`` with ``z^ = z/||z||``,
    ``c_i = mean_v t^_{v,i}`` (detached), ``c^ = c/||c||``. Shapes: [V, B, D].
    """
    z_hat = F.normalize(z_views, dim=-1)
    c_hat = F.normalize(F.normalize(target_views.detach(), dim=-1).mean(dim=0), dim=-1)
    return ((z_hat - c_hat.unsqueeze(0)) ** 2).sum(dim=-1).mean()


def singular_value_loss(z: torch.Tensor) -> torch.Tensor:
    """(ii) Global dispersive force: push the normalised batch embedding matrix [N, D] toward
    equal singular values, ``mean_k (s_k / mean(s) - 1)^2`` [inferred form: zero iff the
    spectrum is flat, i.e. the particles spread homogeneously]."""
    s = torch.linalg.svdvals(F.normalize(z, dim=-1))
    return ((s / s.mean() - 1.0) ** 2).mean()


def brownian_loss(z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """(iii) Brownian diffusive force: ``mean_i <z^_i, xi_i>`` with fresh Gaussian xi each
    step; its gradient w.r.t. each normalised embedding is the random kick xi_i / N, a purely
    local dispersion that needs no other particle [inferred form]."""
    return (F.normalize(z, dim=-1) * noise.detach()).sum(dim=-1).mean()


def msbreg_loss(
    z_views: torch.Tensor,
    target_views: torch.Tensor,
    noise: torch.Tensor,
    w_mc: float = 1.0,
    w_sv: float = 1.0,
    w_br: float = 1.0,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Weighted sum of the three MSBReg parts on [V, B, D] view embeddings."""
    flat = z_views.reshape(-1, z_views.shape[-1])
    mc = multiview_centroid_loss(z_views, target_views)
    sv = singular_value_loss(flat)
    br = brownian_loss(flat, noise.reshape(flat.shape))
    loss = w_mc * mc + w_sv * sv + w_br * br
    return loss, {"centroid": mc.detach(), "singular": sv.detach(), "brownian": br.detach()}


@dataclass(frozen=True)
class MSBRegParams:
    views: int = 2
    """Augmented views per sample (Gaussian input noise for vector data)."""
    aug_std: float = 0.1
    """Std of the view augmentation noise added to the inputs."""
    w_centroid: float = 1.0
    """Weight of the multiview centroid loss (paper weights unknown: default 1.0)."""
    w_singular: float = 1.0
    """Weight of the singular-value loss (default 1.0)."""
    w_brownian: float = 1.0
    """Weight of the Brownian diffusive loss (default 1.0)."""
    brownian_std: float = 0.1
    """Std of the Brownian kicks xi."""
    ema: float = 0.99
    """Momentum of the delayed-parameter target network."""

    def __post_init__(self) -> None:
        if self.views < 2:
            raise ValueError(f"msbreg.views must be >= 2, got {self.views}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"msbreg.ema must be in [0, 1), got {self.ema}")
        for key in ("aug_std", "w_centroid", "w_singular", "w_brownian", "brownian_std"):
            if getattr(self, key) < 0:
                raise ValueError(f"msbreg.{key} must be >= 0, got {getattr(self, key)}")


@register_plugin
class MSBReg(Plugin):
    """MSBReg (Moon et al. 2023) on trunk features: multiview centroid + singular-value + Brownian losses."""

    name = "msbreg"
    Params = MSBRegParams
    tasks = frozenset({"classification", "regression"})
    data_parallel = False  # the extra view forwards bypass DDP

    def __init__(self, params: MSBRegParams, info: TaskInfo):
        super().__init__(params, info)
        self.gen = plugin_generator(info.seed, 51, 0)

    def setup(self, model, optimizer, make_optimizer) -> None:
        self.target = copy.deepcopy(model)
        for p in self.target.parameters():
            p.requires_grad_(False)

    def on_epoch_start(self, epoch, model) -> None:
        self.gen = plugin_generator(self.info.seed, 51, epoch)

    def _noise(self, like: torch.Tensor, std: float) -> torch.Tensor:
        return (torch.randn(like.shape, generator=self.gen) * std).to(like)

    def extra_loss(self, outputs, batch, model, epoch):
        p, x = self.params, batch["x"]
        views = torch.stack([x + self._noise(x, p.aug_std) for _ in range(p.views)])
        flat = views.reshape(-1, *x.shape[1:])
        z = model(flat)["features"].reshape(p.views, x.shape[0], -1)
        with torch.no_grad():
            self.target.train(model.training)
            t = self.target(flat)["features"].reshape(z.shape)
        noise = self._noise(z, p.brownian_std)
        return msbreg_loss(z, t, noise, p.w_centroid, p.w_singular, p.w_brownian)

    @torch.no_grad()
    def after_step(self, model):
        m = self.params.ema
        for pt, po in zip(self.target.parameters(), model.parameters()):
            pt.mul_(m).add_(po.detach(), alpha=1.0 - m)
        return {}

    def state_dict(self) -> Dict[str, Any]:
        return {"target": self.target.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.target.load_state_dict(state["target"])
