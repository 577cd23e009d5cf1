"""The offline learner: supervised / behaviour-cloning / SFT training from a dataset file with
any list of plugins from :mod:`regrl.agents.offline`, in one process or data-parallel on Ray Train.

A YAML file with top-level ``kind: offline`` is an offline experiment::

    kind: offline
    name: digits
    task: classification            # classification | regression | tokens
    data: {path: data/digits.npz, x_key: x, y_key: y, val_fraction: 0.2}
    model: {hidden: [64, 64]}
    training: {epochs: 30, batch_size: 128, lr: 0.001}
    plugins: [{name: elr, beta: 0.7, lam: 3.0}, {name: stablemax}]
    resources: {num_workers: 0}     # 0 = this process; N = N Ray Train workers (DDP)

The kind runs on the run harness (:mod:`regrl.trainers.harness`) like every kind: runs go to
``<runs_root>/<name>/<timestamp>/`` with ``config.yaml``, TensorBoard scalars (``train/…``,
``val/…``, ``plugin/<name>/…``, ``perf/…``), atomic checkpoints every ``checkpoint.every``
epochs and ``summary.json`` (the last epoch's metrics). A data-parallel run opens its run
directory and resume checkpoint in the harness and launches Ray Train workers that each run the
harness's loop there (:meth:`OfflineDriver.launch`). Offline runs written before that ended with
``metrics.json``; resuming or evaluating them still reads it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from regrl.agents.models import MLP, TokenMLP
from regrl.agents.models.closure import ClosureCNN, LocalCoefficientMLP
from regrl.agents.offline import PLUGINS, Plugin, TaskInfo, build_plugins, check_combination
from regrl.agents.registry import Registry
from regrl.trainers.checkpoint import (
    checkpoint_dir,
    latest_checkpoint,
    load_torch_state,
    read_state,
    resume_checkpoint,
    save_checkpoint,
)
from regrl.trainers.checks import (
    MAX_ACTORS,
    MAX_BATCH,
    MAX_WIDTH,
    require_size,
    short_repr,
)
from regrl.trainers.checks import (
    require as _require,
)
from regrl.trainers.config import (
    ConfigError,
    LearnerResources,
    NamedSpec,
    RunConfig,
    apply_overrides,
    named_list,
    parse,
    read_yaml,
    to_dict,
)
from regrl.trainers.data_cli import make_hint
from regrl.trainers.group_stop import GroupStop
from regrl.trainers.harness import (
    Result,
    Session,
    finished_metrics,
    print_run_location,
    set_up,
    stopped_by_sigterm,
)
from regrl.trainers.harness import run as run_harness
from regrl.trainers.kinds import (
    HarnessDriver,
    Source,
    raw_config,
    register_kind,
    source_name,
    train_kind,
)
from regrl.trainers.logging import Progress
from regrl.trainers.ray_session import ray_session
from regrl.trainers.run_files import CONFIG_FILE, LEGACY_OFFLINE_METRICS, SUMMARY_FILE
from regrl.trainers.stop_signal import (
    Terminated,
    check,
    deferred,
    relay,
    sigterm_as_interrupt,
)

LEARNER_FILE = "learner.pt"
FORMATS = {".npz": "npz", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
IGNORE_TOKEN = -1  # token targets equal to -1 are padding
TUNE_SALT = 104_723  # the tuning split's permutation differs from the validation split's


# =========================================================================== configuration
@dataclass(frozen=True)
class DataConfig:
    path: str = ""
    """Dataset file (.npz, .parquet or .jsonl); relative paths are taken from the working dir."""
    format: Literal["auto", "npz", "parquet", "jsonl"] = "auto"
    """File format; ``auto`` infers it from the suffix."""
    x_key: str = "x"
    """Array / column / JSON key of the inputs (states, features or token ids [N, T])."""
    y_key: str = "y"
    """Key of the targets: class ids [N], actions [N, D] or next-token ids [N, T] (-1 = pad)."""
    val_fraction: float = 0.1
    """Fraction of the file held out for validation (seeded split; ignored with val_path)."""
    val_path: Optional[str] = None
    """Separate validation file with the same keys and format (null = split the main file)."""
    tune_fraction: float = 0.0
    """Fraction of the training rows held out as a tuning split (seeded) for plugins with a
    validation step (``stn``, ``pg_noise_mask``); the run trains on the rest and reports
    ``tune/loss`` and ``tune/accuracy`` (or ``tune/mse``) on it every epoch, so a sweep can
    select on it (``regrl sweep --select tune/loss:min``). 0 = none."""

    def __post_init__(self) -> None:
        _require(bool(self.path), "data.path is required")
        _require(
            0.0 <= self.val_fraction < 1.0,
            f"data.val_fraction must be in [0, 1), got {self.val_fraction}",
        )
        _require(
            0.0 <= self.tune_fraction < 1.0,
            f"data.tune_fraction must be in [0, 1), got {self.tune_fraction}",
        )


# Networks other than the default MLP, by ``model.arch``: builder(model_cfg, in_dim, out_dim).
OFFLINE_MODELS = Registry("offline model")
OFFLINE_MODELS.register("closure_mlp", "SMARL observation -> local coefficient in (-1, 1)")(
    lambda m, i, o: LocalCoefficientMLP(i, o, m.hidden, m.activation)
)
OFFLINE_MODELS.register("closure_cnn", "periodic CNN, vorticity -> sub-grid term")(
    lambda m, i, o: ClosureCNN(m.hidden, m.activation, symmetric=False)
)
OFFLINE_MODELS.register("closure_cnn_d4", "periodic CNN averaged over D4 (equivariant)")(
    lambda m, i, o: ClosureCNN(m.hidden, m.activation, symmetric=True)
)


@dataclass(frozen=True)
class OfflineModelConfig:
    arch: str = "mlp"
    """``mlp`` (the default MLP / token model) or a registered network (OFFLINE_MODELS:
    ``closure_mlp``, ``closure_cnn``, ``closure_cnn_d4``); ``hidden`` sets its widths."""
    hidden: Tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLP trunk (the last one is the feature layer)."""
    activation: Literal["relu", "tanh"] = "relu"
    """Hidden activation (both are 1-Lipschitz)."""
    out_dim: Optional[int] = None
    """Number of classes / vocabulary size (null = 1 + the largest id in the data)."""
    embed_dim: int = 32
    """Token embedding size (task ``tokens`` only)."""
    init_from: Optional[str] = None
    """Start from pre-trained weights: an offline run directory (its latest checkpoint's
    model) or a ``learner.pt`` file, of the same network before any plugin wraps it (null =
    fresh initialisation). Plugins then wrap the loaded network."""

    def __post_init__(self) -> None:
        _require(
            len(self.hidden) >= 1 and all(0 < h <= MAX_WIDTH for h in self.hidden),
            f"model.hidden must be a non-empty list of sizes in [1, {MAX_WIDTH:,}], "
            f"got {short_repr(self.hidden)}",
        )
        _require(
            self.out_dim is None or 1 <= self.out_dim <= MAX_BATCH,
            f"model.out_dim must be in [1, {MAX_BATCH:,}] or null",
        )
        require_size("model.embed_dim", self.embed_dim, MAX_WIDTH)
        _require(
            self.arch == "mlp" or self.arch in OFFLINE_MODELS,
            f"model.arch: {OFFLINE_MODELS.unknown_message(self.arch)} (or mlp)",
        )


