"""The RLVR training driver: sample problems, generate, verify, GRPO advantages, learn,
publish weights, evaluate, log to TensorBoard, checkpoint atomically, resume."""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import yaml

from agents.objectives import group_advantages
from trainers.checkpoint import log_resume, read_state, resume_checkpoint, save_checkpoint
from trainers.logging import METRICS_JSONL, Progress, TensorBoardLogger
from trainers.rlvr import config as rc
from trainers.run import CONFIG_FILE, TB_DIR, init_ray, new_run_dir, print_run_location, \
    ray_session, save_on_interrupt

EVAL_SEED_OFFSET = 1_000_003  # eval problems come from a stream disjoint from training's


@dataclass
class RLVRResult:
    run_dir: Path
    step: int
    metrics: Dict[str, float]


def rollout_metrics(gen: Dict[str, object], rewards: torch.Tensor, group_size: int,
                    low_prob: float) -> Dict[str, float]:
    """Accuracy, pass@G, response length, behaviour entropy and low-probability-token stats."""
    mask = gen["mask"].bool()
    n_tok = mask.sum().clamp_min(1)
    prob = gen["logp"].exp()
    low = mask & (prob < low_prob)
    n_low = low.sum()
    correct = (rewards >= 1.0).float()
    return {
        "train/accuracy": float(correct.mean()),
        "train/pass@G": float(correct.view(-1, group_size).amax(1).mean()),
        "train/reward_mean": float(rewards.mean()),
        "train/response_len": float(mask.sum(1).float().mean()),
        "rollout/entropy": float((gen["entropy"] * mask).sum() / n_tok),
        "rollout/low_prob_token_frac": float(n_low / n_tok),
        "rollout/low_prob_token_prob": float((prob * low).sum() / n_low.clamp_min(1)),
        "rollout/low_prob_token_entropy": float((gen["entropy"] * low).sum() / n_low.clamp_min(1)),
        "perf/rollout_tokens_per_s": gen["gen_tokens"] / max(gen["gen_seconds"], 1e-9),
    }


def make_backend(cfg, address: Optional[str] = None):
    if cfg.resources.mode == "local":
        from trainers.rlvr.backends import LocalBackend

        return LocalBackend(cfg)
    init_ray(address)
    from trainers.rlvr.actors import RayBackend

    return RayBackend(cfg)


class Trainer:
    """One RLVR run: ``step()`` is one rollout batch and one learner update."""

    def __init__(self, cfg, backend):
        from envs.text import get_task

        self.cfg, self.backend = cfg, backend
        self.task = get_task(cfg.task.name, **dict(cfg.task.kwargs))
        self.rng = np.random.default_rng(cfg.seed)
        eval_rng = np.random.default_rng(cfg.seed + EVAL_SEED_OFFSET)
        self.eval_problems = [self.task.sample(eval_rng) for _ in range(cfg.eval.prompts)]

    def step(self, step: int) -> Dict[str, float]:
        r, start = self.cfg.rollout, time.perf_counter()
        problems = [self.task.sample(self.rng) for _ in range(r.prompts_per_step)]
        gen = self.backend.generate([p.prompt for p in problems], r.group_size, r.temperature,
                                    self.cfg.seed * 1_000_000 + step)
        rows = [p for p in problems for _ in range(r.group_size)]
        rewards = torch.tensor(self.backend.score(gen["texts"], rows), dtype=torch.float32)
        groups = torch.arange(len(rows)) // r.group_size
        adv = self.cfg.objective.advantages
        advantages = group_advantages(rewards, groups, eps=adv.eps, std=adv.std)
        metrics = rollout_metrics(gen, rewards, r.group_size, self.cfg.diagnostics.low_prob)
        batch = {k: v for k, v in gen.items() if torch.is_tensor(v)}
        batch["advantages"] = advantages
        metrics.update(self.backend.update(batch))
        metrics["learner/weights_version"] = float(self.backend.publish())
        metrics["perf/step_s"] = time.perf_counter() - start
        return metrics

    def evaluate(self, step: int) -> Dict[str, float]:
        """Held-out pass@1 (greedy) and pass@k (k samples at the rollout temperature)."""
        e, prompts = self.cfg.eval, [p.prompt for p in self.eval_problems]
        greedy = self.backend.generate(prompts, 1, 0.0, 7 + step)
        ok1 = torch.tensor(self.backend.score(greedy["texts"], self.eval_problems)) >= 1.0
        sampled = self.backend.generate(prompts, e.pass_k, self.cfg.rollout.temperature, 11 + step)
        rows = [p for p in self.eval_problems for _ in range(e.pass_k)]
        okk = torch.tensor(self.backend.score(sampled["texts"], rows)) >= 1.0
        mask = sampled["mask"].bool()
        return {"eval/pass@1": float(ok1.float().mean()),
                "eval/pass@k": float(okk.view(-1, e.pass_k).any(1).float().mean()),
                "eval/sample_accuracy": float(okk.float().mean()),
                "eval/entropy": float((sampled["entropy"] * mask).sum() / mask.sum().clamp_min(1)),
                "eval/response_len": float(mask.sum(1).float().mean())}

    def state(self) -> Dict[str, object]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: Dict[str, object]) -> None:
        self.rng.bit_generator.state = state["rng"]


