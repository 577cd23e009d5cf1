"""The console script fixes Python's string-hash seed (trainers/hashseed.py): one seed, one run.
Without it RLlib's multi-agent batches order their agents' rows by a salted hash, and two
RIFT runs with one seed diverged from the first update (docs/rift.md)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from regrl.trainers.hashseed import VARIABLE, ensure_fixed_hash_seed, needs_fixed_seed


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "configs/cartpole_ppo.yaml"], True),
        (["sweep", "a.yaml", "--seeds", "3"], True),
        (["traffic", "compare", "runs/x"], True),
        ([], False),  # prints the usage
        (["--help"], False),
        (["train", "--help"], False),
        (["sweep", "a.yaml", "-h"], False),
        (["list"], False),
        (["validate", "configs/cartpole_ppo.yaml"], False),
    ],
)
def test_which_commands_get_a_fixed_seed(args, expected):
    assert needs_fixed_seed(args, {}) is expected
    assert needs_fixed_seed(args, {VARIABLE: "7"}) is False  # the user's own value is kept


def test_re_executes_with_the_same_command_line_and_the_seed():
    calls = []
    env = {"PATH": "/bin", "HOME": "/h"}
    ensure_fixed_hash_seed(["train", "x.yaml"], env, lambda *a: calls.append(a))
    ((executable, argv, new_env),) = calls
    assert executable == sys.executable and argv == list(sys.orig_argv)
    assert new_env == {"PATH": "/bin", "HOME": "/h", VARIABLE: "0"}
    assert VARIABLE not in env  # the caller's mapping is not changed
    calls.clear()
    ensure_fixed_hash_seed(["train", "x.yaml"], {VARIABLE: "3"}, lambda *a: calls.append(a))
    ensure_fixed_hash_seed(["list"], {}, lambda *a: calls.append(a))
    assert calls == []


def test_two_processes_hash_strings_alike_once_re_executed():
    """A real re-exec: the program prints hash('cbv_0') after ensure_fixed_hash_seed; with the
    variable removed from the environment, two processes agree (they would differ with a
    salted hash) and see PYTHONHASHSEED=0."""
    code = (
        "from regrl.trainers.hashseed import ensure_fixed_hash_seed as e; "
        "e(['train', 'x.yaml']); import os; print(os.environ['PYTHONHASHSEED'], hash('cbv_0'))"
    )
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    out = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [o.returncode for o in out] == [0, 0], out[0].stderr
    first, second = (o.stdout.split() for o in out)
    assert first == second and first[0] == "0"
    salted = [
        subprocess.run(
            [sys.executable, "-c", "print(hash('cbv_0'))"], env=env, capture_output=True, text=True
        ).stdout
        for _ in range(2)
    ]
    assert salted[0] != salted[1]  # the premise: unset, each process salts differently


def test_the_console_script_is_the_entry_that_fixes_the_seed(monkeypatch):
    from regrl.trainers import cli

    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["regrl"] == "regrl.trainers.cli:entry"
    order = []
    monkeypatch.setattr(cli, "ensure_fixed_hash_seed", lambda: order.append("seed"))
    monkeypatch.setattr(cli, "main", lambda: order.append("main") or 0)
    assert cli.entry() == 0 and order == ["seed", "main"]
