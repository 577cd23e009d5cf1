"""Typed experiment schema, YAML loading, ``--set`` overrides and validation.

Every field has a docstring-style comment; unknown keys are errors that name the key, the
file and the nearest valid key. Range checks live in ``__post_init__`` of each dataclass and
raise ``ValueError``; :func:`load_config` turns every problem into a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple

import torch
import yaml

from regrl.agents.objectives.terms import TERMS
from regrl.trainers.checks import (
    MAX_ACTORS,
    MAX_BATCH,
    MAX_INT,
    MAX_THREADS,
    MAX_WIDTH,
    ConfigError,
    require_run_name,
    require_runs_root,
    require_size,
    short_repr,
)
from regrl.trainers.checks import (
    require as _require,
)


@dataclass(frozen=True)
class EnvConfig:
    name: str = "CartPole-v1"
    """Registered regrl environment or any gymnasium id (see ``regrl list``)."""
    kwargs: Dict[str, Any] = field(default_factory=dict)
    """Keyword arguments passed to the environment constructor."""


@dataclass(frozen=True)
class AdvantageConfig:
    estimator: Literal["gae", "group", "candidates"] = "gae"
    """``gae`` (Schulman et al. 2015), ``group`` (GRPO: episode return vs its group) or
    ``candidates`` (RIFT: each candidate's simulated return vs the other candidates of its
    state, population std, eps 1e-5; needs the ``candidate_policy`` term)."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda."""
    group_std: Optional[Literal["unbiased", "population"]] = "unbiased"
    """Std used by ``group``: unbiased (verl), population (RIFT), null (Dr.GRPO)."""
    normalize: bool = True
    """Standardise advantages over the train batch (stock RLlib PPO does; not for ``group``)."""

    def __post_init__(self) -> None:
        _require(0.0 <= self.gamma <= 1.0, f"gamma must be in [0, 1], got {self.gamma}")
        _require(0.0 <= self.lam <= 1.0, f"lam must be in [0, 1], got {self.lam}")


@dataclass(frozen=True)
class NamedSpec:
    """One entry of a named list: YAML ``{name: ..., <params>}``."""

    name: str
    """The entry's name in its registry (``regrl list`` shows them)."""
    params: Any
    """The entry's own typed parameters (a frozen dataclass from the registry)."""


@dataclass(frozen=True)
class NamedList:
    """Field marker (``field(metadata=named_list(...))``): the field is a list of
    ``{name: ..., <params>}`` entries of ``registry``, parsed into ``spec`` objects; the generic
    parser needs no special case for it."""

    registry: Any
    """A registry with ``in``, ``get(name)`` and ``unknown_message(name)``."""
    params_cls_of: Callable[[Any], type]
    """The params dataclass of a registry entry."""
    spec: type
    """The :class:`NamedSpec` subclass built for each entry."""
    noun: str
    """What an entry is called in errors (``term``, ``plugin``)."""
    example: str
    """A valid name shown in the error for a non-list value."""
    non_empty: bool = True
    """Refuse an empty (or null) list."""
    name_in_path: bool = False
    """Parameter errors name ``field[i] (name)`` rather than ``field[i]``."""


def named_list(registry, params_cls_of, spec, noun, example, **kw) -> Dict[str, NamedList]:
    """``metadata`` of a named-list field (see :class:`NamedList`)."""
    return {NAMED_LIST: NamedList(registry, params_cls_of, spec, noun, example, **kw)}


NAMED_LIST = "regrl_named_list"
"""The metadata key of :func:`named_list`."""


@dataclass(frozen=True)
class TermSpec(NamedSpec):
    """One objective term: ``{name: ..., <params>}`` of the term registry."""


def _default_terms() -> Tuple[TermSpec, ...]:
    return tuple(TermSpec(n, TERMS.get(n).params_cls()) for n in ("policy", "value", "entropy"))


@dataclass(frozen=True)
class ObjectiveConfig:
    advantages: AdvantageConfig = field(default_factory=AdvantageConfig)
    """How advantages are estimated (a learner connector)."""
    terms: Tuple[TermSpec, ...] = field(
        default_factory=_default_terms,
        metadata=named_list(TERMS, lambda t: t.params_cls, TermSpec, "term", "policy"),
    )
    """Loss terms summed by the learner, each ``{name: ..., <params>}``."""

    def __post_init__(self) -> None:
        names = [t.name for t in self.terms]
        _require(len(names) == len(set(names)), f"a term is listed twice: {names}")
        surrogates = [n for n in names if TERMS.get(n).is_surrogate]
        _require(
            len(surrogates) <= 1,
            f"terms {surrogates} are both policy surrogates; list only one of them",
        )
        by_candidate = [n for n in names if TERMS.get(n).needs_candidates]
        _require(
            bool(by_candidate) == (self.advantages.estimator == "candidates"),
            f"terms {by_candidate} need advantages.estimator: candidates"
            if by_candidate
            else "advantages.estimator: candidates needs the candidate_policy term",
        )


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


