"""``regrl traffic compare``: evaluate RIFT RL runs and stage-1 (IL only) runs on the same
held-out scenarios and write the tables, bars and bird's-eye views of trainers/traffic/tables.py
and trainers/traffic/bev.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from regrl.files import write_text_atomic
from regrl.trainers.run_files import CONFIG_FILE, EVAL_FILE
from regrl.trainers.traffic.bev import bev_snapshots
from regrl.trainers.traffic.evaluation import (
    Policy,
    eval_options,
    evaluate_planner_run,
    method_name,
    run_policy,
    scorer_policy,
)
from regrl.trainers.traffic.names import PLANNER_FILE, PRETRAIN_KIND
from regrl.trainers.traffic.planner_io import load_planner, planner_path
from regrl.trainers.traffic.tables import (
    interval_rows,
    interval_tables,
    markdown_table,
    pool_by_method,
    write_bars,
)


def _is_planner_run(run_dir: Path) -> bool:
    cfg = Path(run_dir) / CONFIG_FILE
    if not cfg.is_file():
        return (Path(run_dir) / PLANNER_FILE).is_file()
    from regrl.trainers.config_yaml import read_yaml

    return read_yaml(cfg).get("kind") == PRETRAIN_KIND


def _rl_row(run_dir: Path, episodes: Optional[int], reuse: bool) -> Dict[str, Any]:
    from regrl.trainers.evaluate import evaluate
    from regrl.trainers.kinds import load_run_config

    saved, cfg = run_dir / EVAL_FILE, load_run_config(run_dir, "rl")
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
    from regrl.trainers.kinds import load_run_config

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
        cfg = load_run_config(rl[0], "rl")
        opts = eval_options(dict(cfg.eval.kwargs), episodes)
        env_kw = {k: v for k, v in dict(cfg.env.kwargs).items() if k not in ("planner",)}
        rows = [evaluate_planner_run(d, env_kw, opts) for d in il] + rows
    merged = pool_by_method(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(merged)
    write_text_atomic(out / "compare.md", table + "\n")
    write_text_atomic(out / "compare.json", json.dumps(merged, indent=2, default=float))
    per_run = [{k: r[k] for k in ("method", "run_dir", "seed", "blocks") if k in r} for r in rows]
    write_text_atomic(out / "compare_runs.json", json.dumps(per_run, indent=2, default=float))
    write_text_atomic(out / "compare_ci.md", interval_tables(per_run) + "\n")
    figures = write_bars(out / "compare_ci.png", interval_rows(per_run))
    figures += write_bars(out / "compare.png", merged)
    if bev and rl:
        figures += _bev_for(rows, load_run_config(rl[0], "rl"), out / "compare_bev.png")
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


def _row_policy(row: Dict[str, Any]) -> Policy:
    from regrl.trainers.checkpoint import latest_checkpoint
    from regrl.trainers.kinds import load_run_config

    run_dir = Path(row["run_dir"])
    if row["method"] == "IL only":
        planner = load_planner(planner_path(run_dir))
        planner.eval()
        return scorer_policy(lambda s: planner(s, with_traj=False)["logits"])
    cfg = load_run_config(run_dir, "rl")
    return run_policy(run_dir, cfg, latest_checkpoint(run_dir))


def compare_command(args) -> int:
    """``regrl traffic compare RUN_DIR... --out DIR [--episodes N] [--no-reuse]``."""
    from regrl.trainers.checks import ConfigError

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
