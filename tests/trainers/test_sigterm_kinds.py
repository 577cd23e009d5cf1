"""SIGTERM on a real ``regrl train`` of every kind besides rl (tests/trainers/test_sigterm.py
has CartPole PPO), the offline kind also data-parallel on two Ray Train workers: the run, sent
SIGTERM after its first logged iteration, finishes the running one, checkpoints it, prints one
line and exits 143; ``--resume`` continues from that checkpoint. Tiny configs (well under a
second per iteration); the stopped run is a subprocess, its resume runs in this process (about
6 s of CPU per kind; the data-parallel one starts Ray Train twice, about 60 s: slow)."""

import json

import numpy as np
import pytest
import yaml

from regrl.trainers.checkpoint import latest_checkpoint, read_state
from regrl.trainers.cli import main
from regrl.trainers.stop_signal import EXIT_TERMINATED
from tests.trainers.sigterm_helpers import first_row_logged, run_errors, sigterm_when_ready
from tests.trainers.test_offline import blobs
from tests.trainers.test_rift_pretrain import synthetic_demos

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


def _offline_data_parallel(tmp_path):
    raw, total_key = _offline(tmp_path)
    return dict(raw, resources={"num_workers": 2}), total_key


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


def sigterm_and_resume(tmp_path, capsys, make, unit, driver_resumes=True):
    """Train ``make``'s config, SIGTERM the driver after one logged iteration, check the exit
    status, the line and the checkpoint, then resume it (``regrl train --resume``, in this
    process) for one more iteration. ``driver_resumes``: the driver, not a Ray Train worker
    whose lines Ray forwards when it gets to them, says which checkpoint it resumed from."""
    raw, total_key = make(tmp_path)
    raw.update(name="k", runs_root=str(tmp_path / "runs"), seed=0)
    raw["checkpoint"] = {"every": MANY, "keep": 2}  # the SIGTERM alone writes the checkpoint
    (tmp_path / "k.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    stopped = sigterm_when_ready(
        ["train", str(tmp_path / "k.yaml"), "--quiet"],
        lambda: any(first_row_logged(p) for p in tmp_path.glob("runs/k/*/metrics.jsonl")),
    )
    out, err = stopped.out, run_errors(stopped.err)
    assert stopped.returncode == EXIT_TERMINATED, out + err
    (run_dir,) = (tmp_path / "runs" / "k").iterdir()
    done = read_state(latest_checkpoint(run_dir))["iteration"]
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(r)["step"] for r in rows]
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
    if driver_resumes:
        assert f"from iter_{done:06d} ({unit} {done})" in capsys.readouterr().out
    assert read_state(latest_checkpoint(run_dir))["iteration"] == done + 1
    resumed = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in resumed] == list(range(1, done + 2))
    # the rows up to the checkpoint are the stopped run's (a restart from scratch would have
    # rewritten them, with other timings): the resume began after the checkpoint
    assert resumed[:done] == rows
    return run_dir


@pytest.mark.parametrize(
    "make, unit",
    [(_offline, "epoch"), (_sft, "epoch"), (_planner, "epoch"), (_rlvr, "step")],
    ids=["offline", "sft", "planner", "rlvr"],
)
def test_sigterm_checkpoints_exits_143_and_resumes(tmp_path, capsys, make, unit):
    sigterm_and_resume(tmp_path, capsys, make, unit)


# ~60 s (Ray Train started twice). Its parts run fast in make test: the driver's relay
# (test_sigterm.py::test_relay_*), both DDP ranks stopping after the requested epoch and
# checkpointing it (test_offline.py::test_data_parallel_group_stops_together_after_the_requested_epoch)
# and Ray Train's two workers writing per-rank plugin state (test_offline.py::test_ray_train_two_workers).
@pytest.mark.slow
def test_data_parallel_offline_sigterm_checkpoints_exits_143_and_resumes(tmp_path, capsys):
    """Two Ray Train workers: the SIGTERM reaches the driver only, which passes it on; both
    workers stop after the same epoch and checkpoint it (rank 0 the model, each rank its plugin
    state), as the run's usual checkpoint that --resume continues from with two workers."""
    run_dir = sigterm_and_resume(
        tmp_path, capsys, _offline_data_parallel, "epoch", driver_resumes=False
    )
    files = {p.name for p in latest_checkpoint(run_dir).iterdir()}
    assert {"learner.pt", "plugins_rank0.pt", "plugins_rank1.pt"} <= files


@pytest.mark.slow  # a Ray session and three actors; the harness path is the local run's
def test_rlvr_ray_mode_sigterm_checkpoints_exits_143_and_resumes(tmp_path, capsys):
    """Rollout, reward and learner actors: the SIGTERM reaches the driver inside a blocking
    ray.get, and the actors' state (the learner's weights) goes into the checkpoint."""
    sigterm_and_resume(tmp_path, capsys, lambda t: _rlvr(t, "ray"), "step")
