"""Kill a training driver with SIGKILL after its first checkpoint and resume it: the
iteration counter, optimizer state and TensorBoard run continue without duplicate steps."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from regrl.trainers.checkpoint import latest_checkpoint, read_state
from regrl.trainers.run_files import TB_DIR

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 5


def regrl(*args, **kw):
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "regrl.trainers.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


def wait_for_checkpoint(runs: Path, proc, timeout=240.0) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for state in runs.glob("*/*/checkpoints/iter_*/regrl_state.json"):
            return state.parents[2]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise TimeoutError("no checkpoint appeared")


def optimizer_step_count(ckpt: Path) -> int:
    import pickle

    state = pickle.loads((ckpt / "learner_group" / "learner" / "state.pkl").read_bytes())
    opt = next(iter(state["optimizer"].values()))
    return int(next(iter(opt["state"]["state"].values()))["step"])


def test_sigkill_then_resume(tmp_path):
    proc = regrl(
        "train",
        "configs/cartpole_ppo.yaml",
        "--set",
        f"runs_root={tmp_path}",
        "--set",
        f"training.iterations={TOTAL}",
        "--set",
        "training.stop_return=null",
        "--set",
        "training.train_batch_size=400",
        "--set",
        "training.minibatch_size=100",
        "--set",
        "training.num_epochs=2",
        "--set",
        "resources.num_env_runners=0",
        "--set",
        "checkpoint.every=1",
    )
    run_dir = wait_for_checkpoint(tmp_path, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait(timeout=30)
    first = read_state(latest_checkpoint(run_dir))["iteration"]
    assert 1 <= first < TOTAL
    steps_before = optimizer_step_count(latest_checkpoint(run_dir))
    partial = run_dir / "checkpoints" / f".tmp_iter_{first + 1:06d}_{proc.pid}"
    partial.mkdir(exist_ok=True)  # what a SIGKILL during a checkpoint write leaves
    (partial / "algorithm_state.pkl").write_bytes(b"half")

    resumed = regrl("train", "--resume", str(run_dir))
    out, _ = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, out
    assert f"from iter_{first:06d} (iteration {first})" in out
    assert not partial.exists() and re.search(r"removed \d+ partial checkpoint\(s\)", out)
    assert f"iter {first + 1:>4}/{TOTAL}" in out and f"iter {first:>4}/{TOTAL}" not in out

    final = latest_checkpoint(run_dir)
    state = read_state(final)
    assert state["iteration"] == TOTAL
    assert state["env_steps"] >= TOTAL * 400
    # Adam's step counter carried over: (TOTAL - first) more iterations of 2 epochs x 4 minibatches
    assert optimizer_step_count(final) > steps_before > 0

    acc = EventAccumulator(str(run_dir / TB_DIR))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("env/episode_return_mean")]
    assert steps == list(range(1, TOTAL + 1))
