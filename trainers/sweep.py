"""``regrl sweep``: grid points x seeds as Ray Tune trials, aggregated with confidence intervals.

Every trial is a normal run of its kind's driver (:mod:`regrl.trainers.kinds`), in
``SWEEP_DIR/trials/<point>_seed<k>/<timestamp>/``; ``tensorboard --logdir SWEEP_DIR`` shows all
of them. The sweep's own bookkeeping is on disk, so ``--resume`` after a crash of the driver
process reruns only what has not finished: a run directory with ``summary.json`` is done, an
unfinished one continues from its last checkpoint through the driver's resume, a failed one
(``error.txt``) starts again.

Outputs: ``SWEEP_DIR/results.json`` and ``results.md`` (per grid point, every final metric as
mean ± 95% Student-t confidence interval over seeds, the per-seed values, failed trials listed
with their errors and never averaged in) and ``curves/*.png`` (mean with a 95% band over seeds).
With ``--select METRIC:max|min`` they also hold the search's outcome: per seed (and arm), the
grid point with the best final METRIC, and every metric of the chosen trials as mean ± 95%
interval over seeds (each seed is one repetition of the whole search).
"""

from __future__ import annotations

import itertools
import json
import re
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from regrl.files import write_text_atomic
from regrl.trainers import stats
from regrl.trainers.checkpoint import latest_checkpoint
from regrl.trainers.checks import ConfigError
from regrl.trainers.config_overrides import add_set_flag, set_value, split_key
from regrl.trainers.logging import read_jsonl
from regrl.trainers.run_files import CONFIG_FILE, METRICS_JSONL, SUMMARY_FILE

SPEC_FILE = "sweep.json"
ERROR_FILE = "error.txt"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"


# ============================================================================ pure parts
def yaml_value(raw: str) -> Any:
    """A value as a user writes it on the command line, read like ``--set`` values (YAML
    types, YAML 1.2 numbers such as ``1e-3``; the config loader's bounds apply)."""
    from regrl.trainers.config_yaml import load_yaml_text  # lazy: PyYAML, not at --help

    return load_yaml_text(raw, f"value {raw[:60]!r}") if raw.strip() else ""


def split_top_level(text: str) -> List[str]:
    """Split on commas outside brackets/braces: ``1,[64,64],{a: 1}`` -> 3 items."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def parse_assignment(text: str, flag: str) -> Tuple[str, str]:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise ConfigError(f"{flag} {text!r}: expected KEY.PATH=VALUE")
    key, raw = text.split("=", 1)
    return key.strip(), raw


def parse_grid(items: Sequence[str]) -> List[Tuple[str, List[Any]]]:
    """``--grid KEY=V1,V2`` flags -> [(key, [typed values])]; a key may appear once."""
    grid: List[Tuple[str, List[Any]]] = []
    for text in items:
        key, raw = parse_assignment(text, "--grid")
        if key in [k for k, _ in grid]:
            raise ConfigError(f"--grid {key} is given twice; list all its values in one flag")
        values = [yaml_value(v.strip()) for v in split_top_level(raw)]
        if not raw.strip() or any(v == "" for v in values):
            raise ConfigError(f"--grid {text!r}: empty value")
        grid.append((key, values))
    return grid


def expand_grid(grid: Sequence[Tuple[str, Sequence[Any]]]) -> List[Dict[str, Any]]:
    """The cross product of the grid as a list of ``{key: value}`` points ([{}] for none)."""
    keys = [k for k, _ in grid]
    return [dict(zip(keys, combo)) for combo in itertools.product(*[v for _, v in grid])]


def point_label(point: Dict[str, Any]) -> str:
    """A path-segment-safe name for a grid point (``base`` for the empty grid)."""
    if not point:
        return "base"
    text = ",".join(
        f"{k.split('.')[-1]}={json.dumps(v) if not isinstance(v, str) else v}"
        for k, v in point.items()
    )
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)[:80]


def assign(data: Dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` of a raw config mapping to an already typed ``value`` (the
    path is checked and created as ``--set`` does)."""
    label = f"--grid {key[:120]}"
    set_value(data, split_key(key, label), value, label)


