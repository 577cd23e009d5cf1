"""Open-loop fidelity of RIFT stage 1 per scenario family (issue 25 §2): min-ADE and min-FDE of
each family's stage-1 planners on that family's held-out demonstrations, and of the default
family's planner on the same samples (do the harder families' own demonstrations matter?).

Reads what ``benchmarks/rift_headroom.py`` left under ``--work`` (``regrl results
rift_headroom``): per family ``demos.npz`` (IDM demonstrations recorded in that family) and
per seed s ``planner_<s>.pt`` (stage 1 trained with seed s on them, configs/rift_pretrain.yaml).
Per (family, seed) the validation split is the one stage 1 held out: ``split_indices`` with
``val_fraction`` of configs/rift_pretrain.yaml and a generator seeded with s (checked: the
re-evaluated validation min-ADE must equal the one stored in the planner file). That split is
by sample, so its samples come from the episodes stage 1 trained on; ``--heldout-episodes N``
also records N IDM episodes per family on the held-out scenarios (MetaDrive seeds 1000 ...,
those the headroom evaluation drives; the family's demonstration spec otherwise) and
evaluates every planner on all their samples. Without it no MetaDrive step is run: every
number is the planner run once on recorded samples.

Metrics (``regrl.agents.models.planner.forecast_errors``): min-ADE / min-FDE = ADE / FDE of the
winner-take-all candidate (lowest ADE among the modes of the lane nearest the ground truth:
Pluto's regression target, the min-ADE stage 1 always logged); FDE at the last valid step of
the 4 s future, and also on the samples whose future covers all 4 s; minADE_K / minFDE_K = the
benchmark definitions (nuScenes ``min_ade_k`` / ``min_fde_k``), each minimised on its own over
all K = R·M candidates of valid lanes; top-1 = share of samples whose highest score is the
winner. Mean ± 95% Student-t over seeds; default − own differences are paired by seed (same
samples).

Run: OMP_NUM_THREADS=1 nice -n 17 .venv/bin/python benchmarks/rift_stage1_fidelity.py
     [--work runs/rift_headroom] [--reference default] [--heldout-episodes 0]
     [--heldout-dir runs/rift_stage1_fidelity] [--out docs/rift_stage1_fidelity]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from regrl.envs.traffic.families import FAMILIES
from regrl.trainers.config import ConfigError
from regrl.trainers.stats import t_interval
from regrl.trainers.traffic.planner_io import load_planner
from regrl.trainers.traffic.pretrain import (
    load_demos,
    load_pretrain_config,
    split_indices,
    validation_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "rift_pretrain.yaml"  # what rift_headroom.py trained stage 1 with
ENTRY = "rift_headroom"  # the docs/results.yaml entry that writes --work
KEYS = ("min_ade", "min_fde", "min_fde_4s", "min_ade_k", "min_fde_k", "top1_acc")
SPLIT_TOL = 1e-4  # m: re-evaluated vs stored validation min-ADE
HELDOUT_SEED = 1000  # rift_headroom.py's EVAL_ENV_SEED: scenarios no demonstration used


def regenerate_hint() -> str:
    """The command that writes runs/rift_headroom, read from docs/results.yaml."""
    try:
        import yaml

        step = yaml.safe_load((ROOT / "docs" / "results.yaml").read_text())[ENTRY]["steps"][0]
        return f"`regrl results {ENTRY}` ({step})"
    except Exception:  # noqa: BLE001 - only the hint degrades
        return f"`regrl results {ENTRY}`"


def seeds_of(family_dir: Path) -> list:
    found = (re.fullmatch(r"planner_(\d+)\.pt", p.name) for p in family_dir.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def families_in(work: Path) -> dict:
    """{family: seeds} for every family directory holding demos.npz and planners."""
    dirs = [d for d in work.iterdir() if d.is_dir()] if work.is_dir() else []
    found = {d.name: seeds_of(d) for d in dirs if (d / "demos.npz").is_file()}
    order = [f for f in FAMILIES if f in found] + sorted(set(found) - set(FAMILIES))
    return {f: found[f] for f in order if found[f]}


def read_demos(path: Path) -> dict:
    try:
        return load_demos(path)
    except Exception as exc:  # noqa: BLE001 - a bad file is one line, whatever numpy raised
        raise ValueError(f"{path}: not readable demonstrations ({exc})") from None


def split_of(demos: dict, path: Path, seed: int):
    """Stage 1's validation indices for seed ``seed`` (the split PretrainSession drew)."""
    cfg = load_pretrain_config(CONFIG, [f"demos={path}", f"seed={seed}", "export=null"])
    val, _ = split_indices(len(demos["obs"]), cfg.val_fraction, torch.Generator().manual_seed(seed))
    return cfg, val