@dataclass(frozen=True)
class OfflineTrainingConfig:
    epochs: int = 20
    """Passes over the training set."""
    batch_size: int = 128
    """Global batch size (split evenly across data-parallel workers)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    regression_loss: Literal["mse", "gaussian_nll"] = "mse"
    """Task loss of ``regression``: MSE, or Gaussian NLL with a learned log-std per dim."""
    grad_clip: Optional[float] = None
    """Global gradient-norm clip (null = none)."""

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"training.epochs must be >= 1, got {self.epochs}")
        require_size("training.batch_size", self.batch_size, MAX_BATCH)
        _require(self.lr > 0, f"training.lr must be > 0, got {self.lr}")
        _require(self.weight_decay >= 0, "training.weight_decay must be >= 0")
        _require(self.grad_clip is None or self.grad_clip > 0, "training.grad_clip must be > 0")


@dataclass(frozen=True)
class OfflineResourcesConfig(LearnerResources):
    num_workers: int = 0
    """0 = train in this process; N >= 1 = N Ray Train workers, data-parallel (DDP); each
    worker is a learner with ``num_gpus_per_learner`` GPUs (0 = CPU and gloo)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require_size("resources.num_workers", self.num_workers, MAX_ACTORS, lo=0)


@dataclass(frozen=True)
class PluginSpec(NamedSpec):
    """One plugin: ``{name: ..., <params>}`` of :data:`PLUGINS` (params: its ``Params``)."""


@dataclass(frozen=True)
class OfflineConfig(RunConfig):
    kind: Literal["offline"] = "offline"
    """Marks the file as an offline experiment."""
    name: str = "offline"
    """Experiment name; runs go to ``<runs_root>/<name>/<timestamp>/``."""
    seed: int = 0
    """Seed of the model init, the split, the shuffling and the plugins' random draws."""
    task: Literal["classification", "regression", "tokens"] = "classification"
    """Task loss: cross-entropy, MSE / Gaussian NLL, or token cross-entropy (SFT)."""
    data: DataConfig = field(default_factory=DataConfig)
    """The dataset (``data.path`` is required)."""
    model: OfflineModelConfig = field(default_factory=OfflineModelConfig)
    """The network."""
    training: OfflineTrainingConfig = field(default_factory=OfflineTrainingConfig)
    """Optimisation schedule."""
    plugins: Tuple[PluginSpec, ...] = field(
        default=(),
        metadata=named_list(
            PLUGINS,
            lambda plugin: plugin.Params,
            PluginSpec,
            "plugin",
            "elr",
            non_empty=False,
            name_in_path=True,
        ),
    )
    """Regularisers, each ``{name: ..., <params>}``, applied in the listed order."""
    resources: OfflineResourcesConfig = field(default_factory=OfflineResourcesConfig)
    """Workers and GPUs."""

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [p.name for p in self.plugins]
        check_combination(names, self.task, data_parallel=self.resources.num_workers > 0)
        tuners = [n for n in names if PLUGINS.get(n).needs_validation]
        _require(
            not tuners or self.data.tune_fraction > 0,
            f"plugin {tuners[0] if tuners else ''!r} needs a tuning split held out of the "
            "training rows: set data.tune_fraction (e.g. 0.1)",
        )
        for spec in self.plugins:
            PLUGINS.get(spec.name).check_config(spec.params, self.task, self.training.epochs)


def is_offline_config(data: Dict[str, Any]) -> bool:
    """True for a raw YAML mapping with top-level ``kind: offline``."""
    return isinstance(data, dict) and data.get("kind") == "offline"


def offline_config_from_dict(data: Dict[str, Any], source: str = "<dict>") -> OfflineConfig:
    """Validate a raw mapping; every problem becomes a ConfigError naming ``source``."""
    return parse(OfflineConfig, data, source)


def load_offline_config(path: str | Path, overrides: Optional[List[str]] = None) -> OfflineConfig:
    """Read an offline YAML file, apply ``--set`` overrides and validate it."""
    data = apply_overrides(read_yaml(path), list(overrides or []))
    if not is_offline_config(data):
        raise ConfigError(f"{path}: not an offline experiment (needs top-level 'kind: offline')")
    return offline_config_from_dict(data, source=str(path))


