"""The ``rlvr`` and ``sft`` kinds' drivers (:mod:`regrl.trainers.kinds`): language-model RL with
verifiable rewards (:mod:`regrl.trainers.rlvr.loop`) and supervised fine-tuning
(:mod:`regrl.trainers.rlvr.sft`), both on the run harness. Registered when
the core imports :mod:`regrl.trainers.rlvr.plugin`.

The loops (Ray actors, language models) are imported when a run or an evaluation starts, not
with the drivers: ``regrl validate`` loads an rlvr or sft config without Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from regrl.trainers.checks import require_module
from regrl.trainers.harness import Result
from regrl.trainers.kinds import Driver, HarnessDriver, Source, raw_config, source_name
from regrl.trainers.rlvr import config as rc
from regrl.trainers.run_files import EVAL_FILE


def _gpu(r) -> Dict[str, float]:
    """The GPU part of a learner's bundle (``resources.num_gpus_per_learner``)."""
    return {"GPU": float(r.num_gpus_per_learner)} if r.num_gpus_per_learner else {}


class _LMDriver(Driver):
    def preflight(self, cfg) -> None:
        """Every LM policy (tiny, GGUF, HF) is a transformers model: without the `lm` extra,
        one error line before a run directory exists."""
        require_module("transformers")

    def load(
        self, source: Source, overrides: Sequence[str] = (), *, where: Optional[str] = None
    ) -> Any:
        return rc.config_from_dict(raw_config(source, overrides), source=source_name(source, where))

    def dump(self, cfg) -> Dict[str, Any]:
        return rc.dump(cfg)

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        from regrl.trainers.rlvr.evaluate import evaluate_run

        report = evaluate_run(Path(run_dir))
        print(json.dumps(report["last"], indent=2, sort_keys=True))
        for fig in report["figures"]:
            print(f"figure: {fig}")
        print(f"report: {Path(run_dir) / EVAL_FILE}")
        return 0


class RLVRDriver(_LMDriver, HarnessDriver):
    curve_metrics = ("train/accuracy", "eval/pass@1")
    unit = "step"

    def context(self, cfg, address: Optional[str]):
        from regrl.trainers.rlvr import loop

        return loop.rlvr_context(cfg, address)

    def build(self, cfg, run_dir: Path, choice) -> Any:
        from regrl.trainers.rlvr import loop

        return loop.RLVRSession(cfg, run_dir, choice)

    @staticmethod
    def progress_line(step: int, total: int, m: Dict[str, float], _unused=0.0) -> str:
        from regrl.trainers.rlvr import loop

        return loop.progress_line(step, total, m)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> Result:
        result = super().train(cfg, resume=resume, address=address, progress=progress)
        m = result.metrics
        acc = m.get("eval/pass@1", m.get("train/accuracy", float("nan")))
        result.line = (
            f"done: {result.done} steps; accuracy {acc:.3f}; run directory: {result.run_dir}"
        )
        return result

    def bundles(self, cfg) -> List[Dict[str, float]]:
        r = cfg.resources
        if r.mode == "local":
            return [{"CPU": 1.0, **_gpu(r)}]
        actor = {"CPU": float(r.cpus_per_actor)}
        learner = {
            **actor,
            **_gpu(r),
            **r.learner_resources,
        }
        return (
            [{"CPU": 1.0}]
            + [{**actor, **r.rollout_resources}] * r.num_rollout_actors
            + [{**actor, **r.reward_resources}] * r.num_reward_actors
            + [learner] * r.num_learners
        )


class SFTDriver(_LMDriver, HarnessDriver):
    curve_metrics = ("train/loss", "train/token_acc")
    unit = "epoch"

    def build(self, cfg, run_dir: Path, choice) -> Any:
        from regrl.trainers.rlvr import sft

        return sft.SFTSession(cfg, run_dir, choice)

    @staticmethod
    def progress_line(epoch: int, total: int, m: Dict[str, float], _unused=0.0) -> str:
        from regrl.trainers.rlvr import sft

        return sft.progress_line(epoch, total, m)

    def bundles(self, cfg) -> List[Dict[str, float]]:
        return [{"CPU": 1.0, **_gpu(cfg.resources)}]
