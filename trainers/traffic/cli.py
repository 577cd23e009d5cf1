"""``regrl traffic ...``: RIFT traffic tools (demonstrations, stage-1 pretraining, comparison)."""

from __future__ import annotations

from regrl.trainers.checks import MAX_INT, ConfigError, short_repr
from regrl.trainers.config_overrides import add_set_flag
from regrl.trainers.run_files import CONFIG_FILE
from regrl.trainers.traffic.names import PLANNER_FILE, PRETRAIN_KIND, RIFT_ENVS

DEMO_LIMITS = {"episodes": 100_000, "horizon": 100_000, "every": 100_000, "num_cbv": 64}
"""Upper bounds of `regrl traffic demos` counts (10⁵ episodes of MetaDrive take days; a
horizon of 10⁵ steps is ~3 h of simulated driving)."""

_HELP = {
    "episodes": "episodes to record",
    "seed": "first scenario seed (episode e uses seed+e)",
    "family": "scenario family (default | long | dense | roundabout | merge | contest); "
    "it sets the scenario flags not given",
    "map": "intersection | roundabout | pg",
    "pg_map": "PG block string of --map pg (e.g. SrSyS)",
    "num_cbv": "CBV slots (IDM-driven here)",
    "horizon": "steps per episode (0.1 s each)",
    "every": "sample every k steps",
    "traffic_density": "MetaDrive IDM traffic density",
}
_TYPES = {"map": str, "pg_map": str, "num_cbv": int, "horizon": int, "traffic_density": float}
"""Types of the DemoSpec fields whose default is None (the family's value)."""


def add_cli(sub) -> None:
    # DemoSpec's module imports numpy: the flags are built only when `regrl traffic ...` is
    # run, so `regrl --help` stays light (regrl.trainers.lazy_parser)
    sub.add_parser("traffic", help="RIFT traffic tools (MetaDrive)", populate=_populate)


def _populate(traffic) -> None:
    from dataclasses import fields

    from regrl.envs.traffic.demos import DemoSpec

    tsub = traffic.add_subparsers(dest="action", required=True)
    demo = tsub.add_parser(
        "demos",
        help="record IDM-driven vehicles in the RIFT scenarios at "
        "10 Hz: scene features + 4 s ground-truth futures -> .npz",
    )
    demo.add_argument("--out", required=True, help="output .npz path")
    for f in fields(DemoSpec):
        demo.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=_TYPES.get(f.name, type(f.default)),
            default=f.default,
            help=f"{_HELP[f.name]} (default {'the family' if f.default is None else f.default})",
        )
    demo.set_defaults(handler=_demos)
    pre = tsub.add_parser(
        "pretrain",
        help="RIFT stage 1: imitation pre-training of the "
        "multimodal planner on the demonstrations (same as regrl train)",
    )
    pre.add_argument("config", help="planner YAML (kind: planner), e.g. configs/rift_pretrain.yaml")
    add_set_flag(pre)
    pre.set_defaults(handler=_pretrain)
    cmp = tsub.add_parser(
        "compare",
        help="evaluate RIFT / baseline runs on the same held-out "
        "scenarios -> markdown table, JSON and metric bars",
    )
    cmp.add_argument("run_dirs", nargs="+", help="RL run dirs and stage-1 (IL only) run dirs")
    cmp.add_argument("--out", required=True, help="output directory")
    cmp.add_argument("--episodes", type=int, help="episodes per run (default: the run's eval)")
    cmp.add_argument(
        "--no-reuse",
        dest="no_reuse",
        action="store_true",
        help="re-evaluate runs that already have an eval.json",
    )
    cmp.set_defaults(handler=_compare)


def _pretrain(args) -> int:
    from regrl.trainers.traffic.pretrain import pretrain_command

    return pretrain_command(args)


def check_rift_run(run_dir: str) -> None:
    """Refuse (ConfigError) a directory that is not a RIFT RL run or a stage-1 planner run,
    before anything is evaluated."""
    from pathlib import Path

    from regrl.trainers.config_yaml import read_yaml

    d = Path(run_dir)
    if not d.is_dir():
        raise ConfigError(f"{short_repr(run_dir)}: no such run directory")
    if not (d / CONFIG_FILE).is_file():
        if (d / PLANNER_FILE).is_file():
            return
        raise ConfigError(f"{short_repr(run_dir)}: not a regrl run directory (no {CONFIG_FILE})")
    data = read_yaml(d / CONFIG_FILE)
    kind, env = data.get("kind", "rl"), data.get("env")
    name = env.get("name") if isinstance(env, dict) else None
    if kind == PRETRAIN_KIND or (kind == "rl" and name in RIFT_ENVS):
        return
    raise ConfigError(
        f"{short_repr(run_dir)}: not a RIFT run (kind {short_repr(kind)}, env "
        f"{short_repr(name)}); compare takes RL runs on {' or '.join(RIFT_ENVS)} "
        f"and stage-1 runs (kind: {PRETRAIN_KIND})"
    )


def _compare(args) -> int:
    from pathlib import Path

    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {short_repr(args.out)} is a file; give a directory")
    for run_dir in args.run_dirs:
        check_rift_run(run_dir)
    from regrl.trainers.traffic.compare import compare_command

    return compare_command(args)


def _spec(args):
    from dataclasses import fields

    from regrl.envs.traffic.backend import MAPS
    from regrl.envs.traffic.demos import DemoSpec
    from regrl.envs.traffic.families import FAMILIES

    if args.family not in FAMILIES:
        raise ConfigError(f"--family must be one of {', '.join(FAMILIES)}, got {args.family!r}")
    spec = DemoSpec(**{f.name: getattr(args, f.name) for f in fields(DemoSpec)}).resolved()
    for name, hi in DEMO_LIMITS.items():
        if not 1 <= getattr(spec, name) <= hi:
            raise ConfigError(
                f"--{name.replace('_', '-')} must be >= 1 and <= {hi}, got {getattr(spec, name)}"
            )
    if not 0 <= spec.seed <= MAX_INT - spec.episodes:  # MetaDrive seeds are int32
        raise ConfigError(f"--seed must be in 0..{MAX_INT - spec.episodes}, got {spec.seed}")
    if spec.map not in MAPS:
        raise ConfigError(f"--map must be one of {', '.join(MAPS)}, got {spec.map!r}")
    if not 0.0 <= spec.traffic_density <= 1.0:
        raise ConfigError(f"--traffic-density must be in [0, 1], got {spec.traffic_density}")
    return spec


def _demos(args) -> int:
    import time
    from pathlib import Path

    from regrl.envs.traffic.demos import record_demos, save_demos
    from regrl.trainers.data_cli import atomic_output, make_parent

    spec = _spec(args)
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ConfigError(f"--out must end in .npz, got {out}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a .npz file path")
    make_parent(out)  # now: a file in the way is an error before the recording, not after
    start = time.time()
    data = record_demos(
        spec, progress=lambda msg: print(f"[{time.time() - start:6.1f}s] {msg}", flush=True)
    )
    with atomic_output(out) as fh:
        save_demos(fh, data, spec)
    print(f"wrote {out}: {len(data['obs'])} samples, {len(data['speed'])} vehicle-steps")
    return 0
