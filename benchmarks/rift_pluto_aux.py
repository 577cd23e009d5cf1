"""Pluto's auxiliary drivable-area loss in RIFT stage 1 (issue 16 §2): does it change the
planner's validation min-ADE / top-1 accuracy? Each seed trains twice on the same split, from the
same initialisation and with the same batches, once with ``aux_weight=0`` (the default) and
once per ``aux_weight=W`` of ``--weights``; the table gives the final-epoch validation metrics
as means with 95% t-intervals over the seeds and the paired differences (with - without). It
also prints the cost of the demonstrations' own futures: the share of ground-truth circle-steps
outside the observed lane corridors says how far the loss pulls against imitation.

Run: nice -n 5 .venv/bin/python benchmarks/rift_pluto_aux.py [--seeds 3] [--epochs 15]
     [--weights 1.0 0.1] [--out docs/rift_pluto_aux.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from regrl.trainers.harness import set_up
from regrl.trainers.stats import t_interval
from regrl.trainers.traffic.pretrain import PretrainSession, load_pretrain_config

METRICS = ("min_ade", "top1_acc", "aux_cost", "aux_violation")


def final_metrics(config: str, seed: int, epochs: int, weight: float) -> dict:
    """Train one stage-1 planner; the validation metrics of its last epoch."""
    cfg = load_pretrain_config(
        config, [f"seed={seed}", f"epochs={epochs}", f"aux_weight={weight}", "export=null"]
    )
    with tempfile.TemporaryDirectory() as run_dir:
        set_up(cfg)  # torch threads and seed, as the harness does before a session
        session = PretrainSession(cfg, Path(run_dir))
        for epoch in range(1, epochs + 1):
            m = session.step(epoch)
    return {k: m[f"pretrain/val_{k}"] for k in METRICS}


def cell(values, fmt: str = ".3f") -> str:
    mean, half = t_interval(values)
    return f"{mean:{fmt}} ± {half:{fmt}}" if half is not None else f"{mean:{fmt}}"


def table(runs: dict) -> str:
    lines = [
        "| stage-1 arm | val min-ADE (m) | val top-1 acc | val aux cost (m) | val violating share |",
        "|---|---|---|---|---|",
    ]
    off = runs[0.0]
    for w, rows in runs.items():
        name = "off (aux_weight=0)" if w == 0 else f"on (aux_weight={w:g})"
        lines.append(
            f"| {name} | " + " | ".join(cell([r[k] for r in rows]) for k in METRICS) + " |"
        )
        if w:
            diff = {k: [b[k] - a[k] for a, b in zip(off, rows)] for k in METRICS}
            lines.append(
                f"| paired difference ({w:g} - off) | "
                + " | ".join(cell(diff[k]) for k in METRICS)
                + " |"
            )
    per_seed = "; ".join(
        f"aux_weight={w:g}: " + ", ".join(f"{r['min_ade']:.3f} / {r['top1_acc']:.2f}" for r in rows)
        for w, rows in runs.items()
    )
    return "\n".join(lines) + f"\n\nmin-ADE / top-1 per seed 0, 1, 2, ...: {per_seed}\n"


def ground_truth_cost(config: str) -> str:
    """Pluto's drivable-area cost of the demonstrations' own futures (all samples)."""
    import torch

    from regrl.agents.models.planner import drivable_area_loss
    from regrl.trainers.traffic.planner_io import scene_tensors
    from regrl.trainers.traffic.pretrain import load_demos

    cfg = load_pretrain_config(config)
    demos = load_demos(cfg.demos)
    sc = scene_tensors(demos["obs"])
    cost, m = drivable_area_loss(
        torch.as_tensor(demos["future"]),
        torch.as_tensor(demos["future_mask"], dtype=torch.float32),
        sc["agent_size"],
        sc["lanes"],
        sc["lane_mask"],
        sc["lane_width"],
    )
    return (
        f"Ground-truth futures of {cfg.demos} ({len(demos['obs'])} samples): aux cost "
        f"{float(cost):.3f} m, violating share {float(m['aux_violation']):.3f}\n"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/rift_pretrain.yaml")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.1])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if any(w <= 0 for w in args.weights):
        p.error("--weights must be > 0 (the 'on' arms; the 'off' arm is always run)")
    start = time.time()
    runs = {0.0: [], **{w: [] for w in args.weights}}
    for seed in range(args.seeds):
        for w in runs:
            runs[w].append(final_metrics(args.config, seed, args.epochs, w))
            print(f"seed {seed} aux_weight={w:g}: {runs[w][-1]}", flush=True)
    text = (
        f"Stage-1 planner ({args.config}, {args.epochs} epochs, seeds 0..{args.seeds - 1}, "
        f"final-epoch validation metrics, mean ± 95% t-interval over seeds; "
        f"{time.time() - start:.0f} s)\n\n" + table(runs) + "\n" + ground_truth_cost(args.config)
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