def train_rlvr(cfg=None, *, resume: Optional[Path] = None, address: Optional[str] = None,
               progress: bool = True) -> RLVRResult:
    """Train ``cfg`` in a new run directory, or continue the run at ``resume``."""
    if resume is not None:
        run_dir = Path(resume).resolve()
        cfg = load_rlvr_run_config(run_dir)
    else:
        run_dir = new_run_dir(cfg)
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(rc.dump(cfg), sort_keys=False))
    if cfg.resources.torch_threads:
        torch.set_num_threads(cfg.resources.torch_threads)
    torch.manual_seed(cfg.seed)
    choice = resume_checkpoint(run_dir) if resume is not None else None  # before Ray starts
    local = cfg.resources.mode == "local"  # no Ray at all
    with nullcontext() if local else ray_session(address):
        backend = make_backend(cfg, address)
        try:
            return _loop(cfg, Trainer(cfg, backend), run_dir, choice, progress)
        finally:
            backend.close()


def load_rlvr_run_config(run_dir: Path):
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise rc.ConfigError(f"{run_dir}: not a regrl run directory (no {CONFIG_FILE})")
    return rc.config_from_dict(yaml.safe_load(path.read_text()) or {}, source=str(path))


def _loop(cfg, trainer: Trainer, run_dir: Path, choice, progress: bool) -> RLVRResult:
    """Steps until ``training.steps``; ``choice``: the checkpoint to resume from (or None)."""
    resuming = choice is not None
    start = _restore(trainer, run_dir, choice)
    tb = TensorBoardLogger(run_dir / TB_DIR, purge_step=start + 1 if resuming else None,
                           jsonl=run_dir / METRICS_JSONL)
    log_resume(tb, choice, start + 1)
    if not resuming:
        tb.text("config", "```yaml\n" + (run_dir / CONFIG_FILE).read_text() + "\n```")
    bar = Progress(cfg.training.steps, start, enabled=progress)
    bar.line = _progress_line
    metrics: Dict[str, float] = {}
    done = start

    def checkpoint(step: int) -> None:
        save_checkpoint(trainer.backend.save, run_dir, step, trainer.state(), cfg.checkpoint.keep)

    try:
        for step in range(start + 1, cfg.training.steps + 1):
            metrics = trainer.step(step)
            last = step == cfg.training.steps
            if cfg.eval.every and (step % cfg.eval.every == 0 or last):
                metrics.update(trainer.evaluate(step))
            tb.scalars(metrics, step)
            bar.update(step, metrics, 0.0)
            done = step
            if step % cfg.checkpoint.every == 0 or last:
                checkpoint(step)
    except KeyboardInterrupt:
        save_on_interrupt(run_dir, done, checkpoint)
        raise
    finally:
        bar.close()
        tb.close()
    print_run_location(run_dir)
    return RLVRResult(run_dir, done, metrics)


def _restore(trainer: Trainer, run_dir: Path, choice) -> int:
    """The step of the checkpoint ``resume_checkpoint`` chose (0 when there is none)."""
    if choice is None or choice.path is None:
        return 0
    ckpt = choice.path
    trainer.backend.restore(str(ckpt))
    state = read_state(ckpt)
    trainer.load_state(state)
    print(f"resumed {run_dir} from {ckpt.name} (step {state['iteration']})", flush=True)
    return int(state["iteration"])


def _progress_line(step: int, total: int, m: Dict[str, float], _unused: float = 0.0) -> str:
    return (f"step {step:>4}/{total}  acc {m.get('train/accuracy', float('nan')):.3f}  "
            f"entropy {m.get('learner/entropy', float('nan')):.3f}  "
            f"len {m.get('train/response_len', float('nan')):5.1f}  {m.get('perf/step_s', 0):6.2f}s")