def aggregate_point(finished: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per metric over the finished seeds ``[{"seed", "metrics"}]``: mean, ci95 half-width,
    n and the per-seed values (a metric some seeds lack is aggregated over those that have it)."""
    names = sorted({k for t in finished for k in t["metrics"]})
    out = {}
    for name in names:
        per_seed = {t["seed"]: t["metrics"][name] for t in finished if name in t["metrics"]}
        mean, half = stats.t_interval(list(per_seed.values()))
        out[name] = {
            "mean": mean,
            "ci95": half,
            "n": len(per_seed),
            "per_seed": {str(k): v for k, v in per_seed.items()},
        }
    return out


def aggregate(trials: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Group trial records ``{"point", "label", "seed", "status", "metrics", "error"}`` by
    grid point; only ``finished`` trials enter the statistics, the others are listed."""
    points: Dict[str, Dict[str, Any]] = {}
    for t in trials:
        p = points.setdefault(
            t["label"],
            {
                "label": t["label"],
                "arm": t.get("arm"),
                "point": t["point"],
                "finished": [],
                "failed": [],
                "unfinished": [],
            },
        )
        if t["status"] == "finished":
            p["finished"].append({"seed": t["seed"], "metrics": t["metrics"]})
        elif t["status"] == "failed":
            p["failed"].append({"trial": t["name"], "seed": t["seed"], "error": t["error"]})
        else:
            p["unfinished"].append({"trial": t["name"], "seed": t["seed"]})
    for p in points.values():
        p["n"] = len(p["finished"])
        p["metrics"] = aggregate_point(p.pop("finished"))
    return list(points.values())


def parse_select(text: Optional[str]) -> Optional[Tuple[str, str]]:
    """``--select METRIC:max|min`` -> (metric, mode); None stays None."""
    if text is None:
        return None
    metric, _, mode = text.rpartition(":")
    if not metric or mode not in ("max", "min"):
        raise ConfigError(
            f"--select {text!r}: expected METRIC:max or METRIC:min (e.g. tune/loss:min)"
        )
    return metric, mode


def select_per_seed(trials: List[Dict[str, Any]], metric: str, mode: str) -> List[Dict[str, Any]]:
    """The search's outcome per arm: for each seed, the finished trial whose final ``metric``
    is best (``mode`` max or min; a tie goes to the earlier grid point), then every metric of
    the chosen trials aggregated over seeds (:func:`aggregate_point`).

    Returns one record per arm: ``{"arm", "chosen": [{"seed", "label", "value", "missing"}],
    "n", "metrics"}``; ``missing`` lists the grid points that seed could not choose from
    (failed, unfinished, or without ``metric``), so an incomplete search is visible."""
    arms: Dict[Any, Dict[int, List[Dict[str, Any]]]] = {}
    for t in trials:
        arms.setdefault(t.get("arm"), {}).setdefault(t["seed"], []).append(t)
    sign = 1.0 if mode == "max" else -1.0
    out = []
    for arm, by_seed in arms.items():
        chosen, finished = [], []
        for seed, group in sorted(by_seed.items()):
            ok = [t for t in group if t["status"] == "finished" and metric in t["metrics"]]
            missing = [t["label"] for t in group if t not in ok]
            if not ok:
                chosen.append({"seed": seed, "label": None, "value": None, "missing": missing})
                continue
            best = max(ok, key=lambda t: sign * t["metrics"][metric])  # first of equals wins
            value = best["metrics"][metric]
            chosen.append(
                {"seed": seed, "label": best["label"], "value": value, "missing": missing}
            )
            finished.append({"seed": seed, "metrics": best["metrics"]})
        out.append(
            {
                "arm": arm,
                "chosen": chosen,
                "n": len(finished),
                "metrics": aggregate_point(finished),
            }
        )
    return out


def render_selection(
    selection: List[Dict[str, Any]], metric: str, mode: str, headline: Sequence[str] = ()
) -> str:
    """The results.md section of ``--select``: which point each seed chose, and the chosen
    trials' metrics as mean ± 95% interval over seeds."""
    lines = [
        f"## Selected by {metric} ({mode}), per seed",
        "",
        f"Each seed is one repetition of the search: its grid point with the {mode} final "
        f"`{metric}`; below, the chosen trials' metrics over seeds.",
        "",
    ]
    for sel in selection:
        if sel["arm"] is not None:
            lines += [f"### arm {sel['arm']}", ""]
        for c in sel["chosen"]:
            pick = (
                "nothing to choose from"
                if c["label"] is None
                else f"{c['label']} ({_fmt(c['value'])})"
            )
            gap = f"; not finished: {', '.join(c['missing'])}" if c["missing"] else ""
            lines.append(f"- seed {c['seed']}: {pick}{gap}")
        lines += ["", "| metric | mean ± 95% CI | n | per seed |", "|---|---|---|---|"]
        names = [h for h in headline if h in sel["metrics"]]
        names += [k for k in sel["metrics"] if k not in names]
        for name in names:
            m = sel["metrics"][name]
            seeds = ", ".join(f"{s}: {_fmt(v)}" for s, v in m["per_seed"].items())
            lines.append(f"| {name} | {_ci_cell(m)} | {m['n']} | {seeds} |")
        lines.append("")
    return "\n".join(lines)


def _fmt(x: Optional[float]) -> str:
    return "—" if x is None else f"{x:.4g}"


def _ci_cell(m: Optional[Dict[str, Any]]) -> str:
    if m is None:
        return "—"
    if m["ci95"] is None:
        return f"{_fmt(m['mean'])} (n=1, no interval)"
    return f"{_fmt(m['mean'])} ± {_fmt(m['ci95'])}"


def render_markdown(title: str, points: List[Dict[str, Any]], headline: Sequence[str] = ()) -> str:
    """results.md: with several points, first one comparison table of the ``headline``
    metrics (a row per point); then one table per grid point (mean ± 95% t half-width, n,
    per-seed values)."""
    lines = [
        f"# Sweep {title}",
        "",
        "Each cell: mean ± half-width of the 95% Student-t confidence interval over seeds "
        "(mean ± t_{0.975,n-1}·s/√n); with n=1, no interval. Failed trials are listed "
        "below their point and are not averaged in.",
        "",
    ]
    shown = [h for h in headline if any(h in p["metrics"] for p in points)]
    if len(points) > 1 and shown:
        lines += [
            "| point | n | " + " | ".join(shown) + " |",
            "|---|---|" + "---|" * len(shown),
        ]
        for p in points:
            cells = [_ci_cell(p["metrics"].get(h)) for h in shown]
            lines.append(f"| {p['label']} | {p['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    for p in points:
        lines += [
            f"## {p['label']}",
            "",
            f"grid point: `{json.dumps(p['point'])}`; finished seeds: {p['n']}",
            "",
        ]
        lines += ["| metric | mean ± 95% CI | n | per seed |", "|---|---|---|---|"]
        for name, m in p["metrics"].items():
            ci = _ci_cell(m)
            seeds = ", ".join(f"{s}: {_fmt(v)}" for s, v in m["per_seed"].items())
            lines.append(f"| {name} | {ci} | {m['n']} | {seeds} |")
        for f in p["failed"]:
            lines.append(f"\n**FAILED** trial `{f['trial']}` (seed {f['seed']}): {f['error']}")
        for u in p["unfinished"]:
            lines.append(
                f"\n**UNFINISHED** trial `{u['trial']}` (seed {u['seed']}): resume "
                "with `regrl sweep --resume`"
            )
        lines.append("")
    return "\n".join(lines)


# ============================================================================ the sweep on disk
def trial_records(sweep_dir: Path, spec: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The state of every trial, read from its directory (finished / failed / unfinished)."""
    out = []
    for t in spec["trials"]:
        trial_dir = Path(sweep_dir) / "trials" / t["name"]
        run = finished_run(trial_dir)
        rec = dict(t, status="unfinished", metrics={}, error=None, run_dir=None)
        if run is not None:
            summary = json.loads((run / SUMMARY_FILE).read_text())
            rec.update(status="finished", metrics=summary["metrics"], run_dir=str(run))
        elif (trial_dir / ERROR_FILE).is_file():
            error = (trial_dir / ERROR_FILE).read_text().strip().splitlines()
            rec.update(status="failed", error=error[0] if error else "unknown error")
        out.append(rec)
    return out


def run_dirs(trial_dir: Path) -> List[Path]:
    """The run directories a trial has made (normally one), oldest first."""
    if not Path(trial_dir).is_dir():
        return []
    return sorted(p for p in Path(trial_dir).iterdir() if (p / CONFIG_FILE).is_file())


def finished_run(trial_dir: Path) -> Optional[Path]:
    done = [p for p in run_dirs(trial_dir) if (p / SUMMARY_FILE).is_file()]
    return done[-1] if done else None


def run_trial(trial_dir: Path, kind: str, raw: Dict[str, Any]) -> Dict[str, float]:
    """One trial: skip it when finished, resume its run from a checkpoint, or start it.
    An exception is written to ``error.txt`` (first line: the message) and re-raised."""
    from regrl.trainers.kinds import KINDS, train_kind  # lazy: torch, not at --help

    trial_dir = Path(trial_dir)
    done = finished_run(trial_dir)
    if done is not None:
        return json.loads((done / SUMMARY_FILE).read_text())["metrics"]
    (trial_dir / ERROR_FILE).unlink(missing_ok=True)
    started = [p for p in run_dirs(trial_dir) if latest_checkpoint(p) is not None]
    try:
        if started:
            result = train_kind(kind, resume=started[-1], progress=False)
        else:
            result = train_kind(kind, KINDS.get(kind).load(raw), progress=False)
    except BaseException as exc:
        trial_dir.mkdir(parents=True, exist_ok=True)
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        (trial_dir / ERROR_FILE).write_text(message + "\n\n" + traceback.format_exc())
        raise
    return result.metrics


def make_spec(
    configs: Sequence[str],
    seeds: int,
    grid: Sequence[str],
    sets: Sequence[str],
    name: Optional[str],
    metrics: Sequence[str],
    max_concurrent: Optional[int],
    select: Optional[str] = None,
) -> Tuple[Path, Dict[str, Any]]:
    """Validate every trial's config and lay out a new sweep directory (nothing runs yet).

    ``configs``: one or more (``regrl sweep`` without one stops in :func:`cmd_sweep`). Several (of one kind) are the arms of one sweep: each arm, labelled by its
    file's stem, is crossed with the grid and the seeds, so a baseline runs in the same sweep
    and the same results table as the methods it is compared with."""
    from regrl.trainers.harness import new_run_dir  # lazy: torch, not at --help
    from regrl.trainers.kinds import KINDS, kind_of_data, raw_config  # lazy: torch, not at --help

    if seeds < 1:
        raise ConfigError("--seeds must be >= 1")
    parse_select(select)
    arms = [Path(c).stem for c in configs] if len(configs) > 1 else [None]
    if len(set(arms)) < len(arms):
        dup = sorted({a for a in arms if arms.count(a) > 1})
        raise ConfigError(f"arms are named by file stem; {', '.join(dup)} is given twice")
    if len(configs) > 1 and not name:
        raise ConfigError(f"{len(configs)} configs are the arms of one sweep: name it with --name")
    grid_axes, trials, kind, first = parse_grid(grid), [], None, None
    for config, arm in zip(configs, arms):
        base = raw_config(config, sets)
        arm_kind = kind_of_data(base)
        if kind is not None and arm_kind != kind:
            raise ConfigError(
                f"{config}: kind {arm_kind!r}, but {configs[0]} is {kind!r}; "
                "the arms of one sweep are of one kind"
            )
        kind, driver = arm_kind, KINDS.get(arm_kind)
        loaded = driver.load(base, where=str(config))  # base-config errors name the file
        first = first or loaded
        trials += _trials(
            driver, str(config), base, grid_axes, seeds, int(getattr(loaded, "seed", 0)), arm
        )
    sweep_name = name or first.name
    _check_segment(sweep_name, "--name")
    holder = _Holder(runs_root=str(Path(first.runs_root) / "sweeps"), name=sweep_name)
    sweep_dir = new_run_dir(holder)
    spec = {
        "config": ", ".join(str(c) for c in configs),
        "configs": [str(c) for c in configs],
        "kind": kind,
        "seeds": seeds,
        "grid": list(grid),
        "sets": list(sets),
        "metrics": list(metrics) or list(driver.curve_metrics),
        "max_concurrent": max_concurrent,
        "select": select,
        "cwd": str(Path.cwd()),
        "trials": trials,
    }
    for t in trials:
        t["config"]["runs_root"] = str(sweep_dir / "trials")
    write_text_atomic(sweep_dir / SPEC_FILE, json.dumps(spec, indent=2))
    return sweep_dir, spec


class _Holder:
    def __init__(self, runs_root: str, name: str):
        self.runs_root, self.name = runs_root, name


def _check_segment(name: str, flag: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ConfigError(f"{flag} {name!r}: a name is one path segment")


def _trials(
    driver,
    config: str,
    base: Dict[str, Any],
    grid,
    seeds: int,
    base_seed: int,
    arm: Optional[str] = None,
) -> List[Dict]:
    import copy

    trials, labels = [], set()
    for point in expand_grid(grid):
        label = point_label(point)
        label = label if label not in labels else f"{label}-{len(labels)}"
        if arm is not None:
            label = arm if not point else f"{arm},{label}"
        labels.add(label)
        for k in range(seeds):
            raw = copy.deepcopy(base)
            for key, value in point.items():
                assign(raw, key, value)
            name = f"{label}_seed{k}"
            raw.update(seed=base_seed + k, name=name)
            raw = driver.trial_config(raw)
            try:
                cfg = driver.load(raw, where=f"{config} at grid point {json.dumps(point)}")
                driver.check_trial(cfg)
            except ConfigError as exc:
                raise ConfigError(str(exc)) from None
            trials.append(
                {
                    "name": name,
                    "label": label,
                    "arm": arm,
                    "point": point,
                    "seed": base_seed + k,
                    "config": raw,
                    "bundles": driver.bundles(cfg),
                }
            )
    return trials


# ============================================================================ Ray Tune
def _trainable(config: Dict[str, Any], sweep_dir: str) -> None:
    """The Tune function trainable: one trial = one run of its kind's driver."""
    import os

    from ray import tune  # lazy: not at --help

    spec = json.loads((Path(sweep_dir) / SPEC_FILE).read_text())
    os.chdir(spec["cwd"])  # relative data paths in configs mean the sweep's working directory
    trial = next(t for t in spec["trials"] if t["name"] == config["trial"])
    metrics = run_trial(Path(sweep_dir) / "trials" / trial["name"], spec["kind"], trial["config"])
    tune.report({k: v for k, v in metrics.items() if isinstance(v, (int, float))} or {"done": 1})


def _trial_callback():
    from ray.tune import Callback  # lazy: not at --help

    class OneLinePerTrial(Callback):
        """``trial NAME: finished | FAILED`` as each trial ends (the runs themselves are quiet)."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            print(f"trial {trial.config['trial']}: finished", flush=True)

        def on_trial_error(self, iteration, trials, trial, **info):
            print(f"trial {trial.config['trial']}: FAILED (see its error.txt)", flush=True)

    return OneLinePerTrial()


def run_serial(sweep_dir: Path, spec: Dict[str, Any]) -> None:
    """``--serial``: the trials that have not finished, one after another in this process,
    without Ray (a small machine, debugging). A failed trial is recorded like a Tune trial's
    (``error.txt``) and the next one runs; Ctrl-C stops the sweep (``--resume`` goes on)."""
    import os

    here = os.getcwd()
    os.chdir(spec["cwd"])  # relative data paths in configs mean the sweep's working directory
    try:
        for t in trial_records(sweep_dir, spec):
            if t["status"] == "finished":
                continue
            try:
                run_trial(Path(sweep_dir) / "trials" / t["name"], spec["kind"], t["config"])
                print(f"trial {t['name']}: finished", flush=True)
            except Exception:  # recorded in error.txt by run_trial
                print(f"trial {t['name']}: FAILED (see its error.txt)", flush=True)
    finally:
        os.chdir(here)


def run_tune(sweep_dir: Path, spec: Dict[str, Any], address: Optional[str]) -> None:
    """Run the trials that have not finished as Ray Tune trials, each reserving its driver's
    resource bundles (a placement group: the trial's own actors are scheduled inside it)."""
    import os

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # runs write their own tb/
    from ray import tune  # lazy: not at --help
    from ray.tune.logger import JsonLoggerCallback  # lazy: not at --help

    from regrl.trainers.ray_session import init_ray  # lazy: ray, for a sweep that runs

    pending = [t for t in trial_records(sweep_dir, spec) if t["status"] != "finished"]
    if not pending:
        return
    init_ray(address)
    bundles = {t["name"]: t["bundles"] for t in pending}
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, sweep_dir=str(sweep_dir)),
        lambda cfg: tune.PlacementGroupFactory(bundles[cfg["trial"]], strategy="PACK"),
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t["name"] for t in pending])},
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.get("max_concurrent")),
        run_config=tune.RunConfig(
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(Path(sweep_dir).resolve()),
            verbose=0,
            callbacks=[_trial_callback(), JsonLoggerCallback()],
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    tuner.fit()


# ============================================================================ outputs
def write_results(sweep_dir: Path, spec: Dict[str, Any]) -> Dict[str, Any]:
    """results.json, results.md and curves/*.png from what the trial directories hold."""
    records = trial_records(sweep_dir, spec)
    points = aggregate(records)
    figures = write_curves(sweep_dir, records, spec["metrics"])
    select = parse_select(spec.get("select"))
    selection = select_per_seed(records, *select) if select else None
    body = {
        "sweep_dir": str(sweep_dir),
        "kind": spec["kind"],
        "config": spec["config"],
        "interval": "95% Student t over seeds: mean ± t_{0.975,n-1} s/sqrt(n)",
        "points": points,
        "select": spec.get("select"),
        "selection": selection,
        "figures": figures,
        "trials": [
            {k: r[k] for k in ("name", "label", "seed", "status", "run_dir", "error")}
            for r in records
        ],
    }
    write_text_atomic(Path(sweep_dir) / RESULTS_JSON, json.dumps(body, indent=2))
    md = render_markdown(Path(sweep_dir).parent.name, points, spec["metrics"])
    if selection is not None:
        md += "\n" + render_selection(selection, *select, spec["metrics"])
    md += (
        "\n"
        + "\n".join(f"![{Path(f).stem}]({Path(f).relative_to(sweep_dir)})" for f in figures)
        + "\n"
    )
    write_text_atomic(Path(sweep_dir) / RESULTS_MD, md)
    return body


def write_curves(
    sweep_dir: Path, records: List[Dict[str, Any]], metrics: Sequence[str]
) -> List[str]:
    """One PNG per metric: per grid point the mean over finished seeds with a 95% t band."""

    by_label: Dict[str, List[List[Dict[str, Any]]]] = {}
    for r in records:
        if r["status"] == "finished":
            by_label.setdefault(r["label"], []).append(
                read_jsonl(Path(r["run_dir"]) / METRICS_JSONL)
            )
    figures = []
    for metric in metrics:
        curves = {label: stats.curve_band(runs, metric) for label, runs in by_label.items()}
        curves = {k: v for k, v in curves.items() if v[0]}
        if curves:
            figures.append(str(_plot(Path(sweep_dir) / "curves", metric, curves)))
    return figures


def _plot(out_dir: Path, metric: str, curves: Dict[str, tuple]) -> Path:
    import matplotlib  # lazy: not at --help

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after matplotlib.use

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, (steps, mean, half) in curves.items():
        stats.plot_band(ax, steps, mean, half, label, marker=".")
    ax.set(xlabel="iteration", ylabel=metric, title=f"{metric} (mean, 95% t band over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (re.sub(r"[^A-Za-z0-9._-]", "_", metric) + ".png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ============================================================================ CLI
def add_cli(sub) -> None:
    """``regrl sweep CONFIG [CONFIG ...] --seeds N [--grid K=V1,V2] ...`` and
    ``regrl sweep --resume DIR``."""
    p = sub.add_parser("sweep", help="grid x seeds as Ray Tune trials, with 95%% intervals")
    p.add_argument(
        "config",
        nargs="*",
        help="experiment YAML of any kind (omit with --resume); several YAMLs of one kind are "
        "the arms of one sweep, named by file stem (needs --name)",
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per grid point (seed, seed+1, ..)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY.PATH=V1,V2",
        help="a grid axis (repeatable; the cross product is run)",
    )
    add_set_flag(p)
    p.add_argument("--address", help="Ray address: 'auto' on a cluster head")
    p.add_argument(
        "--max-concurrent",
        type=int,
        help="trials running at once (default: as many as the resources allow)",
    )
    p.add_argument("--name", help="sweep name (default: the config's name)")
    p.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        default=[],
        help="metric to plot as a learning curve (repeatable; default by kind)",
    )
    p.add_argument(
        "--select",
        metavar="METRIC:max|min",
        help="also report the search's outcome: per seed, the grid point with the best final "
        "METRIC (e.g. tune/loss:min, a held-out split), and its other metrics over seeds",
    )
    p.add_argument(
        "--serial",
        action="store_true",
        help="run the trials one after another in this process, without Ray (same trials, "
        "run directories and results)",
    )
    p.add_argument("--resume", metavar="SWEEP_DIR", help="finish an interrupted sweep")
    p.set_defaults(handler=cmd_sweep)


def cmd_sweep(args) -> int:
    if args.serial and (args.address or args.max_concurrent is not None):
        raise ConfigError("--serial runs the trials in this process without Ray; "
                          "--address and --max-concurrent do not apply")  # fmt: skip
    if args.resume:
        if args.config or args.overrides or args.grid or args.select:
            raise ConfigError(
                "--resume continues a sweep with its saved spec; give no CONFIG, "
                "--grid, --set or --select with it"
            )
        sweep_dir = Path(args.resume).resolve()
        if not (sweep_dir / SPEC_FILE).is_file():
            raise ConfigError(f"--resume {args.resume}: not a sweep directory (no {SPEC_FILE})")
        spec = json.loads((sweep_dir / SPEC_FILE).read_text())
    elif not args.config:
        raise ConfigError("sweep needs a CONFIG file (or --resume SWEEP_DIR)")
    else:
        if args.max_concurrent is not None and args.max_concurrent < 1:
            raise ConfigError("--max-concurrent must be >= 1")
        sweep_dir, spec = make_spec(
            args.config,
            args.seeds,
            args.grid,
            args.overrides,
            args.name,
            args.metrics,
            args.max_concurrent,
            args.select,
        )
    print(f"sweep: {len(spec['trials'])} trials ({spec['kind']}) in {sweep_dir}", flush=True)
    start = time.perf_counter()
    if args.serial:
        run_serial(sweep_dir, spec)
    else:
        run_tune(sweep_dir, spec, args.address)
    body = write_results(sweep_dir, spec)
    failed = [t for t in body["trials"] if t["status"] != "finished"]
    print(
        f"done in {time.perf_counter() - start:.0f}s: "
        f"{len(body['trials']) - len(failed)}/{len(body['trials'])} trials finished"
        + (f"; NOT finished: {', '.join(t['name'] for t in failed)}" if failed else "")
    )
    for sel in body["selection"] or []:
        picks = ", ".join(f"seed {c['seed']}: {c['label']}" for c in sel["chosen"])
        print(
            f"selected by {spec['select']}"
            + (f" ({sel['arm']})" if sel["arm"] else "")
            + f": {picks}"
        )
    print(f"results: {sweep_dir / RESULTS_MD}\nTensorBoard: tensorboard --logdir {sweep_dir}")
    return 1 if failed else 0
