"""``regrl rlvr terms|compare``. ``kind: rlvr`` / ``kind: sft`` files train, validate and
evaluate through their drivers in :mod:`regrl.trainers.kinds`."""

from __future__ import annotations

from pathlib import Path

from regrl.trainers.checks import ConfigError  # light: `regrl --help` builds this parser
from regrl.trainers.rlvr import text_cli
from regrl.trainers.run_files import TB_DIR

FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def add_cli(sub) -> None:
    """The text/RLVR domain's verbs: ``regrl rlvr terms|compare`` and ``regrl text ...``."""
    text_cli.add_cli(sub)
    p = sub.add_parser(
        "rlvr", help="RLVR tools (kind: rlvr / kind: sft files train with `regrl train`)"
    )
    psub = p.add_subparsers(dest="action", required=True)
    psub.add_parser("terms", help="list RLVR objective terms and their parameters").set_defaults(
        handler=_terms
    )
    c = psub.add_parser("compare", help="table + figure of several RLVR runs' entropy/accuracy")
    c.add_argument("run_dirs", nargs="+")
    c.add_argument("--out", default="rlvr_compare.png", help="figure path (PNG)")
    c.set_defaults(handler=_compare)


def _compare(args) -> int:
    from regrl.trainers.rlvr.evaluate import compare_runs  # lazy: torch, not at --help

    out = Path(args.out)
    if out.suffix.lower() not in FIGURE_SUFFIXES or out.is_dir():  # matplotlib would append .png
        raise ConfigError(
            f"--out must be an image file ({', '.join(FIGURE_SUFFIXES)}), got {args.out}"
        )
    missing = [d for d in args.run_dirs if not (Path(d) / TB_DIR).is_dir()]
    if missing:
        raise ConfigError(f"not RLVR run directories (no {TB_DIR}/): {', '.join(missing)}")
    print(compare_runs([Path(d) for d in args.run_dirs], Path(args.out)))
    print(f"figure: {args.out}")
    return 0


def _terms(args) -> int:
    from dataclasses import fields

    from regrl.trainers.rlvr.terms import RLVR_TERMS  # lazy: torch, not at --help

    for entry in RLVR_TERMS:
        if entry.obj.needs_values or entry.obj.needs_candidates:
            continue  # no critic and no candidate actions in the token backend
        print(f"{entry.name:<10} {entry.description}")
        for f in fields(entry.obj.params_cls):
            print(f"    {f.name} = {f.default!r}")
    return 0
