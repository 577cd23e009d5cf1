"""Headroom of the RIFT scenario families before any RL (issue 25 §1): per family, how far the
imitation planner (IL only) is from a privileged reference, and how far above a trivial
baseline, on held-out scenarios.

Per family (``regrl.envs.traffic.families``):
1. demonstrations recorded in that family (IDM-driven vehicles, scenarios 0..E-1, as
   ``regrl traffic demos --family F``);
2. per seed s, a stage-1 planner trained on them (configs/rift_pretrain.yaml, M = 4, seed s,
   as ``regrl traffic pretrain --set demos=... --set seed=s``); its validation min-ADE / top-1;
3. per seed s, every policy on held-out block s (MetaDrive scenarios 1000 + s*n ... , never
   seen in the demonstrations), the same episodes for every policy:
   - IL only: the stage-1 planner's own scores pick its candidate (RIFT's stage 1);
   - best return: the same planner's candidates, the one with the highest RIFT return
     (dense reward over 4 s under the neighbour forecast) -- what a perfectly fine-tuned
     scoring head would pick by RIFT's own ranking;
   - IDM (privileged): MetaDrive's IDM drives the CBVs with full state (the demonstrator);
   - cruise: the built-in lane-following candidates, current lane, the one nearest
     CRUISE_SPEED; blind to other vehicles (trivial baseline);
   - stand still: full brake (the floor of progress).
A seed is one (stage-1 seed, held-out block) unit; IDM, cruise and stand still do not depend
on the stage-1 seed, only on the block. Intervals: mean ± 95% Student-t over the seeds;
differences are paired by seed (same scenarios). Metrics per CBV (the env's episode metrics):
route progress RP (m per episode, all CBVs), route completion RC (%), driving score DS =
RC x CARLA infraction penalties (%), stuck (% of CBVs standing >= 3 s), collided (% of CBVs),
CPK, off-road share ORR (%), speed.

Resumable: every finished (family, policy, seed) unit goes into --out .json at once, and
demonstrations / planners are kept under --work; a rerun skips what is there (--fresh
starts over).

Run: nice -n 17 .venv/bin/python benchmarks/rift_headroom.py [--families ...] [--seeds 3]
     [--episodes 4] [--demo-episodes 8] [--epochs 12] [--out docs/rift_headroom]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from regrl.envs.traffic import parallel_env
from regrl.envs.traffic.candidates import lane_following_candidates
from regrl.envs.traffic.demos import DemoSpec, record_demos, save_demos
from regrl.envs.traffic.env import BRAKE
from regrl.envs.traffic.families import FAMILIES
from regrl.envs.traffic.metrics import summarise
from regrl.envs.traffic.scene import DT
from regrl.trainers.harness import set_up
from regrl.trainers.stats import t_interval
from regrl.trainers.traffic.env_factory import make_rift_env
from regrl.trainers.traffic.evaluation import (
    BestReturnPolicy,
    demo_speeds,
    fixed_torch_threads,
    rollout,
    scorer_policy,
)
from regrl.trainers.traffic.names import PLANNER_FILE
from regrl.trainers.traffic.planner_io import load_planner
from regrl.trainers.traffic.pretrain import PretrainSession, load_pretrain_config

EVAL_ENV_SEED = 1000  # held-out scenarios; demonstrations use 0..E-1
NUM_MODES = 4  # the shipped stage-1 / stage-2 M
CRUISE_SPEED = 6.0  # m/s: about the demonstrations' mean CBV speed (docs/rift.md)
DEFAULT_HORIZON = 100  # the documented experiments' horizon for the default family
POLICIES = ("IL only", "best return", "IDM (privileged)", "cruise", "stand still")
REFERENCES = ("best return", "IDM (privileged)")
DEFAULT_POLICIES = tuple(p for p in POLICIES if p != "stand still")  # its outcome is known
COLUMNS = (  # key, title, format
    ("rp", "RP m ↑", "{:.0f}"),
    ("cbv_rc", "RC % ↑", "{:.0f}"),
    ("cbv_ds", "DS % ↑", "{:.0f}"),
    ("stuck", "stuck % ↓", "{:.0f}"),
    ("collided", "collided % ↓", "{:.0f}"),
    ("cpk", "CPK ↓", "{:.1f}"),
    ("orr", "ORR % ↓", "{:.1f}"),
    ("speed", "speed m/s", "{:.2f}"),
)
VERDICT_KEYS = ("cbv_ds", "cbv_rc", "rp", "stuck", "collided")


def scenario(family: str) -> dict:
    """Env keys of ``family`` in this benchmark (the default family at the documented 100 steps)."""
    return {"family": family, **({"horizon": DEFAULT_HORIZON} if family == "default" else {})}


def cruise_policy(num_modes: int = NUM_MODES):
    """Current-lane candidate of the built-in generator whose speed after 1 s is nearest
    CRUISE_SPEED: lane keeping at a fixed speed, blind to everyone else."""
    k = int(round(1.0 / DT)) - 1

    def policy(obs: np.ndarray) -> np.ndarray:
        acts = []
        for o in obs:
            traj, _ = lane_following_candidates(o, num_modes)
            speed = np.hypot(*(traj[:num_modes, k + 1] - traj[:num_modes, k]).T) / DT
            acts.append(int(np.argmin(np.abs(speed - CRUISE_SPEED))))
        return np.asarray(acts)

    return policy


def stand_still(obs: np.ndarray) -> np.ndarray:
    return np.repeat(BRAKE[None], len(obs), axis=0)


def idle(obs: np.ndarray) -> np.ndarray:  # IDM drives; the actions are ignored
    return np.zeros((len(obs), 2), np.float32)


def make_env(policy: str, family: str, planner: Path):
    kw = dict(scenario(family), seed=EVAL_ENV_SEED)
    if policy in ("IL only", "best return"):
        return make_rift_env(planner=str(planner), action_mode="candidate", **kw)
    if policy == "cruise":
        return parallel_env(action_mode="candidate", num_modes=NUM_MODES, **kw)
    return parallel_env(action_mode="raw", idm_cbvs=policy == "IDM (privileged)", **kw)


def policy_fn(policy: str, planner: Path):
    if policy == "IL only":
        model = load_planner(planner)
        model.eval()
        return scorer_policy(lambda s: model(s, with_traj=False)["logits"])
    return {
        "best return": BestReturnPolicy(),
        "cruise": cruise_policy(),
        "stand still": stand_still,
        "IDM (privileged)": idle,
    }[policy]


def demos_for(family: str, work: Path, episodes: int) -> Path:
    path = work / family / "demos.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        sc = scenario(family)
        spec = DemoSpec(episodes=episodes, seed=0, family=family, horizon=sc.get("horizon"))
        save_demos(path, record_demos(spec), spec)
    return path


def planner_for(family: str, seed: int, demos: Path, work: Path, epochs: int) -> tuple:
    """Stage-1 planner of ``family`` and ``seed`` and its final validation metrics."""
    path, stats = work / family / f"planner_{seed}.pt", work / family / f"planner_{seed}.json"
    if not (path.is_file() and stats.is_file()):
        cfg = load_pretrain_config(
            "configs/rift_pretrain.yaml",
            [
                f"demos={demos}",
                f"seed={seed}",
                f"epochs={epochs}",
                f"num_modes={NUM_MODES}",
                "export=null",
            ],
        )
        with tempfile.TemporaryDirectory() as run_dir:
            set_up(cfg)  # torch threads and seed, as the harness does before a session
            session = PretrainSession(cfg, Path(run_dir))
            for epoch in range(1, epochs + 1):
                m = session.step(epoch)
            shutil.copy(Path(run_dir) / PLANNER_FILE, path)
        keys = ("min_ade", "top1_acc")
        stats.write_text(json.dumps({k: m[f"pretrain/val_{k}"] for k in keys}))
    return path, json.loads(stats.read_text())


def evaluate(policy: str, family: str, planner: Path, seed: int, episodes: int, demos: Path):
    env = make_env(policy, family, planner)
    try:
        with fixed_torch_threads():
            roll = rollout(env, policy_fn(policy, planner), episodes, seed=seed * episodes)
    finally:
        env.close()
    return summarise(roll, demo_speeds(demos))


def cell(values, fmt: str, signed: bool = False) -> str:
    vals = [v for v in values if np.isfinite(v)]
    if not vals:
        return "n/a"
    mean, half = t_interval(vals)
    f = fmt.replace("{:", "{:+") if signed else fmt
    text = f.format(mean) + (" ± " + fmt.format(half) if half is not None else "")
    if signed and half is not None and abs(mean) > half:
        text += " *"
    return text


def family_tables(family: str, res: dict, seeds: list) -> str:
    units, policies = res["units"], res["args"]["policies"]

    def vals(policy, key):
        return [units[f"{family}|{policy}|{s}"][key] for s in seeds]

    head = "| policy | " + " | ".join(t for _, t, _ in COLUMNS) + " |"
    rule = "|---|" + "---|" * len(COLUMNS)
    lines = [head, rule]
    for p in policies:
        lines.append(f"| {p} | " + " | ".join(cell(vals(p, k), f) for k, _, f in COLUMNS) + " |")
    lines += ["", "Paired by seed (same scenarios; * = 95% interval excludes 0):", "", head, rule]
    pairs = [(r, "IL only") for r in REFERENCES] + [("IL only", "cruise")]
    for a, b in [(x, y) for x, y in pairs if x in policies and y in policies]:
        diff = {k: [x - y for x, y in zip(vals(a, k), vals(b, k))] for k, _, _ in COLUMNS}
        lines.append(
            f"| {a} − {b} | "
            + " | ".join(cell(diff[k], f, signed=True) for k, _, f in COLUMNS)
            + " |"
        )
    return "\n".join(lines)


def verdict(family: str, res: dict, seeds: list) -> str:
    """Where IL leaves room: a reference better than IL on driving score (or route
    completion / progress) with the 95% interval of the paired difference above 0."""
    units = res["units"]
    found = []
    refs = [r for r in REFERENCES if r in res["args"]["policies"]]
    if not refs:
        return "no reference policy run (--policies)"
    for ref in refs:
        for key, better in (("cbv_ds", 1), ("cbv_rc", 1), ("rp", 1), ("stuck", -1)):
            d = [
                units[f"{family}|{ref}|{s}"][key] - units[f"{family}|IL only|{s}"][key]
                for s in seeds
            ]
            mean, half = t_interval(d)
            if half is not None and better * mean > half:
                found.append(f"{ref} {key} {mean:+.1f} ± {half:.1f}")
    return ("room: " + "; ".join(found)) if found else "no separated room"


def write_markdown(res: dict, families: list, seeds: list, path: Path) -> None:
    a = res["args"]
    out = [
        "# RIFT headroom by scenario family (generated by benchmarks/rift_headroom.py)",
        "",
        f"Command: `python benchmarks/rift_headroom.py --families {' '.join(families)} "
        f"--seeds {a['seeds']} --episodes {a['episodes']} --demo-episodes {a['demo_episodes']} "
        f"--epochs {a['epochs']}"
        + (
            " --policies " + " ".join(f'"{q}"' for q in a["policies"])
            if list(a["policies"]) != list(DEFAULT_POLICIES)
            else ""
        )
        + f"` ({res.get('minutes', float('nan')):.0f} min on the 2 shared "
        "cores). Per seed s: a stage-1 planner trained with seed s on the family's own "
        f"demonstrations ({a['demo_episodes']} IDM episodes, scenarios 0..{a['demo_episodes'] - 1}),"
        f" and {a['episodes']} held-out episodes (MetaDrive scenarios {EVAL_ENV_SEED} + "
        f"s·{a['episodes']} ...), the same for every policy. Mean ± 95% t-interval over "
        f"{len(seeds)} seeds. RP = CBV route progress per episode (all CBVs); RC = CBV route "
        "completion; DS = RC × CARLA infraction penalties (0.60 per vehicle collision, 0.65 "
        "per object); stuck = CBVs standing (< 0.5 m/s) for ≥ 3 s in a row; collided = CBVs "
        "with a collision; ORR = off-road share of CBV steps.",
        "",
        "| family | scenario | stage-1 val min-ADE m | top-1 | verdict (reference − IL only) |",
        "|---|---|---|---|---|",
    ]
    for f in families:
        st = [res["stage1"][f"{f}|{s}"] for s in seeds]
        sc = {**FAMILIES[f], **scenario(f)}
        desc = (
            f"{sc['map']}{' ' + sc['pg_map'] if sc['map'] == 'pg' else ''}, "
            f"{sc['num_cbv']} CBVs, {sc['horizon'] / 10:.0f} s, density {sc['traffic_density']}, "
            f"ego {sc['ego_policy']}"
        )
        out.append(
            f"| {f} | {desc} | {cell([x['min_ade'] for x in st], '{:.2f}')} | "
            f"{cell([x['top1_acc'] for x in st], '{:.2f}')} | {verdict(f, res, seeds)} |"
        )
    for f in families:
        out += ["", f"## {f}", "", family_tables(f, res, seeds)]
    path.write_text("\n".join(out) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=4, help="held-out episodes per seed")
    ap.add_argument("--demo-episodes", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=12, help="stage-1 epochs")
    ap.add_argument(
        "--policies",
        nargs="+",
        default=list(DEFAULT_POLICIES),
        choices=list(POLICIES),
        help="IL only must be among them (stand still: off by default, its outcome is known)",
    )
    ap.add_argument("--work", default="runs/rift_headroom", help="demos and planners")
    ap.add_argument("--out", default="docs/rift_headroom", help="writes OUT.json and OUT.md")
    ap.add_argument("--fresh", action="store_true", help="ignore earlier results and files")
    a = ap.parse_args()
    if a.seeds < 2 or a.episodes < 1 or a.demo_episodes < 1 or a.epochs < 1:
        ap.error("--seeds must be >= 2 (intervals); --episodes, --demo-episodes, --epochs >= 1")
    work, out = Path(a.work), Path(a.out)
    if a.fresh and work.exists():
        shutil.rmtree(work)
    if "IL only" not in a.policies:
        ap.error("--policies must include 'IL only' (everything is compared with it)")
    keys = ("seeds", "episodes", "demo_episodes", "epochs", "policies")
    args = {k: getattr(a, k) for k in keys}
    res = {"args": args, "units": {}, "stage1": {}, "seconds": 0.0}
    js = out.with_suffix(".json")
    if js.is_file() and not a.fresh:
        old = json.loads(js.read_text())
        if old.get("args") == args:
            res = old
    start, seconds0 = time.time(), res.get("seconds", 0.0)
    seeds = list(range(a.seeds))

    def save():
        res["seconds"] = seconds0 + time.time() - start
        res["minutes"] = res["seconds"] / 60
        js.parent.mkdir(parents=True, exist_ok=True)
        js.write_text(json.dumps(res, indent=1, sort_keys=True))

    for f in a.families:
        demos = demos_for(f, work, a.demo_episodes)
        for s in seeds:
            planner, stats = planner_for(f, s, demos, work, a.epochs)
            res["stage1"][f"{f}|{s}"] = stats
            for p in a.policies:
                key = f"{f}|{p}|{s}"
                if key in res["units"]:
                    continue
                t0 = time.time()
                res["units"][key] = evaluate(p, f, planner, s, a.episodes, demos)
                u = res["units"][key]
                print(
                    f"[{time.time() - start:6.0f}s] {key}: {time.time() - t0:.0f} s, "
                    f"RP {u['rp']:.0f}, DS {u['cbv_ds']:.0f}, stuck {u['stuck']:.0f}, "
                    f"collided {u['collided']:.0f}",
                    flush=True,
                )
                save()
    save()
    units = res["units"]
    done = [
        f for f in a.families if all(f"{f}|{p}|{s}" in units for p in a.policies for s in seeds)
    ]
    write_markdown(res, done, seeds, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
