"""SIGTERM (Kubernetes, Slurm, spot preemption, ``ray job stop``) is handled like Ctrl-C: the
running iteration finishes within the grace period, it is checkpointed, one line says so and
the CLI exits 143; ``--resume`` continues. First on the harness's in-memory session, then a
real ``regrl train`` of CartPole PPO in a subprocess."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from regrl.trainers import harness
from regrl.trainers.checkpoint import latest_checkpoint, read_state
from regrl.trainers.stop_signal import EXIT_TERMINATED, GRACE_ENV, Terminated, grace_seconds
from tests.trainers.test_harness import FakeConfig, FakeDriver, FakeSession, _iters, _steps

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sigterm_in_step(monkeypatch):
    """``arm(i, sleep)``: iteration ``i`` receives SIGTERM, then works ``sleep`` seconds more."""
    original = FakeSession.step

    def arm(at, sleep=0.0):
        def step(self, i):
            if i == at:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(sleep)
            return original(self, i)

        monkeypatch.setattr(FakeSession, "step", step)

    return arm


def _run(tmp_path):
    with pytest.raises(Terminated):
        harness.train(FakeDriver(), FakeConfig(str(tmp_path)), progress=False)
    (run_dir,) = (tmp_path / "fake").iterdir()
    return run_dir


def test_sigterm_finishes_the_running_iteration_and_saves_it(tmp_path, sigterm_in_step, capsys):
    sigterm_in_step(3)
    before = signal.getsignal(signal.SIGTERM)  # Ray's handler if an earlier test ran ray.init
    run_dir = _run(tmp_path)
    assert _iters(run_dir) == [2, 3] and _steps(run_dir) == [1, 2, 3]  # 3 finished, then saved
    out = capsys.readouterr()
    assert "SIGTERM: checkpointing after the running iteration" in out.err
    assert (
        f"stopped by SIGTERM after iteration 3 (saved); resume with: regrl train --resume {run_dir}"
        in out.out
    )
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
    done = harness.train(FakeDriver(), resume=run_dir, progress=False)
    assert done.metrics == {"x": 15.0} and _steps(run_dir) == [1, 2, 3, 4, 5]


def test_sigterm_after_the_grace_period_interrupts_like_ctrl_c(
    tmp_path, sigterm_in_step, monkeypatch
):
    monkeypatch.setenv(GRACE_ENV, "0.2")
    sigterm_in_step(3, sleep=30.0)  # an iteration far longer than the grace period
    run_dir = _run(tmp_path)
    # the 30 s iteration was cut short: had regrl waited for it, step 3 would be recorded
    assert _iters(run_dir) == [2] and _steps(run_dir) == [1, 2]  # 3 never completed


def test_sigterm_turned_into_a_keyboard_interrupt_is_still_a_sigterm(
    tmp_path, sigterm_in_step, monkeypatch, capsys
):
    """Ray's blocking calls re-raise our handler's exception as KeyboardInterrupt (seen when the
    grace period ran out inside RLlib's sampling: `interrupted`, exit 130)."""
    monkeypatch.setenv(GRACE_ENV, "0.2")
    original = FakeSession.step

    def step(self, i):
        if i == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            try:
                time.sleep(30.0)
            except Terminated:
                raise KeyboardInterrupt from None  # what ray.wait does with it
        return original(self, i)

    monkeypatch.setattr(FakeSession, "step", step)
    run_dir = _run(tmp_path)  # raises Terminated
    assert "stopped by SIGTERM after iteration 2 (saved)" in capsys.readouterr().out
    assert _iters(run_dir) == [2]


def test_grace_zero_interrupts_at_once(tmp_path, sigterm_in_step, monkeypatch):
    monkeypatch.setenv(GRACE_ENV, "0")
    sigterm_in_step(4, sleep=30.0)
    run_dir = _run(tmp_path)
    assert _iters(run_dir) == [2, 3]  # 3 was not due by the cadence: saved by the SIGTERM


def test_the_loop_alone_handles_sigterm_too(tmp_path, sigterm_in_step):
    """harness.run without harness.train: how the offline kind's local fit runs it."""
    sigterm_in_step(3)
    cfg = FakeConfig(str(tmp_path))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("{}")  # what the run's logger quotes
    with pytest.raises(Terminated):
        harness.run(FakeSession(cfg), tmp_path / "r", None, cfg.checkpoint, progress=False)
    assert _iters(tmp_path / "r") == [2, 3]


def test_sigterm_before_the_first_iteration_says_nothing_was_saved(
    tmp_path, sigterm_in_step, monkeypatch, capsys
):
    """Iteration 1 interrupted (grace 0): no checkpoint exists, and the line must not say
    '(saved)' as it did."""
    monkeypatch.setenv(GRACE_ENV, "0")
    sigterm_in_step(1, sleep=30.0)
    run_dir = _run(tmp_path)
    assert _iters(run_dir) == []
    out = capsys.readouterr().out
    assert (
        "stopped by SIGTERM before the first iteration finished: nothing to save; "
        f"resume with: regrl train --resume {run_dir}" in out
    )
    assert "(saved)" not in out


class _SlowBuild(FakeDriver):
    """A driver whose build (RLlib's actors, a model download) is hit by SIGTERM."""

    unit = "step"

    def __init__(self, ray_style: bool = False):
        self.ray_style = ray_style

    def build(self, cfg, run_dir, choice):
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            time.sleep(30.0)
        except Terminated:
            if self.ray_style:  # what a blocking ray.get does with the handler's exception
                raise KeyboardInterrupt from None
            raise
        return super().build(cfg, run_dir, choice)


@pytest.mark.parametrize("ray_style", [False, True])
def test_sigterm_while_building_is_one_line_and_a_sigterm(tmp_path, capsys, ray_style):
    """Before the loop the handler interrupts at once; the run used to end without a word
    (and, inside a Ray call, as a Ctrl-C: exit 130)."""
    with pytest.raises(Terminated):
        harness.train(_SlowBuild(ray_style), FakeConfig(str(tmp_path)), progress=False)
    (run_dir,) = (tmp_path / "fake").iterdir()
    out = capsys.readouterr().out
    assert out.count("stopped by SIGTERM") == 1
    assert (
        "stopped by SIGTERM before the first step finished: nothing to save; "
        f"resume with: regrl train --resume {run_dir}" in out
    )


def test_ctrl_c_while_building_stays_a_ctrl_c(tmp_path, capsys):
    class CtrlC(FakeDriver):
        def build(self, cfg, run_dir, choice):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        harness.train(CtrlC(), FakeConfig(str(tmp_path)), progress=False)
    assert not isinstance(info.value, Terminated)
    assert "SIGTERM" not in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["soon", "-1", "nan"])
