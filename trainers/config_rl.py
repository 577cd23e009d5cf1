"""The schema of kind ``rl`` (an RLlib experiment file, the default kind): environment, model,
objective, training schedule, Ray resources and evaluation, on the shared
:class:`regrl.trainers.config_base.RunConfig`; :func:`load_config` reads, overrides and validates
a file. Every field has a docstring; unknown keys, wrong types and out-of-range values are a
:class:`ConfigError` naming the file, the key and the nearest valid key
(:mod:`regrl.trainers.config_kernel`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

from regrl.trainers.checks import (
    MAX_ACTORS,
    MAX_BATCH,
    MAX_WIDTH,
    ConfigError,
    require_size,
    short_repr,
)
from regrl.trainers.checks import (
    require as _require,
)
from regrl.trainers.config_base import LearnerResources, RunConfig
from regrl.trainers.config_kernel import key_name, parse
from regrl.trainers.config_objective import ObjectiveConfig
from regrl.trainers.config_overrides import apply_overrides
from regrl.trainers.config_yaml import read_yaml

__all__ = [
    "DEFAULT_SAMPLE_TIMEOUT_S",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ModelConfig",
    "ResourcesConfig",
    "TrainingConfig",
    "config_from_dict",
    "load_config",
]


@dataclass(frozen=True)
class EnvConfig:
    name: str = "CartPole-v1"
    """Registered regrl environment or any gymnasium id (see ``regrl list``)."""
    kwargs: Dict[str, Any] = field(default_factory=dict)
    """Keyword arguments passed to the environment constructor."""


@dataclass(frozen=True)
class ModelConfig:
    hidden: Tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy and value MLPs."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
    share_layers: bool = False
    """Share the trunk between policy and value heads."""
    action_init_mean: Optional[float] = None
    """Initial mean of a Gaussian policy's (normalised) actions: the output layer starts with
    near-zero weights and this bias (SMARL starts near a physical coefficient). null: RLlib's
    default initialisation."""
    action_init_std: Optional[float] = None
    """Initial standard deviation of a Gaussian policy's (normalised) actions, e.g. 0.1 = 0.05
    of the range [−1, 1] (SMARL's initial exploration noise). null: RLlib's default."""
    init_weights: Optional[str] = None
    """A policy file (weights-only ``.pt`` with its JSON sidecar, ``trainers/rllib/policy_file.py``)
    whose weights the policy and value networks start from (after ``action_init_*``), e.g. a
    shipped SMARL policy to fine-tune or the supervised closure. null: fresh initialisation."""
    trainable: Optional[Literal["head", "scorer"]] = None
    """RIFT's candidate scorer (``rift_metadrive`` in candidate mode) only: which of the stage-1
    planner's weights fine-tuning trains. ``head`` (null means the same): only the scoring
    head ``pi_head``, RIFT's ``trainable_layers``; ``scorer``: also the encoders, context,
    mode embeddings and decoder that compute the head's features (the trajectory head stays
    frozen; the env's candidates come from the frozen stage-1 planner either way).
    docs/rift.md, "Can the scoring head learn RIFT's ranking?", says why."""

    def __post_init__(self) -> None:
        _require(
            all(0 < h <= MAX_WIDTH for h in self.hidden),
            f"hidden sizes must be in [1, {MAX_WIDTH:,}], got {short_repr(self.hidden)}",
        )
        _require(
            self.action_init_std is None or self.action_init_std > 0,
            f"action_init_std must be > 0 or null, got {self.action_init_std}",
        )


@dataclass(frozen=True)
class TrainingConfig:
    iterations: int = 50
    """Maximum number of training iterations."""
    stop_return: Optional[float] = None
    """Stop early once ``env/episode_return_mean`` reaches this value."""
    train_batch_size: int = 2000
    """Environment steps per iteration, over all learners (each of ``resources.num_learners``
    learner actors updates on an equal share); a multi-agent step holds one agent step per
    agent."""
    minibatch_size: int = 128
    """SGD minibatch size (at most train_batch_size), over all learners like
    train_batch_size."""
    num_epochs: int = 6
    """Passes over each train batch."""
    lr: float = 3e-4
    """Adam learning rate."""
    grad_clip: Optional[float] = None
    """Global gradient-norm clip over all parameters (null = none, as stock RLlib PPO)."""

    def __post_init__(self) -> None:
        _require(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}")
        require_size("train_batch_size", self.train_batch_size, MAX_BATCH)
        _require(
            1 <= self.minibatch_size <= self.train_batch_size,  # RLlib requires it too
            f"minibatch_size must be in [1, train_batch_size={self.train_batch_size}],"
            f" got {self.minibatch_size}",
        )
        _require(self.num_epochs >= 1, f"num_epochs must be >= 1, got {self.num_epochs}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0 or null")


DEFAULT_SAMPLE_TIMEOUT_S = 600.0
"""resources.sample_timeout_s: ten minutes, ten times RLlib's 60 s, which one SMARL reset (8 LES
spun up for 2 time units) exceeded on a loaded 2-core machine; a hung env runner still ends the
iteration."""


@dataclass(frozen=True)
class ResourcesConfig(LearnerResources):
    num_env_runners: int = 0
    """Env-runner actors (0 samples in the driver process)."""
    num_envs_per_env_runner: int = 1
    """Vectorised environments per runner."""
    num_cpus_per_env_runner: float = 1
    """CPUs reserved per env runner."""
    num_learners: int = 0
    """Learner actors (0 = local learner in the driver)."""
    torch_threads: Optional[int] = None
    """torch CPU threads of the driver (local learner, and envs when num_env_runners=0);
    null keeps torch's default. 1 avoids oversubscribing a small machine whose other cores
    run env runners."""
    env_runner_resources: Dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each env runner needs, to pin runners to a node type (cluster.yaml
    gives cpu_worker nodes ``env_runner_slot``): e.g. ``{env_runner_slot: 1}``."""
    learner_resources: Dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each learner actor needs (needs num_learners >= 1), e.g.
    ``{learner_slot: 1}`` for the gpu_worker nodes of cluster.yaml."""
    max_env_runner_restarts: int = 1000
    """A crashed env-runner actor (or one lost with its node) is restarted up to this many
    times; restarts are logged as ``perf/env_runner_restarts``."""
    sample_timeout_s: Optional[float] = DEFAULT_SAMPLE_TIMEOUT_S
    """Seconds an iteration waits for the env runners' samples; a sample that comes later is
    discarded and the iteration samples 0 steps (RLlib's own default, 60 s, is shorter than one
    reset of a slow simulator such as the SMARL LES spin-up on a loaded machine). null waits
    indefinitely (a dead runner is still detected; a hung one is not)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("num_env_runners", "num_envs_per_env_runner", "num_learners"):
            require_size(name, getattr(self, name), MAX_ACTORS, lo=0)
        _require(self.max_env_runner_restarts >= 0, "max_env_runner_restarts must be >= 0")
        _require(
            self.sample_timeout_s is None or self.sample_timeout_s > 0,
            f"resources.sample_timeout_s must be a number of seconds > 0 or null, "
            f"got {short_repr(self.sample_timeout_s)}",
        )
        for name in ("env_runner_resources", "learner_resources"):
            for key, amount in getattr(self, name).items():
                _require(
                    isinstance(amount, (int, float)) and amount > 0,
                    f"resources.{name}.{key_name(key)} must be a number > 0, "
                    f"got {short_repr(amount)}",
                )
        _require(
            not self.learner_resources or self.num_learners >= 1,
            "resources.learner_resources needs num_learners >= 1 (the learner runs in "
            "the driver process otherwise)",
        )
        _require(self.num_envs_per_env_runner >= 1, "num_envs_per_env_runner must be >= 1")


