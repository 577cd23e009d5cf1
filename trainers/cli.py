"""``regrl`` command line: train | validate | list | eval, plus domain tools.

Bad input (unknown keys, wrong types, out-of-range values, missing files) prints one clear
``error:`` line and exits with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import List, Optional

from agents.registry import UnknownNameError
from trainers.checks import ConfigError  # light: `regrl --help` does not load torch

EXIT_BAD_INPUT = 2

# Domain tool groups (``regrl turbulence ...`` etc.). Each module has ``add_cli(sub)``, which
# adds its sub-parser and sets ``handler=fn(args) -> int`` as a default; it imports heavy
# dependencies inside the handler so ``regrl --help`` stays fast and works without extras.
DOMAIN_CLIS = ("trainers.turbulence_cli", "trainers.text_cli", "trainers.traffic_cli", "trainers.rlvr.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="regrl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an experiment (or --resume a run)")
    t.add_argument("config", nargs="?", help="experiment YAML (omit with --resume)")
    t.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY.PATH=VALUE", help="override a config value (repeatable)")
    t.add_argument("--address", help="Ray address: 'auto' on a cluster head, or ray://HOST:PORT")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no per-iteration progress")
    t.add_argument("--eval", action="store_true", help="run `regrl eval` on the run afterwards")
    v = sub.add_parser("validate", help="check a config without running it")
    v.add_argument("config")
    v.add_argument("--set", dest="overrides", action="append", default=[])
    sub.add_parser("list", help="environments, objective terms and offline plugins")
    e = sub.add_parser("eval", help="evaluate a run's latest checkpoint")
    e.add_argument("run_dir")
    e.add_argument("--episodes", type=int, help="episodes (default: the run's eval.episodes)")
    for module in DOMAIN_CLIS:
        importlib.import_module(module).add_cli(sub)
    return p


def _validated(args) -> "object":
    from trainers.envs import probe_env

    from trainers.config import load_config

    cfg = load_config(args.config, args.overrides)
    need_discrete = any(t.name == "lp_reg" for t in cfg.objective.terms)
    try:
        probe_env(cfg.env.name, dict(cfg.env.kwargs), need_discrete=need_discrete)
    except (UnknownNameError, ValueError) as exc:
        raise ConfigError(f"{args.config}: env: {exc}") from None
    return cfg


def _is_offline(args) -> bool:
    """Offline (supervised/BC) experiments say ``kind: offline`` at the top of their YAML."""
    from trainers.config import read_yaml
    from trainers.offline import is_offline_config

    path = Path(args.resume) / "config.yaml" if getattr(args, "resume", None) else args.config
    return bool(path) and Path(path).is_file() and is_offline_config(read_yaml(path))


def _rlvr_kind(args) -> bool:
    """RLVR and SFT experiments say ``kind: rlvr`` / ``kind: sft`` at the top of their YAML."""
    from trainers.rlvr.cli import kind_of

    return kind_of(args) is not None


def _train_offline(args) -> int:
    from trainers.offline import load_offline_config, train_offline

    kw = dict(progress=not args.quiet, address=args.address)
    if args.resume:
        result = train_offline(resume=Path(args.resume), **kw)
    else:
        result = train_offline(load_offline_config(args.config, args.overrides), **kw)
    print(f"done: {result.epoch} epochs; run directory: {result.run_dir}")
    return 0


def _yaml_kind(args) -> Optional[str]:
    """The ``kind:`` of the config file (or of a --resume run's saved config), if any."""
    from trainers.config import read_yaml

    path = Path(args.resume) / "config.yaml" if getattr(args, "resume", None) else args.config
    if not path or not Path(path).is_file():
        return None
    data = read_yaml(path)
    return data.get("kind") if isinstance(data, dict) else None


def cmd_train(args) -> int:
    from trainers.run import train

    if args.resume and (args.config or args.overrides):
        raise ConfigError("--resume continues a run with its saved config; "
                          "give no CONFIG or --set with it")
    if args.resume and not Path(args.resume).is_dir():
        raise ConfigError(f"--resume {args.resume}: no such run directory")
    if not args.resume and not args.config:
        raise ConfigError("train needs a CONFIG file (or --resume RUN_DIR)")
    if _rlvr_kind(args):  # kind: rlvr | sft -> trainers.rlvr
        from trainers.rlvr import cli as rlvr_cli
        return rlvr_cli.train(args)
    if _yaml_kind(args) == "planner":  # RIFT stage 1
        if args.resume:
            raise ConfigError("planner pre-training has no --resume; rerun it (minutes)")
        from trainers.traffic import pretrain_command
        return pretrain_command(args)
    if _is_offline(args):
        return _train_offline(args)
    if args.resume:
        result = train(resume=Path(args.resume), address=args.address, progress=not args.quiet)
    else:
        result = train(_validated(args), address=args.address, progress=not args.quiet)
    ret = result.metrics.get("env/episode_return_mean", float("nan"))
    print(f"done: {result.iteration} iterations, {int(result.env_steps)} env steps, "
          f"episode_return_mean {ret:.2f}")
    if args.eval:
        cmd_eval(argparse.Namespace(run_dir=str(result.run_dir), episodes=None))
        print(f"TensorBoard: tensorboard --logdir {result.run_dir / 'tb'}")
    return 0


def cmd_validate(args) -> int:
    import yaml

    if _rlvr_kind(args):
        from trainers.rlvr import cli as rlvr_cli
        return rlvr_cli.validate(args)
    if _yaml_kind(args) == "planner":
        from dataclasses import asdict

        from trainers.traffic import load_pretrain_config

        print(f"{args.config}: OK")
        print(yaml.safe_dump(asdict(load_pretrain_config(args.config, args.overrides)),
                             sort_keys=False), end="")
        return 0
    if _is_offline(args):
        from trainers.offline import load_offline_config, offline_to_dict

        dumped = offline_to_dict(load_offline_config(args.config, args.overrides))
    else:
        from trainers.config import to_dict

        dumped = to_dict(_validated(args))
    print(f"{args.config}: OK")
    print(yaml.safe_dump(dumped, sort_keys=False), end="")
    return 0


def cmd_list(args) -> int:
    from trainers.envs import ENVS
    from trainers.rllib.terms import TERMS
    from agents.objectives import OBJECTIVES

    sections = [("environments (plus any gymnasium id)", ENVS),
                ("objective terms (objective.terms)", TERMS),
                ("objective functions (agents.objectives)", OBJECTIVES)]
    from agents.offline import PLUGINS
    from trainers.rlvr.terms import RLVR_TERMS

    sections += [("offline plugins", PLUGINS), ("RLVR objective terms (kind: rlvr)", RLVR_TERMS)]
    for title, reg in sections:
        print(f"{title}:")
        if reg is None or not reg.names():
            print("  (none yet)")
            continue
        for entry in reg:
            print(f"  {entry.name:<28} {entry.description}")
    return 0


def cmd_eval(args) -> int:
    from trainers.evaluate import evaluate

    if not Path(args.run_dir).is_dir():
        raise ConfigError(f"{args.run_dir}: no such run directory")
    if args.episodes is not None and args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    if _rlvr_kind(args):  # RLVR / SFT runs: curves from the logged metrics
        from trainers.rlvr import cli as rlvr_cli
        return rlvr_cli.evaluate(args)
    report = evaluate(Path(args.run_dir), args.episodes)
    run_dir = Path(args.run_dir)
    if "table" in report:  # evaluators with a results table (SMARL) print it, not the JSON
        print((run_dir / report["table"]).read_text(), end="")
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "per_episode"}, indent=2))
    for fig in report.get("figures", []):
        print(f"figure: {fig}")
    print(f"report: {run_dir / 'eval.json'}")
    return 0


COMMANDS = {"train": cmd_train, "validate": cmd_validate, "list": cmd_list, "eval": cmd_eval}


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except (ConfigError, FileNotFoundError, UnknownNameError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConnectionError as exc:  # ray.init(address=...) found no cluster
        print(f"error: cannot reach the Ray cluster: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
