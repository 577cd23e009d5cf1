"""Supervised fine-tuning of a language model on a text task's solved problems
(``regrl.envs.text.demonstrations``): masked token cross-entropy on completion tokens only. The
result is the pi_BC that the ``demo_kl`` term regularises toward (Tiapkin et al., ICLR 2024,
arXiv 2310.17303, phase 1 "behaviour cloning")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from regrl.agents.models import lm
from regrl.envs.text import demonstrations, get_task
from regrl.trainers.checkpoint import load_torch_state
from regrl.trainers.harness import Result, Session
from regrl.trainers.kinds import train_kind
from regrl.trainers.rlvr.policy import build_policy, save_policy

SFT_STATE = "sft_state.pt"


def encode_demonstrations(tokenizer, demos: List[Dict[str, str]], chat_template: bool):
    """(prompt_ids, prompt_mask) left-padded and (completion_ids, completion_mask)
    right-padded with EOS appended, so the model learns to stop."""
    p_ids, p_mask = lm.encode_prompts(tokenizer, [d["prompt"] for d in demos], chat_template)
    rows = [
        tokenizer(d["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        for d in demos
    ]
    T = max(len(r) for r in rows)
    c_ids = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)
    c_mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, r in enumerate(rows):
        c_ids[i, : len(r)] = torch.tensor(r)
        c_mask[i, : len(r)] = True
    return p_ids, p_mask, c_ids, c_mask


def sft_loss(model, p_ids, p_mask, c_ids, c_mask, label_smoothing: float = 0.0):
    """Token-mean cross-entropy of the completion tokens given the prompt; (loss, token acc)."""
    logits = lm.completion_logits(model, p_ids, p_mask, c_ids, c_mask).float()
    m = c_mask.bool()
    loss = F.cross_entropy(logits[m], c_ids[m], label_smoothing=label_smoothing)
    acc = (logits[m].argmax(-1) == c_ids[m]).float().mean()
    return loss, acc.detach()


def train_sft(cfg=None, *, resume: Optional[Path] = None, progress: bool = True) -> Result:
    """Fine-tune ``cfg.model`` on ``cfg.data.n`` demonstrations (or continue the run at
    ``resume``) through the run harness; checkpoints hold ``policy/`` and the optimizer."""
    return train_kind("sft", cfg, resume=resume, progress=progress)


class SFTSession(Session):
    """One SFT run for :mod:`regrl.trainers.harness`: an iteration is one epoch over the data."""

    unit = "epoch"

    def __init__(self, cfg, run_dir: Path, choice=None):
        # torch threads and seed: set by the harness before it builds the session
        self.cfg, self.total = cfg, cfg.training.epochs
        self.model, self.tokenizer = build_policy(cfg.model, seed=cfg.seed)
        self.model.to(cfg.resources.device)
        task = get_task(cfg.data.task.name, **dict(cfg.data.task.kwargs))
        self.data = encode_demonstrations(
            self.tokenizer, demonstrations(task, cfg.data.n, cfg.data.seed), cfg.model.chat_template
        )
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.training.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def step(self, epoch: int) -> Dict[str, float]:
        order = torch.randperm(self.data[0].shape[0], generator=self.gen)
        return _epoch(self.cfg, self.model, self.opt, self.data, order)

    def save(self, path: str) -> Dict[str, object]:
        save_policy(self.model, self.tokenizer, Path(path))
        torch.save({"optimizer": self.opt.state_dict()}, Path(path) / SFT_STATE)
        return {}

    def restore(self, ckpt: Path, state: Dict[str, object]) -> None:
        from transformers import AutoModelForCausalLM  # optional extra: transformers (regrl[lm])

        saved = AutoModelForCausalLM.from_pretrained(str(ckpt / "policy"), local_files_only=True)
        self.model.load_state_dict(saved.state_dict())
        self.opt.load_state_dict(load_torch_state(ckpt / SFT_STATE)["optimizer"])
        for _ in range(int(state["iteration"])):  # the shuffle stream of an uninterrupted run
            torch.randperm(self.data[0].shape[0], generator=self.gen)

    def should_stop(self, epoch: int, metrics: Dict[str, float]) -> bool:
        return False

    def close(self) -> None:
        pass


def progress_line(epoch: int, total: int, m: Dict[str, float], _unused: float = 0.0) -> str:
    return f"epoch {epoch:>3}/{total}  loss {m['train/loss']:.4f}  token_acc {m['train/token_acc']:.3f}"


def _epoch(cfg, model, opt, data, order: torch.Tensor) -> Dict[str, float]:
    t, start = cfg.training, time.perf_counter()
    model.train()
    losses, accs, tokens = [], [], 0
    for idx in order.split(t.batch_size):
        batch = [x[idx].to(cfg.resources.device) for x in data]
        loss, acc = sft_loss(model, *batch, label_smoothing=t.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        losses.append(loss.item())
        accs.append(float(acc))
        tokens += int(batch[3].sum())
    model.eval()
    return {
        "train/loss": sum(losses) / len(losses),
        "train/token_acc": sum(accs) / len(accs),
        "perf/tokens_per_s": tokens / max(time.perf_counter() - start, 1e-9),
    }
