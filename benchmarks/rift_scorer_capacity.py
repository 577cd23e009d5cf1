"""Can the scoring head learn RIFT's own ranking? (issue 25: why RIFT − IL only stays within
noise in the dense family although the best-return candidate is worth DS +22 ± 9.)

RIFT (Chen et al., arXiv 2505.03344) fine-tunes only the scoring head ``pi_head`` of the
frozen stage-1 planner; the optimum of its surrogate puts all mass on the candidate with the
best return R_g (the "best return" reference of docs/rift_headroom.md). This benchmark records
the states of IL-only rollouts (the stage-1 planner's argmax drives every CBV) on training
scenarios and on held-out ones, with every candidate's return, and asks how much of the IL
scorer's regret R_best − R_chosen each scorer closes (``regret_closed``, trainers/traffic/ranking.py):

- the RIFT-fine-tuned scorers of the given sweeps (their latest checkpoints);
- supervised ceilings fitted to the ranking itself by the listwise cross-entropy to
  softmax(R_g) (ListNet, Cao et al. 2007), from the IL weights:
  * ``head``: only ``pi_head`` trainable, RIFT's trainable set;
  * ``whole scorer``: encoders, decoder and head trainable (the candidates stay the frozen
    planner's);
  * ``head + interaction``: ``pi_head`` plus a candidate-neighbour module (every candidate's
    positions at 8 future steps against each neighbour's constant-velocity extrapolation,
    an MLP per pair, a max over neighbours; its output layer starts at 0, so it starts as IL).

A supervised fit sees the exact targets RIFT's advantages are normalised from, for every
candidate of every recorded state; it is an upper reference for what the same trainable set
reaches from that many states, not a method. Held-out intervals: 95 % Student t over the
held-out episodes of the per-episode mean regret difference to IL (paired, same states);
fitted rows average the fit seeds first.

    python benchmarks/rift_scorer_capacity.py --train-episodes 16 48 --heldout-episodes 9 \\
        --sweeps runs/sweeps/rift_dense_exp/*/ runs/sweeps/rift_dense_long24/*/ \\
        --out docs/rift_scorer_capacity
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from regrl.agents.models.planner import POS_SCALE
from regrl.envs.traffic.scene import DT
from regrl.files import write_text_atomic
from regrl.trainers.checkpoint import latest_checkpoint
from regrl.trainers.stats import t_interval
from regrl.trainers.traffic.env_factory import make_rift_env
from regrl.trainers.traffic.planner_io import load_planner, scene_tensors
from regrl.trainers.traffic.ranking import listwise_target, per_group_means, regret, regret_closed
from regrl.trainers.traffic.scorer_module import trainable_filter

TRAIN_ENV_SEED, HELDOUT_ENV_SEED = 0, 1000  # the scenarios of demos/stage 1/RL vs evaluation
FUTURE_STEPS = torch.arange(4, 40, 5)  # 8 of the candidate's 40 steps (0.5 s apart)
MINIBATCH = 256


def collect(planner, family: str, env_seed: int, episodes: int):
    """IL-only rollouts: (flat obs [N, D], returns [N, G], valid [N, G], episode [N]) of every
    CBV decision with at least two valid candidates."""
    il = load_planner(planner)
    il.eval()
    env = make_rift_env(planner=str(planner), action_mode="candidate", family=family, seed=env_seed)
    obs_rows, R, V, E = [], [], [], []
    for ep in range(episodes):
        obs, infos = env.reset(seed=ep)
        while env.agents:
            names = [a for a in env.agents if a in obs]
            batch = np.stack([obs[a] for a in names])
            for i, a in enumerate(names):
                v = np.asarray(infos[a]["candidate_valid"], bool)
                if v.sum() >= 2:
                    obs_rows.append(batch[i])
                    R.append(np.asarray(infos[a]["candidate_returns"], np.float64))
                    V.append(v)
                    E.append(ep)
            with torch.no_grad():
                act = il(scene_tensors(batch), with_traj=False)["logits"].argmax(-1).numpy()
            obs, _, _, _, infos = env.step({a: int(act[i]) for i, a in enumerate(names)})
        print(
            f"  {family} env seed {env_seed}: episode {ep + 1}/{episodes}, {len(obs_rows)} states",
            flush=True,
        )
    env.close()
    return np.stack(obs_rows), np.stack(R), np.stack(V), np.asarray(E)


class Interaction(nn.Module):
    """Per candidate: max over neighbours of an MLP of (candidate − neighbour) offsets at
    FUTURE_STEPS (neighbours extrapolated at constant velocity), their minimum distance and
    the neighbour's size; with the candidate's own points, a score added to ``pi_head``'s."""

    def __init__(self, dim: int = 64):
        super().__init__()
        k = len(FUTURE_STEPS)
        self.pair = nn.Sequential(
            nn.Linear(2 * k + 3, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU()
        )
        self.out = nn.Sequential(nn.Linear(dim + 2 * k, dim), nn.ReLU(), nn.Linear(dim, 1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, scene, traj):
        cur = scene["neighbors"][:, :, -1]  # [B, N, 6] x, y, cos, sin, vx, vy (agent frame)
        t = ((FUTURE_STEPS + 1) * DT).to(cur.dtype)
        fut = cur[:, :, None, :2] + cur[:, :, None, 4:6] * t[None, None, :, None]
        own = traj[:, :, FUTURE_STEPS]  # [B, G, k, 2]
        rel = (own[:, :, None] - fut[:, None]) / POS_SCALE  # [B, G, N, k, 2]
        size = scene["neighbor_size"][:, None].expand(-1, own.shape[1], -1, -1) / 5.0
        h = self.pair(
            torch.cat([rel.flatten(-2), rel.norm(dim=-1).amin(-1, keepdim=True), size], -1)
        )
        present = (scene["neighbor_mask"] > 0.5)[:, None, :, None]
        h = torch.where(present, h, torch.full_like(h, -1e4)).amax(2)
        h = torch.where(present.any(2), h, torch.zeros_like(h))
        return self.out(torch.cat([h, own.flatten(-2) / POS_SCALE], -1)).squeeze(-1)


def make_scorer(il, kind: str):
    """(score function, trainable parameters) of a copy of the IL planner."""
    net = copy.deepcopy(il)
    inter = Interaction() if kind == "head + interaction" else None
    trains = trainable_filter("scorer" if kind == "whole scorer" else "head")
    for name, p in net.named_parameters():
        p.requires_grad_(trains(name))

    def score(scene):
        f = net.features(scene)
        logits, valid = net.scores(scene, f)
        if inter is None:
            return logits
        with torch.no_grad():
            traj = il.trajectories(scene, il.features(scene))
        return torch.where(valid, logits + inter(scene, traj), logits)

    params = [p for p in net.parameters() if p.requires_grad]
    if inter is not None:
        params += list(inter.parameters())
    return score, params


def fit(il, kind: str, data, epochs: int, lr: float, seed: int):
    torch.manual_seed(seed)
    score, params = make_scorer(il, kind)
    opt = torch.optim.Adam(params, lr=lr)
    flat, R, V, _ = data
    scene = scene_tensors(flat)
    target = torch.as_tensor(listwise_target(R, V), dtype=torch.float32)
    for _ in range(epochs):
        perm = torch.randperm(len(flat))
        for i in range(0, len(flat), MINIBATCH):
            idx = perm[i : i + MINIBATCH]
            logp = torch.log_softmax(score({k: v[idx] for k, v in scene.items()}), -1)
            loss = -(target[idx] * logp.clamp_min(-1e4)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return score


def scored(score, data) -> np.ndarray:
    with torch.no_grad():
        return score(scene_tensors(data[0])).numpy()


CRITICAL_REGRET = 20.0
"""IL's choice is this far below the best return only if its forecast collides and a
candidate's does not: RIFT's collision reward is −(20 + |v|) (``DenseRewardModel``), every
other term of a step is a few units at most. These are the states the DS headroom lives in."""


def row_stats(scores_list, data, il_regret):
    """Top-1, share of IL regret closed on all states and on the critical ones (one value per
    scorer given), and per-episode mean regret differences to IL averaged over the scorers."""
    _, R, V, E = data
    res = [regret(R, V, s) for s in scores_list]
    top1 = float(np.mean([t.mean() for _, t in res]))
    closed = [regret_closed(g, il_regret) for g, _ in res]
    crit = il_regret >= CRITICAL_REGRET
    critical = [regret_closed(g[crit], il_regret[crit]) for g, _ in res]
    per_ep = np.mean([per_group_means(g - il_regret, E) for g, _ in res], axis=0)
    return top1, closed, critical, per_ep


CLOSED_LOOP_KEYS = ("cbv_ds", "rp", "collided")  # driving score %, route progress m, % collided


def drive(score, a) -> dict:
    """Block means of the RIFT runs' held-out evaluation (evaluate_policy: the same scenarios,
    blocks and seeds as ``regrl eval``) with the greedy candidate of ``score``."""
    from regrl.trainers.traffic.evaluation import eval_options, evaluate_policy, scorer_policy

    opts = eval_options({"episodes": a.closed_loop, "blocks": 3, "demos": a.demos}, None)
    env = dict(family=a.family, planner=a.planner, action_mode="candidate")
    res = evaluate_policy(env, scorer_policy(lambda s: score(s).detach()), opts)
    return {k: float(res["mean"][k]) for k in CLOSED_LOOP_KEYS}


def checkpoints(sweeps):
    out = []
    for sweep in sweeps:
        name = Path(sweep).parent.name  # runs/sweeps/NAME/TIMESTAMP
        for trial in sorted(glob.glob(str(Path(sweep) / "trials" / "*"))):
            runs = sorted(glob.glob(str(Path(trial) / "*" / "checkpoints")))
            ck = latest_checkpoint(Path(runs[-1]).parent) if runs else None
            if ck is not None:
                out.append((name, Path(trial).name, str(ck)))
    return out


def fmt(mean, half, digits=3, signed=True):
    s = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return s if half is None else f"{s} ± {half:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", default="dense")
    ap.add_argument("--planner", default="runs/rift_headroom/dense/planner_0.pt")
    ap.add_argument("--train-episodes", type=int, nargs="+", default=[16, 48])
    ap.add_argument("--heldout-episodes", type=int, default=9)
    ap.add_argument("--sweeps", nargs="*", default=[], help="regrl sweep directories of RIFT runs")
    ap.add_argument("--fits", nargs="*", default=["head", "whole scorer", "head + interaction"])
    ap.add_argument("--fit-seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument(
        "--closed-loop",
        type=int,
        default=0,
        metavar="EPISODES",
        help="also drive the held-out evaluation of the RIFT runs (this many episodes in 3 "
        "blocks, scenarios 1000+) with IL and with each fitted scorer: its driving score",
    )
    ap.add_argument("--demos", default="runs/rift_headroom/dense/demos.npz")
    ap.add_argument("--out", default="docs/rift_scorer_capacity")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if not Path(a.planner).is_file():
        raise SystemExit(
            f"no stage-1 planner at {a.planner}: run `regrl results rift_headroom` first"
        )
    t0 = time.time()
    il = load_planner(a.planner)
    il.eval()
    train_all = collect(a.planner, a.family, TRAIN_ENV_SEED, max(a.train_episodes))
    held = collect(a.planner, a.family, HELDOUT_ENV_SEED, a.heldout_episodes)
    il_scores = lambda s: il(s, with_traj=False)["logits"]  # noqa: E731
    il_held, il_top1 = regret(held[1], held[2], scored(il_scores, held))
    rows = [
        {
            "scorer": "IL only (stage 1)",
            "train states": "—",
            "top1_heldout": float(il_top1.mean()),
            "closed": [0.0],
            "critical": [0.0],
            "delta": None,
            "closed_loop": [drive(il_scores, a)] if a.closed_loop else [],
        }
    ]
    for sweep, trial, ck in checkpoints(a.sweeps):
        from regrl.trainers.evaluate import load_module

        module = load_module(ck, "cbv")
        sc = scored(lambda s, m=module: m.planner(s, with_traj=False)["logits"], held)
        top1, closed, critical, per_ep = row_stats([sc], held, il_held)
        rows.append(
            {
                "scorer": f"RIFT {sweep} {trial} ({Path(ck).name})",
                "train states": "RL",
                "top1_heldout": top1,
                "closed": closed,
                "critical": critical,
                "delta": t_interval(list(per_ep)),
            }
        )
        print(f"  {rows[-1]['scorer']}: closed {closed[0]:+.3f}", flush=True)
    for n in a.train_episodes:
        mask = train_all[3] < n
        train = tuple(x[mask] for x in train_all)
        il_train = regret(train[1], train[2], scored(il_scores, train))[0]
        for kind in a.fits:
            held_scores, train_closed, t1 = [], [], time.time()
            driven = []
            for seed in range(a.fit_seeds):
                score = fit(il, kind, train, a.epochs, a.lr, seed)
                held_scores.append(scored(score, held))
                if a.closed_loop:
                    driven.append(drive(score, a))
                train_closed.append(
                    regret_closed(regret(train[1], train[2], scored(score, train))[0], il_train)
                )
            top1, closed, critical, per_ep = row_stats(held_scores, held, il_held)
            rows.append(
                {
                    "scorer": f"fit: {kind}",
                    "train states": f"{len(train[0])} ({n} episodes)",
                    "top1_heldout": top1,
                    "closed": closed,
                    "critical": critical,
                    "closed_train": train_closed,
                    "delta": t_interval(list(per_ep)),
                    "seconds": time.time() - t1,
                    "closed_loop": driven,
                }
            )
            print(
                f"  fit {kind} on {n} episodes: closed train {np.mean(train_closed):+.3f} "
                f"held-out {np.mean(closed):+.3f} ({time.time() - t1:.0f} s)",
                flush=True,
            )
    crit = il_held >= CRITICAL_REGRET
    note = (
        f"{crit.sum()} of {len(crit)} held-out states ({100 * crit.mean():.1f} %), "
        f"{100 * il_held[crit].sum() / il_held.sum():.0f} % of IL's held-out regret"
    )
    write(rows, a, len(held[0]), time.time() - t0, note)


def write(rows, a, n_held, seconds, critical_note: str) -> None:
    head = (
        f"# Can the scoring head learn RIFT's ranking? (generated by benchmarks/rift_scorer_capacity.py)\n\n"
        f"Family `{a.family}`, stage 1 `{a.planner}`; IL-only rollouts; held-out: {a.heldout_episodes} episodes "
        f"(MetaDrive scenarios {HELDOUT_ENV_SEED}+), {n_held} CBV decisions with ≥ 2 valid candidates; training "
        f"states: scenarios {TRAIN_ENV_SEED}+. Fits: listwise cross-entropy to softmax(R_g), {a.epochs} epochs, "
        f"Adam lr {a.lr}, minibatch {MINIBATCH}, {a.fit_seeds} fit seeds (mean shown; the held-out closure's "
        f"interval is over fit seeds). Δ regret: held-out per-episode mean regret − IL's, 95 % t over episodes "
        f"(negative = better than IL). Critical states: IL's choice trails the best return by ≥ "
        f"{CRITICAL_REGRET:g} (a forecast collision that another candidate avoids); {critical_note}. "
        f"{seconds / 60:.0f} min on the 2 shared cores.\n\n"
        "| scorer | trained on | held-out top-1 = best return | regret closed, train | regret closed, held-out | "
        "regret closed, held-out critical states | Δ regret vs IL, held-out |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        ct = r.get("closed_train")
        ct = "—" if ct is None else fmt(*t_interval(ct))
        ch = fmt(*t_interval(r["closed"])) if len(r["closed"]) > 1 else fmt(r["closed"][0], None)
        cc = (
            fmt(*t_interval(r["critical"]))
            if len(r["critical"]) > 1
            else fmt(r["critical"][0], None)
        )
        d = "—" if r["delta"] is None else fmt(*r["delta"])
        lines.append(
            f"| {r['scorer']} | {r['train states']} | {r['top1_heldout']:.3f} | {ct} | {ch} | {cc} | {d} |"
        )
    il_loop = rows[0]["closed_loop"]
    if il_loop:
        lines += [
            "",
            f"Closed loop ({a.closed_loop} held-out episodes, the RIFT runs' evaluation): "
            "each fitted scorer drives every CBV (greedy candidate); difference to IL only per fit "
            "seed, 95 % t over fit seeds (* = excludes 0).",
            "",
            "| scorer | trained on | DS % | DS − IL | RP m | RP − IL | collided % | collided − IL |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if not r.get("closed_loop"):
                continue
            cells = []
            for k in CLOSED_LOOP_KEYS:
                vals = [x[k] for x in r["closed_loop"]]
                d = [v - il_loop[0][k] for v in vals]
                m, h = t_interval(d)
                star = " *" if h is not None and abs(m) > h else ""
                cells += [
                    fmt(*t_interval(vals), digits=1, signed=False),
                    "—" if r is rows[0] else fmt(m, h, digits=1) + star,
                ]
            lines.append(f"| {r['scorer']} | {r['train states']} | " + " | ".join(cells) + " |")
    write_text_atomic(Path(a.out + ".md"), head + "\n".join(lines) + "\n")
    write_text_atomic(Path(a.out + ".json"), json.dumps(rows, indent=1, default=float) + "\n")
    print(head + "\n".join(lines))


if __name__ == "__main__":
    main()
