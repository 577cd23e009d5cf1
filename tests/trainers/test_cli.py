"""CLI: validate, list, and bad input -> one 'error:' line and exit status 2, no traceback."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from regrl.trainers.cli import EXIT_BAD_INPUT, main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_ok(capsys):
    assert main(["validate", str(ROOT / "configs/cartpole_ppo.yaml")]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "clip_low: 0.2" in out


def test_list_shows_envs_terms_and_functions(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in (
        "GroupedCartPole-v1",
        "policy",
        "lp_reg",
        "demo_kl",
        "group_advantages",
        "minp_proxy_logprob",
        "offline plugins",
    ):
        assert name in out


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["validate", "missing.yaml"], "no such config file"),
        (["train", "missing.yaml"], "no such config file"),
        (["train"], "train needs a CONFIG"),
        (["train", "--resume", "/nonexistent/run"], "no such run directory"),
        (["eval", "/nonexistent/run"], "no such run directory"),
    ],
)
def test_bad_invocations_exit_2(capsys, args, pattern):
    assert main(args) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error:") and pattern in err


def test_unknown_env_is_a_config_error(tmp_path, capsys):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"env": {"name": "CartPol-v1"}}))
    assert main(["validate", str(path)]) == EXIT_BAD_INPUT
    assert "unknown environment 'CartPol-v1'" in capsys.readouterr().err


def test_eval_of_run_without_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: x\n")
    assert main(["eval", str(run)]) == EXIT_BAD_INPUT
    assert "no complete checkpoint" in capsys.readouterr().err


def test_console_script_bad_config_has_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"objective": {"terms": [{"name": "policy", "dual_clip": 0.5}]}})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "regrl.trainers.cli", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in proc.stderr
    assert "dual_clip must be > 1" in proc.stderr and str(path) in proc.stderr


@pytest.mark.parametrize(
    "env, sets, pattern",
    [
        (
            {"name": "GroupedCartPole-v1", "kwargs": {"group_sz": 4}},
            [],
            r"has no argument\(s\) \['group_sz'\]",
        ),
        (
            {"name": "GroupedCartPole-v1", "kwargs": {"group_size": 0}},
            [],
            "group_size must be >= 1",
        ),
        (
            {"name": "Pendulum-v1"},
            ["objective.terms=[{name: lp_reg}]"],
            "the lp_reg term needs a Discrete",
        ),
    ],
)
def test_environment_problems_fail_before_ray_starts(tmp_path, capsys, env, sets, pattern):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"env": env}))
    overrides = [a for s in sets for a in ("--set", s)]
    assert main(["validate", str(path), *overrides]) == EXIT_BAD_INPUT
    assert re.search(pattern, capsys.readouterr().err)


def test_train_dispatches_offline_configs(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    args = [
        "--set",
        f"data.path={tmp_path / 'd.npz'}",
        "--set",
        f"runs_root={tmp_path}",
        "--set",
        "training.epochs=3",
        "--set",
        "plugins=[{name: elr}]",
        "--quiet",
    ]
    assert main(["train", str(ROOT / "configs/offline_digits.yaml"), *args]) == 0
    out = capsys.readouterr().out
    assert "done: 3 epochs" in out
    run_dir = Path(out.split("run directory: ")[1].split()[0])
    assert main(["validate", str(run_dir / "config.yaml")]) == 0
    assert "plugins:" in capsys.readouterr().out


def test_a_closed_output_pipe_is_not_a_cluster_error():
    """`regrl list | head -1`: BrokenPipeError is a ConnectionError subclass, and used to be
    reported as "cannot reach the Ray cluster"."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "regrl.trainers.cli", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away after one line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "error:" not in err and "Traceback" not in err, err
