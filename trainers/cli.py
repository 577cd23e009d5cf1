"""``regrl`` command line: train | validate | list | eval, plus domain tools.

Bad input (unknown keys, wrong types, out-of-range values, missing files) prints one clear
``error:`` line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path
from typing import List, Optional

from regrl.agents.registry import UnknownNameError
from regrl.trainers.checkpoint import RunAborted  # light as well (file logic only)
from regrl.trainers.checks import ConfigError, missing_extra  # light: no torch for `regrl --help`
from regrl.trainers.config_overrides import add_set_flag  # light: the YAML reader loads on use
from regrl.trainers.hashseed import ensure_fixed_hash_seed  # light: os and sys
from regrl.trainers.lazy_parser import LazyParser  # light: argparse only
from regrl.trainers.plugins import DOMAIN_CLIS as DOMAIN_CLI_MODULES
from regrl.trainers.run_files import CONFIG_FILE, EVAL_FILE, TB_DIR  # light: names only
from regrl.trainers.stop_signal import EXIT_TERMINATED, Terminated  # light: stdlib only

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
MAX_ERROR_CHARS = 2000

# Domain tool groups (``regrl turbulence ...`` etc.). Each module has ``add_cli(sub)``, which
# adds its sub-parser and sets ``handler=fn(args) -> int`` as a default; it imports heavy
# dependencies inside the handler so ``regrl --help`` stays fast and works without extras.
CORE_CLIS = ("regrl.trainers.sweep", "regrl.trainers.results", "regrl.trainers.data_cli")
DOMAIN_CLIS = DOMAIN_CLI_MODULES + CORE_CLIS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="regrl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=LazyParser)
    t = sub.add_parser("train", help="train an experiment (or --resume a run)")
    t.add_argument("config", nargs="?", help="experiment YAML (omit with --resume)")
    add_set_flag(t)
    t.add_argument("--address", help="Ray address: 'auto' on a cluster head, or ray://HOST:PORT")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no per-iteration progress")
    t.add_argument("--eval", action="store_true", help="run `regrl eval` on the run afterwards")
    v = sub.add_parser("validate", help="check a config without running it")
    v.add_argument("config")
    add_set_flag(v)
    sub.add_parser("list", help="environments, objective terms and offline plugins")
    e = sub.add_parser("eval", help="evaluate a run's latest checkpoint or a policy file (.pt)")
    e.add_argument("run_dir", help="run directory, or a policy file FILE.pt with FILE.json")
    e.add_argument("--episodes", type=int, help="episodes (default: the run's eval.episodes)")
    e.add_argument(
        "--out", help="output directory for a policy file (default runs/policy_eval/NAME)"
    )
    x = sub.add_parser(
        "export", help="write a run's latest policy as a weights-only policy file (.pt + .json)"
    )
    x.add_argument("run_dir")
    x.add_argument("--out", required=True, help="policy file FILE.pt (FILE.json is written too)")
    x.add_argument("--command", dest="train_command", help="the command that trained the run")
    for module in DOMAIN_CLIS:
        importlib.import_module(module).add_cli(sub)
    return p


def _config_path(args) -> Optional[str]:
    """The file whose ``kind:`` picks the driver: the config, or a run's saved config."""
    run_dir = getattr(args, "resume", None) or getattr(args, "run_dir", None)
    return str(Path(run_dir) / CONFIG_FILE) if run_dir else getattr(args, "config", None)


def cmd_train(args) -> int:
    from regrl.trainers.kinds import KINDS, kind_of_path, train_kind  # lazy: torch, not at --help

    if args.resume and (args.config or args.overrides):
        raise ConfigError(
            "--resume continues a run with its saved config; give no CONFIG or --set with it"
        )
    if args.resume and not Path(args.resume).is_dir():
        raise ConfigError(f"--resume {args.resume}: no such run directory")
    if not args.resume and not args.config:
        raise ConfigError("train needs a CONFIG file (or --resume RUN_DIR)")
    kind = kind_of_path(_config_path(args))
    driver = KINDS.get(kind)
    cfg = None if args.resume else driver.load(args.config, args.overrides)
    result = train_kind(
        kind,
        cfg,
        resume=Path(args.resume) if args.resume else None,
        address=args.address,
        progress=not args.quiet,
    )
    print(result.line)
    if args.eval:
        driver.evaluate(result.run_dir, None)
        print(f"TensorBoard: tensorboard --logdir {result.run_dir / TB_DIR}")
    return 0


def cmd_validate(args) -> int:
    import yaml  # lazy: only validate prints YAML

    from regrl.trainers.kinds import driver_for  # lazy: torch, not at --help

    driver = driver_for(args.config)
    dumped = driver.dump(driver.load(args.config, args.overrides))
    print(f"{args.config}: OK")
    print(yaml.safe_dump(dumped, sort_keys=False), end="")
    return 0


