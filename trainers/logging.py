"""Metric namespacing, the TensorBoard writer and the per-iteration progress display."""

from __future__ import annotations

import json
import math
import sys
from numbers import Number
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from regrl.files import write_text_atomic

# RLlib result keys -> regrl's namespaced TensorBoard tags.
_RENAME = {
    "env_runners/episode_return_mean": "env/episode_return_mean",
    "env_runners/episode_return_max": "env/episode_return_max",
    "env_runners/episode_return_min": "env/episode_return_min",
    "env_runners/episode_len_mean": "env/episode_len_mean",
    "env_runners/num_episodes": "env/num_episodes",
    "env_runners/num_env_steps_sampled": "env/env_steps",
    "time_this_iter_s": "perf/iteration_s",
    "timers/env_runner_sampling_timer": "perf/sample_s",
    "timers/learner_update_timer": "perf/learn_s",
}
_LEARNER_SKIP = (
    "throughput",
    "num_module_steps",
    "num_env_steps",
    "weights_seq_no",
    "num_trainable_parameters",
    "num_non_trainable_parameters",
    "diff_num_grad_updates",
    "module_train_batch_size",
    "curr_kl_coeff",
    "curr_entropy_coeff",
)


def flatten(d: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _scalar(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, Number) and not hasattr(v, "item"):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def namespace_metrics(result: Mapping[str, Any]) -> Dict[str, float]:
    """Map an RLlib ``train()`` result to ``env/…``, ``learner/…`` and ``perf/…`` scalars."""
    flat = flatten(result)
    out: Dict[str, float] = {}
    for key, tag in _RENAME.items():
        value = _scalar(flat.get(key))
        if value is not None:
            out[tag] = value
    for key, value in flat.items():  # environment diagnostics from RegrlCallbacks
        if key.startswith("env_runners/regrl/") and _scalar(value) is not None:
            out["env/" + key[len("env_runners/regrl/") :]] = _scalar(value)
    modules = {k.split("/")[1] for k in flat if k.startswith("learners/")} - {"__all_modules__"}
    for key, v in flat.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "learners" or parts[1] == "__all_modules__":
            continue
        if any(s in parts[2] for s in _LEARNER_SKIP) or _scalar(v) is None:
            continue
        tag = f"learner/{parts[2]}" if len(modules) == 1 else f"learner/{parts[1]}/{parts[2]}"
        out[tag] = _scalar(v)
    if "env/env_steps" in out and out.get("perf/iteration_s"):
        out["perf/env_steps_per_s"] = out["env/env_steps"] / out["perf/iteration_s"]
    return out


def purge_jsonl(path: Path, purge_step: int) -> None:
    """Drop the lines of ``step >= purge_step`` (written after the checkpoint a run resumes
    from), as TensorBoard's ``purge_step`` does for the event files. Rewritten atomically: a
    resume interrupted here keeps the whole log, not half of it."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) < purge_step
    ]
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def read_jsonl(path: Path) -> list:
    """The per-iteration records of a run's ``metrics.jsonl`` (``[]`` if there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class TensorBoardLogger:
    """Scalars per iteration; ``purge_step`` drops steps written after the resumed checkpoint.

    With ``jsonl`` (a run's ``metrics.jsonl``) every ``scalars`` call also appends one line
    ``{"step": i, tag: value, ...}``: the curves ``regrl sweep`` aggregates over seeds, readable
    without TensorBoard."""

    def __init__(
        self, log_dir: Path, purge_step: Optional[int] = None, jsonl: Optional[Path] = None
    ):
        # lazy: torch, not at --help (sweep imports this module)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self.jsonl = Path(jsonl) if jsonl is not None else None
        if self.jsonl is not None:
            purge_jsonl(self.jsonl, purge_step if purge_step is not None else 0)

    def scalars(self, metrics: Mapping[str, float], step: int) -> None:
        for tag, value in sorted(metrics.items()):
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()
        if self.jsonl is not None:
            record = {"step": step, **{k: _scalar(v) for k, v in metrics.items()}}
            with self.jsonl.open("a") as f:
                f.write(json.dumps(record) + "\n")

    def text(self, tag: str, body: str) -> None:
        self.writer.add_text(tag, body, 0)

    def close(self) -> None:
        self.writer.close()


class Progress:
    """One line per iteration: a live rich bar on a TTY, plain lines otherwise, or nothing."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream=None):
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.total = total
        self._bar = None
        if enabled and self.stream.isatty():
            # lazy: only for an interactive terminal
            from rich.progress import (
                BarColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._bar = RichProgress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
            )
            self._task = self._bar.add_task("train", total=total, completed=start, info="")
            self._bar.start()

    @staticmethod
    def line(iteration: int, total: int, metrics: Mapping[str, float], env_steps: float) -> str:
        ret = metrics.get("env/episode_return_mean", float("nan"))
        secs = metrics.get("perf/iteration_s", float("nan"))
        # no episode finished in this iteration (long episodes): say so rather than print nan
        shown = f"{ret:8.2f}" if math.isfinite(ret) else f"{'—':>8}"
        return (
            f"iter {iteration:>4}/{total}  env_steps {int(env_steps):>8}  "
            f"return {shown}  {secs:6.2f}s"
        )

    def update(self, iteration: int, metrics: Mapping[str, float], env_steps: float) -> None:
        if not self.enabled:
            return
        text = self.line(iteration, self.total, metrics, env_steps)
        if self._bar is not None:
            self._bar.update(self._task, completed=iteration, info=text.split("  ", 1)[1])
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
