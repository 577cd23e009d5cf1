"""``regrl eval RUN_DIR`` for RLVR / SFT runs: accuracy and entropy curves (PNG) and the last
logged values (eval.json), read from the run's TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Tuple

from regrl.files import write_text_atomic
from regrl.trainers.run_files import EVAL_FILE, TB_DIR

ACCURACY_TAGS = ("train/accuracy", "train/pass@G", "eval/pass@1", "eval/pass@k", "train/token_acc")
ENTROPY_TAGS = ("learner/entropy", "rollout/entropy", "eval/entropy")
LOW_PROB_TAGS = ("rollout/low_prob_token_frac", "learner/lp_reg_token_frac", "train/loss")


def read_scalars(run_dir: Path) -> Dict[str, Tuple[List[int], List[float]]]:
    # lazy: only for figures
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not (Path(run_dir) / TB_DIR).is_dir():
        return {}
    acc = EventAccumulator(str(Path(run_dir) / TB_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags().get("scalars", []):
        events = acc.Scalars(tag)
        out[tag] = ([e.step for e in events], [e.value for e in events])
    return out


def evaluate_run(run_dir: Path) -> Dict[str, object]:
    run_dir = Path(run_dir)
    scalars = read_scalars(run_dir)
    if not scalars:
        raise FileNotFoundError(f"{run_dir}: no logged metrics under {TB_DIR}/ yet")
    last = {tag: values[-1] for tag, (_, values) in scalars.items()}
    steps = max(max(s) for s, _ in scalars.values())
    report = {
        "run_dir": str(run_dir),
        "steps": steps,
        "last": last,
        "figures": [str(_plot(run_dir, scalars))],
    }
    write_text_atomic(run_dir / EVAL_FILE, json.dumps(report, indent=2))
    return report


def _plot(run_dir: Path, scalars) -> Path:
    import matplotlib  # lazy: only for figures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use

    panels = [
        ("accuracy", ACCURACY_TAGS),
        ("entropy (nats/token)", ENTROPY_TAGS),
        ("token fraction / SFT loss", LOW_PROB_TAGS),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, (ylabel, tags) in zip(axes, panels):
        for tag in tags:
            if tag in scalars:
                ax.plot(*scalars[tag], marker=".", label=tag)
        ax.set(xlabel="step", ylabel=ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(run_dir.parent.name)
    fig.tight_layout()
    path = run_dir / "eval.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


COMPARE_TAGS = (
    "learner/entropy",
    "train/accuracy",
    "rollout/low_prob_token_frac",
    "rollout/low_prob_token_prob",
    "train/response_len",
    "eval/pass@1",
    "eval/pass@k",
)


def compare_runs(run_dirs: List[Path], out_png: Path) -> str:
    """A markdown table (first / last / min over steps per tag) and a figure of several runs'
    entropy and accuracy curves, one line per run (the experiment name labels it)."""
    import matplotlib  # lazy: only for figures

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use

    runs = [(Path(d).parent.name, read_scalars(Path(d))) for d in run_dirs]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, tag in zip(axes, ("learner/entropy", "train/accuracy", "rollout/low_prob_token_frac")):
        for name, s in runs:
            if tag in s:
                ax.plot(*s[tag], marker=".", label=name)
        ax.set(xlabel="step", title=tag)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    lines = [
        "| run | " + " | ".join(f"{t} (first → last, min)" for t in COMPARE_TAGS) + " |",
        "|---" * (len(COMPARE_TAGS) + 1) + "|",
    ]
    for name, s in runs:
        cells = []
        for tag in COMPARE_TAGS:
            v = s.get(tag, ([], []))[1]
            cells.append(f"{v[0]:.3f} → {v[-1]:.3f}, {min(v):.3f}" if v else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