def evaluate(planner_file: Path, demos: dict, cfg, val) -> dict:
    """Validation metrics of one planner on ``val``; min_fde_4s on the full-horizon samples."""
    planner = read_planner(planner_file)
    m = validation_metrics(planner, demos, val, cfg)
    full = val[torch.as_tensor(demos["future_mask"][val.numpy()].all(-1))]
    m["min_fde_4s"] = validation_metrics(planner, demos, full, cfg)["min_fde"]
    m["full_share"] = len(full) / max(len(val), 1)
    return {k: float(v) for k, v in m.items()}


def heldout_demos(family: str, work: Path, out_dir: Path, episodes: int) -> Path:
    """IDM demonstrations of ``family`` on held-out scenarios (recorded once, then reused):
    the spec of the family's training demonstrations with seed HELDOUT_SEED."""
    path = out_dir / family / f"heldout_{HELDOUT_SEED}_{episodes}.npz"
    if not path.is_file():
        from regrl.envs.traffic.demos import DemoSpec, record_demos, save_demos
        from regrl.files import atomic_output

        with np.load(work / family / "demos.npz") as d:
            spec = json.loads(str(d["spec"]))
        spec = DemoSpec(**dict(spec, seed=HELDOUT_SEED, episodes=episodes))
        print(f"{family}: recording {episodes} held-out episodes -> {path}", flush=True)
        data = record_demos(spec)
        with atomic_output(path) as fh:
            save_demos(fh, data, spec)
    return path


def heldout_units(res: dict, work: Path, out_dir: Path, episodes: int) -> None:
    """Own and reference planner of every seed on all samples of the held-out episodes."""
    ref = res["reference"]
    for fam, seeds in res["families"].items():
        demos = read_demos(heldout_demos(fam, work, out_dir, episodes))
        every = torch.arange(len(demos["obs"]))
        for s in seeds:
            cfg, _ = split_of(demos, work / fam / "demos.npz", s)
            unit = res["units"][f"{fam}|{s}"]
            unit["heldout_n"] = len(every)
            unit["heldout_own"] = evaluate(work / fam / f"planner_{s}.pt", demos, cfg, every)
            if fam != ref and (work / ref / f"planner_{s}.pt").is_file():
                unit["heldout_reference"] = evaluate(
                    work / ref / f"planner_{s}.pt", demos, cfg, every
                )


def read_planner(path: Path):
    try:
        return load_planner(path)
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises KeyError on junk, too
        raise ValueError(
            f"{path}: not a readable stage-1 planner ({type(exc).__name__}: {exc})"
        ) from None


def stored_min_ade(planner_file: Path) -> float:
    """The validation min-ADE stage 1 stored with these weights (PretrainSession.step)."""
    blob = torch.load(planner_file, weights_only=True)  # read_planner read it already
    if not isinstance(blob.get("val"), dict) or "min_ade" not in blob["val"]:
        raise ValueError(f"{planner_file} stores no validation metrics: not a stage-1 planner")
    return float(blob["val"]["min_ade"])