@dataclass(frozen=True)
class EvalConfig:
    episodes: int = 10
    """Episodes (or, for smarl_turb2d, simulations) run by ``regrl eval``."""
    kwargs: Dict[str, Any] = field(default_factory=dict)
    """Evaluator-specific settings (smarl_turb2d: time_units, spinup, seeds)."""

    def __post_init__(self) -> None:
        _require(self.episodes >= 1, "eval.episodes must be >= 1")


@dataclass(frozen=True)
class ExperimentConfig(RunConfig):
    kind: Literal["rl"] = "rl"
    """``rl`` (the default when a file has no ``kind:``): an RLlib experiment."""
    seed: int = 0
    """Seed of torch, numpy and the environments."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The policy/value network."""
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    """Advantage estimator and loss terms."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """Optimisation schedule."""
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    """Ray resources."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation settings."""

    def __post_init__(self) -> None:
        super().__post_init__()
        k, t = self.resources.num_learners, self.training
        _require(
            k <= 1 or (t.train_batch_size % k == 0 and t.minibatch_size % k == 0),
            f"training.train_batch_size ({t.train_batch_size}) and minibatch_size "
            f"({t.minibatch_size}) are totals over the learners and must be divisible by "
            f"resources.num_learners ({k})",
        )


def config_from_dict(data: Dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig`; errors name ``source``."""
    return parse(ExperimentConfig, data, source)


def load_config(path: str | Path, overrides: Optional[List[str]] = None) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``--set`` overrides and validate it."""
    data = apply_overrides(read_yaml(path), list(overrides or []))
    return config_from_dict(data, source=str(path))
