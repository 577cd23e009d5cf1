"""Supervised closures next to SMARL's RL closure (Mojgani et al. 2023, arXiv 2312.00907):
``regrl turbulence dataset`` (DNS → filtered fields, exact sub-grid term Π, least-squares
local C_s²) and ``regrl turbulence compare`` (train the supervised closures through the
offline learner on 1, 10, 100 … snapshots, score them a priori on held-out snapshots and a
posteriori in LES rollouts next to the Smagorinsky baselines and an RL run; table, json and
data-efficiency figure).

Supervised closures: a local-coefficient MLP on the RL agents' observations (the direct
analogue of the RL policy) and a periodic CNN ω̄ → Π, exactly D4-equivariant by group
averaging (Maddu, Weady, Shelley 2023, arXiv 2308.06675 exploit the closure's symmetries).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import zipfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from regrl.envs.turbulence.closures import (
    dynamic_smagorinsky_cs2,
    smagorinsky_viscosity,
    upsample_agent_actions,
)
from regrl.envs.turbulence.dataset import (
    DatasetSpec,
    build_dataset,
    load_dataset,
    run_dns,
    save_dataset,
)
from regrl.envs.turbulence.env import ACTION_BOUND
from regrl.envs.turbulence.reference import Reference, les_physics, load_reference
from regrl.envs.turbulence.sgs import eddy_viscosity_term
from regrl.envs.turbulence.solver import Turbulence2D
from regrl.files import atomic_output, write_text_atomic
from regrl.trainers.checks import ConfigError
from regrl.trainers.turbulence.smarl import (
    FieldClosure,
    Policy,
    _dns_seconds_per_time_unit,
    markdown_table,
    rollout,
    write_figures,
)

CONFIGS = {"local": "configs/closure_local.yaml", "cnn": "configs/closure_cnn.yaml"}
PHYSICS_KEYS = ("nu", "alpha", "kf", "beta")
DNS_KEYS = (
    "n_dns",
    "dt",
    "spinup_time",
    "sample_every",
    "train_trajectories",
    "heldout_trajectories",
    "dtype",
)
RL_SNAPSHOTS_NOTE = "spectrum only"


# ===================================================================== dataset command
def dataset_command(args) -> int:
    """``regrl turbulence dataset``: DNS (or a cached one) → training pairs .npz."""
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(DatasetSpec)
        if getattr(args, f.name, None) is not None
    }
    spec = DatasetSpec(**overrides)
    torch.set_num_threads(max(1, int(args.threads)))
    ref = load_reference(args.reference)
    say = lambda m: print(m, flush=True)  # noqa: E731
    print(f"closure dataset: {spec}", flush=True)
    start = time.time()
    dns = _cached_dns(Path(args.dns_cache), spec) if args.dns_cache else None
    if dns is None:
        dns = run_dns(ref, spec, say)
        if args.dns_cache:
            _save_dns(Path(args.dns_cache), dns, spec)
    arrays = build_dataset(ref, spec, say, dns=dns)
    out = save_dataset(Path(args.out), arrays)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {time.time() - start:.0f} s)")
    return 0


def _save_dns(path: Path, dns: Dict[str, np.ndarray], spec: DatasetSpec) -> None:
    """Written atomically: an interrupted run leaves the old cache or none, never a truncated
    one."""
    with atomic_output(path) as fh:
        np.savez(
            fh,
            omega=dns["omega"],
            time=dns["time"],
            spec=np.array(json.dumps(dataclasses.asdict(spec))),
        )
    print(f"cached the DNS snapshots in {path}", flush=True)


def _cached_dns(path: Path, spec: DatasetSpec) -> Optional[Dict[str, np.ndarray]]:
    """The cached DNS when it was run with the same DNS settings and has enough snapshots."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            cached = json.loads(str(z["spec"]))
            same = all(cached.get(k) == getattr(spec, k) for k in DNS_KEYS)
            if not same or z["omega"].shape[1] < spec.per_trajectory:
                print(f"{path}: DNS cache made with other settings; running the DNS", flush=True)
                return None
            omega, times = z["omega"][:, : spec.per_trajectory], z["time"][: spec.per_trajectory]
    except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        # not a cache this command wrote (another file at that path, or one cut short by an
        # older, non-atomic writer): say so and recompute; the cache is rewritten afterwards
        print(f"{path}: not a readable DNS cache ({exc}); running the DNS", flush=True)
        return None
    print(f"using the DNS snapshots cached in {path}", flush=True)
    return {"omega": omega, "time": times}


