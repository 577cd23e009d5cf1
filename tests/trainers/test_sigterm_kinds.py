"""SIGTERM on a real ``regrl train`` of every kind besides rl (tests/trainers/test_sigterm.py
has CartPole PPO): the run, sent SIGTERM after its first logged iteration, finishes the running
one, checkpoints it, prints one line and exits 143; ``--resume`` continues from that
checkpoint. Tiny configs (well under a second per iteration); the stopped run is a subprocess,
its resume runs in this process (about 6 s of CPU per kind)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from regrl.trainers.checkpoint import latest_checkpoint, read_state
from regrl.trainers.cli import main
from regrl.trainers.stop_signal import EXIT_TERMINATED
from tests.trainers.test_offline import blobs
from tests.trainers.test_rift_pretrain import synthetic_demos

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "regrl.trainers.cli"]
ENV = dict(
    os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1"
)
MANY = 100_000  # far more iterations than run before the SIGTERM


def _offline(tmp_path):
    x, y = blobs()
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    return {
        "kind": "offline",
        "data": {"path": str(tmp_path / "blobs.npz"), "val_fraction": 0.25},
        "model": {"hidden": [16]},
        "training": {"epochs": MANY, "batch_size": 32, "lr": 0.01},
        "plugins": [{"name": "elr"}],
    }, ("training", "epochs")


def _sft(tmp_path):
    return {
        "kind": "sft",
        "model": {"path": "tiny", "tiny_layers": 1, "tiny_width": 16},
        "data": {"task": {"name": "arithmetic", "kwargs": {"digits": 1}}, "n": 16},
        "training": {"epochs": MANY, "batch_size": 8, "lr": 3.0e-3},
        "resources": {"torch_threads": 1},
    }, ("training", "epochs")


def _planner(tmp_path):
    synthetic_demos(tmp_path / "demos.npz", n=32)
    return {
        "kind": "planner",
        "demos": str(tmp_path / "demos.npz"),
        "num_modes": 2,
        "dim": 16,
        "epochs": MANY,
        "batch_size": 16,
        "export": None,
    }, ("epochs",)


def _rlvr(tmp_path, mode="local"):
    resources = {"mode": mode, "torch_threads": 1}
    if mode == "ray":
        resources.update(
            num_rollout_actors=1, num_reward_actors=1, num_learners=1, cpus_per_actor=0.25
        )
    return {
        "kind": "rlvr",
        "model": {"path": "tiny", "tiny_layers": 1, "tiny_width": 16},
        "task": {"name": "arithmetic", "kwargs": {"digits": 1}},
        "rollout": {"prompts_per_step": 2, "group_size": 2, "max_new_tokens": 4},
        "training": {"steps": MANY, "lr": 1.0e-3, "micro_batch_size": 4},
        "eval": {"every": 0, "prompts": 2, "pass_k": 1},
        "resources": resources,
    }, ("training", "steps")


def _first_logged(path: Path) -> bool:
    return path.is_file() and path.read_text().count("\n") >= 1


def sigterm_and_resume(tmp_path, capsys, make, unit):
    """Train ``make``'s config, SIGTERM the driver after one logged iteration, check the exit
    status, the line and the checkpoint, then resume it (``regrl train --resume``, in this
    process) for one more iteration."""
    raw, total_key = make(tmp_path)
    raw.update(name="k", runs_root=str(tmp_path / "runs"), seed=0)
    raw["checkpoint"] = {"every": MANY, "keep": 2}  # the SIGTERM alone writes the checkpoint
    (tmp_path / "k.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = subprocess.Popen(
        [*CLI, "train", str(tmp_path / "k.yaml"), "--quiet"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while not any(_first_logged(p) for p in tmp_path.glob("runs/k/*/metrics.jsonl")):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # the driver only, as Kubernetes or `kill` does
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_TERMINATED, out + err
    (run_dir,) = (tmp_path / "runs" / "k").iterdir()
    done = read_state(latest_checkpoint(run_dir))["iteration"]
    logged = [json.loads(r)["step"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert 1 <= done < MANY and logged == list(range(1, done + 1))  # the last logged is saved
    lines = [ln for ln in out.splitlines() if "SIGTERM" in ln]
    assert lines == [
        f"stopped by SIGTERM after {unit} {done} (saved); resume with: regrl train --resume "
        f"{run_dir}"
    ], out
    assert "SIGTERM: checkpointing after the running iteration" in err
    assert "Traceback" not in err and "error:" not in err, err

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    node = saved
    for key in total_key[:-1]:
        node = node[key]
    node[total_key[-1]] = done + 1
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert main(["train", "--resume", str(run_dir), "--quiet"]) == 0  # in-process: faster
    assert f"from iter_{done:06d} ({unit} {done})" in capsys.readouterr().out
    assert read_state(latest_checkpoint(run_dir))["iteration"] == done + 1
    logged = [json.loads(r)["step"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, done + 2))
    return run_dir


@pytest.mark.parametrize(
    "make, unit",
    [(_offline, "epoch"), (_sft, "epoch"), (_planner, "epoch"), (_rlvr, "step")],
    ids=["offline", "sft", "planner", "rlvr"],
)
def test_sigterm_checkpoints_exits_143_and_resumes(tmp_path, capsys, make, unit):
    sigterm_and_resume(tmp_path, capsys, make, unit)


@pytest.mark.slow  # a Ray session and three actors; the harness path is the local run's
def test_rlvr_ray_mode_sigterm_checkpoints_exits_143_and_resumes(tmp_path, capsys):
    """Rollout, reward and learner actors: the SIGTERM reaches the driver inside a blocking
    ray.get, and the actors' state (the learner's weights) goes into the checkpoint."""
    sigterm_and_resume(tmp_path, capsys, lambda t: _rlvr(t, "ray"), "step")
