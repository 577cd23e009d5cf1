"""The fields every experiment kind shares: :class:`RunConfig` (kind, name, seed, runs_root,
checkpoint, resources) and :class:`LearnerResources`; each kind's top-level config extends them
(``rl``: :mod:`regrl.trainers.config_rl`, ``rlvr``/``sft``: :mod:`regrl.trainers.rlvr.config`,
``offline``: :mod:`regrl.trainers.offline`, ``planner``: :mod:`regrl.trainers.traffic.pretrain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from regrl.trainers.checks import (
    MAX_ACTORS,
    MAX_THREADS,
    require_run_name,
    require_runs_root,
)
from regrl.trainers.checks import (
    require as _require,
)


@dataclass(frozen=True)
class LearnerResources:
    """Where the learner runs, spelt the same by every kind (``resources:`` of each file)."""

    num_gpus_per_learner: float = 0
    """GPUs per learner: 0 = CPU; >= 1 = CUDA (on Ray a fraction such as 0.5 shares a GPU).
    The learner's torch device is derived from it (:attr:`device`)."""
    torch_threads: Optional[int] = None
    """torch CPU threads of the training processes; null keeps torch's default."""

    @property
    def device(self) -> str:
        """``cuda`` when the learner has a GPU, else ``cpu``."""
        return "cuda" if self.num_gpus_per_learner > 0 else "cpu"

    def __post_init__(self) -> None:
        _require(
            0 <= self.num_gpus_per_learner <= MAX_ACTORS,
            f"resources.num_gpus_per_learner must be in [0, {MAX_ACTORS}], "
            f"got {self.num_gpus_per_learner}",
        )
        _require(
            self.torch_threads is None or 1 <= self.torch_threads <= MAX_THREADS,
            f"resources.torch_threads must be in [1, {MAX_THREADS}] or null",
        )


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 5
    """Checkpoint every N iterations (and always at the end)."""
    keep: int = 3
    """How many most recent checkpoints to keep."""

    def __post_init__(self) -> None:
        _require(self.every >= 1, f"checkpoint.every must be >= 1, got {self.every}")
        _require(self.keep >= 1, f"checkpoint.keep must be >= 1, got {self.keep}")


@dataclass(frozen=True)
class RunConfig:
    """The fields every experiment kind shares; each kind's top-level config extends it (and
    narrows ``kind`` and ``resources`` to its own)."""

    kind: str = "rl"
    """The experiment kind (``regrl list`` shows them); picks the driver."""
    name: str = "experiment"
    """Experiment name; runs go to ``<runs_root>/<name>/<timestamp>/``."""
    seed: int = 0
    """Seed of torch, numpy and the kind's own random draws."""
    runs_root: str = "runs"
    """Root directory of run folders."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoint cadence (``every`` counts the kind's iterations: iterations, steps, epochs)."""
    resources: LearnerResources = field(default_factory=LearnerResources)
    """Where the learner runs (each kind extends :class:`LearnerResources`)."""

    def __post_init__(self) -> None:
        require_run_name(self.name)
        require_runs_root(self.runs_root)
