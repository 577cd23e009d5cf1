"""Rollout workers (generate G completions per prompt with a policy copy) and reward workers
(run the verifiers). Plain classes: the local mode calls them in-process, the Ray mode wraps
them in actors (:mod:`regrl.trainers.rlvr.actors`)."""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import torch

from regrl.agents.models import lm


class RolloutWorker:
    """Holds a policy copy and samples completions with behaviour (and min-p proxy) log-probs.

    ``model``/``tokenizer`` may be passed in (local mode shares the learner's model, so no
    weight copy is needed); otherwise the worker builds its own from ``model_cfg``.
    """

    def __init__(self, cfg, model=None, tokenizer=None, proxy_kappa: Optional[float] = None):
        from regrl.trainers.rlvr.policy import build_policy

        if cfg.resources.torch_threads:
            torch.set_num_threads(cfg.resources.torch_threads)
        self.cfg = cfg
        self.device = torch.device(cfg.resources.rollout_device)
        if model is not None:
            self.device = next(model.parameters()).device
        else:
            model, tokenizer = build_policy(cfg.model, seed=cfg.seed)
            model.to(self.device)
        self.model, self.tokenizer = model, tokenizer
        self.proxy_kappa = proxy_kappa
        self.version = -1  # -1: initial weights, never synced from a learner

    def set_weights(self, state_dict: Dict[str, torch.Tensor], version: int) -> None:
        self.model.load_state_dict(state_dict)
        self.version = int(version)

    def weights_version(self) -> int:
        return self.version

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        temperature: float,
        seed: int,
        max_new_tokens: Optional[int] = None,
    ) -> Dict[str, object]:
        """``n`` completions per prompt (rows grouped by prompt); temperature 0 is greedy."""
        rows = [p for p in prompts for _ in range(n)]
        ids, mask = lm.encode_prompts(
            self.tokenizer, rows, self.cfg.model.chat_template, self.device
        )
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        start = time.perf_counter()
        self.model.eval()
        s = lm.sample(
            self.model,
            ids,
            mask,
            max_new_tokens=max_new_tokens or self.cfg.rollout.max_new_tokens,
            temperature=temperature,
            eos_id=self.tokenizer.eos_token_id,
            pad_id=self.tokenizer.pad_token_id,
            generator=gen,
            minp_kappa=self.proxy_kappa,
        )
        seconds = time.perf_counter() - start
        texts = [lm.decode(self.tokenizer, row[m].tolist()) for row, m in zip(s.tokens, s.mask)]
        out = {
            "prompt_ids": ids,
            "prompt_mask": mask,
            "tokens": s.tokens,
            "mask": s.mask,
            "logp": s.logp,
            "entropy": s.entropy,
            "texts": texts,
            "gen_tokens": int(s.mask.sum()),
            "gen_seconds": seconds,
        }
        if s.proxy_logp is not None:
            # Lp-Reg's min-p proxy from pi_old at the rollout temperature (arXiv 2510.03222 §3.1),
            # computed by the sampler from the softmax it already drew from
            out["proxy_logp"] = s.proxy_logp
        return {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}


class RewardWorker:
    """Runs a text task's verifier on completions."""

    def __init__(self, task_name: str, task_kwargs: dict):
        from regrl.envs.text import get_task

        self.task = get_task(task_name, **dict(task_kwargs))

    def score(self, completions: Sequence[str], problems: Sequence[object]) -> List[float]:
        if len(completions) != len(problems):
            raise ValueError(f"{len(completions)} completions for {len(problems)} problems")
        return [float(self.task.reward(c, p)) for c, p in zip(completions, problems)]