def _key_name(key: Any) -> str:
    """A mapping key as it reads in a dotted path (short names plain, anything else quoted)."""
    return (
        key if isinstance(key, str) and key.isidentifier() and len(key) <= 64 else short_repr(key)
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
                    f"resources.{name}.{_key_name(key)} must be a number > 0, "
                    f"got {short_repr(amount)}",
                )
        _require(
            not self.learner_resources or self.num_learners >= 1,
            "resources.learner_resources needs num_learners >= 1 (the learner runs in "
            "the driver process otherwise)",
        )
        _require(self.num_envs_per_env_runner >= 1, "num_envs_per_env_runner must be >= 1")


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
class EvalConfig:
    episodes: int = 10
    """Episodes (or, for smarl_turb2d, simulations) run by ``regrl eval``."""
    kwargs: Dict[str, Any] = field(default_factory=dict)
    """Evaluator-specific settings (smarl_turb2d: time_units, spinup, seeds)."""

    def __post_init__(self) -> None:
        _require(self.episodes >= 1, "eval.episodes must be >= 1")


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


# ---------------------------------------------------------------------------- parsing
def _fail(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def _key(key: Any) -> str:
    """A mapping key as a path part of an error message (long or odd keys shortened)."""
    text = str(key) if isinstance(key, (str, int)) else short_repr(key, 60)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists/dicts/dataclasses."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is Literal:
        if value not in args:  # a tuple compares with ==: lists/dicts are fine here
            near = difflib.get_close_matches(str(value)[:100], [str(a) for a in args], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise _fail(where, f"must be one of {list(args)}, got {short_repr(value)}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (tuple, list, typing.Tuple, typing.List):
        if not isinstance(value, (list, tuple)):
            raise _fail(where, f"expected a list, got {type(value).__name__} {short_repr(value)}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise _fail(
                where, f"expected a mapping, got {type(value).__name__} {short_repr(value)}"
            )
        return (
            {
                _coerce(k, args[0], f"{where} key"): _coerce(v, args[1], f"{where}.{_key(k)}")
                for k, v in value.items()
            }
            if args
            else dict(value)
        )
    if tp in (int, float):
        return _number(value, tp, where)
    if not isinstance(value, tp):
        raise _fail(
            where, f"expected {_type_name(tp)}, got {type(value).__name__} {short_repr(value)}"
        )
    return value


def _number(value: Any, tp: type, where: str) -> Any:
    """An int or float field: finite, ints within MAX_INT; an integral float such as ``1e3``
    is accepted for an int field, a fractional one is refused (issue 15)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(
            where, f"expected {tp.__name__}, got {type(value).__name__} {short_repr(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(where, f"must be a finite number, got {value}")
    if tp is float:
        if abs(value) > 1e300:  # float(int) overflows, and nothing sensible is this large
            raise _fail(where, f"expected a float, got an integer of {len(str(value))} digits")
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise _fail(where, f"expected int, got float {value!r}")
    if abs(value) > MAX_INT:
        raise _fail(where, f"must be at most {MAX_INT:,} in magnitude, got {value:.3g}")
    return int(value)


def _build(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(where, f"expected a mapping, got {type(data).__name__} {short_repr(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    known = list(fields)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{_key(key)}" if where else _key(key)
        if key not in known:
            raise _fail(path, f"unknown key {short_repr(key)}{_unknown_hint(key, known)}")
        marker = fields[key].metadata.get(NAMED_LIST)
        if marker is not None:
            kwargs[key] = _build_named_list(value, path, marker)
        else:
            kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise _fail(where or "config", str(exc)) from None


_GPU_KEY = "resources.num_gpus_per_learner (0 = CPU, 1 = one GPU per learner; the device follows)"
RENAMED_KEYS = {
    "use_gpu": _GPU_KEY,
    "learner_device": _GPU_KEY,
    "learner_num_gpus": _GPU_KEY,
    "device": _GPU_KEY,
    "torch_threads": "resources.torch_threads",
}
"""Old spellings of the shared fields -> the key that replaced them (issue 12 §3)."""


def _unknown_hint(key: Any, known: List[str]) -> str:
    if isinstance(key, str) and key in RENAMED_KEYS:
        return f"; it is now spelt {RENAMED_KEYS[key]}"
    near = difflib.get_close_matches(str(key)[:100], known, n=1)
    return f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(known)}"


def _build_named_list(value: Any, where: str, spec: NamedList) -> Tuple[NamedSpec, ...]:
    """A field marked with :func:`named_list`: ``[{name: ..., <params>}, ...]``."""
    if value is None and not spec.non_empty:
        return ()
    if not isinstance(value, (list, tuple)) or (spec.non_empty and not value):
        size = "a non-empty list" if spec.non_empty else "a list"
        raise _fail(where, f"expected {size} of {spec.noun}s like [{{name: {spec.example}}}]")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, spec.spec):
            out.append(item)
            continue
        name, params = parse_named_entry(
            item,
            f"{where}[{i}]",
            spec.registry,
            spec.params_cls_of,
            spec.noun,
            name_in_path=spec.name_in_path,
        )
        out.append(spec.spec(name, params))
    return tuple(out)


def parse_named_entry(
    item: Any, path: str, registry, params_cls_of, noun: str, name_in_path: bool = False
):
    """``{name: ..., **params}`` of a registry (objective terms, offline plugins) ->
    (name, validated params dataclass); errors name ``path`` (with ``(name)`` appended for
    parameter errors when ``name_in_path``) and the nearest known name."""
    if not isinstance(item, dict) or "name" not in item:
        raise _fail(path, f"a {noun} is a mapping with a 'name' key, got {short_repr(item)}")
    params = dict(item)
    name = params.pop("name")
    if not isinstance(name, str) or name not in registry:
        shown = name if isinstance(name, str) and len(name) <= 100 else short_repr(name, 100)
        raise _fail(f"{path}.name", registry.unknown_message(shown))
    where = f"{path} ({name})" if name_in_path else path
    return name, _build(params_cls_of(registry.get(name)), params, where)


def parse(cls: type, data: Dict[str, Any], source: str = "<dict>") -> Any:
    """Build and validate any frozen config dataclass ``cls`` from a plain dict: unknown keys,
    wrong types and ``__post_init__`` ValueErrors become a ConfigError naming ``source``."""
    try:
        return _build(cls, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_from_dict(data: Dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig`; errors name ``source``."""
    return parse(ExperimentConfig, data, source)


def to_dict(cfg: Any) -> Any:
    """Plain YAML-able dict of a config (terms back to ``{name: ..., **params}``)."""
    if isinstance(cfg, NamedSpec):
        return {"name": cfg.name, **to_dict(cfg.params)}
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


# ------------------------------------------------------------------------- YAML reading
MAX_CONFIG_BYTES = 1 << 20
"""A config file is text of at most 1 MiB (the shipped ones are under 3 KiB)."""
MAX_YAML_NODES = 100_000
"""Values of a document counted with every alias expanded: a 600-byte "billion laughs"
alias bomb expands to ~10^9 and is refused while measuring, in time linear in the file."""
MAX_YAML_DEPTH = 64
"""Nesting depth of a document, aliases expanded (deeper input would hit Python's recursion
limit in the parser's consumers)."""

# YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: 1e-3, 5E-4, 1e3, +1e5, .5e3.
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that reads numbers as users write them and bounds nesting depth while
    composing (every regrl YAML reader goes through :func:`load_yaml_text`)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _measure(node: yaml.Node, depth: int, memo: Dict[int, Tuple[int, int]]) -> Tuple[int, int]:
    """(values, height) of a composed node with aliases expanded; each distinct node is
    visited once (``memo``), so the cost is linear in the file, not in the expansion."""
    if depth > MAX_YAML_DEPTH:
        raise ConfigError(
            f"nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded; a "
            "recursive alias never ends)"
        )
    if id(node) in memo:
        size, height = memo[id(node)]
        if depth + height - 1 > MAX_YAML_DEPTH:
            raise ConfigError(f"nested deeper than {MAX_YAML_DEPTH} levels (aliases expanded)")
        return size, height
    children = (
        [c for pair in node.value for c in pair]
        if isinstance(node, yaml.MappingNode)
        else node.value
        if isinstance(node, yaml.SequenceNode)
        else []
    )
    size, height = 1, 1
    for child in children:
        s, h = _measure(child, depth + 1, memo)
        size, height = size + s, max(height, h + 1)
        if size > MAX_YAML_NODES:
            raise ConfigError(
                f"more than {MAX_YAML_NODES:,} values once aliases are expanded "
                "(an alias bomb?); write the values out"
            )
    memo[id(node)] = (size, height)
    return size, height


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: the problem and its line/column."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        context = f"{exc.context}: " if getattr(exc, "context", None) else ""
        return f"{context}{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def load_yaml_text(text: str, source: str) -> Any:
    """Parse one YAML document safely: no tags beyond YAML's own, YAML 1.2 numbers, at most
    MAX_YAML_NODES values with aliases expanded and MAX_YAML_DEPTH levels; every problem is a
    one-line ConfigError naming ``source``."""
    loader = None
    try:
        loader = _ConfigLoader(text)  # its reader already refuses control characters
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, 1, {})
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)[:300]}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def decode_config_bytes(raw: bytes, source: str) -> str:
    """UTF-8 text of a config file (a BOM is allowed); binary or other encodings refused."""
    if b"\0" in raw:
        raise ConfigError(
            f"{source}: a binary file (NUL bytes), not a YAML config "
            "(UTF-16 text? save it as UTF-8)"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from None


def read_yaml(path: str | Path) -> Dict[str, Any]:
    """The top-level mapping of a config file (any kind, or a run's saved config.yaml)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{short_repr(str(path))}: no such config file")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; a config file "
                "is a short text (put data in data files)"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    data = load_yaml_text(decode_config_bytes(raw, str(path)), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise ConfigError(
            f"{path}: kind must be a name such as rlvr or offline, got "
            f"{type(kind).__name__} {short_repr(kind)}"
        )
    return data


# ------------------------------------------------------------------------- --set overrides
def parse_override(text: str) -> Tuple[List[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value read as YAML, numbers as in files)."""
    shown = short_repr(text, 120)
    if "=" not in text:
        raise ConfigError(f"--set {shown}: expected key.path=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(part.strip() for part in path):
        raise ConfigError(
            f"--set {shown}: the key path has an empty part; expected "
            "key.path=value, e.g. training.lr=1e-3"
        )
    if len(path) > MAX_YAML_DEPTH:
        raise ConfigError(f"--set {shown}: a key path of more than {MAX_YAML_DEPTH} parts")
    value = load_yaml_text(raw, f"--set {shown}") if raw.strip() else ""
    return [p.strip() for p in path], value


def _is_index(part: str) -> bool:
    return part.isascii() and part.isdigit()


def _child(node: Any, part: str, nxt: str, text: str, where: str) -> Any:
    """The container at ``node[part]`` on the way down an override path (created if absent)."""
    if isinstance(node, list):
        node = node[_list_index(node, part, text)]
    elif not isinstance(node, dict):
        raise _not_container(text, where, node)
    elif _is_index(nxt) and part not in node:
        raise ConfigError(
            f"--set {short_repr(text, 120)}: {part!r} is not a list in the file; "
            f"set the whole list, e.g. --set '{part}=[{{name: policy}}]'"
        )
    else:
        node = node.setdefault(part, {})
    return node


def apply_overrides(data: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Apply ``--set`` overrides to a raw config dict (a list index may be a path part)."""
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(path[:-1]):
            node = _child(node, part, path[i + 1], text, ".".join(path[:i]) or "the config")
        last, where = path[-1], ".".join(path[:-1])
        if isinstance(node, list):
            node[_list_index(node, last, text)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise _not_container(text, where, node)
    return data


def _not_container(text: str, where: str, node: Any) -> ConfigError:
    return ConfigError(
        f"--set {short_repr(text, 120)}: {where} holds {type(node).__name__} "
        f"{short_repr(node, 60)}, not a mapping or list"
    )


def _list_index(node: list, part: str, text: str) -> int:
    if not _is_index(part) or int(part) >= len(node):
        raise ConfigError(
            f"--set {short_repr(text, 120)}: {short_repr(part, 40)} is not an "
            f"index of a {len(node)}-item list"
        )
    return int(part)


def load_config(path: str | Path, overrides: Optional[List[str]] = None) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``--set`` overrides and validate it."""
    data = apply_overrides(read_yaml(path), list(overrides or []))
    return config_from_dict(data, source=str(path))


def apply_torch_threads(cfg: ExperimentConfig) -> None:
    """``resources.torch_threads`` for this process (null keeps torch's default)."""
    if cfg.resources.torch_threads:
        torch.set_num_threads(cfg.resources.torch_threads)
