"""Where the RLVR pieces run: all in this process (``mode: local``) or as Ray core actors
(``mode: ray``). Both expose the same four calls, so the training loop has no mode logic."""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch

from regrl.trainers.rlvr.learner import Learner, proxy_kappa
from regrl.trainers.rlvr.rollout import RewardWorker, RolloutWorker


def _split(items: Sequence, parts: int) -> List[List]:
    """Contiguous, nearly equal chunks (empty chunks dropped)."""
    bounds = np.linspace(0, len(items), parts + 1).round().astype(int)
    return [list(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def merge_rollouts(parts: List[Dict[str, object]], pad_id: int) -> Dict[str, object]:
    """Concatenate rollout outputs of several workers: prompts left-padded, completions
    right-padded to the longest part."""
    if len(parts) == 1:
        return parts[0]
    P = max(p["prompt_ids"].shape[1] for p in parts)
    T = max(p["tokens"].shape[1] for p in parts)
    out: Dict[str, object] = {}
    for key, value in parts[0].items():
        vals = [p[key] for p in parts]
        if key in ("prompt_ids", "prompt_mask"):
            fill = pad_id if key == "prompt_ids" else 0
            out[key] = torch.cat(
                [torch.nn.functional.pad(v, (P - v.shape[1], 0), value=fill) for v in vals]
            )
        elif torch.is_tensor(value):
            fill = pad_id if key == "tokens" else 0
            out[key] = torch.cat(
                [torch.nn.functional.pad(v, (0, T - v.shape[1]), value=fill) for v in vals]
            )
        elif isinstance(value, list):
            out[key] = [x for v in vals for x in v]
        else:  # counters and timings: tokens add up, the slowest worker sets the wall time
            out[key] = max(vals) if key.endswith("seconds") else sum(vals)
    return out


class LocalBackend:
    """Everything in one process; the rollout worker shares the learner's model object."""

    mode = "local"

    def __init__(self, cfg):
        self.cfg = cfg
        self.learner = Learner(cfg)
        self.rollout = RolloutWorker(
            cfg, self.learner.model, self.learner.tokenizer, proxy_kappa(cfg)
        )
        self.reward = RewardWorker(cfg.task.name, cfg.task.kwargs)
        self.pad_id = self.learner.tokenizer.pad_token_id

    def generate(self, prompts, n, temperature, seed, max_new_tokens=None):
        return self.rollout.generate(prompts, n, temperature, seed, max_new_tokens)

    def score(self, texts, problems):
        return self.reward.score(texts, problems)

    def update(self, batch):
        return self.learner.update(batch)

    def publish(self) -> int:
        return self.learner.version  # shared model: nothing to copy

    def save(self, path: str) -> None:
        self.learner.save(path)

    def restore(self, path: str) -> None:
        self.learner.restore(path)

    def close(self) -> None:
        pass