def cmd_list(args) -> int:
    # lazy: these registries import torch (and ENVS its domain modules), not at --help
    from regrl.agents.objectives import OBJECTIVES
    from regrl.agents.objectives.terms import TERMS
    from regrl.agents.offline import PLUGINS
    from regrl.trainers.envs import ENVS

    sections = [
        ("environments (plus any gymnasium id)", ENVS),
        ("objective terms (objective.terms; kind rl and kind rlvr)", TERMS),
        ("objective functions (regrl.agents.objectives)", OBJECTIVES),
        ("offline plugins", PLUGINS),
    ]
    for title, reg in sections:
        print(f"{title}:")
        if reg is None or not reg.names():
            print("  (none yet)")
            continue
        for entry in reg:
            print(f"  {entry.name:<28} {entry.description}")
    return 0


def cmd_eval(args) -> int:
    from regrl.trainers.kinds import driver_for  # lazy: torch, not at --help

    if args.episodes is not None and args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    path = Path(args.run_dir)
    if path.is_file():
        return _eval_policy_file(path, args)
    if not path.is_dir():
        raise ConfigError(f"{args.run_dir}: no such run directory or policy file")
    return driver_for(args.run_dir).evaluate(path, args.episodes)


def _eval_policy_file(path: Path, args) -> int:
    from regrl.trainers.evaluate import evaluate_policy_file  # lazy: torch, not at --help
    from regrl.trainers.rllib.policy_file import SUFFIX, provenance_path

    if path.suffix != SUFFIX or not provenance_path(path).is_file():
        raise ConfigError(f"{path}: a policy file is FILE{SUFFIX} with its FILE.json next to it")
    out = Path(args.out) if args.out else Path("runs") / "policy_eval" / path.stem
    try:
        report = evaluate_policy_file(path, out, args.episodes)
    except ValueError as exc:  # a file that does not fit its own config
        raise ConfigError(str(exc)) from None
    if "table" in report:
        print((out / report["table"]).read_text(), end="")
    for fig in report.get("figures", []):
        print(f"figure: {fig}")
    print(f"report: {out / EVAL_FILE}")
    return 0


def cmd_export(args) -> int:
    from regrl.trainers.rllib.policy_file import export_run  # lazy: torch, ray

    if not Path(args.run_dir).is_dir():
        raise ConfigError(f"{args.run_dir}: no such run directory")
    try:
        path = export_run(Path(args.run_dir), Path(args.out), args.train_command)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"wrote {path} and {path.with_suffix('.json')} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


COMMANDS = {
    "train": cmd_train,
    "validate": cmd_validate,
    "list": cmd_list,
    "eval": cmd_eval,
    "export": cmd_export,
}


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None) or COMMANDS[args.command]
        return handler(args)
    except (ConfigError, FileNotFoundError, UnknownNameError) as exc:
        _error(str(exc))
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `regrl list | head`: the reader left; nothing more to say
        sys.stderr.close()
        return 0
    except ConnectionError as exc:  # ray.init(address=...) found no cluster
        _error(f"cannot reach the Ray cluster: {exc}")
        return EXIT_BAD_INPUT
    except RunAborted as exc:  # not bad input: the run could not go on (it is checkpointed)
        _error(str(exc))
        return 1
    except Terminated:  # SIGTERM: the run is checkpointed and said so in one line
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:  # an optional dependency: name the extra that brings it
        fix = missing_extra(exc)
        if fix is None:
            return _internal_error(exc)
        _error(fix)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a user path we cannot read or write (permissions, a file in the way)
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}")
        return EXIT_BAD_INPUT
    except Exception as exc:
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    """A bug in regrl: keep the traceback, end with one line saying so."""
    traceback.print_exception(exc)
    _error(
        f"internal error in regrl (this is a bug, please report it): {type(exc).__name__}: {exc}"
    )
    return EXIT_INTERNAL


def _error(message: str) -> None:
    """Print ``message`` as exactly one ``error:`` line on stderr, cut to MAX_ERROR_CHARS
    (a message may quote user values; it never prints a whole one, issue 15)."""
    line = " ".join(message.split())
    if len(line) > MAX_ERROR_CHARS:
        line = line[: MAX_ERROR_CHARS - 3] + "..."
    print(f"error: {line}", file=sys.stderr)


def entry() -> int:
    """The ``regrl`` console script: :func:`main` in a process whose string hashing is fixed
    (``trainers/hashseed.py``: re-executed once with ``PYTHONHASHSEED=0`` when unset, so that
    one seed gives one run)."""
    ensure_fixed_hash_seed()
    return main()


if __name__ == "__main__":
    sys.exit(entry())
