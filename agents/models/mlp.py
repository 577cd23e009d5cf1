"""Small MLPs for the offline learner: a feature trunk and a linear ``head``.

Both models return ``{"out": ..., "features": ...}`` so that plugins (Dispersive loss, Nested
Dropout, MSBReg) can reach the penultimate features without knowing the architecture.
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn as nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _trunk(in_dim: int, hidden: Sequence[int], activation: str) -> nn.Sequential:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
    layers, prev = [], in_dim
    for width in hidden:
        if width <= 0:
            raise ValueError(f"hidden sizes must be > 0, got {tuple(hidden)}")
        layers += [nn.Linear(prev, width), ACTIVATIONS[activation]()]
        prev = width
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """``x [B, in_dim] -> {"out": [B, out_dim], "features": [B, hidden[-1]]}``.

    Every hidden layer is ``Linear`` + a 1-Lipschitz activation (ReLU or tanh), so the
    Lipschitz constant of the map x -> out is at most the product of the layers' spectral norms.
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden: Sequence[int] = (64, 64), activation: str = "relu"
    ):
        super().__init__()
        self.trunk = _trunk(in_dim, hidden, activation)
        self.feature_dim = hidden[-1] if hidden else in_dim
        self.head = nn.Linear(self.feature_dim, out_dim)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {"out": self.head(features), "features": features}


class TokenMLP(nn.Module):
    """A minimal causal token model for SFT: ``tokens [B, T] -> logits [B, T, vocab]``.

    Position t sees its own embedding and the mean embedding of tokens 0..t (a causal
    bag-of-words context), followed by an MLP trunk and a linear ``head`` over the vocabulary.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden: Sequence[int] = (64, 64),
        embed_dim: int = 32,
        activation: str = "relu",
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.trunk = _trunk(2 * embed_dim, hidden, activation)
        self.feature_dim = hidden[-1] if hidden else 2 * embed_dim
        self.head = nn.Linear(self.feature_dim, vocab_size)

    def forward(self, tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
        e = self.embed(tokens.long())  # [B, T, E]
        counts = torch.arange(1, e.shape[1] + 1, device=e.device, dtype=e.dtype)
        context = e.cumsum(dim=1) / counts.view(1, -1, 1)  # causal prefix mean
        features = self.trunk(torch.cat([e, context], dim=-1))
        return {"out": self.head(features), "features": features}
