"""Bird's-eye view of a dense-family interaction where the imitation planner fails (issue 25
item 5): the first held-out scenario in which a CBV driven by IL only (the stage-1 scorer)
collides while, on the same scenario, fewer CBVs collide under the best-return reference (the
same planner's candidates, picked by RIFT's return); MetaDrive's IDM driving the CBVs
(privileged) is shown as well, and with ``--rift CHECKPOINT`` a RIFT-fine-tuned scorer of the
same planner (its greedy candidate) on the same scenario; ``--select rift`` shows instead the
first scenario where IL only collides and RIFT's CBVs collide less (the rule is printed in the
.md, and ``--scan-all`` scans every scenario and counts where RIFT collides less, as often and
more than IL only, so the chosen one can be read against the rest). Frames: 1.5 s before IL's first collision, at it, and 1.5 s
after, one row per policy, the camera fixed on the colliding IL vehicle.

The scan reads per-step ``collision`` and the episode's ``collided`` / ``stuck`` (% of CBVs)
from the env's infos; scenarios are MetaDrive seeds 1000 + k (held out: demonstrations and
stage 1 use 0..7). The planner is the dense family's stage 1 of seed 0 from
``benchmarks/rift_headroom.py`` (its ``--work`` directory).

Run: python benchmarks/rift_dense_bev.py [--planner runs/rift_headroom/dense/planner_0.pt]
     [--scenarios 6] [--rift runs/sweeps/NAME/TIME/trials/T/RUN/checkpoints/iter_N]
     [--select best-return|rift] [--scan-all]
     [--out docs/rift_dense_bev.png]   (writes the PNG and a .md beside it)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict

import numpy as np

from regrl.envs.traffic.scene import DT
from regrl.trainers.traffic.bev import bev_snapshots
from regrl.trainers.traffic.env_factory import make_rift_env
from regrl.trainers.traffic.evaluation import BestReturnPolicy, fixed_torch_threads, scorer_policy
from regrl.trainers.traffic.planner_io import load_planner

EVAL_ENV_SEED = 1000  # held-out scenarios, as in benchmarks/rift_headroom.py
AROUND = 15  # steps (1.5 s) before and after IL's first collision in the figure
ROWS = ("IL only", "best return", "IDM (privileged)")
RIFT_ROW = "RIFT"


def il_policy(planner: Path):
    model = load_planner(planner)
    model.eval()
    return scorer_policy(lambda s: model(s, with_traj=False)["logits"])


def rift_policy(checkpoint: Path):
    """The greedy candidate of a RIFT run's scorer (an RLlib checkpoint directory)."""
    from regrl.trainers.evaluate import load_module

    module = load_module(checkpoint, "cbv")
    return scorer_policy(lambda s: module.planner(s, with_traj=False)["logits"])


def idle(obs: np.ndarray) -> np.ndarray:  # IDM drives the CBVs; the actions are ignored
    return np.zeros((len(obs), 2), np.float32)


def env_kwargs(row: str, planner: Path) -> Dict[str, Any]:
    if row == "IDM (privileged)":
        return dict(family="dense", action_mode="raw", idm_cbvs=True)
    return dict(family="dense", action_mode="candidate", planner=str(planner))


