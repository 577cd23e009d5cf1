"""Per-iteration learner diagnostics of a RIFT sweep (issue 16 §3): for every arm, each
iteration's mean over the training seeds of the share of dual-clipped candidate entries,
the KL to the frozen stage-1 (IL) scorer and the largest pi/pi_old ratio among
negative-advantage candidates (the dual clip binds above c = 3).

Run: python benchmarks/rift_sweep_iterations.py runs/sweeps/rift_exp/<timestamp> [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from regrl.trainers.run_files import METRICS_JSONL

COLUMNS = (
    ("learner/dual_clip_frac", "dual-clipped share", "{:.4f}"),
    ("learner/kl_to_il", "KL(π‖π_IL)", "{:.3f}"),
    ("learner/neg_ratio_max", "max ratio, A<0", "{:.2f}"),
    ("learner/top1_best", "greedy = best return", "{:.3f}"),  # runs from its introduction on
)


def arm_iterations(sweep_dir: Path) -> dict:
    """{arm: [per seed: [per iteration: metrics]]} of the finished trials."""
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    arms: dict = {}
    for t in spec["trials"]:
        runs = sorted((sweep_dir / "trials" / t["name"]).glob("*/summary.json"))
        if runs:
            lines = (runs[-1].parent / METRICS_JSONL).read_text().splitlines()
            arms.setdefault(t.get("arm") or t["label"], []).append([json.loads(x) for x in lines])
    return arms


def table(arms: dict) -> str:
    out = []
    for arm, seeds in arms.items():
        if not any(COLUMNS[1][0] in it for s in seeds for it in s):
            continue  # no candidate policy (PPO on raw actions)
        columns = [c for c in COLUMNS if any(c[0] in it for s in seeds for it in s)]
        out += [f"**{arm}** ({len(seeds)} seeds; mean over seeds, min–max in brackets)", ""]
        out += ["| iteration | " + " | ".join(c[1] for c in columns) + " |"]
        out += ["|---|" + "---|" * len(columns)]
        for i in range(min(len(s) for s in seeds)):
            cells = []
            for key, _, fmt in columns:
                vals = np.array([s[i].get(key, np.nan) for s in seeds], float)
                cells.append(
                    f"{fmt.format(np.nanmean(vals))} [{fmt.format(np.nanmin(vals))}–"
                    f"{fmt.format(np.nanmax(vals))}]"
                )
            out.append(f"| {i + 1} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sweep_dir")
    p.add_argument("--out", help="also write the markdown here")
    args = p.parse_args()
    text = table(arm_iterations(Path(args.sweep_dir)))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
