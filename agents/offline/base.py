"""The offline-plugin protocol: how a supervised regulariser plugs into the offline learner.

A plugin is a class with a typed frozen ``Params`` dataclass (its fields are the YAML keys),
the tasks it applies to, the plugins it cannot be combined with, and hooks that default to
no-ops. The learner (``trainers/offline.py``) calls the hooks in this order each step::

    on_epoch_start -> targets -> transform_batch -> forward -> observe -> sample_weights
    -> task_loss + extra_loss -> backward -> after_backward -> before_step -> step -> after_step
    -> validation_step (plugins with ``needs_validation``, on a batch of the tuning split)
    -> ... -> on_epoch_end

A plugin that owns extra trainable parts (a peer network, a hypernetwork's hyperparameters,
a policy) builds them and their optimiser in ``setup`` and returns their state from
``state_dict``; the learner's optimiser only ever sees the model's parameters.

Hooks never reach into the learner's config; the math lives in pure functions next to them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch
import torch.nn as nn

from regrl.agents.registry import Registry

TASKS: Tuple[str, ...] = ("classification", "regression", "tokens")
ALL_TASKS: FrozenSet[str] = frozenset(TASKS)

PLUGINS = Registry("offline plugin")
"""Every offline plugin class, by name (``regrl list`` prints them)."""

Batch = Dict[str, torch.Tensor]
Metrics = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class TaskInfo:
    """What a plugin may know about the run it is part of."""

    task: str
    """``classification``, ``regression`` or ``tokens``."""
    num_samples: int
    """Training-set size; per-sample buffers are indexed by ``batch["idx"]`` in [0, num_samples)."""
    out_dim: int
    """Classes, regression output dimension, or vocabulary size."""
    epochs: int
    """Total training epochs."""
    seed: int
    """Run seed; plugins derive their own generators from it."""
    in_dim: int = 0
    """Input features per sample (0 when unknown, e.g. token inputs)."""


@dataclass(frozen=True)
class NoParams:
    """This plugin has no parameters."""


class Plugin:
    """Base class of offline plugins; every hook is a no-op until overridden.

    Batches are dicts with ``x`` (inputs), ``target`` (dense targets: one-hot / soft class
    probabilities [B, C], regression targets [B, D], or token ids [B, T]), ``y`` (the raw
    labels) and ``idx`` (global training-set indices, long [B]). Model outputs are dicts with
    ``out`` and ``features``.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    tasks: ClassVar[FrozenSet[str]] = ALL_TASKS
    conflicts: ClassVar[FrozenSet[str]] = frozenset()
    replaces_task_loss: ClassVar[bool] = False
    provides_targets: ClassVar[bool] = False
    data_parallel: ClassVar[bool] = True
    needs_validation: ClassVar[bool] = False
    """True: the run must hold out a tuning split (``data.tune_fraction``) and the learner calls
    :meth:`validation_step` after every training step with a batch of it."""

    def __init__(self, params: Any, info: TaskInfo):
        self.params = params
        self.info = info

    # ---- config-time checks -------------------------------------------------------------
    @classmethod
    def check_config(cls, params: Any, task: str, epochs: int) -> None:
        """Raise ValueError when ``params`` cannot work for this task / schedule."""

    # ---- model and optimizer ------------------------------------------------------------
    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model

    def wrap_optimizer(self, optimizer: Any, model: nn.Module) -> Any:
        return optimizer

    def setup(
        self, model: nn.Module, optimizer: Any, make_optimizer: Callable[[nn.Module], Any]
    ) -> None:
        """Called once after every wrap; plugins that own extra networks build them here."""

    # ---- per epoch ----------------------------------------------------------------------
    def on_epoch_start(self, epoch: int, model: nn.Module) -> None:
        pass

    def on_epoch_end(self, epoch: int, model: nn.Module) -> Metrics:
        return {}

    # ---- per step -----------------------------------------------------------------------
    def targets(self, batch: Batch, epoch: int) -> Optional[torch.Tensor]:
        """Replacement dense targets for the batch (soft targets), or None."""
        return None

    def transform_batch(self, batch: Batch, epoch: int) -> Batch:
        return batch

    def observe(self, batch: Batch, outputs: Dict[str, torch.Tensor], epoch: int) -> None:
        """See the training forward pass once per step (buffer updates live here)."""

    def sample_weights(
        self,
        batch: Batch,
        outputs: Dict[str, torch.Tensor],
        epoch: int,
        per_sample_loss: Callable[[Dict[str, torch.Tensor]], torch.Tensor],
    ) -> Optional[torch.Tensor]:
        """Per-sample weights [B] of the task loss, or None."""
        return None

    def task_loss(
        self, outputs: Dict[str, torch.Tensor], target: torch.Tensor, batch: Batch
    ) -> Optional[torch.Tensor]:
        """Per-sample task loss [B] replacing the default one, or None."""
        return None

    def extra_loss(
        self, outputs: Dict[str, torch.Tensor], batch: Batch, model: nn.Module, epoch: int
    ) -> Optional[Tuple[torch.Tensor, Metrics]]:
        """A regulariser added to the task loss; must not change plugin state."""
        return None

    def after_backward(
        self, model: nn.Module, batch: Batch, closure: Callable[[], torch.Tensor]
    ) -> Metrics:
        """Edit ``p.grad`` in place; ``closure()`` recomputes the step's loss at the current
        weights (no state updates), for methods that need a second gradient."""
        return {}

    def before_step(self, model: nn.Module) -> None:
        pass

    def after_step(self, model: nn.Module) -> Metrics:
        return {}

    def validation_step(self, model: nn.Module, batch: Batch, epoch: int) -> Metrics:
        """Called after each training step (only when ``needs_validation``) with a batch of the
        tuning split, held out of the training rows: ``batch`` has ``x``, ``y``, ``target`` and
        ``idx`` (indices into the tuning split). Methods with a second, validation-driven
        update (a hyperparameter step, a policy-gradient step) make it here with their own
        optimiser; the model's parameters must not be changed."""
        return {}

    # ---- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the learner calls it after :meth:`setup`."""