# ===================================================================== training files
def training_files(data: Dict[str, np.ndarray], k: int, out: Path) -> Dict[str, object]:
    """npz files of the first ``k`` training snapshots (and of all held-out snapshots) for
    the offline learner: local (obs → C_s²/bound) and field (ω̄/σ_ω → Π/σ_Π, σ from these
    k snapshots)."""
    train = np.flatnonzero(data["split"] == 0)[:k]
    held = np.flatnonzero(data["split"] == 1)
    if len(train) < k:
        raise ConfigError(f"the dataset has {len(train)} training snapshots, {k} requested")
    if not len(held):
        raise ConfigError("the dataset has no held-out snapshots (heldout_snapshots = 0)")
    s_w, s_pi = float(data["omega"][train].std()), float(data["pi"][train].std())
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part, rows in (("train", train), ("heldout", held)):
        obs = data["obs"][rows]
        paths[f"local_{part}"] = _save(
            out / f"local_{part}_{k}.npz",
            obs.reshape(-1, obs.shape[-1]),
            data["cs2"][rows].reshape(-1, 1) / ACTION_BOUND,
        )
        paths[f"field_{part}"] = _save(
            out / f"field_{part}_{k}.npz",
            data["omega"][rows].reshape(len(rows), -1) / s_w,
            data["pi"][rows].reshape(len(rows), -1) / s_pi,
        )
    return dict(paths, sigma_omega=s_w, sigma_pi=s_pi, rows=len(train))


def _save(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    # atomic: a second process preparing the same files (one benchmark process per seed) never
    # reads a half-written npz
    with atomic_output(path, "wb") as fh:
        np.savez(fh, x=x.astype(np.float32), y=y.astype(np.float32))
    return str(path)


def train_closure(
    config: str,
    data_path: str,
    val_path: str,
    name: str,
    runs_root: Path,
    steps: int,
    overrides: Sequence[str] = (),
):
    """Train one closure with the offline learner for about ``steps`` optimizer steps;
    returns (run_dir, trained model in eval mode)."""
    from regrl.trainers.offline import build_model, load_offline_config, prepare_data, train_offline

    sets = [
        f"data.path={data_path}",
        f"data.val_path={val_path}",
        f"name={name}",
        f"runs_root={runs_root}",
        *overrides,
    ]
    cfg = load_offline_config(config, sets)
    rows = len(np.load(data_path)["x"])
    epochs = max(1, math.ceil(steps / math.ceil(rows / cfg.training.batch_size)))
    cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=epochs))
    result = train_offline(cfg, progress=False)
    data = prepare_data(cfg)
    model = build_model(cfg, data.in_dim, data.out_dim)
    model.load_state_dict(_learner_state(result.run_dir)["model"])
    return result.run_dir, model.eval()


def _learner_state(run_dir: Path):
    from regrl.trainers.checkpoint import latest_checkpoint, load_torch_state
    from regrl.trainers.offline import LEARNER_FILE

    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}: the closure run wrote no checkpoint")
    return load_torch_state(ckpt / LEARNER_FILE)  # weights_only: a crafted file runs no code


# ===================================================================== closures as callables
def local_policy(model) -> Policy:
    """obs [B, agents, d] → C_s² [B, agents]: the model output times the action bound."""

    def policy(obs: np.ndarray) -> np.ndarray:
        b, a, d = obs.shape
        with torch.no_grad():
            out = model(torch.as_tensor(obs.reshape(-1, d), dtype=torch.float32))["out"]
        return (out[:, 0].clamp(-1.0, 1.0) * ACTION_BOUND).reshape(b, a).double().numpy()

    return policy


def cnn_closure(
    model, sigma_omega: float, sigma_pi: float, differentiable: bool = False
) -> FieldClosure:
    """LES state → Π [B, n, n] from a field model trained on normalised fields.
    ``differentiable``: keep the graph (solver-in-the-loop fine-tuning), else no_grad."""

    def sgs(sim: Turbulence2D) -> torch.Tensor:
        x = (sim.omega / sigma_omega).to(torch.float32).reshape(sim.batch, -1)
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            out = model(x)["out"]
        return out.to(sim.dtype).reshape(sim.batch, sim.n, sim.n) * sigma_pi

    return sgs


