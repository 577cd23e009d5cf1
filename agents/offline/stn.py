"""STN: Self-Tuning Networks (MacKay, Vicol, Lorraine, Duvenaud, Grosse, "Self-Tuning Networks: Bilevel Optimization of Hyperparameters using Structured Best-Response Functions", ICLR 2019, arXiv 1903.03088).

Hyperparameter tuning as the bilevel problem ``min_λ F(λ, w*(λ))`` with
``w*(λ) = argmin_w f(λ, w)`` (paper §2; f is the regularised training loss, F the
validation loss). STN replaces w*(λ) by a best-response network whose every layer is
gated by the hyperparameters (paper §4, the structured best-response approximation)::

    W(λ) = W_elem + (V_w λ) ⊙_row W_hyper,      b(λ) = b_elem + (V_b λ) ⊙ b_hyper

and alternates (paper Algorithm 1):

* training steps on the weights φ = (W_elem, W_hyper, V, ...), each sample with its own
  perturbed hyperparameters ``λ + σ ε`` (ε ~ N(0, I)), which regularise that sample
  (dropout at that rate, input noise at that strength): the best-response is fitted in a
  neighbourhood of the current λ;
* hyperparameter steps on (λ, σ) minimising the unregularised validation loss through the
  best-response, ``F(λ + σ ε, ŵ_φ(λ + σ ε)) - τ H[p(ε | σ)]`` (paper §4): the entropy term
  keeps the perturbation from collapsing, so the best-response stays fitted around λ.

The validation loss sees the hyperparameters only through ŵ_φ(λ), so stochastic ones
(dropout rates, noise strengths) are tuned without differentiating the regulariser.

Deviations from the official code (``asteroidhouse/self-tuning-networks``: ``HyperLinear``,
``perturb``, ``compute_entropy``), each with its reason:

* the gate multiplies ``W_hyper x`` (an output-unit gating, as ``HyperLinear.forward``), not a
  materialised W(λ): the same function, one matrix product per layer cheaper;
* no ``elem_scalar`` (the official layer's extra learned scale of ``W_elem x``): it is not in
  the paper's equations;
* the dropout rate lives in (0, 0.9) (a stretched sigmoid), so ``1 / (1 - p)`` stays bounded;
  the input-noise strength in (0, inf) through a softplus (as ``project``);
* one hyperparameter step after every ``hyper_every`` training steps on one tuning batch
  (official CNN default: 2 training steps, 1 validation step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from regrl.agents.offline.base import Plugin, TaskInfo, register_plugin

HYPERPARAMETERS: Tuple[str, ...] = ("dropout", "input_noise")
MAX_DROPOUT = 0.9  # keeps the inverted-dropout factor 1 / (1 - p) <= 10
HYPER_INIT_STD = 0.01  # official HyperLinear: htensor_to_scalars ~ N(0, 0.01)
MODEL_REPLACING = frozenset(
    {"ftwt", "lipschitz", "compander", "nested_dropout", "orthogonality", "coteaching"}
)
"""Plugins that wrap, constrain or copy the MLP's ``nn.Linear`` layers, which STN replaces."""


# ---- the pure math ---------------------------------------------------------------------
def stn_linear(
    x: torch.Tensor,
    h: torch.Tensor,
    w_elem: torch.Tensor,
    b_elem: torch.Tensor,
    w_hyper: torch.Tensor,
    b_hyper: torch.Tensor,
    v: torch.Tensor,
) -> torch.Tensor:
    """STN layer (arXiv 1903.03088 §4): ``x W(h)^T + b(h)`` with
    ``W(h) = W_elem + (V_w h) ⊙_row W_hyper`` and ``b(h) = b_elem + (V_b h) ⊙ b_hyper``,
    computed per sample as ``W_elem x + b_elem + (V_w h) ⊙ (W_hyper x) + (V_b h) ⊙ b_hyper``.

    Args:
        x: [B, I] inputs. h: [B, H] hyperparameters of each sample (unconstrained).
        w_elem, w_hyper: [O, I]. b_elem, b_hyper: [O]. v: [2 O, H], rows ``V_w`` then ``V_b``.
    Returns:
        [B, O].
    """
    out_dim = w_elem.shape[0]
    if v.shape != (2 * out_dim, h.shape[-1]):
        raise ValueError(f"v must be [{2 * out_dim}, {h.shape[-1]}], got {tuple(v.shape)}")
    gates = h @ v.t()
    return (
        F.linear(x, w_elem, b_elem)
        + gates[:, :out_dim] * F.linear(x, w_hyper)
        + gates[:, out_dim:] * b_hyper
    )


