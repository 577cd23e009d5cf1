"""Supervised fine-tuning of a language model on a text task's solved problems
(``envs.text.demonstrations``): masked token cross-entropy on completion tokens only. The
result is the pi_BC that the ``demo_kl`` term regularises toward (Tiapkin et al., ICLR 2024,
arXiv 2310.17303, phase 1 "behaviour cloning")."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
import yaml

from agents.models import lm
from trainers.checkpoint import (load_torch_state, log_resume, read_state, resume_checkpoint,
                                 save_checkpoint)
from trainers.logging import METRICS_JSONL, Progress, TensorBoardLogger
from trainers.rlvr import config as rc
from trainers.rlvr.policy import build_policy, save_policy
from trainers.run import CONFIG_FILE, TB_DIR, new_run_dir

SFT_STATE = "sft_state.pt"


def encode_demonstrations(tokenizer, demos: List[Dict[str, str]], chat_template: bool):
    """(prompt_ids, prompt_mask) left-padded and (completion_ids, completion_mask)
    right-padded with EOS appended, so the model learns to stop."""
    p_ids, p_mask = lm.encode_prompts(tokenizer, [d["prompt"] for d in demos], chat_template)
    rows = [tokenizer(d["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for d in demos]
    T = max(len(r) for r in rows)
    c_ids = torch.full((len(rows), T), tokenizer.pad_token_id, dtype=torch.long)
    c_mask = torch.zeros((len(rows), T), dtype=torch.bool)
    for i, r in enumerate(rows):
        c_ids[i, :len(r)] = torch.tensor(r)
        c_mask[i, :len(r)] = True
    return p_ids, p_mask, c_ids, c_mask


def sft_loss(model, p_ids, p_mask, c_ids, c_mask, label_smoothing: float = 0.0):
    """Token-mean cross-entropy of the completion tokens given the prompt; (loss, token acc)."""
    logits = lm.completion_logits(model, p_ids, p_mask, c_ids, c_mask).float()
    m = c_mask.bool()
    loss = F.cross_entropy(logits[m], c_ids[m], label_smoothing=label_smoothing)
    acc = (logits[m].argmax(-1) == c_ids[m]).float().mean()
    return loss, acc.detach()


@dataclass
class SFTResult:
    run_dir: Path
    epoch: int
    metrics: Dict[str, float]


def train_sft(cfg=None, *, resume: Optional[Path] = None, progress: bool = True) -> SFTResult:
    """Fine-tune ``cfg.model`` on ``cfg.data.n`` demonstrations; checkpoints hold ``policy/``."""
    from envs.text import demonstrations, get_task

    if resume is not None:
        run_dir = Path(resume).resolve()
        cfg = rc.config_from_dict(yaml.safe_load((run_dir / CONFIG_FILE).read_text()), str(run_dir))
    else:
        run_dir = new_run_dir(cfg)
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(rc.dump(cfg), sort_keys=False))
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    model, tokenizer = build_policy(cfg.model, seed=cfg.seed)
    model.to(cfg.device)
    task = get_task(cfg.data.task.name, **dict(cfg.data.task.kwargs))
    data = encode_demonstrations(tokenizer, demonstrations(task, cfg.data.n, cfg.data.seed),
                                 cfg.model.chat_template)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.training.lr)
    choice = resume_checkpoint(run_dir) if resume is not None else None
    start = _restore(model, opt, choice)
    return _fit(cfg, model, tokenizer, opt, data, run_dir, start, progress, choice)


def _restore(model, opt, choice) -> int:
    """The epoch of the checkpoint ``resume_checkpoint`` chose (0 when there is none)."""
    from transformers import AutoModelForCausalLM

    if choice is None or choice.path is None:
        return 0
    ckpt = choice.path
    saved = AutoModelForCausalLM.from_pretrained(str(ckpt / "policy"), local_files_only=True)
    model.load_state_dict(saved.state_dict())
    opt.load_state_dict(load_torch_state(ckpt / SFT_STATE)["optimizer"])
    return int(read_state(ckpt)["iteration"])


def _fit(cfg, model, tokenizer, opt, data, run_dir, start, progress, choice=None) -> SFTResult:
    t, n = cfg.training, data[0].shape[0]
    tb = TensorBoardLogger(run_dir / TB_DIR, purge_step=start + 1 if start else None,
                           jsonl=run_dir / METRICS_JSONL)
    log_resume(tb, choice, start + 1)
    bar = Progress(t.epochs, start, enabled=progress)
    bar.line = lambda e, total, m, _=0.0: (f"epoch {e:>3}/{total}  loss {m['train/loss']:.4f}  "
                                          f"token_acc {m['train/token_acc']:.3f}")
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(start):  # keep the shuffle stream of an uninterrupted run
        torch.randperm(n, generator=gen)
    metrics: Dict[str, float] = {}

    def save(path: str) -> None:
        save_policy(model, tokenizer, Path(path))
        torch.save({"optimizer": opt.state_dict()}, Path(path) / SFT_STATE)

    for epoch in range(start + 1, t.epochs + 1):
        metrics = _epoch(cfg, model, opt, data, torch.randperm(n, generator=gen))
        tb.scalars(metrics, epoch)
        bar.update(epoch, metrics, 0.0)
        if epoch % cfg.checkpoint.every == 0 or epoch == t.epochs:
            save_checkpoint(save, run_dir, epoch, {}, cfg.checkpoint.keep)
    bar.close()
    tb.close()
    print(f"run directory: {run_dir}", flush=True)
    return SFTResult(run_dir, t.epochs, metrics)


def _epoch(cfg, model, opt, data, order: torch.Tensor) -> Dict[str, float]:
    t, start = cfg.training, time.perf_counter()
    model.train()
    losses, accs, tokens = [], [], 0
    for idx in order.split(t.batch_size):
        batch = [x[idx].to(cfg.device) for x in data]
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
    return {"train/loss": sum(losses) / len(losses), "train/token_acc": sum(accs) / len(accs),
            "perf/tokens_per_s": tokens / max(time.perf_counter() - start, 1e-9)}
