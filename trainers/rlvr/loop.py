"""The RLVR kind: sample problems, generate, verify, GRPO advantages, learn, publish
weights, evaluate. :class:`RLVRSession` is one run; the run harness (:mod:`regrl.trainers.harness`)
logs it, checkpoints it and resumes it."""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from regrl.agents.objectives import group_advantages
from regrl.envs.text import get_task
from regrl.trainers import feasibility
from regrl.trainers.feasibility import Demand
from regrl.trainers.harness import Result, Session
from regrl.trainers.kinds import train_kind
from regrl.trainers.ray_session import init_ray, ray_session
from regrl.trainers.rlvr.actors import RayBackend
from regrl.trainers.rlvr.backends import LocalBackend

EVAL_SEED_OFFSET = 1_000_003  # eval problems come from a stream disjoint from training's


def rollout_metrics(
    gen: Dict[str, object], rewards: torch.Tensor, group_size: int, low_prob: float
) -> Dict[str, float]:
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
        return LocalBackend(cfg)
    init_ray(address)
    return RayBackend(cfg)


class Trainer:
    """One RLVR run: ``step()`` is one rollout batch and one learner update."""

    def __init__(self, cfg, backend):
        self.cfg, self.backend = cfg, backend
        self.task = get_task(cfg.task.name, **dict(cfg.task.kwargs))
        self.rng = np.random.default_rng(cfg.seed)
        eval_rng = np.random.default_rng(cfg.seed + EVAL_SEED_OFFSET)
        self.eval_problems = [self.task.sample(eval_rng) for _ in range(cfg.eval.prompts)]

    def step(self, step: int) -> Dict[str, float]:
        r, start = self.cfg.rollout, time.perf_counter()
        problems = [self.task.sample(self.rng) for _ in range(r.prompts_per_step)]
        gen = self.backend.generate(
            [p.prompt for p in problems],
            r.group_size,
            r.temperature,
            self.cfg.seed * 1_000_000 + step,
        )
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
        return {
            "eval/pass@1": float(ok1.float().mean()),
            "eval/pass@k": float(okk.view(-1, e.pass_k).any(1).float().mean()),
            "eval/sample_accuracy": float(okk.float().mean()),
            "eval/entropy": float((sampled["entropy"] * mask).sum() / mask.sum().clamp_min(1)),
            "eval/response_len": float(mask.sum(1).float().mean()),
        }

    def state(self) -> Dict[str, object]:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, state: Dict[str, object]) -> None:
        self.rng.bit_generator.state = state["rng"]


def train_rlvr(
    cfg=None, *, resume: Optional[Path] = None, address: Optional[str] = None, progress: bool = True
) -> Result:
    """Train ``cfg`` in a new run directory, or continue the run at ``resume`` (the ``rlvr``
    kind's driver on :mod:`regrl.trainers.harness`)."""
    return train_kind("rlvr", cfg, resume=resume, address=address, progress=progress)


def rlvr_context(cfg, address: Optional[str]):
    """Local mode runs without Ray; ray mode inside a Ray session (shut down if ours), whose
    nodes are checked to be able to host the run's actors."""
    return nullcontext() if cfg.resources.mode == "local" else _checked_session(cfg, address)


def actor_demands(cfg) -> List[Demand]:
    """The Ray actors of a ``mode: ray`` run and what each reserves (``actors._options``)."""
    r = cfg.resources
    cpu = {"CPU": float(r.cpus_per_actor)}
    gpu = {"GPU": float(r.num_gpus_per_learner)} if r.num_gpus_per_learner else {}
    return [
        Demand("rollout actor", r.num_rollout_actors, {**cpu, **r.rollout_resources}),
        Demand("reward actor", r.num_reward_actors, {**cpu, **r.reward_resources}),
        Demand("learner", r.num_learners, {**cpu, **gpu, **r.learner_resources}),
    ]


@contextmanager
def _checked_session(cfg, address: Optional[str]):
    with ray_session(address):
        feasibility.check(
            actor_demands(cfg),
            feasibility.ray_nodes(),
            autoscaler=feasibility.has_autoscaler() if address else False,
            fix="lower resources.num_rollout_actors, num_reward_actors, num_learners or "
            "cpus_per_actor, remove the GPU or custom resources, or run on a cluster with "
            "--address",
        )
        yield


class RLVRSession(Session):
    """One RLVR run for :mod:`regrl.trainers.harness`: an iteration is one rollout batch and one
    learner update (plus the held-out evaluation every ``eval.every`` steps)."""

    unit = "step"

    def __init__(self, cfg, run_dir: Path, choice=None):
        # torch threads and seed: set by the harness before it builds the session
        self.cfg, self.total = cfg, cfg.training.steps
        self.trainer = Trainer(cfg, make_backend(cfg))

    def step(self, step: int) -> Dict[str, float]:
        metrics = self.trainer.step(step)
        every = self.cfg.eval.every
        if every and (step % every == 0 or step == self.total):
            metrics.update(self.trainer.evaluate(step))
        return metrics

    def save(self, path: str) -> Dict[str, object]:
        self.trainer.backend.save(path)
        return self.trainer.state()

    def restore(self, ckpt: Path, state: Dict[str, object]) -> None:
        self.trainer.backend.restore(str(ckpt))
        self.trainer.load_state(state)

    def should_stop(self, step: int, metrics: Dict[str, float]) -> bool:
        return False

    def close(self) -> None:
        self.trainer.backend.close()


def progress_line(step: int, total: int, m: Dict[str, float], _unused: float = 0.0) -> str:
    return (
        f"step {step:>4}/{total}  acc {m.get('train/accuracy', float('nan')):.3f}  "
        f"entropy {m.get('learner/entropy', float('nan')):.3f}  "
        f"len {m.get('train/response_len', float('nan')):5.1f}  {m.get('perf/step_s', 0):6.2f}s"
    )
