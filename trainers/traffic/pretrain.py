"""RIFT stage 1 (Chen et al., arXiv 2505.03344; docs/methods.md#rift): imitation of the
multimodal planner, run by the harness as the ``planner`` kind.

``pretrain`` fits ``regrl.agents.models.planner.Planner`` to demonstrations with Pluto's
winner-take-all + cross-entropy loss (optionally Pluto's drivable-area cost); planner.pt keeps
the weights of the best validation loss and is copied to ``export``, where the stage-2 configs
read it. ``PlannerDriver`` is registered in trainers/traffic/plugin.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import numpy as np
import torch

from regrl.agents.models.planner import (
    Planner,
    drivable_area_loss,
    planning_loss,
    save_planner,
    wta_target,
)
from regrl.files import atomic_output
from regrl.trainers.checks import (
    MAX_BATCH,
    MAX_WIDTH,
    require_size,
)
from regrl.trainers.checks import (
    require as _require,
)
from regrl.trainers.config import (
    ConfigError,
    LearnerResources,
    RunConfig,
    apply_overrides,
    parse,
    read_yaml,
)
from regrl.trainers.harness import Result, Session
from regrl.trainers.kinds import (
    CONFIG_FILE,
    HarnessDriver,
    Source,
    raw_config,
    source_name,
    train_kind,
)
from regrl.trainers.traffic.names import PLANNER_FILE, PRETRAIN_KIND
from regrl.trainers.traffic.planner_io import load_planner, scene_planner_config, scene_tensors


@dataclass(frozen=True)
class PretrainConfig(RunConfig):
    kind: Literal["planner"] = PRETRAIN_KIND
    """Marks a stage-1 planner config (``kind: planner``)."""
    name: str = "rift_pretrain"
    """Runs go to ``<runs_root>/<name>/<timestamp>/``."""
    seed: int = 0
    """Seed of torch and the train/validation split."""
    demos: str = "data/traffic_demos.npz"
    """Demonstrations from ``regrl traffic demos`` (obs, future, future_mask)."""
    num_modes: int = 6
    """M: mode queries per reference lane."""
    dim: int = 64
    """Planner embedding width."""
    epochs: int = 30
    """Passes over the training split."""
    batch_size: int = 256
    """Samples per gradient step."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-5
    """AdamW weight decay (RIFT's value)."""
    ce_weight: float = 1.0
    """Weight of the score cross-entropy against the winner-take-all regression."""
    grad_clip: float = 0.5
    """Gradient-norm clip (RIFT's gradient_clip_val)."""
    aux_weight: float = 0.0
    """Weight of Pluto's auxiliary drivable-area cost on the winner-take-all candidate
    (``planner.drivable_area_loss``; Pluto uses 1); 0: off. Validation reports it either way."""
    val_fraction: float = 0.1
    """Held-out fraction; planner.pt keeps the weights of the best validation loss."""
    resources: LearnerResources = field(default_factory=lambda: LearnerResources(torch_threads=1))
    """``torch_threads`` (default 1); the planner trains on CPU, so ``num_gpus_per_learner``
    must be 0."""
    export: Optional[str] = "data/rift_planner.pt"
    """Also copy the best planner.pt here (the stage-2 configs read it); null: don't."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.kind == PRETRAIN_KIND, f"kind must be {PRETRAIN_KIND!r}, got {self.kind!r}")
        _require(
            self.resources.num_gpus_per_learner == 0,
            "resources.num_gpus_per_learner must be 0: the planner trains on CPU",
        )
        _require(self.num_modes >= 1 and self.dim >= 1, "num_modes and dim must be >= 1")
        require_size("num_modes", self.num_modes, 1024)
        require_size("dim", self.dim, MAX_WIDTH)
        _require(self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1")
        require_size("batch_size", self.batch_size, MAX_BATCH)
        _require(self.lr > 0 and self.grad_clip > 0, "lr and grad_clip must be > 0")
        _require(self.aux_weight >= 0, f"aux_weight must be >= 0, got {self.aux_weight}")
        _require(
            0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}"
        )


def load_pretrain_config(path, overrides: Optional[List[str]] = None) -> PretrainConfig:
    return parse(
        PretrainConfig, apply_overrides(read_yaml(path), list(overrides or [])), source=str(path)
    )


def load_demos(path) -> Dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"demonstrations {path} do not exist; make them with "
            f"`regrl traffic demos --episodes N --out {path}`"
        )
    with np.load(path) as data:
        missing = [k for k in ("obs", "future", "future_mask") if k not in data]
        if missing:
            raise ValueError(f"{path} lacks {missing}; it needs obs, future, future_mask")
        return {k: data[k] for k in data.files}


def split_indices(n: int, val_fraction: float, gen: torch.Generator):
    """Stage 1's train/validation split of ``n`` demonstration samples: one permutation drawn
    from ``gen`` (a generator seeded with the run's ``seed``), the first
    ``round(val_fraction·n)`` of it held out. Returns (val_idx, train_idx)."""
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(val_fraction * n))
    return perm[:n_val], perm[n_val:]


def validation_metrics(planner: Planner, demos, idx, cfg: PretrainConfig) -> Dict[str, float]:
    """Stage 1's validation pass (``pretrain/val_*``: the loss terms, ``min_ade``,
    ``min_fde``, ``min_ade_k``, ``min_fde_k``, ``top1_acc``, Pluto's aux cost) of ``planner``
    on the samples ``idx`` of ``demos``: open loop, batches of 1,024, weights of ``cfg``."""
    batches = [idx[i : i + 1024] for i in range(0, len(idx), 1024)]
    return _epoch(planner, None, demos, batches, cfg, False)


def _batches(n: int, size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    return [order[i : i + size] for i in range(0, n, size)]


def _epoch(planner, opt, demos, idx_batches, cfg: PretrainConfig, train: bool) -> Dict[str, float]:
    sums: Dict[str, float] = {}
    planner.train(train)
    for idx in idx_batches:
        scene = scene_tensors(demos["obs"][idx.numpy()])
        future = torch.as_tensor(demos["future"][idx.numpy()], dtype=torch.float32)
        fmask = torch.as_tensor(demos["future_mask"][idx.numpy()], dtype=torch.float32)
        with torch.set_grad_enabled(train):
            out = planner(scene)
            loss, m = planning_loss(
                out["traj"],
                out["logits"],
                future,
                fmask,
                scene["lanes"],
                scene["lane_mask"],
                num_modes=planner.config.num_modes,
                ce_weight=cfg.ce_weight,
            )
            if cfg.aux_weight > 0 or not train:
                aux, aux_m = _aux_loss(out["traj"], future, fmask, scene, planner.config.num_modes)
                loss = loss + cfg.aux_weight * aux
                m.update(aux_m)
        if train:
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(planner.parameters(), cfg.grad_clip)
            opt.step()
        for k, v in dict(m, loss=loss.detach()).items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
    total = sum(len(i) for i in idx_batches)
    return {k: v / max(total, 1) for k, v in sums.items()}


def _aux_loss(traj, future, fmask, scene, num_modes: int):
    """Pluto's drivable-area cost of the winner-take-all candidate g* of every sample."""
    target = wta_target(traj, future, fmask, scene["lanes"], scene["lane_mask"], num_modes)
    best = traj[torch.arange(len(traj)), target]
    return drivable_area_loss(
        best, fmask, scene["agent_size"], scene["lanes"], scene["lane_mask"], scene["lane_width"]
    )


def pretrain(
    cfg: Optional[PretrainConfig] = None, progress: bool = True, *, resume: Optional[Path] = None
) -> Path:
    """Stage 1: fit the planner to demonstrations (or continue the run at ``resume``) through
    the run harness; writes planner.pt (best validation loss), TensorBoard scalars
    ``pretrain/{train,val}_*`` and config.yaml, and copies planner.pt to ``cfg.export``."""
    return train_kind("planner", cfg, resume=resume, progress=progress).run_dir


class PretrainSession(Session):
    """One stage-1 run for :mod:`regrl.trainers.harness`: an iteration is one epoch."""

    unit = "epoch"
    STATE = "pretrain_state.pt"

    def __init__(self, cfg: PretrainConfig, run_dir: Path, choice=None):
        # torch threads and seed: set by the harness before it builds the session
        self.cfg, self.run_dir, self.total, self.best = cfg, Path(run_dir), cfg.epochs, math.inf
        self.demos = load_demos(cfg.demos)
        self.planner = Planner(scene_planner_config(cfg.num_modes, cfg.dim))
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.val_idx, self.train_idx = split_indices(
            len(self.demos["obs"]), cfg.val_fraction, self.gen
        )
        self.opt = torch.optim.AdamW(
            self.planner.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    def step(self, epoch: int) -> Dict[str, float]:
        cfg, n_val = self.cfg, len(self.val_idx)
        batches = [
            self.train_idx[b] for b in _batches(len(self.train_idx), cfg.batch_size, self.gen)
        ]
        tr = _epoch(self.planner, self.opt, self.demos, batches, cfg, True)
        va = validation_metrics(self.planner, self.demos, self.val_idx, cfg) if n_val else tr
        if va["loss"] < self.best:  # planner.pt: the best validation loss so far
            self.best = va["loss"]
            _atomic_save(self.run_dir / PLANNER_FILE, self.planner, {"epoch": epoch, "val": va})
        return {
            **{f"pretrain/train_{k}": v for k, v in tr.items()},
            **{f"pretrain/val_{k}": v for k, v in va.items()},
        }

    def save(self, path: str) -> Dict[str, Any]:
        Path(path).mkdir(parents=True)
        torch.save(
            {
                "planner": self.planner.state_dict(),
                "optimizer": self.opt.state_dict(),
                "generator": self.gen.get_state(),
            },
            Path(path) / self.STATE,
        )
        return {"best": self.best}

    def restore(self, ckpt: Path, state: Dict[str, Any]) -> None:
        from regrl.trainers.checkpoint import load_torch_state

        blob = load_torch_state(Path(ckpt) / self.STATE)
        self.planner.load_state_dict(blob["planner"])
        self.opt.load_state_dict(blob["optimizer"])
        self.gen.set_state(blob["generator"])
        self.best = float(state["best"])

    def should_stop(self, epoch: int, metrics: Dict[str, float]) -> bool:
        return False

    def close(self) -> None:
        pass


def pretrain_progress_line(epoch: int, total: int, m: Dict[str, float], _unused=0.0) -> str:
    return (
        f"epoch {epoch:>3}/{total}  train loss {m['pretrain/train_loss']:.3f} "
        f"minADE {m['pretrain/train_min_ade']:.2f}  val loss {m['pretrain/val_loss']:.3f} "
        f"minADE {m['pretrain/val_min_ade']:.2f} minFDE {m['pretrain/val_min_fde']:.2f} "
        f"top1 {m['pretrain/val_top1_acc']:.2f}"
    )


def export_planner(cfg: PretrainConfig, run_dir: Path) -> None:
    """Say where planner.pt is, and copy it to ``cfg.export`` (what stage-2 configs read)."""
    print(f"planner:       {run_dir / PLANNER_FILE}", flush=True)
    if cfg.export:
        export = Path(cfg.export)
        export.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(export, load_planner(run_dir / PLANNER_FILE), {"source": str(run_dir)})
        print(f"exported:      {export}", flush=True)


def _atomic_save(path: Path, planner: Planner, extra: Dict[str, Any]) -> None:
    """``save_planner`` through :func:`regrl.files.atomic_output`: a reader of ``path`` (a
    stage-2 run, a comparison) never sees half a file, and a failed save leaves the old one
    and no temporary file."""
    with atomic_output(path) as fh:
        save_planner(fh, planner, extra)


def pretrain_command(args) -> int:
    """``regrl traffic pretrain CONFIG [--set k=v ...]`` (args.config, args.overrides)."""
    try:
        pretrain(load_pretrain_config(args.config, getattr(args, "overrides", None)))
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    return 0


class PlannerDriver(HarnessDriver):
    curve_metrics = ("pretrain/val_loss", "pretrain/val_min_ade")
    unit = "epoch"

    def load(self, source: Source, overrides=(), *, where: Optional[str] = None) -> Any:
        return parse(
            PretrainConfig, raw_config(source, overrides), source=source_name(source, where)
        )

    def dump(self, cfg) -> Dict[str, Any]:
        return asdict(cfg)

    def trial_config(self, raw: Dict[str, Any]) -> Dict[str, Any]:
        """Trials never overwrite the shared exported planner (``export``)."""
        return dict(raw, export=None)

    def preflight(self, cfg) -> None:
        load_demos(cfg.demos)

    def build(self, cfg, run_dir: Path, choice) -> Any:
        return PretrainSession(cfg, run_dir, choice)

    @staticmethod
    def progress_line(epoch: int, total: int, m: Dict[str, float], _unused=0.0) -> str:
        return pretrain_progress_line(epoch, total, m)

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> Result:
        result = super().train(cfg, resume=resume, address=address, progress=progress)
        export_planner(load_pretrain_config(result.run_dir / CONFIG_FILE), result.run_dir)
        return result