def test_bad_grace_is_one_error(monkeypatch, bad):
    monkeypatch.setenv(GRACE_ENV, bad)
    with pytest.raises(ValueError, match=f"{GRACE_ENV}=.*must be a number of seconds >= 0"):
        grace_seconds()


# ---- end to end: regrl train in a subprocess ------------------------------------------------
def test_regrl_train_sigterm_checkpoints_exits_143_and_resumes(tmp_path):
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "regrl.trainers.cli", "train"]
    sets = {
        "runs_root": tmp_path,
        "training.iterations": 200,  # far more than will run before the SIGTERM
        "training.stop_return": "null",
        "training.train_batch_size": 200,
        "training.minibatch_size": 100,
        "training.num_epochs": 1,
        "resources.num_env_runners": 0,
        "checkpoint.every": 100,  # no checkpoint by the cadence: the SIGTERM writes it
    }
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    proc = subprocess.Popen(
        [*cmd, "configs/cartpole_ppo.yaml", *args, "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while not list(tmp_path.glob("cartpole_ppo/*/metrics.jsonl")):  # iteration 1 is logged
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)  # the driver only, as Kubernetes or `kill` does
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_TERMINATED, out + err
    (run_dir,) = (tmp_path / "cartpole_ppo").iterdir()
    done = read_state(latest_checkpoint(run_dir))["iteration"]
    assert 1 <= done < 200
    assert f"stopped by SIGTERM after iteration {done} (saved); resume with:" in out
    assert "SIGABRT" not in err and "Traceback" not in err and "error:" not in err, err

    # resume for one more iteration (the saved config is the run's: shorten it to done + 1)
    cfg_path = run_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["training"]["iterations"] = done + 1
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    resumed = subprocess.run(
        [*cmd, "--resume", str(run_dir), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"from iter_{done:06d} (iteration {done})" in resumed.stdout
    assert read_state(latest_checkpoint(run_dir))["iteration"] == done + 1