def run(work: Path, reference: str) -> dict:
    fams = families_in(work)
    res = {"work": str(work), "reference": reference, "units": {}, "split_error": 0.0}
    for fam, seeds in fams.items():
        demos_path = work / fam / "demos.npz"
        demos = read_demos(demos_path)
        for s in seeds:
            cfg, val = split_of(demos, demos_path, s)
            own = work / fam / f"planner_{s}.pt"
            unit = {"n_val": len(val), "own": evaluate(own, demos, cfg, val)}
            stored = stored_min_ade(own)
            res["split_error"] = max(res["split_error"], abs(unit["own"]["min_ade"] - stored))
            ref = work / reference / f"planner_{s}.pt"
            if fam != reference and ref.is_file():
                unit["reference"] = evaluate(ref, demos, cfg, val)
            res["units"][f"{fam}|{s}"] = unit
            print(
                f"{fam} seed {s}: {len(val)} val samples, min-ADE "
                f"{unit['own']['min_ade']:.4f} (stored {stored:.4f})",
                flush=True,
            )
    res["families"] = {f: s for f, s in fams.items()}
    return res


def cell(values, fmt: str = "{:.2f}", signed: bool = False) -> str:
    mean, half = t_interval(values)
    f = fmt.replace("{:", "{:+") if signed else fmt
    text = f.format(mean) + (" ± " + fmt.format(half) if half is not None else "")
    return text + (" *" if signed and half is not None and abs(mean) > half else "")


def family_units(res: dict):
    """(family, that family's per-seed result units) in the file's order."""
    for fam, seeds in res["families"].items():
        yield fam, [res["units"][f"{fam}|{s}"] for s in seeds]


