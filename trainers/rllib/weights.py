"""Weights-only policy files, the part every module builder needs: read the tensors, copy them
into a module (``policy_file`` writes and describes them; ``init_module`` starts from them)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping

import torch

from regrl.trainers.checkpoint import CheckpointError, load_torch_state

SUFFIX = ".pt"


def load_policy_state(path) -> Dict[str, torch.Tensor]:
    """The weights of a policy file (tensors only; a file holding anything else is refused by
    the project's one weights-only loader, ``checkpoint.load_torch_state``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file {path} not found")
    try:
        state = load_torch_state(path, map_location="cpu")
    except CheckpointError as exc:
        raise ValueError(f"{path} is not a weights-only policy file: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a policy file: expected a dict of tensors")
    return state


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], source) -> None:
    """Copy ``state`` into ``module``: every parameter of the module must be in the file with
    its shape (extra entries, e.g. the value head for an inference-only module, are ignored)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        raise ValueError(
            f"policy file {source} does not fit the module: missing {missing[:4]}, "
            f"wrong shape {wrong[:4]} (was it trained with other model.hidden or env?)"
        )
    module.load_state_dict({k: state[k] for k in own})