def register_plugin(cls: type) -> type:
    """Class decorator: add a :class:`Plugin` subclass to :data:`PLUGINS` under ``cls.name``."""
    if not cls.name or not issubclass(cls, Plugin):
        raise TypeError(f"{cls!r} must subclass Plugin and set a name")
    if not dataclasses.is_dataclass(cls.Params):
        raise TypeError(f"{cls.name}: Params must be a frozen dataclass")
    unknown = set(cls.tasks) - ALL_TASKS
    if unknown:
        raise TypeError(f"{cls.name}: unknown tasks {sorted(unknown)}")
    doc = (cls.__doc__ or "").strip().splitlines()
    PLUGINS.register(cls.name, doc[0] if doc else "")(cls)
    return cls


def get_plugin(name: str) -> type:
    """The plugin class registered as ``name``; unknown names list the known ones."""
    return PLUGINS.get(name)


def check_combination(names: Sequence[str], task: str, data_parallel: bool = False) -> None:
    """Raise ValueError when the listed plugins cannot be used together for ``task``."""
    if len(set(names)) != len(names):
        raise ValueError(f"a plugin is listed twice: {list(names)}")
    classes = [get_plugin(n) for n in names]
    for cls in classes:
        if task not in cls.tasks:
            raise ValueError(
                f"plugin {cls.name!r} does not apply to task {task!r} "
                f"(it applies to: {', '.join(sorted(cls.tasks))})"
            )
        clash = sorted(cls.conflicts & set(names))
        if clash:
            raise ValueError(
                f"plugin {cls.name!r} cannot be combined with {clash}: {_conflict_reason(cls)}"
            )
        if data_parallel and not cls.data_parallel:
            raise ValueError(
                f"plugin {cls.name!r} runs only in one process; set resources.num_workers: 0"
            )
    for flag, what in (
        ("replaces_task_loss", "replace the task loss"),
        ("provides_targets", "provide soft targets"),
    ):
        both = [c.name for c in classes if getattr(c, flag)]
        if len(both) > 1:
            raise ValueError(f"plugins {both} both {what}; list only one of them")


def _conflict_reason(cls: type) -> str:
    return getattr(cls, "conflict_reason", "") or "they act on the same quantity"


def build_plugins(specs: Iterable[Tuple[str, Any]], info: TaskInfo) -> List[Plugin]:
    """Instantiate ``(name, params)`` pairs in order after :func:`check_combination`."""
    specs = list(specs)
    check_combination([n for n, _ in specs], info.task)
    return [get_plugin(name)(params, info) for name, params in specs]


def plugin_generator(seed: int, *salt: int) -> torch.Generator:
    """A CPU generator seeded from the run seed and a salt (e.g. the epoch), so that random
    draws of plugins are reproducible and survive resume without saving generator state."""
    g = torch.Generator()
    value = seed
    for s in salt:
        value = (value * 1_000_003 + s + 1) % (2**62)
    g.manual_seed(value)
    return g


def weight_matrices(model: nn.Module) -> List[Tuple[str, nn.Linear]]:
    """``(name, module)`` of every ``nn.Linear`` in ``model``, in definition order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