def own_table(res: dict) -> list:
    lines = [
        "| family | seeds | val samples (full 4 s) | min-ADE m | min-FDE m | min-FDE 4 s m "
        "| minADE_K m | minFDE_K m | top-1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for fam, us in family_units(res):
        n = sum(u["n_val"] for u in us) / len(us)
        full = 100 * np.mean([u["own"]["full_share"] for u in us])
        cols = " | ".join(cell([u["own"][k] for u in us]) for k in KEYS)
        lines.append(f"| {fam} | {len(us)} | {n:.0f} ({full:.0f} %) | {cols} |")
    return lines


def cross_table(res: dict) -> list:
    ref, keys = res["reference"], ("min_ade", "min_fde", "top1_acc")
    lines = [
        f"| family | {ref}'s planner: min-ADE m | min-FDE m | top-1 "
        f"| {ref} − own: min-ADE m | min-FDE m | top-1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for fam, us in family_units(res):
        if fam == ref or not all("reference" in u for u in us):
            continue
        a = " | ".join(cell([u["reference"][k] for u in us]) for k in keys)
        d = " | ".join(
            cell([u["reference"][k] - u["own"][k] for u in us], signed=True) for k in keys
        )
        lines.append(f"| {fam} | {a} | {d} |")
    return lines


def heldout_table(res: dict) -> list:
    ref, keys = res["reference"], ("min_ade", "min_fde", "top1_acc")
    lines = [
        f"| family | samples (full 4 s) | own: min-ADE m | min-FDE m | top-1 | {ref}'s: min-ADE m "
        f"| min-FDE m | top-1 | {ref} − own: min-ADE m | min-FDE m |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fam, us in family_units(res):
        full = 100 * us[0]["heldout_own"]["full_share"]
        own = " | ".join(cell([u["heldout_own"][k] for u in us]) for k in keys)
        if all("heldout_reference" in u for u in us):
            other = " | ".join(cell([u["heldout_reference"][k] for u in us]) for k in keys)
            diff = " | ".join(
                cell([u["heldout_reference"][k] - u["heldout_own"][k] for u in us], signed=True)
                for k in keys[:2]
            )
        else:
            other, diff = "— | — | —", "— | —"
        lines.append(f"| {fam} | {us[0]['heldout_n']} ({full:.0f} %) | {own} | {other} | {diff} |")
    return lines


def heldout_section(res: dict) -> list:
    if not res.get("heldout_episodes"):
        return []
    n = res["heldout_episodes"]
    return [
        f"## Held-out scenarios ({n} IDM episodes per family)",
        "",
        f"Recorded with each family's demonstration spec on MetaDrive scenarios {HELDOUT_SEED} "
        f"... {HELDOUT_SEED + n - 1} (the headroom evaluation's, never in any training "
        "demonstration; recorded by the first run of this command and kept in "
        f"`{res['heldout_dir']}`); every planner on all their samples, so no planner saw these "
        "episodes. "
        f"Seeds as above; {res['reference']} − own paired by seed.",
        "",
        *heldout_table(res),
        "",
    ]


def markdown(res: dict, command: str) -> str:
    ref = res["reference"]
    return "\n".join(
        [
            "# RIFT stage-1 open-loop fidelity by scenario family "
            "(generated by benchmarks/rift_stage1_fidelity.py)",
            "",
            f"Command: `{command}` ({res['seconds']:.0f} s wall, {res['cpu_seconds']:.0f} s "
            "CPU, niced on 2 cores shared with another experiment), on the "
            f"demonstrations and stage-1 planners of `{res['work']}` (`regrl results {ENTRY}`: "
            "8 IDM episodes per family, one planner per seed, M = 4, 12 epochs; planner_<s>.pt "
            "holds the epoch of the best validation loss). Per (family, seed s): the validation "
            "split stage 1 held out (10 % of the family's samples, drawn with seed s; the "
            "re-evaluated validation min-ADE equals the one stored in every planner file, "
            f"largest difference {res['split_error']:.1e} m). The split is by sample, so "
            "validation samples come from the training episodes. Mean ± 95% t-interval over "
            "seeds.",
            "",
            "min-ADE / min-FDE: ADE / FDE of the winner-take-all candidate (the mode with the "
            "lowest ADE on the lane nearest the ground truth, Pluto's regression target). FDE at "
            "the last valid step of the 4 s future; min-FDE 4 s: the same on the samples whose "
            "future covers all 4 s. minADE_K / minFDE_K: each minimised on its own over all "
            "K = 12 candidates of valid lanes (nuScenes `min_ade_k` / `min_fde_k`). top-1: share "
            "of samples whose highest score is the winner (chance 1/12).",
            "",
            "## Each family's own stage 1",
            "",
            *own_table(res),
            "",
            f"## The {ref} family's stage 1 on each family's validation samples",
            "",
            f"Same seeds and samples as above; {ref} − own is paired by seed "
            "(* = 95% interval excludes 0; > 0 on min-ADE / min-FDE: the family's own "
            "demonstrations fit better).",
            "",
            *cross_table(res),
            "",
            *heldout_section(res),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="runs/rift_headroom", help="demos and planners per family")
    ap.add_argument("--reference", default="default", help="family whose planner is crossed")
    ap.add_argument(
        "--heldout-episodes",
        type=int,
        default=0,
        help="also record this many IDM episodes per family on held-out scenarios (MetaDrive)",
    )
    ap.add_argument(
        "--heldout-dir", default="runs/rift_stage1_fidelity", help="where they are kept"
    )
    ap.add_argument("--out", default="docs/rift_stage1_fidelity", help="writes OUT.md, OUT.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(a.work)
    fams = families_in(work)
    if not fams:
        sys.exit(
            f"error: {work} holds no family directory with demos.npz and planner_<seed>.pt; "
            f"regenerate it with {regenerate_hint()}"
        )
    if a.reference not in fams:
        sys.exit(
            f"error: {work}/{a.reference} has no planners; regenerate with {regenerate_hint()}"
        )
    if min(len(s) for s in fams.values()) < 2:
        sys.exit(f"error: every family needs >= 2 seeds for intervals, found {fams}")
    start, cpu = time.time(), time.process_time()
    if a.heldout_episodes < 0:
        ap.error("--heldout-episodes must be >= 0")
    try:
        res = run(work, a.reference)
        res["heldout_episodes"], res["heldout_dir"] = a.heldout_episodes, a.heldout_dir
        if a.heldout_episodes:
            heldout_units(res, work, Path(a.heldout_dir), a.heldout_episodes)
    except (ConfigError, OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    res["seconds"], res["cpu_seconds"] = time.time() - start, time.process_time() - cpu
    if res["split_error"] > SPLIT_TOL:
        sys.exit(
            f"error: re-evaluated validation min-ADE differs from the stored one by "
            f"{res['split_error']:.3g} m: {CONFIG} no longer gives the split stage 1 used"
        )
    command = "python benchmarks/rift_stage1_fidelity.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(a).items() if v != ap.get_default(k)
    )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1, sort_keys=True))
    out.with_suffix(".md").write_text(markdown(res, command))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