def offline_to_dict(cfg: OfflineConfig) -> Dict[str, Any]:
    """Plain YAML-able dict (plugins back to ``{name: ..., **params}``)."""
    return to_dict(cfg)


# ==================================================================================== data
@dataclass
class OfflineData:
    """Validated tensors of one run: inputs, raw targets, and their sizes."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    in_dim: int
    out_dim: int
    x_tune: Optional[torch.Tensor] = None
    """Tuning split held out of the training rows (``data.tune_fraction``), or None."""
    y_tune: Optional[torch.Tensor] = None


def infer_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"{path}: cannot infer the format from suffix {suffix!r}; "
            f"use one of {', '.join(FORMATS)} or set data.format"
        )
    return FORMATS[suffix]


def read_arrays(path: str | Path, fmt: str, keys: Sequence[str]) -> Dict[str, np.ndarray]:
    """Read ``keys`` from an npz / parquet / jsonl file; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such dataset file{make_hint(path)}")
    fmt = infer_format(path, fmt)
    try:
        return _READERS[fmt](path, list(keys))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if str(path) in str(exc):
            raise ValueError(str(exc)) from None
        raise ValueError(f"{path}: cannot read as {fmt}: {exc}") from None


def _missing(path: Path, key: str, available: Sequence[str]) -> ValueError:
    return ValueError(
        f"{path}: missing key {key!r}; the file has: {', '.join(map(str, available))}"
    )


def _read_npz(path: Path, keys: List[str]) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        for k in keys:
            if k not in f.files:
                raise _missing(path, k, f.files)
        return {k: np.asarray(f[k]) for k in keys}


def _read_parquet(path: Path, keys: List[str]) -> Dict[str, np.ndarray]:
    import pyarrow.parquet as pq  # lazy: only for parquet datasets

    names = pq.read_schema(path).names
    for k in keys:
        if k not in names:
            raise _missing(path, k, names)
    table = pq.read_table(path, columns=keys)
    return {k: _to_array(table.column(k).to_pylist(), path, k) for k in keys}


def _read_jsonl(path: Path, keys: List[str]) -> Dict[str, np.ndarray]:
    cols: Dict[str, list] = {k: [] for k in keys}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON: {exc}") from None
            for k in keys:
                if not isinstance(row, dict) or k not in row:
                    have = list(row) if isinstance(row, dict) else []
                    raise ValueError(
                        f"{path}:{lineno}: missing key {k!r}; the row has: {', '.join(have)}"
                    )
                cols[k].append(row[k])
    return {k: _to_array(v, path, k) for k, v in cols.items()}


def _to_array(values: list, path: Path, key: str) -> np.ndarray:
    if any(v is None for v in values):
        raise ValueError(f"{path}: key {key!r} has missing (null) values")
    try:
        arr = np.asarray(values)
    except ValueError:
        arr = np.asarray(values, dtype=object)
    if arr.dtype == object:
        raise ValueError(
            f"{path}: key {key!r} is ragged or not numeric (every row needs the same shape)"
        )
    return arr


_READERS = {"npz": _read_npz, "parquet": _read_parquet, "jsonl": _read_jsonl}


def _check_finite(arr: np.ndarray, path: Any, key: str) -> None:
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: key {key!r} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).argmax())
        raise ValueError(f"{path}: key {key!r} has NaN or infinite values (first at row {bad})")


def _as_ids(arr: np.ndarray, path: Any, key: str, low: int) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{path}: key {key!r} must hold integer ids, found fractional values")
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{path}: key {key!r} must hold integer ids, got dtype {arr.dtype}")
    if arr.size and arr.min() < low:
        raise ValueError(f"{path}: key {key!r} has id {int(arr.min())} < {low}")
    return arr.astype(np.int64)