def constant_policy(value: float) -> Policy:
    return lambda obs: np.full(obs.shape[:2], value)


# ===================================================================== a-priori scores
def heldout_les(ref: Reference, data: Dict[str, np.ndarray]) -> Turbulence2D:
    held = data["split"] == 1
    sim = Turbulence2D(
        data["omega"].shape[-1], batch=int(held.sum()), **les_physics(ref.provenance["spec"])
    )
    sim.omega = torch.as_tensor(data["omega"][held], dtype=torch.float64)
    return sim


def coefficient_sgs(sim: Turbulence2D, policy: Policy, obs: np.ndarray) -> torch.Tensor:
    """Π the LES applies when the agents set C_s² = policy(obs) (interpolated to the grid)."""
    a = int(round(math.sqrt(obs.shape[1])))
    coeff = torch.as_tensor(policy(obs), dtype=sim.dtype).reshape(-1, a, a)
    field = upsample_agent_actions(coeff, sim.n)
    return eddy_viscosity_term(sim, smagorinsky_viscosity(sim, field))


def correlation(pred: torch.Tensor, true: np.ndarray) -> float:
    """Pearson correlation over every held-out grid point (nan for a constant prediction)."""
    p, t = pred.detach().double().numpy().ravel(), np.asarray(true, np.float64).ravel()
    p, t = p - p.mean(), t - t.mean()
    den = math.sqrt(float((p**2).sum()) * float((t**2).sum()))
    return float((p * t).sum() / den) if den > 0 else float("nan")


def a_priori(
    sim: Turbulence2D,
    data: Dict[str, np.ndarray],
    *,
    policy: Optional[Policy] = None,
    field: Optional[FieldClosure] = None,
    dynamic: bool = False,
) -> float:
    """Correlation of predicted and exact Π on the held-out snapshots held by ``sim``."""
    held = data["split"] == 1
    if field is not None:
        pred = field(sim)
    elif dynamic:
        pred = dynamic_smagorinsky_cs2(sim)[:, None, None] * torch.as_tensor(
            data["m"][held], dtype=sim.dtype
        )
    else:
        pred = coefficient_sgs(sim, policy, data["obs"][held])
    return correlation(pred, data["pi"][held])


# ===================================================================== the comparison
@dataclasses.dataclass(frozen=True)
class CompareOptions:
    snapshots: Sequence[int] = (1, 10, 100)
    """Training-set sizes (high-resolution snapshots) of the supervised closures."""
    seeds: int = 4
    """LES runs per closure (one per reference initial condition)."""
    time_units: float = 10.0
    """Length of each LES run after the spin-up."""
    spinup: float = 1.0
    """Time units before statistics are collected."""
    local_steps: int = 2000
    """Optimizer steps of each local-coefficient model."""
    cnn_steps: int = 250
    """Optimizer steps of each CNN."""
    cnn_arch: str = "closure_cnn_d4"
    """Offline model of the field closure (closure_cnn_d4: D4-averaged; closure_cnn: plain)."""
    rl_run: Optional[str] = None
    """An RL run directory of smarl_turb2d (Smagorinsky closure) for the RL row."""
    steps_per_action: int = 10
    """Solver steps per decision (RL agents, local models) and per CNN evaluation."""
    local_overrides: Sequence[str] = ()
    """``--set``-style overrides of configs/closure_local.yaml."""
    cnn_overrides: Sequence[str] = ()
    """``--set``-style overrides of configs/closure_cnn.yaml."""


def _check_compatible(ref: Reference, data: Dict[str, np.ndarray], path: str) -> dict:
    spec = json.loads(str(data["spec"]))
    phys = ref.provenance["spec"]
    diff = [k for k in PHYSICS_KEYS if spec["physics"].get(k) != phys.get(k)]
    if diff or spec["dataset"]["n_les"] != ref.n_les:
        raise ConfigError(
            f"{path} was made for another reference (differs in "
            f"{diff or ['n_les']}); pass the same --reference as to "
            "`regrl turbulence dataset`"
        )
    return spec["dataset"]


