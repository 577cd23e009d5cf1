"""Build, save and load the RLVR policy language model (no Ray here)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Tuple

import torch

from regrl.agents.models import lm
from regrl.trainers.checkpoint import checkpoint_dir, latest_checkpoint
from regrl.trainers.run_files import CONFIG_FILE

POLICY_DIR = "policy"
TINY_ALPHABET = string.printable  # every character a text task prompt or answer can use


def saved_policy_dir(path: Path) -> Path | None:
    """The saved policy of a regrl run dir (latest checkpoint), a checkpoint dir, or an
    experiment dir ``<runs_root>/<name>`` (its newest run), else None."""
    path = Path(path)
    runs = (
        sorted(p for p in path.iterdir() if (p / CONFIG_FILE).is_file())
        if not (path / CONFIG_FILE).is_file() and not (path / "config.json").is_file()
        else []
    )
    if runs:
        path = runs[-1]  # timestamped names sort chronologically
    if checkpoint_dir(path).is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path}: run has no complete checkpoint with a saved policy")
        path = latest
    return path / POLICY_DIR if (path / POLICY_DIR / "config.json").is_file() else None


def build_policy(model_cfg, seed: int = 0) -> Tuple[torch.nn.Module, object]:
    """(model, tokenizer) for an :class:`~regrl.trainers.rlvr.config.LMConfig`; float32, eval mode."""
    if model_cfg.path == "tiny":
        tokenizer = lm.char_tokenizer(TINY_ALPHABET)
        model = lm.tiny_lm(
            tokenizer,
            n_layer=model_cfg.tiny_layers,
            n_embd=model_cfg.tiny_width,
            n_head=4,
            seed=seed,
        )
        return model, tokenizer
    path = Path(model_cfg.path).expanduser()
    saved = saved_policy_dir(path) if path.is_dir() else None
    return lm.load_lm(str(saved) if saved is not None else model_cfg.path)


def save_policy(model, tokenizer, directory: Path) -> None:
    directory = Path(directory) / POLICY_DIR
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def cpu_state_dict(model) -> dict:
    """Detached CPU copies of the weights, the payload published to rollout actors."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
