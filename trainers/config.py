"""Typed experiment schema, YAML loading, ``--set`` overrides and validation.

Every field has a docstring-style comment; unknown keys are errors that name the key, the
file and the nearest valid key. Range checks live in ``__post_init__`` of each dataclass and
raise ``ValueError``; :func:`load_config` turns every problem into a :class:`ConfigError`.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import yaml

from trainers.checks import ConfigError, require as _require
from trainers.rllib.terms import TERMS


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
class TermSpec:
    name: str
    """Objective term name (``regrl list`` shows them)."""
    params: Any
    """The term's own typed parameters (a frozen dataclass from the term registry)."""


def _default_terms() -> Tuple[TermSpec, ...]:
    return tuple(TermSpec(n, TERMS.get(n).params_cls()) for n in ("policy", "value", "entropy"))


@dataclass(frozen=True)
class ObjectiveConfig:
    advantages: AdvantageConfig = field(default_factory=AdvantageConfig)
    """How advantages are estimated (a learner connector)."""
    terms: Tuple[TermSpec, ...] = field(default_factory=_default_terms)
    """Loss terms summed by the learner, each ``{name: ..., <params>}``."""

    def __post_init__(self) -> None:
        names = [t.name for t in self.terms]
        _require(len(names) == len(set(names)), f"a term is listed twice: {names}")
        surrogates = [n for n in names if TERMS.get(n).is_surrogate]
        _require(len(surrogates) <= 1,
                 f"terms {surrogates} are both policy surrogates; list only one of them")
        by_candidate = [n for n in names if TERMS.get(n).needs_candidates]
        _require(bool(by_candidate) == (self.advantages.estimator == "candidates"),
                 f"terms {by_candidate} need advantages.estimator: candidates"
                 if by_candidate else "advantages.estimator: candidates needs the "
                 "candidate_policy term")


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

    def __post_init__(self) -> None:
        _require(all(h > 0 for h in self.hidden), f"hidden sizes must be > 0, got {self.hidden}")
        _require(self.action_init_std is None or self.action_init_std > 0,
                 f"action_init_std must be > 0 or null, got {self.action_init_std}")


@dataclass(frozen=True)
class TrainingConfig:
    iterations: int = 50
    """Maximum number of training iterations."""
    stop_return: Optional[float] = None
    """Stop early once ``env/episode_return_mean`` reaches this value."""
    train_batch_size: int = 2000
    """Environment steps per iteration (per learner); a multi-agent step holds one agent
    step per agent."""
    minibatch_size: int = 128
    """SGD minibatch size (at most train_batch_size)."""
    num_epochs: int = 6
    """Passes over each train batch."""
    lr: float = 3e-4
    """Adam learning rate."""
    grad_clip: Optional[float] = None
    """Global gradient-norm clip over all parameters (null = none, as stock RLlib PPO)."""

    def __post_init__(self) -> None:
        _require(self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}")
        _require(self.train_batch_size >= 1, "train_batch_size must be >= 1")
        _require(1 <= self.minibatch_size <= self.train_batch_size,  # RLlib requires it too
                 f"minibatch_size must be in [1, train_batch_size={self.train_batch_size}],"
                 f" got {self.minibatch_size}")
        _require(self.num_epochs >= 1, f"num_epochs must be >= 1, got {self.num_epochs}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0 or null")


