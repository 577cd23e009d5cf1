"""RIFT on MetaDrive (Chen et al., arXiv 2505.03344; docs/methods.md#rift): stage-1 imitation of the
multimodal planner, the candidate generator injected into the environment, the RLModule that
scores candidates for stage-2 fine-tuning on RLlib, and the evaluation / comparison tables.

Stage 1 (``pretrain``) fits ``regrl.agents.models.planner.Planner`` to demonstrations with Pluto's
winner-take-all + cross-entropy loss. Stage 2 runs ``regrl train configs/rift_*.yaml``: the
EnvRunners host the MetaDrive env, which asks the frozen planner (``candidate_fn``) for the
R·M candidate trajectories of every CBV, executes the one the policy picks and scores all of
them; the policy is ``CandidateScorerModule`` (frozen encoder/decoder, trainable ``pi_head``)
and the loss is the ``candidate_policy`` term over every candidate.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple

import numpy as np
import torch

from regrl.agents.models.planner import (
    Planner,
    PlannerConfig,
    drivable_area_loss,
    planning_loss,
    save_planner,
    wta_target,
)
from regrl.agents.models.planner import load_planner as _load_planner_file
from regrl.envs.traffic.metrics import summarise
from regrl.trainers.checks import (
    MAX_BATCH,
    MAX_WIDTH,
    require_size,
)
from regrl.trainers.checks import (
    require as _require,
)
from regrl.trainers.config import LearnerResources, RunConfig

PLANNER_FILE = "planner.pt"
PRETRAIN_KIND = "planner"


def load_planner(path, map_location: str = "cpu") -> Planner:
    """A stage-1 planner checkpoint (``weights_only`` load); a truncated, foreign or crafted
    file is one CheckpointError naming it (one ``error:`` line in the CLI), not a traceback."""
    from regrl.trainers.checkpoint import LOAD_ERRORS, CheckpointError, load_error_reason

    try:
        return _load_planner_file(path, map_location=map_location)
    except LOAD_ERRORS as exc:
        raise CheckpointError(
            f"{path}: not a readable planner checkpoint ({load_error_reason(exc)})"
        ) from None


# ================================================================== stage 1: imitation
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
    from regrl.trainers.config import apply_overrides, parse, read_yaml

    return parse(
        PretrainConfig, apply_overrides(read_yaml(path), list(overrides or [])), source=str(path)
    )


def scene_planner_config(num_modes: int, dim: int) -> PlannerConfig:
    """A planner whose input/output sizes match the environment's scene layout."""
    from regrl.envs.traffic import scene

    return PlannerConfig(
        hist_steps=scene.H,
        num_neighbors=scene.N,
        num_lanes=scene.R,
        lane_points=scene.P,
        horizon=scene.T,
        num_modes=num_modes,
        dim=dim,
    )


