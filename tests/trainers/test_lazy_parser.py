"""LazyParser: a sub-command's arguments are added on first use only (``regrl --help`` stays
free of the imports a command group's flags need)."""

from __future__ import annotations

import argparse

import pytest

from regrl.trainers.lazy_parser import LazyParser


def _parser(calls):
    def populate(group):
        calls.append(group.prog)
        actions = group.add_subparsers(dest="action", required=True)
        run = actions.add_parser("run", help="run it")
        run.add_argument("--steps", type=int, default=1)

    p = argparse.ArgumentParser(prog="tool")
    sub = p.add_subparsers(dest="command", required=True, parser_class=LazyParser)
    sub.add_parser("group", help="a lazily built group", populate=populate)
    sub.add_parser("plain", help="an ordinary command").add_argument("--x", type=int)
    return p


def test_top_level_help_and_other_commands_do_not_populate(capsys):
    calls = []
    p = _parser(calls)
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    assert "a lazily built group" in capsys.readouterr().out
    assert p.parse_args(["plain", "--x", "3"]).x == 3
    assert calls == []


def test_naming_the_command_populates_it_once():
    calls = []
    p = _parser(calls)
    args = p.parse_args(["group", "run", "--steps", "5"])
    assert (args.command, args.action, args.steps) == ("group", "run", 5)
    assert p.parse_args(["group", "run"]).steps == 1
    assert calls == ["tool group"]


def test_help_of_the_command_populates_it(capsys):
    calls = []
    p = _parser(calls)
    with pytest.raises(SystemExit):
        p.parse_args(["group", "--help"])
    assert "run it" in capsys.readouterr().out
    assert calls == ["tool group"]


def test_errors_of_the_populated_parser_are_argparse_errors(capsys):
    p = _parser([])
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["group", "run", "--steps", "many"])
    assert exc.value.code == 2
    assert "invalid int value" in capsys.readouterr().err