@dataclass(frozen=True)
class ResourcesConfig:
    num_env_runners: int = 0
    """Env-runner actors (0 samples in the driver process)."""
    num_envs_per_env_runner: int = 1
    """Vectorised environments per runner."""
    num_cpus_per_env_runner: float = 1
    """CPUs reserved per env runner."""
    num_learners: int = 0
    """Learner actors (0 = local learner in the driver)."""
    num_gpus_per_learner: float = 0
    """GPUs per learner (1 on a GPU node)."""
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

    def __post_init__(self) -> None:
        for name in ("num_env_runners", "num_envs_per_env_runner", "num_learners",
                     "max_env_runner_restarts"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0")
        for name in ("env_runner_resources", "learner_resources"):
            for key, amount in getattr(self, name).items():
                _require(isinstance(amount, (int, float)) and amount > 0,
                         f"resources.{name}.{key} must be a number > 0, got {amount!r}")
        _require(not self.learner_resources or self.num_learners >= 1,
                 "resources.learner_resources needs num_learners >= 1 (the learner runs in "
                 "the driver process otherwise)")
        _require(self.num_envs_per_env_runner >= 1, "num_envs_per_env_runner must be >= 1")
        _require(self.num_gpus_per_learner >= 0, "num_gpus_per_learner must be >= 0")
        _require(self.torch_threads is None or self.torch_threads >= 1,
                 "torch_threads must be >= 1 or null")


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
class ExperimentConfig:
    name: str = "experiment"
    """Experiment name; runs go to ``<runs_root>/<name>/<timestamp>/``."""
    seed: int = 0
    """Seed of torch, numpy and the environments."""
    runs_root: str = "runs"
    """Root directory of run folders."""
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
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Checkpoint cadence."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Evaluation settings."""

    def __post_init__(self) -> None:
        _require(bool(self.name) and "/" not in self.name, f"bad experiment name {self.name!r}")


# ---------------------------------------------------------------------------- parsing
def _fail(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


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
        if value not in args:
            near = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise _fail(where, f"must be one of {list(args)}, got {value!r}{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (tuple, list, typing.Tuple, typing.List):
        if not isinstance(value, (list, tuple)):
            raise _fail(where, f"expected a list, got {type(value).__name__} {value!r}")
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise _fail(where, f"expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool) or not isinstance(value, tp):
        raise _fail(where, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(where, f"expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(known)}"
            raise _fail(path, f"unknown key {key!r}{hint}")
        if cls is ObjectiveConfig and key == "terms":
            kwargs[key] = _build_terms(value, path)
        else:
            kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise _fail(where or "config", str(exc)) from None


def _build_terms(value: Any, where: str) -> Tuple[TermSpec, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(where, "expected a non-empty list of terms like {name: policy}")
    specs = []
    for i, item in enumerate(value):
        path = f"{where}[{i}]"
        if isinstance(item, TermSpec):
            specs.append(item)
            continue
        name, params = parse_named_entry(item, path, TERMS, lambda t: t.params_cls, "term")
        specs.append(TermSpec(name, params))
    return tuple(specs)


def parse_named_entry(item: Any, path: str, registry, params_cls_of, noun: str,
                      name_in_path: bool = False):
    """``{name: ..., **params}`` of a registry (objective terms, offline plugins) ->
    (name, validated params dataclass); errors name ``path`` (with ``(name)`` appended for
    parameter errors when ``name_in_path``) and the nearest known name."""
    if not isinstance(item, dict) or "name" not in item:
        raise _fail(path, f"a {noun} is a mapping with a 'name' key, got {item!r}")
    params = dict(item)
    name = params.pop("name")
    if name not in registry:
        raise _fail(f"{path}.name", registry.unknown_message(name))
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
    if isinstance(cfg, TermSpec):
        return {"name": cfg.name, **to_dict(cfg.params)}
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def parse_override(text: str) -> Tuple[List[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], yaml-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: cannot parse value: {exc}") from None
    return key.strip().split("."), value


def apply_overrides(data: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Apply ``--set`` overrides to a raw config dict (a list index may be a path part)."""
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = node[_list_index(node, part, text)]
            elif path[i + 1].isdigit() and part not in node:
                raise ConfigError(f"--set {text!r}: {part!r} is not a list in the file; set the "
                                  f"whole list, e.g. --set '{part}=[{{name: policy}}]'")
            else:
                node = node.setdefault(part, {})
        last = path[-1]
        if isinstance(node, list):
            node[_list_index(node, last, text)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"--set {text!r}: {'.'.join(path[:-1])} is not a mapping")
    return data


def _list_index(node: list, part: str, text: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {text!r}: {part!r} is not an index of a {len(node)}-item list")
    return int(part)


def read_yaml(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(path: str | Path, overrides: Optional[List[str]] = None) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``--set`` overrides and validate it."""
    data = apply_overrides(read_yaml(path), list(overrides or []))
    return config_from_dict(data, source=str(path))