def convert_arrays(
    task: str, x: np.ndarray, y: np.ndarray, path: Any, x_key: str, y_key: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Check and convert raw arrays for ``task`` (shapes, dtypes, NaNs, id ranges >= 0)."""
    if len(x) != len(y):
        raise ValueError(f"{path}: {x_key!r} has {len(x)} rows but {y_key!r} has {len(y)}")
    if len(x) == 0:
        raise ValueError(f"{path}: the dataset is empty")
    _check_finite(x, path, x_key)
    _check_finite(y, path, y_key)
    if task == "tokens":
        xt, yt = _as_ids(x, path, x_key, 0), _as_ids(y, path, y_key, IGNORE_TOKEN)
        if xt.ndim != 2 or xt.shape != yt.shape:
            raise ValueError(
                f"{path}: tokens need {x_key!r} and {y_key!r} both [N, T], got "
                f"{xt.shape} and {yt.shape}"
            )
        return torch.from_numpy(xt), torch.from_numpy(yt)
    xf = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32))
    if task == "classification":
        if y.ndim != 1:
            raise ValueError(f"{path}: classification needs {y_key!r} of shape [N], got {y.shape}")
        return xf, torch.from_numpy(_as_ids(y, path, y_key, 0))
    return xf, torch.from_numpy(y.reshape(len(y), -1).astype(np.float32))


def _check_range(y: torch.Tensor, out_dim: int, where: str, key: str) -> None:
    if y.numel() and int(y.max()) >= out_dim:
        raise ValueError(f"{where}: key {key!r} has id {int(y.max())} >= model.out_dim={out_dim}")


def prepare_data(cfg: OfflineConfig) -> OfflineData:
    """Load, validate and split the dataset of ``cfg`` (the split is seeded by ``cfg.seed``)."""
    d = cfg.data
    arrays = read_arrays(d.path, d.format, [d.x_key, d.y_key])
    x, y = convert_arrays(cfg.task, arrays[d.x_key], arrays[d.y_key], d.path, d.x_key, d.y_key)
    if d.val_path:
        val = read_arrays(d.val_path, d.format, [d.x_key, d.y_key])
        xv, yv = convert_arrays(cfg.task, val[d.x_key], val[d.y_key], d.val_path, d.x_key, d.y_key)
        if xv.shape[1:] != x.shape[1:] or yv.shape[1:] != y.shape[1:]:
            raise ValueError(
                f"{d.val_path}: shapes {tuple(xv.shape)}, {tuple(yv.shape)} do not "
                f"match {d.path}: {tuple(x.shape)}, {tuple(y.shape)}"
            )
    else:
        x, y, xv, yv = _split(x, y, d.val_fraction, cfg.seed, d.path)
    out_dim = _out_dim(cfg, x, y, xv, yv)
    if d.tune_fraction > 0:
        x, y, xt, yt = _split(x, y, d.tune_fraction, cfg.seed + TUNE_SALT, d.path)
        return OfflineData(x, y, xv, yv, x.shape[1], out_dim, x_tune=xt, y_tune=yt)
    return OfflineData(x, y, xv, yv, in_dim=x.shape[1], out_dim=out_dim)


def _split(x, y, fraction: float, seed: int, path: str):
    n_val = int(round(fraction * len(x)))
    if n_val == 0 and fraction > 0 or len(x) - n_val < 1:
        raise ValueError(f"{path}: {len(x)} rows cannot be split with val_fraction={fraction}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train], x[val], y[val]


def _out_dim(cfg: OfflineConfig, x, y, xv, yv) -> int:
    """Regression: the target width. Classes / vocabulary: model.out_dim, checked against
    every id in the data, or 1 + the largest id when it is null."""
    if cfg.task == "regression":
        return y.shape[1]
    d = cfg.data
    val_where = d.val_path or d.path
    ids = [(y, d.path, d.y_key), (yv, val_where, d.y_key)]
    if cfg.task == "tokens":
        ids += [(x, d.path, d.x_key), (xv, val_where, d.x_key)]
    if cfg.model.out_dim is None:
        return 1 + max(int(t.max()) for t, _, _ in ids if t.numel())
    for t, where, key in ids:
        _check_range(t, cfg.model.out_dim, where, key)
    return cfg.model.out_dim


# ========================================================================= model and loss
def build_model(cfg: OfflineConfig, in_dim: int, out_dim: int) -> nn.Module:
    m = cfg.model
    if m.arch != "mlp":
        if cfg.task != "regression" or cfg.training.regression_loss != "mse":
            raise ConfigError(
                f"model.arch {m.arch!r} needs task: regression with training.regression_loss: mse"
            )
        return OFFLINE_MODELS.get(m.arch)(m, in_dim, out_dim)
    if cfg.task == "tokens":
        return TokenMLP(out_dim, m.hidden, m.embed_dim, m.activation)
    gaussian = cfg.task == "regression" and cfg.training.regression_loss == "gaussian_nll"
    return MLP(in_dim, 2 * out_dim if gaussian else out_dim, m.hidden, m.activation)


def dense_targets(task: str, y: torch.Tensor, out_dim: int) -> torch.Tensor:
    """One-hot class targets [B, C]; regression targets and token ids unchanged."""
    return F.one_hot(y, out_dim).float() if task == "classification" else y


def gaussian_nll(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample Gaussian NLL, ``out = [mean | log_std]`` (log_std clamped to [-5, 2])."""
    mean, log_std = out.chunk(2, dim=-1)
    log_std = log_std.clamp(-5.0, 2.0)
    z = (target - mean) / log_std.exp()
    return (0.5 * z**2 + log_std + 0.5 * math.log(2 * math.pi)).sum(dim=-1)


def default_task_loss(
    task: str, regression_loss: str, outputs: Dict[str, torch.Tensor], target: torch.Tensor
) -> torch.Tensor:
    """Per-sample task loss [B]: soft-target cross-entropy, MSE / Gaussian NLL, or the mean
    token cross-entropy over each sequence's non-pad positions."""
    out = outputs["out"]
    if task == "classification":
        return -(target * F.log_softmax(out, dim=-1)).sum(dim=-1)
    if task == "regression":
        if regression_loss == "gaussian_nll":
            return gaussian_nll(out, target)
        return ((out - target) ** 2).mean(dim=-1)
    mask = (target != IGNORE_TOKEN).to(out.dtype)
    ce = F.cross_entropy(out.transpose(1, 2), target.clamp_min(0), reduction="none")
    return (ce * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def weighted_mean(values: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-12)


def load_initial_weights(model: nn.Module, source: str) -> None:
    """Load ``model.init_from`` (a run directory or a ``learner.pt``) into the fresh network;
    a missing file or weights of another network are one-line ConfigErrors."""
    path = Path(source)
    if path.is_dir():
        ckpt = latest_checkpoint(path) if checkpoint_dir(path).is_dir() else None
        if ckpt is None:
            raise ConfigError(f"model.init_from: {path} has no complete checkpoint")
        path = ckpt / LEARNER_FILE
    if not path.is_file():
        raise ConfigError(f"model.init_from: no such run directory or file: {path}")
    state = load_torch_state(path, map_location="cpu")
    weights = state.get("model", state) if isinstance(state, dict) else state
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines()] or [type(exc).__name__]
        first = lines[1] if len(lines) > 1 else lines[0]  # the first mismatch, not the header
        raise ConfigError(
            f"model.init_from: {path} holds weights of another network ({first})"
        ) from None


# ================================================================================ learner
class OfflineLearner:
    """Model, optimizer and plugins of one process; ``wrap`` adds DDP in data-parallel runs."""

    def __init__(
        self,
        cfg: OfflineConfig,
        data: OfflineData,
        device: torch.device,
        wrap: Optional[Callable[[nn.Module], nn.Module]] = None,
    ):
        self.cfg, self.device, self.out_dim = cfg, device, data.out_dim
        torch.manual_seed(cfg.seed)
        info = TaskInfo(
            cfg.task, len(data.x_train), data.out_dim, cfg.training.epochs, cfg.seed, data.in_dim
        )
        self.plugins: List[Plugin] = build_plugins(((s.name, s.params) for s in cfg.plugins), info)
        model = build_model(cfg, data.in_dim, data.out_dim)
        if cfg.model.init_from:
            load_initial_weights(model, cfg.model.init_from)
        for p in self.plugins:
            model = p.wrap_model(model)
        self.model = model.to(device)
        self.net = wrap(self.model) if wrap else self.model
        opt = self.make_optimizer(self.model)
        for p in self.plugins:
            opt = p.wrap_optimizer(opt, self.model)
        self.opt = opt
        for p in self.plugins:
            p.setup(self.model, self.opt, self.make_optimizer)
        self.tuners = [p for p in self.plugins if p.needs_validation]

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        t = self.cfg.training
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)

    def per_sample_loss(
        self, outputs: Dict[str, torch.Tensor], batch: Dict[str, Any]
    ) -> torch.Tensor:
        for p in self.plugins:
            loss = p.task_loss(outputs, batch["target"], batch)
            if loss is not None:
                return loss
        return default_task_loss(
            self.cfg.task, self.cfg.training.regression_loss, outputs, batch["target"]
        )

    def make_batch(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> Dict[str, Any]:
        batch = {
            "x": x.to(self.device),
            "y": y.to(self.device),
            "idx": idx,
            "target": dense_targets(self.cfg.task, y, self.out_dim).to(self.device),
        }
        if self.cfg.task == "tokens":
            batch["token_mask"] = (batch["y"] != IGNORE_TOKEN).float()
        return batch

    def _prepare(self, batch: Dict[str, Any], epoch: int) -> Dict[str, Any]:
        for p in self.plugins:
            target = p.targets(batch, epoch)
            if target is not None:
                batch = dict(batch, target=target)
        for p in self.plugins:
            batch = p.transform_batch(batch, epoch)
        return batch

    def _loss(self, outputs, batch, weights, epoch) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        task_loss = weighted_mean(self.per_sample_loss(outputs, batch), weights)
        total, metrics = task_loss, {"train/task_loss": task_loss.detach()}
        for p in self.plugins:
            extra = p.extra_loss(outputs, batch, self.model, epoch)
            if extra is not None:
                total = total + extra[0]
                metrics.update(_prefixed(p.name, extra[1]))
        return total, metrics

    def train_step(self, batch: Dict[str, Any], epoch: int) -> Dict[str, float]:
        """One optimizer step through every plugin hook; returns float metrics."""
        self.net.train()
        batch = self._prepare(batch, epoch)
        outputs = self.net(batch["x"])
        for p in self.plugins:
            p.observe(batch, outputs, epoch)
        weights = self._sample_weights(batch, outputs, epoch)
        loss, metrics = self._loss(outputs, batch, weights, epoch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        closure = lambda: self._loss(self.net(batch["x"]), batch, weights, epoch)[0]  # noqa: E731
        for p in self.plugins:
            metrics.update(_prefixed(p.name, p.after_backward(self.model, batch, closure)))
        for p in self.plugins:
            p.before_step(self.model)
        if self.cfg.training.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.training.grad_clip)
        self.opt.step()
        for p in self.plugins:
            metrics.update(_prefixed(p.name, p.after_step(self.model)))
        metrics["train/loss"] = loss.detach()
        metrics.update(self._train_accuracy(outputs, batch))
        return {k: float(v) for k, v in metrics.items()}

    def _sample_weights(self, batch, outputs, epoch) -> Optional[torch.Tensor]:
        weights = None
        for p in self.plugins:
            w = p.sample_weights(batch, outputs, epoch, lambda o: self.per_sample_loss(o, batch))
            if w is not None:
                weights = w if weights is None else weights * w
        return weights

    def _train_accuracy(self, outputs, batch) -> Dict[str, torch.Tensor]:
        if self.cfg.task == "regression":
            return {}
        pred = outputs["out"].detach().argmax(dim=-1)
        if self.cfg.task == "tokens":
            return {"train/accuracy": _token_accuracy(pred, batch["y"])}
        return {"train/accuracy": (pred == batch["target"].argmax(dim=-1)).float().mean()}

    def train_epoch(
        self, epoch: int, data: OfflineData, shard: torch.Tensor, batch_size: int
    ) -> Dict[str, float]:
        """Shuffle this worker's shard (seeded by seed, epoch and shard) and step through it."""
        for p in self.plugins:
            p.on_epoch_start(epoch, self.model)
        g = torch.Generator().manual_seed(self.cfg.seed * 7_919 + epoch * 104_729 + int(shard[0]))
        order = shard[torch.randperm(len(shard), generator=g)]
        tune = self._tune_batches(epoch, data, batch_size)
        sums: Dict[str, float] = {}
        tuned: Dict[str, List[float]] = {}  # validation steps may report on some steps only
        steps = 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            step = self.train_step(
                self.make_batch(data.x_train[idx], data.y_train[idx], idx), epoch
            )
            if tune:
                for k, v in self.validation_step(tune[steps % len(tune)], data, epoch).items():
                    tuned.setdefault(k, []).append(v)
            for k, v in step.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        metrics = {k: v / steps for k, v in sums.items()}
        metrics.update({k: sum(v) / len(v) for k, v in tuned.items()})
        for p in self.plugins:
            end = _prefixed(p.name, p.on_epoch_end(epoch, self.model))
            metrics.update({k: float(v) for k, v in end.items()})
        return metrics

    def _tune_batches(self, epoch: int, data: OfflineData, batch_size: int) -> List[torch.Tensor]:
        """Index batches of the tuning split for this epoch (seeded by seed and epoch, so a
        resumed run draws the same ones); empty when no plugin has a validation step."""
        if not self.tuners or data.x_tune is None:
            return []
        g = torch.Generator().manual_seed(self.cfg.seed * 7_919 + epoch * 104_729 + TUNE_SALT)
        order = torch.randperm(len(data.x_tune), generator=g)
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]

    def validation_step(self, idx: torch.Tensor, data: OfflineData, epoch: int) -> Dict[str, float]:
        """Each tuning plugin's validation step on the tuning rows ``idx``."""
        batch = self.make_batch(data.x_tune[idx], data.y_tune[idx], idx)
        metrics: Dict[str, Any] = {}
        for p in self.tuners:
            metrics.update(_prefixed(p.name, p.validation_step(self.model, batch, epoch)))
        return {k: float(v) for k, v in metrics.items()}

    @torch.no_grad()
    def evaluate(
        self, x: torch.Tensor, y: torch.Tensor, chunk: int = 4096, prefix: str = "val"
    ) -> Dict[str, float]:
        """Held-out ``val/loss`` and ``val/accuracy`` (or ``val/mse`` for regression); other
        held-out rows under another ``prefix`` (the tuning split's ``tune/...``)."""
        self.model.eval()
        losses, correct, count, sq = [], 0.0, 0.0, 0.0
        for s in range(0, len(x), chunk):
            batch = self.make_batch(
                x[s : s + chunk], y[s : s + chunk], torch.arange(s, min(s + chunk, len(x)))
            )
            out = self.model(batch["x"])
            losses.append(self.per_sample_loss(out, batch).float().cpu())
            if self.cfg.task == "regression":
                mean = out["out"][..., : batch["y"].shape[-1]]
                sq += float(((mean - batch["y"]) ** 2).mean(dim=-1).sum())
            else:
                pred = out["out"].argmax(dim=-1)
                valid = batch["y"] != IGNORE_TOKEN
                correct += float(((pred == batch["y"]) & valid).sum())
                count += float(valid.sum())
        metrics = {f"{prefix}/loss": float(torch.cat(losses).mean())}
        if self.cfg.task == "regression":
            metrics[f"{prefix}/mse"] = sq / len(x)
        else:
            metrics[f"{prefix}/accuracy"] = correct / max(count, 1.0)
        return metrics

    # ---- checkpoints ------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict()}

    def plugin_state(self) -> Dict[str, Any]:
        return {
            "plugins": {p.name: p.state_dict() for p in self.plugins},
            "torch_rng": torch.get_rng_state(),
        }

    def restore(self, state: Dict[str, Any], plugin_state: Dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        for p in self.plugins:
            p.load_state_dict(plugin_state["plugins"][p.name])
        torch.set_rng_state(plugin_state["torch_rng"])


def _prefixed(name: str, metrics: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        f"plugin/{name}/{k}": v.detach() if torch.is_tensor(v) else v
        for k, v in (metrics or {}).items()
    }


def _token_accuracy(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    valid = y != IGNORE_TOKEN
    return ((pred == y) & valid).sum().float() / valid.sum().clamp_min(1)


# ============================================================================ the run loop
@dataclass
class Worker:
    """Where this process sits in a (possibly data-parallel) run."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    wrap: Optional[Callable[[nn.Module], nn.Module]] = None

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def mean(self, metrics: Dict[str, float]) -> Dict[str, float]:
        """Average float metrics over workers (every worker has the same keys)."""
        if self.world == 1:
            return metrics
        keys = sorted(metrics)
        t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t)}

    def any_rank(self, flag: bool) -> bool:
        """True on every worker when ``flag`` is True on any, so that all ranks take the
        same branch (a rank that left the loop alone would hang its peers' collectives)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)


def shard_indices(n: int, rank: int, world: int) -> torch.Tensor:
    """Fixed shard ``rank::world`` of the training set, cut to equal sizes so every worker
    takes the same number of steps (DDP needs that); per-sample plugin buffers stay local."""
    per = n // world
    if per < 1:
        raise ValueError(f"{n} training samples cannot be split over {world} workers")
    return torch.arange(n)[rank::world][:per]


class OfflineProgress(Progress):
    @staticmethod
    def line(epoch: int, total: int, metrics: Dict[str, float], _unused: float = 0.0) -> str:
        val = metrics.get("val/accuracy", metrics.get("val/mse", float("nan")))
        name = "val_acc" if "val/accuracy" in metrics else "val_mse"
        return (
            f"epoch {epoch:>4}/{total}  task_loss {metrics.get('train/task_loss', float('nan')):7.4f}  "
            f"{name} {val:7.4f}  {metrics.get('perf/epoch_s', float('nan')):6.2f}s"
        )


def fit(
    cfg: OfflineConfig,
    run_dir: Path,
    resuming: bool,
    progress: bool,
    worker: Optional[Worker] = None,
    stop: Optional[GroupStop] = None,
) -> Result:
    """One data-parallel worker's part of the run the harness opened in ``run_dir``: set up the
    process, build this worker's session and run the harness's loop (the Ray Train workers of
    :meth:`OfflineDriver.launch`). The driver process already cleaned up and reported the resume
    checkpoint; every worker picks the same one silently. Rank 0 logs. ``stop`` is the
    driver's SIGTERM request (see :class:`OfflineSession`)."""
    worker = worker or Worker()
    choice = resume_checkpoint(run_dir, say=lambda line: None, clean=False) if resuming else None
    set_up(cfg)
    session = OfflineSession(cfg, worker, stop)
    main = worker.rank == 0
    return run_harness(
        session, run_dir, choice, cfg.checkpoint, progress, OfflineProgress.line, main=main
    )


class OfflineSession(Session):
    """One offline run on one worker for :mod:`regrl.trainers.harness`: an iteration is an epoch
    over this worker's shard; checkpoints are written by every rank together.

    In a data-parallel group a SIGTERM reaches the driver only; it sets ``stop``
    (:class:`regrl.trainers.group_stop.GroupStop`), which rank 0 reads after every epoch and
    every rank learns by an all-reduce: the group stops after that epoch through
    :meth:`should_stop`, so the harness's loop checkpoints it with all ranks present."""

    unit = "epoch"

    def __init__(self, cfg: OfflineConfig, worker: Worker, stop: Optional[GroupStop] = None):
        self.cfg, self.worker, self.total, self.stop = cfg, worker, cfg.training.epochs, stop
        self.data = prepare_data(cfg)
        self.learner = OfflineLearner(cfg, self.data, worker.device, worker.wrap)
        self.shard = shard_indices(len(self.data.x_train), worker.rank, worker.world)
        self.batch = max(1, math.ceil(cfg.training.batch_size / worker.world))
        # Ctrl-C reaches one process; a group cannot save without its peers
        self.save_on_interrupt = worker.world == 1

    def step(self, epoch: int) -> Dict[str, float]:
        return _epoch(self.learner, self.data, self.shard, self.batch, epoch - 1, self.worker)

    def should_stop(self, epoch: int, metrics: Dict[str, float]) -> bool:
        """The driver's SIGTERM request, the same answer on every rank (no request: False)."""
        if self.stop is None:
            return False
        return self.worker.any_rank(self.worker.rank == 0 and self.stop.requested())

    def write_checkpoint(self, run_dir: Path, epoch: int, keep: int) -> None:
        """Every rank writes its plugin state, rank 0 the model (the harness's hook)."""
        _save(self.learner, run_dir, epoch, keep, self.worker)

    def restore(self, ckpt: Path, state: Dict[str, Any]) -> None:
        _restore(self.learner, ckpt, state, self.worker)


def _epoch(learner, data, shard, batch, epoch, worker) -> Dict[str, float]:
    t0 = time.perf_counter()
    metrics = worker.mean(learner.train_epoch(epoch, data, shard, batch))
    seconds = time.perf_counter() - t0
    metrics.update(learner.evaluate(data.x_val, data.y_val))
    if data.x_tune is not None:  # what a search selects on when val is the test set
        metrics.update(learner.evaluate(data.x_tune, data.y_tune, prefix="tune"))
    metrics["perf/epoch_s"] = seconds
    metrics["perf/samples_per_s"] = len(shard) * worker.world / max(seconds, 1e-9)
    return metrics


def _plugin_file(rank: int) -> str:
    return f"plugins_rank{rank}.pt"


def _save(learner: OfflineLearner, run_dir: Path, epoch: int, keep: int, worker: Worker) -> None:
    """Atomic checkpoint: rank 0 writes the model/optimizer, every rank its plugin state."""
    stage = checkpoint_dir(run_dir).resolve() / f".stage_{epoch:06d}"
    stage.mkdir(parents=True, exist_ok=True)
    torch.save(learner.plugin_state(), stage / _plugin_file(worker.rank))
    worker.barrier()
    if worker.rank == 0:

        def save_fn(path: str) -> None:
            os.replace(stage, path)
            torch.save(learner.state(), Path(path) / LEARNER_FILE)

        save_checkpoint(save_fn, run_dir, epoch, {"epoch": epoch, "world_size": worker.world}, keep)
    worker.barrier()


def _restore(learner: OfflineLearner, ckpt: Path, state: Dict[str, Any], worker: Worker) -> None:
    """Load this worker's part of checkpoint ``ckpt`` (written by as many workers)."""
    if state.get("world_size", 1) != worker.world:
        raise ValueError(
            f"{ckpt} was written by {state.get('world_size')} workers; resume with "
            f"resources.num_workers matching it (now {worker.world})"
        )
    learner.restore(
        load_torch_state(ckpt / LEARNER_FILE, map_location=worker.device),
        load_torch_state(ckpt / _plugin_file(worker.rank)),
    )


# ============================================================================ entry points
def train_offline(
    cfg: Optional[OfflineConfig] = None,
    *,
    resume: Optional[Path] = None,
    progress: bool = True,
    address: Optional[str] = None,
) -> Result:
    """Train ``cfg`` in a new run directory, or continue the run at ``resume`` (the offline
    kind's driver on :mod:`regrl.trainers.harness`; the run ends with ``summary.json``).

    ``resources.num_workers == 0`` trains in this process; N >= 1 starts N Ray Train workers
    (joining ``address`` or a local Ray). Data problems raise ConfigError naming the file.
    ``epoch`` of the result is the last epoch.
    """
    assert cfg is not None or resume is not None, "train_offline() needs a config or a run"
    return train_kind("offline", cfg, resume=resume, address=address, progress=progress)


def _check_data(cfg: OfflineConfig) -> None:
    try:
        prepare_data(cfg)
    except ValueError as exc:
        raise ConfigError(f"data: {exc}") from None


def _local_worker(cfg: OfflineConfig) -> Worker:
    if cfg.resources.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"resources.num_gpus_per_learner is {cfg.resources.num_gpus_per_learner} "
            "but no CUDA device is visible"
        )
    return Worker(device=torch.device(cfg.resources.device))


def ddp_worker(device: Optional[torch.device] = None) -> Worker:
    """The :class:`Worker` of this process inside an initialised torch.distributed group;
    ``device`` is its GPU (one per worker) or None for CPU (gloo)."""
    import torch.distributed as dist  # lazy: data-parallel workers only
    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, world = dist.get_rank(), dist.get_world_size()
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)
        return Worker(rank, world, device, lambda m: DDP(m, device_ids=[device.index]))
    return Worker(rank, world, torch.device("cpu"), lambda m: DDP(m))


def ray_train_loop(config: Dict[str, Any]) -> None:
    """Per-worker entry point of the Ray Train TorchTrainer (the process group is set up)."""
    import ray.train  # lazy: data-parallel runs only
    import ray.train.torch

    cfg = offline_config_from_dict(config["config"], source=config["source"])
    device = ray.train.torch.get_device() if cfg.resources.device == "cuda" else None
    worker = ddp_worker(device)
    result = fit(
        cfg, Path(config["run_dir"]), config["resuming"], config["progress"], worker, config["stop"]
    )
    ray.train.report(result.metrics)


def _launch_ray(
    cfg: OfflineConfig, run_dir: Path, resuming: bool, progress: bool, address: Optional[str]
) -> Result:
    """The launch hook's data-parallel path: N Ray Train workers run :func:`fit` in ``run_dir``
    (opened, and for a resume cleaned up, by the harness). The result is read from the run
    directory (Ray Train 2's result carries no metrics without a checkpoint): the last
    checkpoint's epoch (every run checkpoints its last) and that epoch's logged metrics.

    A SIGTERM to this process (the driver) is passed to the workers through a
    :class:`GroupStop`: they finish the running epoch, checkpoint it together and return, and
    this process says so in the one line every kind prints and raises ``Terminated`` (exit
    143). Past the grace period (``REGRL_SIGTERM_GRACE_S``) the workers are torn down as at
    Ctrl-C, and the line says which checkpoint is the last."""
    config = offline_to_dict(cfg)
    for key in ("path", "val_path"):  # Ray Train workers chdir to their own trial directory
        if config["data"].get(key):
            config["data"][key] = str(Path(config["data"][key]).resolve())
    loop_config = {
        "config": config,
        "source": str(run_dir / CONFIG_FILE),
        "run_dir": str(run_dir),
        "resuming": resuming,
        "progress": progress,
    }
    # ray.init installs a SIGTERM handler of its own: the session first, then ours
    try:
        with ray_session(address), sigterm_as_interrupt():
            loop_config["stop"] = stop = GroupStop.start()
            trainer = _torch_trainer(cfg, run_dir, loop_config)
            with deferred(), relay(stop.set):
                result = trainer.fit()
            check()  # a SIGTERM: the workers stopped after an epoch and saved it
    except Terminated:
        # read once the session is shut down: a local session's workers are gone, and what
        # they wrote is final (past the grace period they may still have been saving)
        raise stopped_by_sigterm(run_dir, "epoch") from None
    if result.error is not None:
        raise result.error
    done = int(read_state(latest_checkpoint(run_dir))["iteration"])
    print_run_location(run_dir)  # the workers' own lines went to the Ray logs
    return Result(run_dir, finished_metrics(run_dir, done), done=done)


def _torch_trainer(cfg: OfflineConfig, run_dir: Path, loop_config: Dict[str, Any]):
    from ray.train import RunConfig, ScalingConfig  # lazy: data-parallel runs only
    from ray.train.torch import TorchTrainer  # lazy: data-parallel runs only

    gpus = float(cfg.resources.num_gpus_per_learner)
    return TorchTrainer(
        ray_train_loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=cfg.resources.num_workers,
            use_gpu=gpus > 0,
            resources_per_worker={"CPU": 1.0, "GPU": gpus} if gpus else None,
        ),
        run_config=RunConfig(storage_path=str(run_dir / "ray_train"), name="offline"),
    )