def perturb(lam: torch.Tensor, scale_raw: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Perturbed hyperparameters ``λ + softplus(s) ε`` (Algorithm 1; official ``perturb``).

    Args:
        lam: [H] unconstrained hyperparameters. scale_raw: [H] raw perturbation scales s.
        eps: [B, H] standard normal draws.
    Returns:
        [B, H].
    """
    return lam + F.softplus(scale_raw) * eps


def perturbation_entropy(scale_raw: torch.Tensor) -> torch.Tensor:
    """Entropy of the diagonal Gaussian ``p(ε | σ)`` with ``σ = softplus(s)``:
    ``Σ_h log(σ_h sqrt(2 π e))`` (official ``compute_entropy``)."""
    return torch.log(F.softplus(scale_raw) * math.sqrt(2 * math.pi * math.e)).sum()


def hyper_objective(val_loss: torch.Tensor, scale_raw: torch.Tensor, tau: float) -> torch.Tensor:
    """Hyperparameter-step objective ``F - τ H[p(ε | σ)]`` (arXiv 1903.03088 §4, Algorithm 1)."""
    return val_loss - tau * perturbation_entropy(scale_raw)


def constrain(u: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """Unconstrained [..., H] -> hyperparameter values: ``dropout = 0.9 sigmoid(u)``,
    ``input_noise = softplus(u)``."""
    cols = []
    for i, name in enumerate(names):
        if name == "dropout":
            cols.append(MAX_DROPOUT * torch.sigmoid(u[..., i]))
        elif name == "input_noise":
            cols.append(F.softplus(u[..., i]))
        else:
            raise ValueError(f"unknown STN hyperparameter {name!r}; valid: {HYPERPARAMETERS}")
    return torch.stack(cols, dim=-1)


def unconstrain(values: Sequence[float], names: Sequence[str]) -> torch.Tensor:
    """Inverse of :func:`constrain` for one setting (the initial λ)."""
    out = []
    for value, name in zip(values, names):
        if name == "dropout":
            q = value / MAX_DROPOUT
            out.append(math.log(q) - math.log1p(-q))
        else:
            out.append(value + math.log(-math.expm1(-value)))  # inverse softplus
    return torch.tensor(out)


def per_sample_dropout(a: torch.Tensor, p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverted dropout with rate ``p[b]`` for row b: ``a * 1[u >= p] / (1 - p)``.

    Args:
        a: [B, D] activations. p: [B] rates in [0, 1). u: [B, D] uniform draws.
    """
    keep = (u >= p[:, None]).to(a.dtype)
    return a * keep / (1.0 - p[:, None])


# ---- the best-response network ---------------------------------------------------------
class STNLayer(nn.Module):
    """Parameters of one :func:`stn_linear` layer, started from an ``nn.Linear``."""

    def __init__(self, linear: nn.Linear, num_hyper: int):
        super().__init__()
        out_dim, in_dim = linear.weight.shape
        self.w_elem = nn.Parameter(linear.weight.detach().clone())
        self.b_elem = nn.Parameter(linear.bias.detach().clone())
        bound = 1.0 / math.sqrt(in_dim)  # official init_params: U(-1/sqrt(in), 1/sqrt(in))
        self.w_hyper = nn.Parameter(torch.empty(out_dim, in_dim).uniform_(-bound, bound))
        self.b_hyper = nn.Parameter(torch.empty(out_dim).uniform_(-bound, bound))
        self.v = nn.Parameter(torch.randn(2 * out_dim, num_hyper) * HYPER_INIT_STD)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return stn_linear(x, h, self.w_elem, self.b_elem, self.w_hyper, self.b_hyper, self.v)


class STNMLP(nn.Module):
    """The offline MLP as a best-response network ŵ_φ(λ) (same outputs: ``out``, ``features``).

    Buffers ``lam`` (unconstrained λ) and ``scale`` (raw σ) are the current hyperparameters;
    the plugin's hyperparameter steps write them. In training mode every sample draws its own
    ``λ + σ ε`` and is regularised with it; in eval mode the net is the deterministic
    best-response at λ (no dropout, no noise)."""

    def __init__(
        self, mlp: nn.Module, names: Sequence[str], lam: torch.Tensor, scale: torch.Tensor
    ):
        super().__init__()
        linears = [m for m in mlp.trunk if isinstance(m, nn.Linear)] + [mlp.head]
        acts = [m for m in mlp.trunk if not isinstance(m, nn.Linear)]
        self.names = tuple(names)
        self.layers = nn.ModuleList(STNLayer(m, len(names)) for m in linears)
        self.act = acts[0] if acts else nn.Identity()
        self.register_buffer("lam", lam.clone().float())
        self.register_buffer("scale", scale.clone().float())

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.training:
            eps = torch.randn(x.shape[0], len(self.names), device=x.device)
            return self.respond(x, perturb(self.lam, self.scale, eps), regularise=True)
        return self.respond(x, self.lam.expand(x.shape[0], -1), regularise=False)

    def respond(
        self, x: torch.Tensor, u: torch.Tensor, regularise: bool
    ) -> Dict[str, torch.Tensor]:
        """Best-response outputs for per-sample unconstrained hyperparameters ``u`` [B, H];
        with ``regularise`` the hyperparameters are also applied (dropout, input noise)."""
        values = constrain(u.detach(), self.names)
        if regularise and "input_noise" in self.names:
            strength = values[:, self.names.index("input_noise")]
            x = x + strength[:, None] * torch.randn_like(x)
        for layer in self.layers[:-1]:
            x = self.act(layer(x, u))
            if regularise and "dropout" in self.names:
                p = values[:, self.names.index("dropout")]
                x = per_sample_dropout(x, p, torch.rand_like(x))
        return {"out": self.layers[-1](x, u), "features": x}


# ---- the plugin ------------------------------------------------------------------------
@dataclass(frozen=True)
class STNParams:
    dropout: Optional[float] = 0.05
    """Initial dropout rate of the hidden layers, tuned online (null = not tuned; official
    ``start_drop`` 0.05)."""
    input_noise: Optional[float] = 0.05
    """Initial std of Gaussian input noise, tuned online (null = not tuned)."""
    perturb_scale: float = 0.5
    """Initial perturbation std σ of the unconstrained hyperparameters (official 0.5)."""
    entropy_weight: float = 1e-3
    """τ of the entropy bonus (paper's experiments 1e-3; official CNN script 1e-5)."""
    hyper_lr: float = 3e-3
    """Adam learning rate of (λ, σ) (official ``valid_lr`` 3e-3)."""
    hyper_every: int = 2
    """One hyperparameter step after every this many training steps (official 2 : 1)."""
    warmup_epochs: int = 5
    """Epochs of training steps only before hyperparameters move (official 5)."""
    tune_scales: bool = True
    """Also tune σ through the entropy term; False keeps σ fixed and makes the hyper step at
    λ without perturbation (the official default)."""

    def __post_init__(self) -> None:
        if self.dropout is None and self.input_noise is None:
            raise ValueError("stn: tune at least one of dropout and input_noise")
        if self.dropout is not None and not 0.0 < self.dropout < MAX_DROPOUT:
            raise ValueError(f"stn.dropout must be in (0, {MAX_DROPOUT}), got {self.dropout}")
        if self.input_noise is not None and self.input_noise <= 0:
            raise ValueError(f"stn.input_noise must be > 0, got {self.input_noise}")
        for key in ("perturb_scale", "hyper_lr"):
            if getattr(self, key) <= 0:
                raise ValueError(f"stn.{key} must be > 0, got {getattr(self, key)}")
        if self.entropy_weight < 0:
            raise ValueError(f"stn.entropy_weight must be >= 0, got {self.entropy_weight}")
        if self.hyper_every < 1 or self.warmup_epochs < 0:
            raise ValueError("stn.hyper_every must be >= 1 and stn.warmup_epochs >= 0")

    def tuned(self) -> List[Tuple[str, float]]:
        pairs = (("dropout", self.dropout), ("input_noise", self.input_noise))
        return [(n, v) for n, v in pairs if v is not None]


@register_plugin
class STN(Plugin):
    """Self-Tuning Networks (MacKay et al. 2019): tunes dropout / input noise online, best-response net."""

    name = "stn"
    Params = STNParams
    tasks = frozenset({"classification"})
    conflicts = MODEL_REPLACING
    conflict_reason = "STN replaces the MLP's linear layers by best-response layers"
    data_parallel = False  # the hyperparameters are stepped in one process
    needs_validation = True

    def __init__(self, params: STNParams, info: TaskInfo):
        super().__init__(params, info)
        self.names = [n for n, _ in params.tuned()]
        self.lam = nn.Parameter(unconstrain([v for _, v in params.tuned()], self.names))
        raw = params.perturb_scale + math.log(-math.expm1(-params.perturb_scale))
        self.scale = nn.Parameter(torch.full((len(self.names),), raw))
        self.opt = torch.optim.Adam([self.lam, self.scale], lr=params.hyper_lr)
        self.calls = 0

    def wrap_model(self, model: nn.Module) -> nn.Module:
        if not (
            isinstance(getattr(model, "trunk", None), nn.Sequential) and hasattr(model, "head")
        ):
            raise ValueError("stn needs the default MLP (model.arch: mlp)")
        return STNMLP(model, self.names, self.lam.detach(), self.scale.detach())

    def setup(self, model, optimizer, make_optimizer) -> None:
        self._write(model)

    def _write(self, model: nn.Module) -> None:
        with torch.no_grad():
            model.lam.copy_(self.lam)
            model.scale.copy_(self.scale)

    def validation_step(self, model, batch, epoch):
        self.calls += 1
        if epoch < self.params.warmup_epochs or self.calls % self.params.hyper_every:
            return {}
        if self.params.tune_scales:
            eps = torch.randn(batch["x"].shape[0], len(self.names))
            u = perturb(self.lam, self.scale, eps)
        else:
            u = self.lam.expand(batch["x"].shape[0], -1)
        out = model.respond(batch["x"], u.to(batch["x"].device), regularise=False)["out"]
        val_loss = -(batch["target"] * F.log_softmax(out, dim=-1)).sum(-1).mean()
        objective = hyper_objective(val_loss, self.scale, self.params.entropy_weight)
        params = [self.lam, self.scale] if self.params.tune_scales else [self.lam]
        grads = torch.autograd.grad(objective, params)  # the model's .grad stays untouched
        self.opt.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            p.grad = g
        self.opt.step()
        self._write(model)
        return {"val_loss": val_loss.detach(), **self._values()}

    def _values(self) -> Dict[str, torch.Tensor]:
        values = constrain(self.lam.detach(), self.names)
        sigma = F.softplus(self.scale.detach())
        out = {name: values[i] for i, name in enumerate(self.names)}
        out.update({f"{name}_sigma": sigma[i] for i, name in enumerate(self.names)})
        return out

    def on_epoch_end(self, epoch, model):
        return self._values()

    def state_dict(self) -> Dict[str, Any]:
        return {
            "lam": self.lam.detach().clone(),
            "scale": self.scale.detach().clone(),
            "opt": self.opt.state_dict(),
            "calls": self.calls,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        with torch.no_grad():
            self.lam.copy_(state["lam"])
            self.scale.copy_(state["scale"])
        self.opt.load_state_dict(state["opt"])
        self.calls = state["calls"]