def scene_tensors(obs: Any) -> Dict[str, torch.Tensor]:
    """Flat observations [..., OBS_DIM] (numpy or torch) -> the planner's dict of tensors."""
    from regrl.envs.traffic.scene import unflatten

    return unflatten(
        torch.as_tensor(np.asarray(obs) if not torch.is_tensor(obs) else obs, dtype=torch.float32)
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
    from regrl.trainers.kinds import train_kind

    return train_kind("planner", cfg, resume=resume, progress=progress).run_dir


class PretrainSession:
    """One stage-1 run for :mod:`regrl.trainers.harness`: an iteration is one epoch."""

    unit = "epoch"
    STATE = "pretrain_state.pt"

    def __init__(self, cfg: PretrainConfig, run_dir: Path, choice=None):
        if cfg.resources.torch_threads:
            torch.set_num_threads(cfg.resources.torch_threads)
        torch.manual_seed(cfg.seed)
        self.cfg, self.run_dir, self.total, self.best = cfg, Path(run_dir), cfg.epochs, math.inf
        self.demos = load_demos(cfg.demos)
        self.planner = Planner(scene_planner_config(cfg.num_modes, cfg.dim))
        self.gen = torch.Generator().manual_seed(cfg.seed)
        perm = torch.randperm(len(self.demos["obs"]), generator=self.gen)
        n_val = int(round(cfg.val_fraction * len(perm)))
        self.val_idx, self.train_idx = perm[:n_val], perm[n_val:]
        self.opt = torch.optim.AdamW(
            self.planner.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    def step(self, epoch: int) -> Dict[str, float]:
        cfg, n_val = self.cfg, len(self.val_idx)
        batches = [
            self.train_idx[b] for b in _batches(len(self.train_idx), cfg.batch_size, self.gen)
        ]
        tr = _epoch(self.planner, self.opt, self.demos, batches, cfg, True)
        va = (
            _epoch(
                self.planner,
                self.opt,
                self.demos,
                [self.val_idx[i : i + 1024] for i in range(0, n_val, 1024)],
                cfg,
                False,
            )
            if n_val
            else tr
        )
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
        f"minADE {m['pretrain/val_min_ade']:.2f} top1 {m['pretrain/val_top1_acc']:.2f}"
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
    tmp = path.with_name(f".tmp_{path.name}_{os.getpid()}")
    save_planner(tmp, planner, extra)
    os.replace(tmp, path)


def planner_path(path) -> Path:
    """A planner checkpoint file, or a stage-1 run dir holding planner.pt."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        p = p / PLANNER_FILE
    if not p.is_file():
        raise FileNotFoundError(
            f"no stage-1 planner at {path} (expected a {PLANNER_FILE} file "
            "or a run directory of the planner pre-training)"
        )
    return p


def check_planner_fits_scene(planner: Planner) -> None:
    c, want = planner.config, scene_planner_config(planner.config.num_modes, planner.config.dim)
    if c != want:
        raise ValueError(f"planner config {c} does not match the traffic scene layout {want}")


# ================================================================== env injection
def make_candidate_fn(planner: Planner) -> Callable[[np.ndarray], np.ndarray]:
    """``candidate_fn(obs [K, OBS_DIM]) -> traj [K, G, T, 2]`` of the frozen planner."""
    planner.eval()

    def candidate_fn(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return planner(scene_tensors(obs))["traj"].numpy()

    return candidate_fn


def make_rift_env(planner: Optional[str] = None, **kwargs):
    """Env factory of ``rift_metadrive``: in candidate mode the stage-1 ``planner`` (file or
    run dir) proposes the candidates; raw mode (PPO from scratch) needs no planner."""
    from regrl.envs.traffic import parallel_env

    if kwargs.get("action_mode", "candidate") == "candidate":
        if planner is None:
            raise ValueError(
                "rift_metadrive in candidate mode needs env.kwargs.planner: a "
                "stage-1 planner checkpoint (planner.pt or its run directory)"
            )
        model = load_planner(planner_path(planner))
        check_planner_fits_scene(model)
        kwargs["candidate_fn"] = make_candidate_fn(model)
        kwargs.setdefault("num_modes", model.config.num_modes)
        if kwargs["num_modes"] != model.config.num_modes:
            raise ValueError(
                f"env.kwargs.num_modes={kwargs['num_modes']} but the planner has "
                f"{model.config.num_modes} modes"
            )
    return parallel_env(**kwargs)


# ================================================================== stage 2: RLlib module
from ray.rllib.core.columns import Columns  # noqa: E402  (trainers may import ray)
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI  # noqa: E402
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule  # noqa: E402


class CandidateScorerModule(TorchRLModule, ValueFunctionAPI):
    """The RIFT policy: logits over the G = R·M candidates of the frozen stage-1 planner.

    Only ``planner.pi_head`` is trainable (RIFT's ``trainable_layers``, docs/methods.md#rift-planner).
    ``model_config``: ``planner`` (path of planner.pt, loaded at construction when present;
    a restored checkpoint overwrites every weight anyway), ``planner_config`` (its
    PlannerConfig as a dict) and ``greedy_rollout`` (execute the argmax candidate, as RIFT
    does; false samples from the categorical). RIFT has no critic: values are 0.
    """

    def setup(self) -> None:
        mc = dict(self.model_config or {})
        self.planner = Planner(PlannerConfig(**mc["planner_config"]))
        path = mc.get("planner")
        if path and Path(path).is_file():
            self.planner.load_state_dict(load_planner(path).state_dict())
        for name, p in self.planner.named_parameters():
            p.requires_grad_(name.startswith("pi_head."))
        self.greedy = bool(mc.get("greedy_rollout", True))

    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        logits = self.planner(scene_tensors(batch[Columns.OBS]), with_traj=False)["logits"]
        return {Columns.ACTION_DIST_INPUTS: logits}

    def _forward_exploration(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        out = self._forward(batch)
        if self.greedy:  # RIFT executes the highest-scoring candidate
            logits = out[Columns.ACTION_DIST_INPUTS]
            action = logits.argmax(-1)
            out[Columns.ACTIONS] = action
            out[Columns.ACTION_LOGP] = (
                torch.log_softmax(logits, -1).gather(-1, action[:, None]).squeeze(-1)
            )
        return out

    def compute_values(self, batch: Dict[str, Any], embeddings: Optional[Any] = None):
        return torch.zeros(batch[Columns.OBS].shape[0], device=batch[Columns.OBS].device)


def rift_module_spec(cfg):
    """RLModuleSpec of the candidate scorer for ``cfg`` (None in raw action mode: PPO's MLP)."""
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    kw = dict(cfg.env.kwargs)
    if kw.get("action_mode", "candidate") != "candidate":
        return None
    if "planner" not in kw:
        raise ValueError(
            "env.kwargs.planner is required in candidate mode (stage-1 planner.pt "
            "or its run directory)"
        )
    path = planner_path(kw["planner"])
    planner = load_planner(path)
    check_planner_fits_scene(planner)
    return RLModuleSpec(
        module_class=CandidateScorerModule,
        model_config={
            "planner": str(path),
            "planner_config": asdict(planner.config),
            "greedy_rollout": True,
        },
    )


# ================================================================== evaluation (docs/methods.md#rift-metrics)
# env_seed: MetaDrive start seed of the evaluation scenarios (training and demos use 0-99,
# so 1000 holds them out); seed: first scenario index (block b runs the next ones)
EVAL_DEFAULTS = {
    "episodes": 6,
    "blocks": 3,
    "demos": "data/traffic_demos.npz",
    "seed": 0,
    "env_seed": 1000,
}
METRICS = (  # key, column title, format, better
    ("cpk", "CPK ↓", "{:.1f}", "low"),
    ("orr", "ORR % ↓", "{:.1f}", "low"),
    ("uc", "UC %", "{:.1f}", None),
    ("rp", "RP m ↑", "{:.0f}", "high"),
    ("sw_speed", "SW speed ↑", "{:.3f}", "high"),
    ("sw_acc", "SW acc ↑", "{:.3f}", "high"),
    ("wd_speed", "WD speed ↓", "{:.2f}", "low"),
    ("speed", "speed m/s", "{:.2f}", None),
    ("ego_route_completion", "ego RC ↑", "{:.2f}", "high"),
    ("ego_crash", "ego crash ↓", "{:.2f}", "low"),
)
Policy = Callable[[np.ndarray], np.ndarray]  # obs [K, OBS_DIM] -> actions [K] or [K, 2]
EVAL_TORCH_THREADS = 1  # evaluation runs K <= a few CBVs per call: one thread is enough


def scorer_policy(score: Callable[[Dict[str, torch.Tensor]], torch.Tensor]) -> Policy:
    """Execute the highest-scoring candidate (RIFT's rollout rule)."""

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return score(scene_tensors(obs)).argmax(-1).numpy()

    return policy


class BestReturnPolicy:
    """Execute the candidate with the highest RIFT return (the dense reward of each candidate
    over 4 s under the neighbour forecast, computed by the env; ``candidate_returns`` in the
    info): the choice a scorer would make if it had learned RIFT's own ranking perfectly, a
    reference for what fine-tuning the scoring head can reach. Needs candidate mode; the
    rollout hands it each agent's info (``reads_info``)."""

    reads_info = True

    def __call__(self, obs: np.ndarray, infos: List[Dict[str, Any]]) -> np.ndarray:
        best = []
        for info in infos:
            if "candidate_returns" not in info:
                raise ValueError("BestReturnPolicy needs candidate mode (candidate_returns)")
            valid = np.asarray(info["candidate_valid"], bool)
            best.append(int(np.argmax(np.where(valid, info["candidate_returns"], -np.inf))))
        return np.asarray(best)


def module_policy(module, action_space) -> Policy:
    from regrl.trainers.evaluate import greedy_action

    def policy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})
        return greedy_action(out[Columns.ACTION_DIST_INPUTS], action_space)

    return policy


def rollout(env, policy: Policy, episodes: int, seed: int) -> Dict[str, Any]:
    """Run ``episodes`` episodes; per-step CBV samples and per-episode aggregates. A policy
    with ``reads_info = True`` is called as ``policy(obs, infos)`` with each agent's info."""
    steps: Dict[str, List[float]] = {
        k: [] for k in ("speed", "acc", "collision", "offroad", "uncomfortable", "progress_m")
    }
    per_episode: List[Dict[str, float]] = []
    reads_info = getattr(policy, "reads_info", False)
    for ep in range(episodes):
        obs, infos = env.reset(seed=seed + ep)
        last: Dict[str, float] = {}
        while env.agents:
            names = [a for a in env.agents if a in obs]
            batch = np.stack([obs[a] for a in names])
            acts = policy(batch, [infos[a] for a in names]) if reads_info else policy(batch)
            obs, _, _, _, infos = env.step({a: acts[i] for i, a in enumerate(names)})
            for info in infos.values():
                m = info.get("metrics", {})
                for k in steps:
                    if k in m:
                        steps[k].append(float(m[k]))
                if "cpk" in m:
                    last = {k: float(v) for k, v in m.items() if np.isscalar(v)}
        per_episode.append(last)
    return {"steps": {k: np.asarray(v) for k, v in steps.items()}, "episodes": per_episode}


def demo_speeds(path) -> Optional[np.ndarray]:
    p = Path(path)
    if not p.is_file():
        return None
    with np.load(p) as d:
        return np.asarray(d["speed"], float).ravel() if "speed" in d.files else None


@contextlib.contextmanager
def fixed_torch_threads(n: int = EVAL_TORCH_THREADS):
    """Run the block with ``n`` torch intra-op threads, restoring the caller's setting after.
    The planner's float results (and so the candidates, the tracked motion and every metric
    bit) may depend on how a reduction is split over threads; ``regrl eval`` took the run's
    ``torch_threads`` while a script calling ``compare_runs`` kept torch's default (one per
    core), so one checkpoint could be evaluated under different thread counts."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate_policy(
    env_kwargs: Dict[str, Any],
    policy: Policy,
    opts: Dict[str, Any],
    say: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """``blocks`` evaluation seeds x ``episodes // blocks`` episodes -> metrics per block;
    bit-identical for the same policy, env settings and options (fixed torch threads, every
    episode reset with its own seed; nothing reads the clock)."""
    with fixed_torch_threads():
        return _evaluate_blocks(env_kwargs, policy, opts, say)


def _evaluate_blocks(
    env_kwargs: Dict[str, Any], policy: Policy, opts: Dict[str, Any], say: Callable[[str], None]
) -> Dict[str, Any]:
    env = make_rift_env(**dict(env_kwargs, seed=int(opts["env_seed"])))
    demo = demo_speeds(opts["demos"])
    blocks, per = int(opts["blocks"]), max(1, int(opts["episodes"]) // int(opts["blocks"]))
    rows = []
    try:
        for b in range(blocks):
            start = time.time()
            # consecutive seeds: the env maps seed -> scenario seed % num_scenarios
            roll = rollout(env, policy, per, seed=int(opts["seed"]) + per * b)
            rows.append(summarise(roll, demo))
            say(
                f"eval block {b + 1}/{blocks}: {per} episodes, {time.time() - start:.0f} s, "
                f"RP {rows[-1]['rp']:.0f} m, CPK {rows[-1]['cpk']:.1f}"
            )
    finally:
        env.close()
    return {
        "blocks": rows,
        "mean": _mean_std(rows)[0],
        "std": _mean_std(rows)[1],
        "demo_speed_samples": 0 if demo is None else int(len(demo)),
    }


def _mean_std(rows: List[Dict[str, float]]):
    keys = rows[0].keys() if rows else []
    mean = {
        k: float(np.nanmean([r[k] for r in rows]))
        if any(np.isfinite(r[k]) for r in rows)
        else float("nan")
        for k in keys
    }
    std = {
        k: float(np.nanstd([r[k] for r in rows]))
        if any(np.isfinite(r[k]) for r in rows)
        else float("nan")
        for k in keys
    }
    return mean, std


def eval_options(cfg_eval_kwargs: Dict[str, Any], episodes: Optional[int]) -> Dict[str, Any]:
    opts = dict(EVAL_DEFAULTS, **cfg_eval_kwargs)
    unknown = sorted(set(opts) - set(EVAL_DEFAULTS))
    if unknown:
        raise ValueError(
            f"eval.kwargs {unknown} unknown for rift_metadrive; valid: {sorted(EVAL_DEFAULTS)}"
        )
    if episodes:
        opts["episodes"] = int(episodes)
    opts["blocks"] = max(1, min(int(opts["blocks"]), int(opts["episodes"])))
    return opts


def run_policy(run_dir: Path, cfg, ckpt: Path) -> Policy:
    """The greedy policy of an RL run: argmax candidate, or the Gaussian mean in raw mode."""
    from regrl.trainers.evaluate import load_module

    module = load_module(ckpt, "cbv")
    if dict(cfg.env.kwargs).get("action_mode", "candidate") == "candidate":
        return scorer_policy(lambda s: module.planner(s, with_traj=False)["logits"])
    from gymnasium.spaces import Box

    return module_policy(module, Box(-1.0, 1.0, (2,), np.float32))


def method_name(cfg) -> str:
    """Label of a run in tables: IL only / PPO / GRPO+KL / demo-KL / RIFT (from its terms)."""
    if dict(cfg.env.kwargs).get("action_mode", "candidate") == "raw":
        return "PPO (raw actions)"
    for t in cfg.objective.terms:
        if t.name == "candidate_policy":
            p = t.params
            if p.kl_coeff > 0:
                return "demo-KL" if p.kl == "demo" else "GRPO+KL"
            return "RIFT" if p.dual_clip else "RIFT w/o dual clip"
    return cfg.name


def evaluate_run(*, run_dir: Path, cfg, ckpt: Path, episodes: Optional[int]) -> Dict[str, Any]:
    """``regrl eval`` for rift_metadrive: RIFT's CBV metrics of the latest checkpoint."""
    opts = eval_options(dict(cfg.eval.kwargs), episodes)
    result = evaluate_policy(dict(cfg.env.kwargs), run_policy(run_dir, cfg, ckpt), opts)
    row = dict(result, method=method_name(cfg), run_dir=str(run_dir))
    table = markdown_table([row])
    (Path(run_dir) / "eval.md").write_text(table + "\n")
    figures = write_bars(Path(run_dir) / "eval_traffic.png", [row])
    return {
        **result,
        "method": row["method"],
        "options": opts,
        "table": "eval.md",
        "figures": figures,
    }


def evaluate_planner_run(
    run_dir: Path, env_kwargs: Dict[str, Any], opts: Dict[str, Any]
) -> Dict[str, Any]:
    """IL-only baseline: the stage-1 planner's own scores pick the candidate."""
    path = planner_path(run_dir)
    planner = load_planner(path)
    planner.eval()
    kw = dict(env_kwargs, planner=str(path), action_mode="candidate")
    result = evaluate_policy(
        kw, scorer_policy(lambda s: planner(s, with_traj=False)["logits"]), opts
    )
    return dict(result, method="IL only", run_dir=str(run_dir))


def _cell(mean: float, std: float, fmt: str) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return fmt.format(mean) + ("" if not np.isfinite(std) else " ± " + fmt.format(std))


def markdown_table(rows: List[Dict[str, Any]]) -> str:
    """One line per method: mean ± std over its evaluation units (runs x seed blocks)."""
    head = "| method | units | " + " | ".join(t for _, t, _, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for r in rows:
        cells = [_cell(r["mean"][k], r["std"][k], f) for k, _, f, _ in METRICS]
        lines.append(f"| {r['method']} | {len(r['blocks'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_bars(path: Path, rows: List[Dict[str, Any]]) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(17, 6))
    for ax, (key, title, _, _) in zip(axes.ravel(), METRICS):
        means = [r["mean"][key] for r in rows]
        stds = [r["std"][key] if np.isfinite(r["std"][key]) else 0.0 for r in rows]
        ax.bar(
            range(len(rows)),
            np.nan_to_num(means),
            yerr=stds,
            capsize=3,
            color=[f"C{i}" for i in range(len(rows))],
        )
        ax.set_xticks(
            range(len(rows)), [r["method"] for r in rows], rotation=30, ha="right", fontsize=8
        )
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [str(path)]


def _is_planner_run(run_dir: Path) -> bool:
    cfg = Path(run_dir) / "config.yaml"
    if not cfg.is_file():
        return (Path(run_dir) / PLANNER_FILE).is_file()
    from regrl.trainers.config import read_yaml

    return read_yaml(cfg).get("kind") == PRETRAIN_KIND


def _rl_row(run_dir: Path, episodes: Optional[int], reuse: bool) -> Dict[str, Any]:
    from regrl.trainers.evaluate import evaluate
    from regrl.trainers.run import load_run_config

    saved, cfg = run_dir / "eval.json", load_run_config(run_dir)
    if reuse and saved.is_file():  # only an evaluation with the very same options
        report = json.loads(saved.read_text())
        if report.get("options") == eval_options(dict(cfg.eval.kwargs), episodes):
            print(f"compare: reusing {saved}", flush=True)
            return dict(report, run_dir=str(run_dir), seed=cfg.seed)
    report = evaluate(run_dir, episodes)
    return dict(report, method=method_name(cfg), run_dir=str(run_dir), seed=cfg.seed)


def compare_runs(
    run_dirs: List[Path],
    out: Path,
    *,
    episodes: Optional[int] = None,
    reuse: bool = True,
    bev: bool = True,
) -> Dict[str, Any]:
    """Evaluate RL runs (``regrl eval``, reusing their eval.json) and stage-1 planner runs
    (IL only, on the first RL run's env settings); runs of one method pool their seed blocks.
    Writes ``out/compare.md``, ``compare.json``, ``compare.png`` and, with ``bev``, top-down
    snapshots of IL only vs RIFT (``compare_bev.png``); returns the rows."""
    from regrl.trainers.run import load_run_config

    run_dirs = [Path(d).resolve() for d in run_dirs]
    for d in run_dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such run directory")
    rl = [d for d in run_dirs if not _is_planner_run(d)]
    rows = [_rl_row(d, episodes, reuse) for d in rl]
    il = [d for d in run_dirs if _is_planner_run(d)]
    if il:
        if not rl:
            raise ValueError("compare needs at least one RL run to take the env settings from")
        cfg = load_run_config(rl[0])
        opts = eval_options(dict(cfg.eval.kwargs), episodes)
        env_kw = {k: v for k, v in dict(cfg.env.kwargs).items() if k not in ("planner",)}
        rows = [evaluate_planner_run(d, env_kw, opts) for d in il] + rows
    merged = _pool_by_method(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(merged)
    (out / "compare.md").write_text(table + "\n")
    (out / "compare.json").write_text(json.dumps(merged, indent=2, default=float))
    per_run = [{k: r[k] for k in ("method", "run_dir", "seed", "blocks") if k in r} for r in rows]
    (out / "compare_runs.json").write_text(json.dumps(per_run, indent=2, default=float))
    (out / "compare_ci.md").write_text(interval_tables(per_run) + "\n")
    figures = write_bars(out / "compare_ci.png", interval_rows(per_run))
    figures += write_bars(out / "compare.png", merged)
    if bev and rl:
        figures += _bev_for(rows, load_run_config(rl[0]), out / "compare_bev.png")
    print(table + "\n\n" + (out / "compare_ci.md").read_text(), flush=True)
    return {"rows": merged, "table": str(out / "compare.md"), "figures": figures}


def _bev_for(rows: List[Dict[str, Any]], cfg, path: Path) -> List[str]:
    """Snapshots of IL only and RIFT (the first run of each) on one held-out scenario."""
    first = {}
    for r in rows:
        first.setdefault(r["method"], r)
    picked = {m: _row_policy(first[m]) for m in ("IL only", "RIFT") if m in first}
    if not picked:
        return []
    env_kw = {k: v for k, v in dict(cfg.env.kwargs).items() if k != "planner"}
    env_kw.update(
        action_mode="candidate",
        planner=str(planner_path(first["IL only"]["run_dir"]))
        if "IL only" in first
        else dict(cfg.env.kwargs)["planner"],
    )
    return bev_snapshots(
        env_kw, picked, path, env_seed=int(eval_options(dict(cfg.eval.kwargs), None)["env_seed"])
    )


# ---------------------------------------------------------------- 95% intervals over seeds
BASELINE, PAIRS = "IL only", (("RIFT", "RIFT w/o dual clip"), ("RIFT", "GRPO+KL"))
"""Differences reported with intervals: every method minus IL only (all runs start from its
scorer), and RIFT minus an ablation paired by training seed."""


def run_means(row: Dict[str, Any]) -> Dict[str, float]:
    """One run's value of each metric: the mean over its evaluation blocks (equal sizes)."""
    return _mean_std(row["blocks"])[0]


def _ci_cell(values: List[float], fmt: str, signed: bool = False) -> str:
    from regrl.trainers.stats import t_interval

    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "n/a"
    mean, half = t_interval(values)
    text = (("{:+" + fmt[2:]) if signed else fmt).format(mean)
    if half is None:
        return text
    sep = "" if not signed or abs(mean) <= half else " *"
    return f"{text} ± {fmt.format(half)}{sep}"


def interval_tables(runs: List[Dict[str, Any]]) -> str:
    """Markdown: each method's metrics as mean ± 95% t-interval over its training runs (one
    value per run: the mean over the held-out blocks every run sees); a method with one run
    (IL only: no stage-2 seed) gets the interval over its evaluation blocks instead, marked
    "blocks". Then each method minus IL only (per run; * = the interval excludes 0) and the
    PAIRS differences matched by training seed."""
    groups = _by_method(runs)
    head = " | ".join(t for _, t, _, _ in METRICS)
    lines = [f"| method | n | {head} |", "|" + "---|" * (len(METRICS) + 2)]
    for method, rs in _ordered(groups):
        units = _units(rs)
        n = f"{len(rs)} runs" if len(rs) > 1 else f"{len(units)} blocks"
        cells = [_ci_cell([u[k] for u in units], f) for k, _, f, _ in METRICS]
        lines.append(f"| {method} | {n} | " + " | ".join(cells) + " |")
    base = groups.get(BASELINE)
    if base and len(base) == 1:
        ref = run_means(base[0])
        lines += ["", f"Difference to {BASELINE} (per run; * = 95% interval excludes 0):", ""]
        lines += [f"| method | n | {head} |", "|" + "---|" * (len(METRICS) + 2)]
        for method, rs in _ordered(groups):
            if method != BASELINE:
                diffs = [{k: run_means(r)[k] - ref[k] for k in ref} for r in rs]
                cells = [_ci_cell([d[k] for d in diffs], f, True) for k, _, f, _ in METRICS]
                lines.append(f"| {method} − {BASELINE} | {len(rs)} | " + " | ".join(cells) + " |")
    for a, b in PAIRS:
        by_seed = {m: {r.get("seed"): run_means(r) for r in groups.get(m, [])} for m in (a, b)}
        seeds = sorted(set(by_seed[a]) & set(by_seed[b]) - {None})
        if len(seeds) < 2:
            continue
        diffs = [{k: by_seed[a][s][k] - by_seed[b][s][k] for k in by_seed[a][s]} for s in seeds]
        cells = [_ci_cell([d[k] for d in diffs], f, True) for k, _, f, _ in METRICS]
        lines += ["", f"{a} − {b}, paired by training seed ({len(seeds)} seeds):", ""]
        lines += [f"| pair | n | {head} |", "|" + "---|" * (len(METRICS) + 2)]
        lines.append(f"| {a} − {b} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _by_method(runs: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(r["method"], []).append(r)
    return groups


def _units(rs: List[Dict[str, Any]]) -> List[Dict[str, float]]:
    """The values an interval is taken over: one per run, or a lone run's blocks."""
    return [run_means(r) for r in rs] if len(rs) > 1 else rs[0]["blocks"]


def interval_rows(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Rows for ``write_bars``: per method the mean and, as "std", the 95% half-width (0 when
    there is no interval) of ``interval_tables``' first table."""
    from regrl.trainers.stats import t_interval

    rows = []
    for method, rs in _ordered(_by_method(runs)):
        units, mean, half = _units(rs), {}, {}
        for k, *_ in METRICS:
            vals = [u[k] for u in units if np.isfinite(u[k])]
            m, h = t_interval(vals) if vals else (float("nan"), None)
            mean[k], half[k] = m, 0.0 if h is None else h
        rows.append({"method": method, "mean": mean, "std": half})
    return rows


def _ordered(groups: Dict[str, Any]):
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(groups.items(), key=lambda kv: rank.get(kv[0], len(rank)))


METHOD_ORDER = ["IL only", "PPO (raw actions)", "GRPO+KL", "demo-KL", "RIFT w/o dual clip", "RIFT"]


def _pool_by_method(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    order = METHOD_ORDER
    groups: Dict[str, Dict[str, Any]] = {}
    for r in rows:
        g = groups.setdefault(r["method"], {"method": r["method"], "blocks": [], "runs": []})
        g["blocks"] += r["blocks"]
        g["runs"].append(r["run_dir"])
    for g in groups.values():
        g["mean"], g["std"] = _mean_std(g["blocks"])
    rank = {m: i for i, m in enumerate(order)}
    return sorted(groups.values(), key=lambda g: rank.get(g["method"], len(order)))


# ================================================================== bird's-eye view
def _topdown(env, camera: Dict[str, tuple]) -> Optional[np.ndarray]:
    # MetaDrive's pygame top-down renderer works headless (SDL dummy driver); the camera is
    # fixed at the CBVs' centroid of the first frame so that all rows show the same area
    md, vehicles = getattr(env, "_md", None), getattr(env, "_vehicle", None)
    if md is None or not vehicles:
        return None
    if "xy" not in camera:
        camera["xy"] = tuple(float(c) for c in np.mean([v.position for v in vehicles.values()], 0))
    return md.render(
        mode="top_down",
        window=False,
        screen_size=(500, 500),
        film_size=(1600, 1600),
        scaling=4,
        camera_position=camera["xy"],
        num_stack=1,
    )


def bev_snapshots(
    env_kwargs: Dict[str, Any],
    policies: Dict[str, Policy],
    path: Path,
    *,
    steps=(10, 40, 80),
    seed: int = 0,
    env_seed: int = 1000,
    env_overrides: Optional[Dict[str, Dict[str, Any]]] = None,
    camera_xy: Optional[Tuple[float, float]] = None,
) -> List[str]:
    """Top-down frames of one held-out scenario, one row per policy; [] if unavailable.
    ``env_overrides[name]`` updates ``env_kwargs`` for that row (e.g. raw mode with IDM CBVs);
    a policy with ``reads_info`` gets each agent's info (``BestReturnPolicy``); the camera is
    fixed at ``camera_xy`` or at the CBVs' centroid in the first row's first frame."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    frames: Dict[str, List[Tuple[int, np.ndarray]]] = {}
    camera: Dict[str, tuple] = {} if camera_xy is None else {"xy": tuple(camera_xy)}
    for name, policy in policies.items():
        kw = dict(env_kwargs, **(env_overrides or {}).get(name, {}), seed=env_seed)
        env = make_rift_env(**kw)
        reads_info = getattr(policy, "reads_info", False)
        try:
            obs, infos = env.reset(seed=seed)
            frames[name] = []
            for t in range(1, max(steps) + 1):
                if not env.agents:
                    break
                names = [a for a in env.agents if a in obs]
                batch = np.stack([obs[a] for a in names])
                acts = policy(batch, [infos[a] for a in names]) if reads_info else policy(batch)
                obs, _, _, _, infos = env.step({a: acts[i] for i, a in enumerate(names)})
                if t in steps:
                    img = _topdown(env, camera)
                    if img is None:
                        return []
                    frames[name].append((t, img))
        finally:
            env.close()
    return _write_frames(frames, path)


def _write_frames(frames: Dict[str, List[Tuple[int, np.ndarray]]], path: Path) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max((len(f) for f in frames.values()), default=0)
    if not cols:
        return []
    fig, axes = plt.subplots(
        len(frames), cols, figsize=(3.2 * cols, 3.2 * len(frames)), squeeze=False
    )
    for row, (name, fs) in zip(axes, frames.items()):
        for ax in row:
            ax.axis("off")
        for ax, (t, img) in zip(row, fs):
            ax.imshow(img)
            ax.set_title(f"{name}, t = {t * 0.1:.1f} s", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [str(path)]


def _row_policy(row: Dict[str, Any]) -> Policy:
    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.run import load_run_config

    run_dir = Path(row["run_dir"])
    if row["method"] == "IL only":
        planner = load_planner(planner_path(run_dir))
        planner.eval()
        return scorer_policy(lambda s: planner(s, with_traj=False)["logits"])
    cfg = load_run_config(run_dir)
    return run_policy(run_dir, cfg, latest_checkpoint(run_dir))


# ================================================================== CLI handlers
def pretrain_command(args) -> int:
    """``regrl traffic pretrain CONFIG [--set k=v ...]`` (args.config, args.overrides)."""
    from regrl.trainers.config import ConfigError

    try:
        pretrain(load_pretrain_config(args.config, getattr(args, "overrides", None)))
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    return 0


def compare_command(args) -> int:
    """``regrl traffic compare RUN_DIR... --out DIR [--episodes N] [--no-reuse]``."""
    from regrl.trainers.config import ConfigError

    try:
        compare_runs(
            args.run_dirs,
            Path(args.out),
            episodes=getattr(args, "episodes", None),
            reuse=not getattr(args, "no_reuse", False),
        )
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    return 0


# ---------------------------------------------------------------------------- the planner kind
# Registered, with the rest of this domain, in trainers/traffic/plugin.py.
from regrl.trainers.kinds import (  # noqa: E402
    CONFIG_FILE,
    HarnessDriver,
    Source,
    TrainResult,  # noqa: E402
    raw_config,
    source_name,
)


class PlannerDriver(HarnessDriver):
    curve_metrics = ("pretrain/val_loss", "pretrain/val_min_ade")
    unit = "epoch"

    def load(self, source: Source, overrides=(), *, where: Optional[str] = None) -> Any:
        from regrl.trainers.config import parse

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

    def train(self, cfg=None, *, resume=None, address=None, progress=True) -> TrainResult:
        result = super().train(cfg, resume=resume, address=address, progress=progress)
        export_planner(load_pretrain_config(result.run_dir / CONFIG_FILE), result.run_dir)
        return result