# ---------------------------------------------------------------------------- offline
@register_kind("offline", "supervised / behaviour-cloning learner with plugins")
class OfflineDriver(HarnessDriver):
    curve_metrics = ("val/accuracy", "train/task_loss")
    unit = "epoch"
    progress_line = staticmethod(OfflineProgress.line)

    def load(
        self, source: Source, overrides: Sequence[str] = (), *, where: Optional[str] = None
    ) -> Any:
        return offline_config_from_dict(raw_config(source, overrides), source_name(source, where))

    def dump(self, cfg) -> Dict[str, Any]:
        return offline_to_dict(cfg)

    def preflight(self, cfg) -> None:
        """Data problems are one error line, before a run directory exists (and on resume)."""
        _check_data(cfg)

    def build(self, cfg, run_dir: Path, choice) -> Session:
        return OfflineSession(cfg, _local_worker(cfg))

    def launch(self, cfg, run_dir: Path, choice, address: Optional[str], progress: bool) -> Result:
        """In this process (``resources.num_workers: 0``) the harness's own launch; else Ray
        Train workers, each running the harness's loop in ``run_dir``."""
        if cfg.resources.num_workers == 0:
            return super().launch(cfg, run_dir, choice, address, progress)
        return _launch_ray(cfg, run_dir, choice is not None, progress, address)

    def evaluate(self, run_dir: Path, episodes: Optional[int] = None) -> int:
        for name in (SUMMARY_FILE, LEGACY_OFFLINE_METRICS):  # metrics.json: older runs
            path = Path(run_dir) / name
            if path.is_file():
                print(path.read_text())
                print(f"report: {path}")
                return 0
        raise ConfigError(f"{run_dir}: no {SUMMARY_FILE} yet (the run has not finished)")

    def bundles(self, cfg) -> List[Dict[str, float]]:
        r = cfg.resources
        gpu = {"GPU": float(r.num_gpus_per_learner)} if r.num_gpus_per_learner else {}
        if r.num_workers == 0:
            return [{"CPU": 1.0, **gpu}]
        return [{"CPU": 1.0}] + [{"CPU": 1.0, **gpu}] * r.num_workers