def play(row: str, policy, planner: Path, k: int) -> Dict[str, Any]:
    """One episode of scenario k: the first collision (step, CBV, its position), the episode's
    collided and stuck shares (%) and driving score."""
    env = make_rift_env(**env_kwargs(row, planner), seed=EVAL_ENV_SEED)
    reads_info = getattr(policy, "reads_info", False)
    first: Dict[str, Any] = {}
    try:
        obs, infos = env.reset(seed=k)
        t, last = 0, {}
        while env.agents:
            names = [a for a in env.agents if a in obs]
            batch = np.stack([obs[a] for a in names])
            acts = policy(batch, [infos[a] for a in names]) if reads_info else policy(batch)
            where = {a: tuple(float(c) for c in env._vehicle[a].position) for a in names}
            obs, _, _, _, infos = env.step({a: acts[i] for i, a in enumerate(names)})
            t += 1
            for a, info in infos.items():
                m = info["metrics"]
                if m.get("collision") and not first:
                    first = dict(step=t, cbv=a, xy=where.get(a))
                if "cpk" in m:
                    last = m
    finally:
        env.close()
    return dict(first, **{key: float(last[key]) for key in ("collided", "stuck", "cbv_ds")})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--planner", type=Path, default=Path("runs/rift_headroom/dense/planner_0.pt"))
    p.add_argument("--scenarios", type=int, default=6, help="held-out scenarios to scan")
    p.add_argument(
        "--rift",
        type=Path,
        default=None,
        help="a RIFT run's checkpoint (fine-tuned from --planner) to show as a fourth row",
    )
    p.add_argument(
        "--select",
        choices=("best-return", "rift"),
        default="best-return",
        help="the scenario shown: the first where IL only collides and this row's CBVs "
        "collide less",
    )
    p.add_argument(
        "--scan-all", action="store_true", help="scan every scenario, then show the first chosen"
    )
    p.add_argument("--out", type=Path, default=Path("docs/rift_dense_bev.png"))
    args = p.parse_args()
    if args.rift is not None and not args.rift.is_dir():
        raise SystemExit(f"--rift {args.rift}: not a checkpoint directory")
    if args.select == "rift" and args.rift is None:
        raise SystemExit("--select rift needs --rift CHECKPOINT")
    if args.scenarios < 1:
        raise SystemExit(f"--scenarios must be >= 1, got {args.scenarios}")
    better = {"best-return": "best return", "rift": RIFT_ROW}[args.select]
    rows = ROWS + ((RIFT_ROW,) if args.rift is not None else ())
    if not args.planner.is_file():
        raise SystemExit(
            f"{args.planner} not found: run `python benchmarks/rift_headroom.py --families dense "
            "--seeds 1 --episodes 1 --demo-episodes 8 --epochs 12 --policies 'IL only'` first "
            "(it trains the dense stage 1)"
        )
    policies = {"IL only": il_policy(args.planner), "best return": BestReturnPolicy()}
    policies["IDM (privileged)"] = idle
    if args.rift is not None:
        policies[RIFT_ROW] = rift_policy(args.rift)
    lines = ["| scenario | policy | first collision (s) | collided % | stuck % | DS % |"]
    lines.append("|---|---|---|---|---|---|")
    chosen, tally = None, {"less": 0, "as often": 0, "more": 0}
    with fixed_torch_threads():
        for k in range(args.scenarios):
            res = {row: play(row, policies[row], args.planner, k) for row in rows}
            for row, r in res.items():
                when = f"{r['step'] * DT:.1f}" if "step" in r else "none"
                lines.append(
                    f"| {EVAL_ENV_SEED + k} | {row} | {when} | {r['collided']:.0f} | "
                    f"{r['stuck']:.0f} | {r['cbv_ds']:.0f} |"
                )
            il, other = res["IL only"], res[better]
            print("\n".join(lines[-len(rows) :]), flush=True)
            if RIFT_ROW in res:
                d = res[RIFT_ROW]["collided"] - il["collided"]
                tally["less" if d < 0 else "more" if d > 0 else "as often"] += 1
            if chosen is None and "step" in il and other["collided"] < il["collided"]:
                chosen = (k, il)
                if not args.scan_all:
                    break
    if chosen is None:
        raise SystemExit(f"no scanned scenario where IL only collides and {better} does better")
    k, il = chosen
    t = il["step"]
    steps = tuple(s for s in (t - AROUND, t, t + AROUND) if s >= 1)
    base = dict(family="dense", action_mode="candidate", planner=str(args.planner))
    overrides = {row: env_kwargs(row, args.planner) for row in rows}
    with fixed_torch_threads():
        written = bev_snapshots(
            base,
            policies,
            args.out,
            steps=steps,
            seed=k,
            env_seed=EVAL_ENV_SEED,
            env_overrides=overrides,
            camera_xy=il["xy"],
        )
    if not written:
        raise SystemExit("MetaDrive's top-down renderer is unavailable here (pygame?)")
    md = args.out.with_suffix(".md")
    md.write_text(
        f"# Dense family, held-out scenario {EVAL_ENV_SEED + k} (generated by "
        "benchmarks/rift_dense_bev.py)\n\n"
        f"IL only's first collision: {il['cbv']} at t = {t * DT:.1f} s. Figure rows: "
        f"{', '.join(rows)}; frames at t = {', '.join(f'{s * DT:.1f}' for s in steps)} s.\n\n"
        + f"Shown: the first scanned scenario where IL only collides and {better}'s CBVs "
        "collide less.\n\n"
        + (f"RIFT: `{args.rift}`.\n\n" if args.rift is not None else "")
        + (
            f"Over the {args.scenarios} scanned scenarios RIFT's CBVs collided less than IL "
            f"only's in {tally['less']}, as often in {tally['as often']}, more in "
            f"{tally['more']}.\n\n"
            if args.rift is not None and args.scan_all
            else ""
        )
        + "Scanned scenarios (one episode each, 6 CBVs, 30 s):\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(f"wrote {args.out} and {md}")


if __name__ == "__main__":
    main()