def rl_policy(run_dir: str) -> Policy:
    """Mean action of the shared policy of an RL run (``regrl train configs/smarl_*.yaml``)."""
    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.evaluate import load_module
    from regrl.trainers.kinds import load_run_config
    from regrl.trainers.turbulence.smarl import coeff_range_of, module_policy

    ckpt = latest_checkpoint(Path(run_dir))
    if ckpt is None:
        raise ConfigError(f"--rl-run {run_dir}: no complete checkpoint found")
    env_kw = dict(load_run_config(run_dir, "rl").env.kwargs)
    closure = env_kw.get("closure", "smagorinsky")
    if closure != "smagorinsky":
        raise ConfigError(
            f"--rl-run {run_dir}: closure {closure!r}; the comparison needs smagorinsky"
        )
    return module_policy(load_module(ckpt, "shared"), coeff_range_of(env_kw))


def _entries(data, opts: CompareOptions, out: Path, say) -> List[tuple]:
    """(name, family, snapshots, rollout kwargs, a-priori kwargs) of every closure."""
    const = 0.17**2
    entries = [
        (
            "Smagorinsky C_s=0.17",
            "baseline",
            None,
            dict(closure="smagorinsky", coeff=const),
            dict(policy=constant_policy(const)),
        ),
        (
            "dynamic Smagorinsky",
            "baseline",
            None,
            dict(closure="smagorinsky", coeff=None),
            dict(dynamic=True),
        ),
    ]
    for k in opts.snapshots:
        files = training_files(data, k, out / "data")
        say(f"train: local C_s² model on {k} snapshot(s)")
        _, local = train_closure(
            CONFIGS["local"],
            files["local_train"],
            files["local_heldout"],
            f"closure_local_{k}",
            out / "runs",
            opts.local_steps,
            opts.local_overrides,
        )
        pol = local_policy(local)
        entries.append(
            (
                f"supervised local C_s², {k} snapshot(s)",
                "local",
                k,
                dict(closure="smagorinsky", policy=pol),
                dict(policy=pol),
            )
        )
        say(f"train: {opts.cnn_arch} on {k} snapshot(s)")
        _, cnn = train_closure(
            CONFIGS["cnn"],
            files["field_train"],
            files["field_heldout"],
            f"closure_cnn_{k}",
            out / "runs",
            opts.cnn_steps,
            [f"model.arch={opts.cnn_arch}", *opts.cnn_overrides],
        )
        field = cnn_closure(cnn, files["sigma_omega"], files["sigma_pi"])
        entries.append(
            (
                f"supervised CNN Π, {k} snapshot(s)",
                "cnn",
                k,
                dict(closure=None, field_closure=field),
                dict(field=field),
            )
        )
    if opts.rl_run:
        pol = rl_policy(opts.rl_run)
        entries.append(
            (
                "RL closure (SMARL, PPO)",
                "rl",
                RL_SNAPSHOTS_NOTE,
                dict(closure="smagorinsky", policy=pol),
                dict(policy=pol),
            )
        )
    return entries


def compare_closures(
    ref: Reference,
    data: Dict[str, np.ndarray],
    opts: CompareOptions,
    out: Path,
    say: Callable[[str], None] = print,
) -> Dict[str, object]:
    """Train, score a priori and run every closure; returns rows and the oracle's score."""
    agents = int(round(math.sqrt(data["obs"].shape[1])))
    held_sim = heldout_les(ref, data)
    held = data["split"] == 1
    oracle = a_priori(held_sim, data, policy=lambda obs: data["cs2"][held])
    rows = []
    for name, family, k, run_kw, prior_kw in _entries(data, opts, out, say):
        corr = a_priori(held_sim, data, **prior_kw)
        say(
            f"eval: {name}: a-priori corr {corr:.3f}; {opts.seeds} LES x {opts.time_units} time units"
        )
        r = rollout(
            ref,
            seeds=opts.seeds,
            time_units=opts.time_units,
            spinup=opts.spinup,
            steps_per_action=opts.steps_per_action,
            agents_per_side=agents,
            **run_kw,
        )
        rows.append(dict(r, name=name, family=family, snapshots=k, a_priori_corr=corr))
    dns_cost = _dns_seconds_per_time_unit(ref)
    for row in rows:
        row["cost_vs_reference"] = row["seconds_per_time_unit"] / dns_cost if dns_cost else None
    return {"rows": rows, "oracle_a_priori_corr": oracle}


