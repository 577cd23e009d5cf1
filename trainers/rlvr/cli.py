"""CLI glue for RLVR and SFT files: ``regrl train|validate|eval`` dispatch here when the YAML
(or the run's saved config) says ``kind: rlvr`` or ``kind: sft``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import yaml

from trainers.config import ConfigError, read_yaml


def kind_of(args) -> Optional[str]:
    """``rlvr``/``sft`` when the config (or ``--resume``/eval run dir's config) is one of ours."""
    from trainers.rlvr.config import config_kind

    run_dir = getattr(args, "resume", None) or getattr(args, "run_dir", None)
    path = Path(run_dir) / "config.yaml" if run_dir else getattr(args, "config", None)
    if not path or not Path(path).is_file():
        return None
    return config_kind(read_yaml(path))


def train(args) -> int:
    from trainers.rlvr import config as rc

    resume = Path(args.resume) if args.resume else None
    cfg = None if resume else rc.load(args.config, args.overrides)
    if kind_of(args) == "sft":
        from trainers.rlvr.sft import train_sft

        result = train_sft(cfg, resume=resume, progress=not args.quiet)
        print(f"done: {result.epoch} epochs; run directory: {result.run_dir}")
        return 0
    from trainers.rlvr.loop import train_rlvr

    result = train_rlvr(cfg, resume=resume, address=args.address, progress=not args.quiet)
    acc = result.metrics.get("eval/pass@1", result.metrics.get("train/accuracy", float("nan")))
    print(f"done: {result.step} steps; accuracy {acc:.3f}; run directory: {result.run_dir}")
    if getattr(args, "eval", False):
        evaluate(argparse_namespace(run_dir=str(result.run_dir)))
    return 0


def argparse_namespace(**kw):
    import argparse

    return argparse.Namespace(**kw)


def validate(args) -> int:
    from trainers.rlvr import config as rc

    cfg = rc.load(args.config, args.overrides)
    print(f"{args.config}: OK")
    print(yaml.safe_dump(rc.dump(cfg), sort_keys=False), end="")
    return 0


def evaluate(args) -> int:
    from trainers.rlvr.evaluate import evaluate_run

    report = evaluate_run(Path(args.run_dir))
    print(json.dumps(report["last"], indent=2, sort_keys=True))
    for fig in report["figures"]:
        print(f"figure: {fig}")
    print(f"report: {Path(args.run_dir) / 'eval.json'}")
    return 0


def add_cli(sub) -> None:
    """``regrl rlvr terms``: the RLVR objective terms and their YAML parameters."""
    p = sub.add_parser("rlvr", help="RLVR tools (kind: rlvr / kind: sft files train with `regrl train`)")
    psub = p.add_subparsers(dest="action", required=True)
    psub.add_parser("terms", help="list RLVR objective terms and their parameters").set_defaults(handler=_terms)
    c = psub.add_parser("compare", help="table + figure of several RLVR runs' entropy/accuracy")
    c.add_argument("run_dirs", nargs="+")
    c.add_argument("--out", default="rlvr_compare.png", help="figure path (PNG)")
    c.set_defaults(handler=_compare)


def _compare(args) -> int:
    from trainers.rlvr.evaluate import compare_runs

    missing = [d for d in args.run_dirs if not (Path(d) / "tb").is_dir()]
    if missing:
        raise ConfigError(f"not RLVR run directories (no tb/): {', '.join(missing)}")
    print(compare_runs([Path(d) for d in args.run_dirs], Path(args.out)))
    print(f"figure: {args.out}")
    return 0


def _terms(args) -> int:
    from dataclasses import fields

    from trainers.rlvr.terms import RLVR_TERMS

    for entry in RLVR_TERMS:
        print(f"{entry.name:<10} {entry.description}")
        for f in fields(entry.obj.params_cls):
            print(f"    {f.name} = {f.default!r}")
    return 0
