"""The config code split by job (issue 23): the kernel, the YAML reader and ``--set`` import no
torch; ``--set`` is one flag with one parser wherever it appears; kind rlvr's objective is kind
rl's, not a copy; a run's saved config is read by the schema of its own kind."""

import argparse
import subprocess
import sys

import pytest
import yaml

from regrl.trainers import config_objective
from regrl.trainers.checks import ConfigError
from regrl.trainers.config_rl import ExperimentConfig
from regrl.trainers.kinds import load_run_config
from regrl.trainers.rlvr import config as rlvr_config

LIGHT = (
    "regrl.trainers.config_kernel",
    "regrl.trainers.config_yaml",
    "regrl.trainers.config_overrides",
    "regrl.trainers.config_base",
)


def test_the_kernel_reader_and_overrides_import_no_torch():
    """Catches torch (or the term registry, which imports it) pulled back into the modules
    that read and check any kind's file: only a kind's schema may need it."""
    code = f"import sys; import {', '.join(LIGHT)}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _set_action(parser: argparse.ArgumentParser, *path: str) -> argparse.Action:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
        parser.ensure_populated()  # a lazily built parser (regrl.trainers.lazy_parser)
    return next(a for a in parser._actions if "--set" in a.option_strings)


SET_COMMANDS = (
    ("train",),
    ("validate",),
    ("sweep",),
    ("traffic", "pretrain"),
    ("turbulence", "pretrain-policy"),
)
"""Every command with a ``--set`` flag (the domain tools' included)."""


def test_set_is_one_flag_in_train_validate_and_sweep(tmp_path):
    """Catches a command that defines its own ``--set`` again (other help, dest or metavar)
    or parses it with its own rules: a bad ``--set`` reads the same for train and sweep."""
    from regrl.trainers.cli import _parser
    from regrl.trainers.sweep import make_spec

    parser = _parser()
    actions = [_set_action(parser, *cmd) for cmd in SET_COMMANDS]
    assert len({(a.dest, a.metavar, a.help, tuple(a.option_strings)) for a in actions}) == 1
    with pytest.raises(ConfigError, match=r"^--set 'training\.lr': expected key\.path=value$"):
        make_spec(["configs/cartpole_ppo.yaml"], 1, [], ["training.lr"], None, [], None)


def test_rlvr_objective_is_the_rl_objective_narrowed():
    """Catches the objective config copied into kind rlvr again: one TermSpec, one class."""
    assert issubclass(rlvr_config.RLVRObjective, config_objective.ObjectiveConfig)
    assert not hasattr(rlvr_config, "TermSpec") or (
        rlvr_config.TermSpec is config_objective.TermSpec
    )
    with pytest.raises(ConfigError, match="need a critic or candidate actions.*kind: rlvr"):
        rlvr_config.config_from_dict(
            {"kind": "rlvr", "objective": {"terms": [{"name": "policy"}, {"name": "value"}]}}
        )


def _run_dir(tmp_path, data):
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(data))
    return run


def test_a_saved_config_is_read_by_the_schema_of_its_kind(tmp_path):
    """Catches a fallback to the rl schema: an rlvr run's config was read as rl and refused
    with "unknown key 'model.path'"; now it is an RLVRConfig, and a caller that needs an rl
    run is told the kinds differ."""
    run = _run_dir(tmp_path, {"kind": "rlvr", "model": {"path": "tiny"}})
    assert isinstance(load_run_config(run), rlvr_config.RLVRConfig)
    with pytest.raises(ConfigError, match="a run of kind 'rlvr'; this needs a run of kind 'rl'"):
        load_run_config(run, "rl")
    legacy = _run_dir(tmp_path / "old", {"training": {"lr": 0.01}})  # no kind: rl
    assert isinstance(load_run_config(legacy, "rl"), ExperimentConfig)
    with pytest.raises(ConfigError, match="not a regrl run directory"):
        load_run_config(tmp_path)