def closure_table(result: Dict[str, object]) -> str:
    extra = (
        ("HR snapshots", lambda r: "—" if r["snapshots"] is None else str(r["snapshots"])),
        ("a-priori corr(Π)", lambda r: f"{r['a_priori_corr']:.3f}"),
    )
    note = (
        f"\nLeast-squares local C_s² (the local models' target, computed from the DNS): "
        f"a-priori corr(Π) = {result['oracle_a_priori_corr']:.3f}."
    )
    return markdown_table(result["rows"], extra) + "\n" + note


def data_efficiency_figure(result: Dict[str, object], path: Path) -> str:
    """A-priori correlation and a-posteriori spectrum error against the snapshots used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    keys = (
        ("a_priori_corr", "a-priori corr(Π_pred, Π) on held-out snapshots"),
        ("enstrophy_spectrum_error", "a-posteriori log-enstrophy-spectrum error"),
    )
    for ax, (key, label) in zip(axes, keys):
        for family, style in (("local", "o-"), ("cnn", "s-")):
            sel = [r for r in rows if r["family"] == family]
            if sel:
                ax.semilogx(
                    [r["snapshots"] for r in sel],
                    [r[key] for r in sel],
                    style,
                    label=f"supervised {'local C_s²' if family == 'local' else 'CNN Π'}",
                )
                for r in sel:
                    if r["diverged"] and key != "a_priori_corr":
                        ax.annotate(
                            f"{r['diverged']}/{r['simulations']} diverged",
                            (r["snapshots"], 0.0),
                            fontsize=7,
                        )
        for r in rows:
            if r["family"] not in ("baseline", "rl"):
                continue
            if np.isfinite(r[key]):
                ax.axhline(r[key], ls="--", lw=1, color="k" if r["family"] == "rl" else "0.5")
                ax.text(1, r[key], r["name"], fontsize=7, va="bottom")
            elif r["diverged"]:
                ax.text(
                    0.98,
                    0.6,
                    f"{r['name']}: {r['diverged']}/{r['simulations']} diverged",
                    transform=ax.transAxes,
                    fontsize=7,
                    ha="right",
                )
        ks = sorted({r["snapshots"] for r in rows if r["family"] in ("local", "cnn")})
        if ks:
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.minorticks_off()
        ax.set(xlabel="high-resolution snapshots used for training", title=label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def compare_command(args) -> int:
    """``regrl turbulence compare``: the comparison table (md + json) and figures in --out."""
    torch.set_num_threads(max(1, int(args.threads)))
    ref = load_reference(args.reference)
    data = load_dataset(Path(args.dataset))
    _check_compatible(ref, data, args.dataset)
    opts = CompareOptions(
        snapshots=tuple(int(s) for s in args.snapshots.split(",")),
        seeds=args.seeds,
        time_units=args.time_units,
        spinup=args.spinup,
        local_steps=args.local_steps,
        cnn_steps=args.cnn_steps,
        cnn_arch=args.cnn_arch,
        rl_run=args.rl_run,
        local_overrides=tuple(args.local_set or ()),
        cnn_overrides=tuple(args.cnn_set or ()),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    result = compare_closures(ref, data, opts, out, say=lambda m: print(m, flush=True))
    table = closure_table(result)
    write_text_atomic(out / "compare.md", table + "\n")
    summary = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in result["rows"]]
    meta = {
        "dataset": str(args.dataset),
        "options": dataclasses.asdict(opts),
        "seconds": round(time.time() - start, 1),
    }
    write_text_atomic(
        out / "compare.json",
        json.dumps(
            {"closures": summary, "oracle_a_priori_corr": result["oracle_a_priori_corr"], **meta},
            indent=2,
            default=str,
        ),
    )
    figs = [
        data_efficiency_figure(result, out / "data_efficiency.png"),
        *write_figures(out, ref, result["rows"], step=0),
    ]
    print(table)
    print(
        f"wrote {out / 'compare.md'}, {out / 'compare.json'}, {', '.join(figs)} "
        f"({time.time() - start:.0f} s)"
    )
    return 0
