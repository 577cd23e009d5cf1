"""Networks of regrl (torch only).

Offline-learner models follow one contract: ``forward(x)`` returns a dict with ``"out"``
(logits or regression outputs) and ``"features"`` (the penultimate trunk activations), and the
last layer is an ``nn.Linear`` named ``head`` so plugins can act on the features it reads.
"""

from regrl.agents.models.mlp import MLP, TokenMLP

__all__ = ["MLP", "TokenMLP"]
